#!/usr/bin/env bash
# run.sh [-- ] CMD...: boot the testbed VM (QEMU TCG, q35 + intel-iommu, two igb NICs with
# SR-IOV on one hub, a virtio-net NIC without SR-IOV on its own hub, the host's / read-only
# over 9p with a tmpfs overlay) and run CMD as root
# with cwd = the caller's cwd (the repo is at the same path inside). The guest console is
# printed live; run.sh exits with CMD's exit code (124 on timeout, 125 if the VM died
# before CMD finished). Needs hack/vm/build.sh to have run.
# Env: SRIOV_VM_TIMEOUT (seconds, default 1200), SRIOV_VM_MEM (MiB, 2048), SRIOV_VM_CPUS (2),
#      SRIOV_VM_KEEP=1 keeps the results dir, SRIOV_VM_PASS_ENV="VAR1 VAR2" exports those
#      host variables into the guest.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/vm/lib.sh
. "$HERE/lib.sh"
[ "${1:-}" = "--" ] && shift
[ "$#" -gt 0 ] || die "usage: hack/vm/run.sh -- CMD [ARGS...]"
qemu_is_new_enough || die "qemu-system-x86_64 >= 8.0 not found; run hack/vm/build.sh"
kdir=$(readlink -f "$CACHE/current" 2>/dev/null) || true
[ -n "$kdir" ] && [ -f "$kdir/.complete" ] || die "no guest kernel in $CACHE; run hack/vm/build.sh"
kver=$(basename "$kdir")
initrd="$CACHE/initramfs-$kver.cpio.gz"
[ -f "$initrd" ] || die "no $initrd; run hack/vm/build.sh"
timeout_s=${SRIOV_VM_TIMEOUT:-1200}

results=$(mktemp -d "${TMPDIR:-/tmp}/sriov-vm.XXXXXX")
qemu_pid=""
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid" 2>/dev/null || true; fi
  if [ "${SRIOV_VM_KEEP:-0}" = 1 ]; then log "results kept in $results"; else rm -rf "$results"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
printf '%s\0' "$@" > "$results/argv"
pwd > "$results/cwd"
: > "$results/env"
for var in ${SRIOV_VM_PASS_ENV:-} CI; do
  [[ "$var" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "SRIOV_VM_PASS_ENV: bad variable name '$var'"
  [ -n "${!var+x}" ] && printf '%s=%s\0' "$var" "${!var}" >> "$results/env"
done
: > "$results/console.log"

cmdline=(console=ttyS0 quiet loglevel=3 panic=-1 intel_iommu=on
         "sriovvm.stage2=$HERE/guest-init.sh" "sriovvm.modules=$kdir/lib/modules/$kver")
qemu_args=(
  -name sriov-k8s-testbed -nodefaults -display none -no-reboot
  -machine q35 -accel tcg -cpu max -smp "${SRIOV_VM_CPUS:-2}" -m "${SRIOV_VM_MEM:-2048}"
  -kernel "$kdir/boot/vmlinuz-$kver" -initrd "$initrd" -append "${cmdline[*]}"
  -serial "file:$results/console.log" -pidfile "$results/qemu.pid"
  -device intel-iommu,intremap=off
  -device pcie-root-port,id=rp1,chassis=1,slot=1
  -device igb,bus=rp1,netdev=hub0p1,mac=52:54:00:5a:00:01
  -netdev hubport,id=hub0p1,hubid=0
  -device pcie-root-port,id=rp2,chassis=2,slot=2
  -device igb,bus=rp2,netdev=hub0p2,mac=52:54:00:5a:00:02
  -netdev hubport,id=hub0p2,hubid=0
  -device pcie-root-port,id=rp3,chassis=3,slot=3
  -device virtio-net-pci,bus=rp3,netdev=hub1p1,mac=52:54:00:5a:00:03
  -netdev hubport,id=hub1p1,hubid=1
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
  -virtfs "local,path=$results,mount_tag=results,security_model=none,multidevs=remap"
)
t0=$(now_ms)
log "booting $kver (TCG, timeout ${timeout_s}s): $*"
"$QEMU" "${qemu_args[@]}" </dev/null >"$results/qemu.log" 2>&1 &
qemu_pid=$!
tail -n +1 -F --pid="$qemu_pid" "$results/console.log" 2>/dev/null | tr -d '\r' &
tail_pid=$!
deadline=$(( $(date +%s) + timeout_s ))
timed_out=0
while kill -0 "$qemu_pid" 2>/dev/null; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "timeout after ${timeout_s}s; stopping QEMU (pid $qemu_pid)"
    kill "$qemu_pid" 2>/dev/null || true
    timed_out=1
    break
  fi
  sleep 1
done
wait "$qemu_pid" 2>/dev/null || true
wait "$tail_pid" 2>/dev/null || true
t1=$(now_ms)
if [ -s "$results/qemu.log" ]; then grep -v "is not connected to host network" "$results/qemu.log" >&2 || true; fi
boot=$(cat "$results/boot-seconds" 2>/dev/null || echo "?")
log "VM ran $(secs $((t1 - t0)))s (guest ready to run the command ${boot}s after kernel start)"
if [ "$timed_out" = 1 ]; then exit 124; fi
[ -f "$results/rc" ] || { log "the VM stopped before the command finished (see console above)"; exit 125; }
exit "$(cat "$results/rc")"
