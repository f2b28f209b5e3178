# sriov-k8s node image: sriov-device-plugin (+ in-process CNI agent), sriovctl, and the
# CNI shim installer used by the DaemonSet's "install-cni" initContainer.
#   docker build -t ghcr.io/sriov-k8s/sriov-k8s:0.1.0 .
# (No container engine on the dev VM: tests/unit/test_manifests_dockerfile.py checks this file.)

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/sriov-k8s
COPY pyproject.toml README.md ./
COPY sriov ./sriov
COPY cni ./cni
COPY deviceplugin ./deviceplugin
# The venv lives at <repo>/.venv because hack/install-cni runs "$repo/.venv/bin/python3".
RUN python -m venv /opt/sriov-k8s/.venv \
 && /opt/sriov-k8s/.venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="sriov-k8s" \
      org.opencontainers.image.description="SR-IOV device plugin and CNI agent for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
# iproute2: `ip` for operators debugging from inside the pod; the stack itself uses netlink.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 \
 && rm -rf /var/lib/apt/lists/*
# Sources + venv; the CNI shim install step is /opt/sriov-k8s/hack/install-cni /host/opt/cni/bin
COPY --from=build /opt/sriov-k8s /opt/sriov-k8s
COPY hack/install-cni /opt/sriov-k8s/hack/install-cni
ENV PATH=/opt/sriov-k8s/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1
WORKDIR /opt/sriov-k8s
ENTRYPOINT ["sriov-device-plugin"]
CMD ["--config=/etc/pcidp/config.json"]
