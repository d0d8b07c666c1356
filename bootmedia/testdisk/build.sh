#!/bin/bash
# Builds (once, then from cache) a small bootable disk image for the end-to-end tests:
# 1 GiB, GPT with a BIOS boot partition, an EFI system partition and an ext4 root with
# a minimal Debian 12, GRUB for BIOS and UEFI, a serial console, and a unit that prints
# `B365-TESTDISK-BOOTED id=<id>` on ttyS0 at boot. Prints the image path and the id.
set -euo pipefail

cache=${BOOTMEDIA_CACHE:-/var/cache/backup365/bootmedia}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
packages=(linux-image-cloud-amd64 systemd-sysv udev initramfs-tools grub-pc-bin grub2-common e2fsprogs)
recipe_version=2
key=$(printf '%s\n' "$suite" "$recipe_version" "${packages[@]}" | sha256sum | cut -c1-16)
image=$cache/testdisk-$key.img
say() { printf 'testdisk: %s\n' "$*" >&2; }

mkdir -p "$cache/debs"
exec 9>"$cache/.testdisk.lock"
flock 9
if [ -f "$image" ] && [ -f "$image.id" ]; then
  printf '%s %s\n' "$image" "$(cat "$image.id")"
  exit 0
fi

started=$(date +%s)
work=$(mktemp -d "$cache/testdisk-work.XXXXXX")
loop=""
mnt=$work/mnt
cleanup() {
  for point in "$mnt/dev" "$mnt/sys" "$mnt/proc" "$mnt"; do
    mountpoint -q "$point" 2>/dev/null && umount -l "$point"
  done
  [ -n "$loop" ] && losetup --detach "$loop" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

disk=$work/disk.img
truncate -s 1G "$disk"
sfdisk --quiet "$disk" <<'TABLE'
label: gpt
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, name="bios-boot"
size=64MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="esp"
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"
TABLE
loop=$(losetup --find --show --partscan "$disk")
for _ in $(seq 50); do [ -b "${loop}p3" ] && break; partx --update "$loop" 2>/dev/null || true; sleep 0.1; done
mkfs.vfat -F 32 -n ESP "${loop}p2" >/dev/null
mkfs.ext4 -q -L b365-test "${loop}p3"
uuid=$(blkid -s UUID -o value "${loop}p3")
mkdir -p "$mnt"
mount "${loop}p3" "$mnt"

includes=$(IFS=,; echo "${packages[*]}")
say "debootstrap of a minimal Debian $suite onto the test disk"
debootstrap --variant=minbase --include="$includes" --cache-dir="$cache/debs" "$suite" "$mnt" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -40 "$work/debootstrap.log" >&2
  exit 1
}

id=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$id" >"$mnt/etc/b365-testdisk-id"
echo b365-testdisk >"$mnt/etc/hostname"
printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$uuid" >"$mnt/etc/fstab"
cat >"$mnt/etc/systemd/system/b365-testdisk-marker.service" <<'UNIT'
[Unit]
Description=Print the test disk's boot marker on the serial console
DefaultDependencies=no
After=local-fs.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "B365-TESTDISK-BOOTED id=$(cat /etc/b365-testdisk-id) root=$(findmnt -n -o SOURCE /)" >/dev/ttyS0'
[Install]
WantedBy=sysinit.target
UNIT
ln -s ../b365-testdisk-marker.service "$mnt/etc/systemd/system/sysinit.target.wants/b365-testdisk-marker.service" 2>/dev/null ||
  { mkdir -p "$mnt/etc/systemd/system/sysinit.target.wants" && ln -s ../b365-testdisk-marker.service "$mnt/etc/systemd/system/sysinit.target.wants/b365-testdisk-marker.service"; }

# grub-install runs inside the new system with a private /dev holding just the loop
# device and its partitions (this host has no udev to make them).
mount -t proc proc "$mnt/proc"
mount -t sysfs sysfs "$mnt/sys"
mount -t tmpfs -o mode=755 dev "$mnt/dev"
for node in null zero full random urandom; do cp -a "/dev/$node" "$mnt/dev/"; done
for device in "$loop" "${loop}p1" "${loop}p2" "${loop}p3"; do
  name=$(basename "$device")
  IFS=: read -r major minor <"/sys/class/block/$name/dev"
  mknod "$mnt/dev/$name" b "$major" "$minor"
done
chroot "$mnt" grub-install --target=i386-pc --boot-directory=/boot "$loop" >"$work/grub.log" 2>&1 || { cat "$work/grub.log" >&2; exit 1; }
# This host cannot mount FAT: the UEFI loader is made with grub-mkimage, every module it
# needs built in, and copied onto the ESP with mtools.
printf 'search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n' "$uuid" >"$work/early.cfg"
grub-mkimage -O x86_64-efi -o "$work/BOOTX64.EFI" -p /boot/grub -c "$work/early.cfg" \
  part_gpt fat ext2 search search_fs_uuid normal configfile linux echo serial terminal test all_video efi_gop >>"$work/grub.log" 2>&1
# (mtools warns that a partition has no disk geometry: harmless, kept in the log.)
{ mmd -i "${loop}p2" ::/EFI ::/EFI/BOOT && mcopy -i "${loop}p2" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI; } >>"$work/grub.log" 2>&1 ||
  { cat "$work/grub.log" >&2; exit 1; }
kernel=$(cd "$mnt/boot" && ls vmlinuz-* | head -1)
initrd=$(cd "$mnt/boot" && ls initrd.img-* | head -1)
cat >"$mnt/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
search --no-floppy --fs-uuid --set=root $uuid
menuentry "Backup365 test disk" {
  linux /boot/$kernel root=UUID=$uuid ro console=tty0 console=ttyS0,115200 panic=10
  initrd /boot/$initrd
}
CFG
chroot "$mnt" passwd -d root >/dev/null
rm -rf "$mnt"/var/cache/apt/archives/*.deb "$mnt"/var/lib/apt/lists/* "$mnt"/usr/share/doc/* "$mnt"/usr/share/man/*
umount "$mnt/dev" "$mnt/sys" "$mnt/proc"
# Free blocks (the downloaded packages debootstrap deleted) become holes in the image
# file, so they are neither read nor sent when the disk is imaged.
fstrim "$mnt"
umount "$mnt"
losetup --detach "$loop"
loop=""
mv "$disk" "$image.partial"
echo "$id" >"$image.id"
mv "$image.partial" "$image"
# Disks of older recipes are never used again.
find "$cache" -maxdepth 1 -name 'testdisk-*.img*' ! -name "testdisk-$key.img*" -delete
say "built $image (id $id) in $(( $(date +%s) - started )) s"
printf '%s %s\n' "$image" "$id"
