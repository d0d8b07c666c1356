#!/bin/bash
# `make deb-test`: installs dist/backup365_*.deb with apt-get into a throwaway Debian 12 root
# (a cached debootstrap minbase, copied afresh each run), runs the smoke test there, then
# removes and purges the package and checks that nothing of it is left.
# Needs root (debootstrap, chroot, mount). Prints each stage's duration.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${DEB_TEST_CACHE:-/var/cache/backup365/deb-test}
suite=bookworm
# fdisk is the smoke test's own need (sfdisk makes its disk); the package does not call it.
base_packages=(fdisk)
base_recipe_version=1

started=$(date +%s)
say() { printf 'deb-test: %s (%s s)\n' "$*" "$(($(date +%s) - started))" >&2; }
fail() { say "FAILED: $*"; exit 1; }

# The Debian mirror the host's own apt uses, so the test reaches what the host reaches.
host_mirror() {
  local uri
  uri=$(sed -E 's/\[[^]]*\]//' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }')
  [ -n "$uri" ] || uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk -v suite="$suite" 'BEGIN { RS = ""; FS = "\n" }
      $0 ~ "Suites:[^\n]*" suite "([ \t\n]|$)" && /Components:[^\n]*main/ {
        for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, part, /[ \t]+/); print part[2]; exit }
      }')
  echo "${uri:-http://deb.debian.org/debian}"
}

mirror=${DEBIAN_MIRROR:-$(host_mirror)}
package=$(ls -t "$root"/dist/backup365_*_amd64.deb 2>/dev/null | head -1 || true)
[ -n "$package" ] || fail "no dist/backup365_*_amd64.deb: run make deb first"
base_key=$(printf '%s\n' "$suite" "$mirror" "$base_recipe_version" "${base_packages[@]}" | sha256sum | cut -c1-16)
base=$cache/base-$base_key

mkdir -p "$cache/debs" "$cache/archives/partial"
exec 9>"$cache/.lock"
flock 9

