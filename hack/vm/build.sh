#!/usr/bin/env bash
# Build (or re-use) the VM testbed artifacts: QEMU >= 8 (igb with real SR-IOV) from
# bookworm-backports, a Debian guest kernel + its modules, and a small busybox initramfs
# that mounts the host's / over 9p. Idempotent; artifacts are cached outside the repo in
#   ${SRIOV_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sriov-k8s-vm}
# Env: SRIOV_VM_KERNEL_PKG (default: what linux-image-amd64 depends on), SRIOV_VM_CACHE.
# Prints the cache dir's kernel version and timings. See docs/vm-testbed.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/vm/lib.sh
. "$HERE/lib.sh"
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
t_start=$(now_ms)
mkdir -p "$CACHE"

# --- 1. apt: backports source + packages -------------------------------------------------
BACKPORTS_SOURCE=/etc/apt/sources.list.d/sriov-k8s-bookworm-backports.sources
ensure_backports_source() {
  if grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 0
  fi
  local uri keyring
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  keyring=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  uri=${uri:-http://deb.debian.org/debian}
  keyring=${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}
  log "adding $BACKPORTS_SOURCE ($uri)"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
    "$uri" "$keyring" | $SUDO tee "$BACKPORTS_SOURCE" >/dev/null
}
APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" != "done" ]; then
    log "apt-get update"
    apt_quiet $SUDO apt-get update -q
    APT_UPDATED=done
  fi
}
apt_quiet() {  # run an apt command, showing its output only when it fails
  if ! "$@" >"$CACHE/apt.log" 2>&1; then
    tail -n 30 "$CACHE/apt.log" >&2
    die "failed: $*"
  fi
}
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

ensure_backports_source
if ! qemu_is_new_enough; then
  apt_update_once
  log "installing qemu-system-x86 from bookworm-backports"
  apt_quiet $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports \
    qemu-system-x86
fi
missing=()
for p in busybox-static cpio kmod; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  apt_update_once
  log "installing ${missing[*]}"
  apt_quiet $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
qemu_is_new_enough || die "qemu-system-x86_64 >= 8.0 is needed for the igb NIC (got: $(qemu_version))"
t_apt=$(now_ms)

# --- 2. guest kernel + modules ------------------------------------------------------------
kernel_pkg=${SRIOV_VM_KERNEL_PKG:-}
if [ -z "$kernel_pkg" ] && [ -f "$CACHE/kernel-pkg" ]; then
  kernel_pkg=$(cat "$CACHE/kernel-pkg")
fi
if [ -z "$kernel_pkg" ]; then
  kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null \
    | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$kernel_pkg" ]; then apt_update_once; kernel_pkg=$(apt-cache depends linux-image-amd64 \
    | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); fi
fi
[[ "$kernel_pkg" =~ ^linux-image-[0-9][A-Za-z0-9.+-]*$ ]] || die "cannot tell the guest kernel package (got '$kernel_pkg'); set SRIOV_VM_KERNEL_PKG"
kver=${kernel_pkg#linux-image-}
kroot="$CACHE/kernel/$kver"
if [ ! -f "$kroot/.complete" ]; then
  log "downloading and extracting $kernel_pkg"
  rm -rf "$kroot" "$CACHE/deb"
  mkdir -p "$CACHE/deb" "$kroot"
  if ! (cd "$CACHE/deb" && apt-get download -q "$kernel_pkg" >"$CACHE/apt.log" 2>&1); then
    apt_update_once
    (cd "$CACHE/deb" && apt_quiet apt-get download -q "$kernel_pkg")
  fi
  dpkg-deb -x "$CACHE"/deb/"$kernel_pkg"_*.deb "$kroot"
  depmod -b "$kroot" "$kver"
  rm -rf "$CACHE/deb"
  touch "$kroot/.complete"
fi
printf '%s\n' "$kernel_pkg" > "$CACHE/kernel-pkg"
ln -sfn "kernel/$kver" "$CACHE/current"
t_kernel=$(now_ms)

# --- 3. initramfs -------------------------------------------------------------------------
initrd="$CACHE/initramfs-$kver.cpio.gz"
if [ ! -f "$initrd" ] || [ "$HERE/initramfs-init.sh" -nt "$initrd" ] || [ "$HERE/build.sh" -nt "$initrd" ]; then
  log "building $initrd"
  "$HERE/mkinitramfs.sh" "$kroot" "$kver" "$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
fi
t_end=$(now_ms)

log "kernel $kver, cache $CACHE"
log "timings: apt $(secs $((t_apt - t_start)))s, kernel $(secs $((t_kernel - t_apt)))s, initramfs $(secs $((t_end - t_kernel)))s, total $(secs $((t_end - t_start)))s"
