# Shared helpers for hack/vm/*.sh (sourced, not executed).
# shellcheck shell=bash
CACHE=${SRIOV_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sriov-k8s-vm}
QEMU=${SRIOV_VM_QEMU:-qemu-system-x86_64}

log() { printf 'vm: %s\n' "$*" >&2; }
die() { printf 'vm: error: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }
secs() { printf '%d.%d' $(($1 / 1000)) $((($1 % 1000) / 100)); }

qemu_version() {
  command -v "$QEMU" >/dev/null 2>&1 || { echo none; return; }
  "$QEMU" --version | awk 'NR == 1 {print $4}'
}

qemu_is_new_enough() {
  local v
  v=$(qemu_version)
  [ "$v" != none ] && [ "${v%%.*}" -ge 8 ] 2>/dev/null
}
