# sriov-k8s node image: sriov-device-plugin (+ in-process CNI agent), sriovctl, the static
# native CNI shim and its installer, used by the DaemonSet's "install-cni" initContainer.
#
# Build it with hack/build-image (podman, no daemon, no registry): it makes the default base,
# a Debian bookworm root from mmdebstrap imported as localhost/sriov-k8s-base:bookworm, and
# runs `podman build --squash-all`. Any Debian bookworm image works as BASE, e.g.
#   hack/build-image --base docker.io/library/debian:bookworm-slim
# (packages the base lacks come from apt; see docs/deployment.md "Build the image").
ARG BASE=localhost/sriov-k8s-base:bookworm

# ---- shim: the static native CNI shim (shim/sriov-shim.c) with Debian's compilers
FROM ${BASE} AS shim
COPY hack/image/ensure-packages /usr/local/sbin/ensure-packages
RUN ensure-packages gcc libc6-dev musl-tools
WORKDIR /opt/sriov-k8s
COPY shim/sriov-shim.c shim/version_json.h ./shim/
COPY hack/build-shim ./hack/build-shim
# static, stripped, no dynamic dependencies: it runs on nodes without Python (or our libc)
RUN hack/build-shim /opt/sriov-k8s/shim/build/sriov-shim \
 && ! ldd shim/build/sriov-shim >/dev/null 2>&1

# ---- build: the venv (PyPI wheels) under /opt/sriov-k8s/.venv
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A site whose egress re-signs TLS passes its CA bundle for pip (hack/build-image mounts the
# host's bundle for the build only; the node image never holds it).
ARG PIP_CERT=
COPY hack/image/ensure-packages /usr/local/sbin/ensure-packages
RUN ensure-packages python3 python3-venv
WORKDIR /opt/sriov-k8s
COPY pyproject.toml README.md ./
COPY sriov ./sriov
COPY cni ./cni
COPY deviceplugin ./deviceplugin
# The venv lives at <repo>/.venv because hack/install-cni runs "$repo/.venv/bin/python3".
# pip/setuptools and the packages' own test suites are not needed at run time.
# kubernetes>=37 also ships an asyncio client (kubernetes/aio, ~70 MB with aiohttp)
# that nothing here imports: it goes (the import check at the end proves what stays suffices).
RUN python3 -m venv /opt/sriov-k8s/.venv \
 && /opt/sriov-k8s/.venv/bin/pip install --no-cache-dir . \
 && /opt/sriov-k8s/.venv/bin/pip uninstall -q -y aiohttp aiohttp-retry aiohappyeyeballs aiosignal \
      frozenlist multidict propcache yarl \
 && site=$(/opt/sriov-k8s/.venv/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && rm -rf "$site"/pip "$site"/pip-* "$site"/setuptools "$site"/setuptools-* "$site"/_distutils_hack \
           "$site"/distutils-precedence.pth "$site"/pkg_resources /opt/sriov-k8s/.venv/bin/pip* \
           "$site"/kubernetes/aio \
 && find "$site" -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + \
 && /opt/sriov-k8s/.venv/bin/python3 -c 'import deviceplugin.cli, cni.agent, cni.shim, sriov.cli.main, sriov.node_labels, kubernetes.client, kubernetes.config, pyudev, grpc, pyroute2, yaml'

# ---- the node image
FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="sriov-k8s" \
      org.opencontainers.image.description="SR-IOV device plugin and CNI agent for Kubernetes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY hack/image/ensure-packages hack/image/slim /usr/local/sbin/
# python3 runs the venv; libudev1 is what pyudev loads for the device events. No iproute2, no
# CNI plugins: the stack speaks netlink itself and runs IPAM delegates from the node's
# /opt/cni/bin (mounted). Build-only packages of our base are purged.
# (mmdebstrap marks every package it installs as manual, so the build-only ones are named here;
# usr-is-merged stands in for usrmerge, which would keep perl, in a root already merged-/usr.)
RUN ensure-packages python3 libudev1 usr-is-merged \
 && slim python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl \
      gcc gcc-12 cpp cpp-12 libc6-dev libgcc-12-dev linux-libc-dev libcrypt-dev libnsl-dev \
      libtirpc-dev rpcsvc-proto libasan8 libtsan2 liblsan0 libubsan1 libitm1 libquadmath0 \
      libatomic1 libgomp1 libcc1-0 libisl23 libmpc3 libmpfr6 \
      binutils binutils-common binutils-x86-64-linux-gnu libbinutils libctf0 libctf-nobfd0 \
      libgprofng0 libjansson4 usrmerge libfile-find-rule-perl libnumber-compare-perl \
      libtext-glob-perl perl perl-modules-5.36 libperl5.36 libgdbm-compat4 \
      musl-tools musl musl-dev \
 && rm /usr/local/sbin/ensure-packages /usr/local/sbin/slim
COPY --from=build /opt/sriov-k8s/.venv /opt/sriov-k8s/.venv
# install-cni installs the native shim as the node's sriov (and the Python shim as sriov-py)
COPY --from=shim /opt/sriov-k8s/shim/build/sriov-shim /opt/sriov-k8s/shim/build/sriov-shim
COPY hack/install-cni /opt/sriov-k8s/hack/install-cni
COPY cni/shim.py /opt/sriov-k8s/cni/shim.py
ENV PATH=/opt/sriov-k8s/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1
WORKDIR /opt/sriov-k8s
ENTRYPOINT ["sriov-device-plugin"]
CMD ["--config=/etc/pcidp/config.json"]
