#!/bin/sh
# /init of the VM testbed initramfs (busybox sh). Loads virtio/9p/overlay, mounts the host's /
# (9p tag "hostroot", read-only) under a tmpfs overlay and switches into it, running
# hack/vm/guest-init.sh (path given as sriovvm.stage2= on the kernel command line).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "initramfs: $*" >/dev/console; echo o > /proc/sysrq-trigger; sleep 60; }
echo 1 > /proc/sys/kernel/sysrq
while read -r ko; do
  insmod "/modules/$ko" || fail "insmod $ko failed"
done < /modules/load-order
stage2=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in sriovvm.stage2=*) stage2=${arg#sriovvm.stage2=} ;; esac
done
[ -n "$stage2" ] || fail "no sriovvm.stage2= on the kernel command line"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower \
  || fail "mounting the host root over 9p failed"
mount -t tmpfs -o mode=0755 tmpfs /upper || fail "tmpfs"
mkdir -p /upper/data /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work /newroot \
  || fail "overlay mount failed"
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/bash "$stage2"
