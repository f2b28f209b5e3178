#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian bookworm machine: apt packages + a venv in .venv
# with sriov-k8s and its test extras. Safe to run again; used by hack/demo.sh, hack/test.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

APT_PACKAGES=(iproute2 containernetworking-plugins dnsmasq-base podman runc busybox-static
              util-linux kmod python3-venv python3-dev gcc musl-tools valgrind procps
              mmdebstrap openssl)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing apt packages: ${missing[*]}" >&2
  $SUDO apt-get update -q >&2
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv >&2
fi
stamp=.venv/.sriov-k8s-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing sriov-k8s[test] into .venv" >&2
  .venv/bin/pip install -q --upgrade pip >&2
  .venv/bin/pip install -q -e '.[test]' >&2
  touch "$stamp"
fi
# The static native CNI shim (shim/sriov-shim.c), which hack/install-cni installs as 'sriov'.
if [ ! -x shim/build/sriov-shim ] || [ shim/sriov-shim.c -nt shim/build/sriov-shim ] \
   || [ shim/version_json.h -nt shim/build/sriov-shim ]; then
  hack/build-shim >&2
fi
