#!/bin/bash
# Builds the rescue image dist/b365-rescue.iso: a cached Debian 12 base layer (kernel,
# live-boot, disk tools) plus a small layer with b365 on its own Node LTS, made hybrid
# (CD and dd'ed USB stick, BIOS and UEFI) by grub-mkrescue. See bootmedia/README.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${BOOTMEDIA_CACHE:-/var/cache/backup365/bootmedia}
out=${BOOTMEDIA_OUT:-$root/dist/b365-rescue.iso}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
base_only=0
[ "${1:-}" = "--base-only" ] && base_only=1

# What the rescue system runs: live-boot finds the medium; udev loads drivers for disks
# and network cards; the rest is what capture, restore and a technician's shell need.
packages=(
  linux-image-amd64 live-boot systemd-sysv udev busybox zstd kmod
  util-linux fdisk gdisk parted e2fsprogs dosfstools ntfs-3g
  iproute2 isc-dhcp-client ca-certificates procps less libstdc++6
)
# Changing this recipe (packages or the base configuration below) makes a new base.
base_recipe_version=1
base_key=$(printf '%s\n' "$suite" "$base_recipe_version" "${packages[@]}" | sha256sum | cut -c1-16)
base=$cache/base-$base_key

started=$(date +%s)
say() { printf 'bootmedia: %s\n' "$*" >&2; }
elapsed() { echo "$(( $(date +%s) - started )) s"; }

mkdir -p "$cache/debs"
# One build at a time per cache: a second one waits instead of racing on the base.
exec 9>"$cache/.lock"
flock 9

mounted=()
cleanup() {
  for (( index=${#mounted[@]}-1; index>=0; index-- )); do umount -l "${mounted[$index]}" 2>/dev/null || true; done
  [ -n "${work:-}" ] && rm -rf "$work"
}
trap cleanup EXIT
work=$(mktemp -d "$cache/work.XXXXXX")

chroot_mounts() {
  local target=$1
  mount -t proc proc "$target/proc"; mounted+=("$target/proc")
  mount -t sysfs sysfs "$target/sys"; mounted+=("$target/sys")
  # A private /dev: the host has no udev, and nothing here may touch its device nodes.
  mount -t tmpfs -o mode=755 dev "$target/dev"; mounted+=("$target/dev")
  for node in null zero full random urandom tty; do cp -a "/dev/$node" "$target/dev/"; done
}

chroot_unmount() {
  local target=$1
  for point in dev sys proc; do umount -l "$target/$point" 2>/dev/null || true; done
  mounted=()
}

build_base() {
  say "building the Debian $suite base layer (cached as $base)"
  local target=$work/base-root
  local includes
  includes=$(IFS=,; echo "${packages[*]}")
  debootstrap --variant=minbase --include="$includes" --cache-dir="$cache/debs" "$suite" "$target" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -40 "$work/debootstrap.log" >&2
    say "debootstrap failed"
    exit 1
  }
  say "debootstrap done after $(elapsed)"
  chroot_mounts "$target"
  echo b365-rescue >"$target/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 b365-rescue\n' >"$target/etc/hosts"
  : >"$target/etc/fstab"
  chroot "$target" passwd -d root >/dev/null
  # Any hardware: every storage and network driver goes into the initramfs.
  sed -i 's/^MODULES=.*/MODULES=most/' "$target/etc/initramfs-tools/initramfs.conf"
  chroot "$target" update-initramfs -u -k all >"$work/initramfs.log" 2>&1 || { tail -20 "$work/initramfs.log" >&2; exit 1; }
  chroot_unmount "$target"
  mkdir -p "$work/base"
  cp "$target"/boot/vmlinuz-* "$work/base/vmlinuz"
  cp "$target"/boot/initrd.img-* "$work/base/initrd.img"
  # What a rescue system never reads: documentation, manuals, translations, apt lists.
  rm -rf "$target"/boot/* "$target"/usr/share/doc/* "$target"/usr/share/man/* "$target"/usr/share/info/* \
    "$target"/var/cache/apt/*.bin "$target"/var/cache/apt/archives/*.deb "$target"/var/lib/apt/lists/*
  find "$target/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
  mksquashfs "$target" "$work/base/filesystem.squashfs" -comp zstd -Xcompression-level 15 -no-xattrs -noappend -quiet -no-progress >/dev/null
  rm -rf "$target"
  rm -rf "$base.partial"
  mv "$work/base" "$base.partial"
  mv "$base.partial" "$base"
  # Bases of older recipes are never used again.
  find "$cache" -maxdepth 1 -name 'base-*' ! -name "base-$base_key" -exec rm -rf {} +
  say "base layer ready after $(elapsed): $(du -sh "$base" | cut -f1)"
}

[ -f "$base/filesystem.squashfs" ] || build_base
[ "$base_only" = 1 ] && exit 0

# The b365 layer: the tree the .deb ships (scripts/runtime.sh: the compiled program, its
# production dependencies and the pinned Node LTS they were built for), and the
# configuration that logs in on the consoles and starts `b365 rescue`.
[ -f "$root/dist/src/cli/main.js" ] || { say "compile first: npx tsc -p . (make build)"; exit 1; }
"$root/scripts/runtime.sh"
layer=$work/b365-root
mkdir -p "$layer/usr/local/bin" "$layer/opt"
cp -R --preserve=mode,timestamps "${RUNTIME_DIR:-$root/build/runtime}/backup365" "$layer/opt/backup365"
# `node` on a technician's shell is the one b365 runs on.
ln -s /opt/backup365/node/bin/node "$layer/usr/local/bin/node"
cp -a "$here/rootfs/." "$layer/"
chmod 0755 "$layer/usr/local/bin/b365"
chmod 0700 "$layer/root"
# live-boot writes a network stanza there at boot.
mkdir -p "$layer/etc/network"
mksquashfs "$layer" "$work/b365.squashfs" -comp zstd -noappend -quiet -no-progress -all-root >/dev/null
say "b365 layer: $(du -h "$work/b365.squashfs" | cut -f1) after $(elapsed)"

iso=$work/iso
mkdir -p "$iso/live" "$iso/boot/grub"
ln "$base/vmlinuz" "$iso/live/vmlinuz" 2>/dev/null || cp "$base/vmlinuz" "$iso/live/vmlinuz"
ln "$base/initrd.img" "$iso/live/initrd.img" 2>/dev/null || cp "$base/initrd.img" "$iso/live/initrd.img"
ln "$base/filesystem.squashfs" "$iso/live/00-base.squashfs" 2>/dev/null || cp "$base/filesystem.squashfs" "$iso/live/00-base.squashfs"
mv "$work/b365.squashfs" "$iso/live/10-b365.squashfs"
printf '00-base.squashfs 10-b365.squashfs\n' >"$iso/live/filesystem.module"
cp "$here/grub.cfg" "$iso/boot/grub/grub.cfg"
mkdir -p "$(dirname "$out")"
grub-mkrescue -o "$work/rescue.iso" "$iso" -- -volid B365_RESCUE >"$work/grub-mkrescue.log" 2>&1 || { cat "$work/grub-mkrescue.log" >&2; exit 1; }
mv "$work/rescue.iso" "$out"
say "built $out: $(du -h --apparent-size "$out" | cut -f1) in $(elapsed)"
