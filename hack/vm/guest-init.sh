#!/bin/bash
# Stage 2 of the VM testbed guest, PID 1 inside the overlay of the host's root.
# Mounts the kernel filesystems, makes the extracted guest modules visible to modprobe,
# loads the NIC/testbed modules, runs the command from the results share
# (NUL-separated argv in <results>/argv, cwd from <results>/cwd) and writes its exit code to
# <results>/rc. Output goes to the console (live) and <results>/output.log. Then powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
RESULTS=/run/sriov-vm-results
GUEST_MODULES=(igb igbvf vfio-pci uio_pci_generic ipvlan 8021q macvlan veth bridge dummy)

param() {  # value of sriovvm.$1= on the kernel command line
  local arg
  for arg in $(</proc/cmdline); do
    case "$arg" in "sriovvm.$1="*) printf '%s' "${arg#*=}"; return 0 ;; esac
  done
  return 1
}
power_off() {  # busybox's poweroff -f calls reboot(2) directly; sysrq as the fallback
  sync
  /bin/busybox poweroff -f 2>/dev/null
  echo o > /proc/sysrq-trigger
  while :; do read -r -t 5 _ </dev/console || true; done
}
say() { printf 'guest: %s\n' "$*" >/dev/console; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
# /tmp stays the overlay view of the host /tmp: host files visible, guest writes stay in RAM
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || true
echo 1 > /proc/sys/kernel/sysrq
trap power_off EXIT

mkdir -p "$RESULTS"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results "$RESULTS"; then
  say "cannot mount the results share"; exit 1
fi
kver=$(uname -r)
modules_src=$(param modules) || { say "no sriovvm.modules= on the command line"; exit 1; }
mkdir -p "/lib/modules/$kver"
mount --bind "$modules_src" "/lib/modules/$kver"
for m in "${GUEST_MODULES[@]}"; do
  modprobe "$m" 2>"$RESULTS/modprobe-$m.err" || say "modprobe $m failed: $(<"$RESULTS/modprobe-$m.err")"
done
hostname sriov-vm
ip link set lo up
printf '%s\n' "$(awk '{print $1}' /proc/uptime)" > "$RESULTS/boot-seconds"

mapfile -d '' -t argv < "$RESULTS/argv"
cd "$(<"$RESULTS/cwd")" || { say "cannot cd to $(<"$RESULTS/cwd")"; echo 126 > "$RESULTS/rc"; exit 1; }
if [ -f "$RESULTS/env" ]; then
  while IFS= read -r -d '' kv; do export "${kv?}"; done < "$RESULTS/env"
fi
export SRIOV_VM_GUEST=1
"${argv[@]}" 2>&1 </dev/null | tee "$RESULTS/output.log" >/dev/console
rc=${PIPESTATUS[0]}
printf '%s\n' "$(awk '{print $1}' /proc/uptime)" > "$RESULTS/end-seconds"
echo "$rc" > "$RESULTS/rc.tmp" && mv "$RESULTS/rc.tmp" "$RESULTS/rc"
sync
