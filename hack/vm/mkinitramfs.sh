#!/usr/bin/env bash
# mkinitramfs.sh KROOT KVER OUT: pack a gzip'd cpio initramfs with busybox-static, the
# kernel modules the guest needs before its root exists (virtio-pci, 9p, overlay; with their
# modules.dep dependencies, in load order) and initramfs-init.sh as /init.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
kroot=$1 kver=$2 out=$3
moddir="$kroot/lib/modules/$kver"
[ -f "$moddir/modules.dep" ] || { echo "mkinitramfs: no $moddir/modules.dep" >&2; exit 1; }
BOOT_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

# Load order: for each module, its modules.dep dependencies last-to-first, then itself.
load_order() {
  local name line path deps i
  declare -A seen=()
  for name in "$@"; do
    line=$(grep -E "/${name}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n1) \
      || { echo "mkinitramfs: module $name not in modules.dep" >&2; return 1; }
    path=${line%%:*}
    read -r -a deps <<<"${line#*:}"
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
      [ -n "${seen[${deps[i]}]:-}" ] || { seen[${deps[i]}]=1; echo "${deps[i]}"; }
    done
    [ -n "${seen[$path]:-}" ] || { seen[$path]=1; echo "$path"; }
  done
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,dev,proc,sys,lower,upper,newroot,modules}
cp /bin/busybox "$work/bin/busybox"
for applet in $("$work/bin/busybox" --list); do
  [ -e "$work/bin/$applet" ] || ln -s busybox "$work/bin/$applet"
done
: > "$work/modules/load-order"
while read -r rel; do
  cp "$moddir/$rel" "$work/modules/"
  basename "$rel" >> "$work/modules/load-order"
done < <(load_order "${BOOT_MODULES[@]}")
install -m 0755 "$HERE/initramfs-init.sh" "$work/init"
(cd "$work" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$out"
echo "mkinitramfs: $(wc -l < "$work/modules/load-order") modules, $(du -h "$out" | cut -f1)" >&2