work=$(mktemp -d /tmp/b365-deb-test.XXXXXX)
target=$work/root
mounted=()
cleanup() {
  for ((index = ${#mounted[@]} - 1; index >= 0; index--)); do umount -l "${mounted[$index]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

build_base() {
  say "debootstrap $suite (minbase) from $mirror, cached as $base"
  rm -rf "$base.partial"
  local includes
  includes=$(IFS=,; echo "${base_packages[*]}")
  debootstrap --variant=minbase --include="$includes" --cache-dir="$cache/debs" "$suite" "$base.partial" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log" >&2; fail "debootstrap"; }
  mv "$base.partial" "$base"
  find "$cache" -maxdepth 1 -name 'base-*' ! -name "base-$base_key" -exec rm -rf {} +
}

mount_into() {
  mount "$@"
  mounted+=("${!#}")
}

enter_root() {
  cp -a "$base" "$target"
  mount_into -t proc proc "$target/proc"
  # A private /dev: nothing in here may touch the host's devices.
  mount_into -t tmpfs -o mode=755 dev "$target/dev"
  for node in null zero full random urandom tty; do cp -a "/dev/$node" "$target/dev/"; done
  mount_into -t tmpfs tmp "$target/tmp"
  # Downloaded packages survive the throwaway root, so later runs download nothing again.
  mount_into --bind "$cache/archives" "$target/var/cache/apt/archives"
  echo "deb $mirror $suite main" >"$target/etc/apt/sources.list"
  rm -f "$target"/etc/apt/sources.list.d/*
  cp "$package" "$here/smoke.sh" "$target/tmp/"
}

in_root() {
  chroot "$target" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"
}

# Everything on the root's file system whose name says it is ours, outside what the test
# itself put there.
our_paths() {
  (cd "$target" && find . -xdev \( -path ./tmp -o -path ./proc -o -path ./dev -o -path ./var/cache/apt/archives \) -prune -o \
    \( -iname '*backup365*' -o -name 'b365*' \) -print)
}

install_package() {
  in_root apt-get update -qq || fail "apt-get update against $mirror"
  in_root apt-get install -y -qq "/tmp/$(basename "$package")" >"$work/install.log" 2>&1 ||
    { tail -30 "$work/install.log" >&2; fail "apt-get install ./$(basename "$package")"; }
  say "installed $(in_root dpkg-query -W -f='${Package} ${Version} ${Status}' backup365)"
  [ "$(in_root stat -c '%U:%G %a' /usr/lib/backup365)" = "root:root 755" ] || fail "/usr/lib/backup365 is not root:root 755"
  in_root id backup365 >/dev/null || fail "no backup365 user after install"
  [ "$(in_root getent passwd backup365 | cut -d: -f7)" = /usr/sbin/nologin ] || fail "the backup365 user can log in"
  [ "$(in_root b365 --version)" = "$(node -p "require('$root/package.json').version")" ] || fail "b365 --version"
  [ "$(in_root /usr/lib/backup365/node/bin/node --version)" = "v$("$root/scripts/runtime.sh" --node-version)" ] ||
    fail "the bundled node is not the pinned version"
}

remove_package() {
  in_root apt-get remove -y -qq backup365 >"$work/remove.log" 2>&1 || { cat "$work/remove.log" >&2; fail "apt-get remove"; }
  [ ! -e "$target/usr/lib/backup365" ] || fail "/usr/lib/backup365 is left after remove"
  [ ! -e "$target/usr/bin/b365" ] || fail "/usr/bin/b365 is left after remove"
  local listed
  # dpkg -L of a removed package with nothing left says so in a sentence, not a path.
  listed=$(in_root dpkg-query -L backup365 2>/dev/null | grep "^/" || true)
  [ -z "$listed" ] || fail "dpkg -L still lists files after remove: $(echo $listed | head -c 300)"
  in_root apt-get purge -y -qq backup365 >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "apt-get purge"; }
  ! in_root dpkg-query -W backup365 >/dev/null 2>&1 || fail "dpkg still knows backup365 after purge"
  ! in_root getent passwd backup365 >/dev/null || fail "the backup365 user is left after purge"
  ! in_root getent group backup365 >/dev/null || fail "the backup365 group is left after purge"
  local left
  left=$(our_paths)
  [ -z "$left" ] || fail "left after purge: $left"
}

# make install into the same clean root: the program must run from /usr/local alone, with no
# build tree in reach, and must replace an older b365 that was a link into a build tree.
check_make_install() {
  echo 'the build tree of an old install' >"$target/tmp/old-b365"
  ln -s /tmp/old-b365 "$target/usr/local/bin/b365"
  DESTDIR=$target PREFIX=/usr/local "$root/scripts/install.sh" >/dev/null
  [ ! -L "$target/usr/local/bin/b365" ] || fail "make install left /usr/local/bin/b365 a link"
  grep -q 'build tree of an old install' "$target/tmp/old-b365" || fail "make install wrote through the old link"
  [ "$(in_root /usr/local/bin/b365 --version)" = "$(node -p "require('$root/package.json').version")" ] ||
    fail "b365 from make install does not run in a clean root"
  DESTDIR=$target PREFIX=/usr/local "$root/scripts/install.sh" --uninstall >/dev/null
  local left
  left=$(our_paths)
  [ -z "$left" ] || fail "left after make uninstall: $left"
}

[ -d "$base" ] || build_base
say "throwaway Debian $suite root in $target, package $(basename "$package")"
enter_root
[ -z "$(our_paths)" ] || fail "the clean root already has files named after backup365"
install_package
say "installed; smoke test in the root"
in_root /tmp/smoke.sh b365 || fail "smoke test of the installed package"
remove_package
say "removed and purged, nothing left"
check_make_install
say "make install and uninstall in the clean root: ok"
