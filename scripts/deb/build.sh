#!/bin/bash
# Builds dist/backup365_<version>_amd64.deb from the shipped tree of scripts/runtime.sh:
# the program and its Node under /usr/lib/backup365, the b365 launcher in /usr/bin, the
# docs and copyright under /usr/share/doc/backup365, and the scripts that manage the
# backup365 system user. See docs/install.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
program=${RUNTIME_DIR:-$root/build/runtime}/backup365
out_dir=${DEB_OUT:-$root/dist}
libdir=/usr/lib/backup365

say() { printf 'deb: %s\n' "$*" >&2; }
[ -x "$program/node/bin/node" ] || { say "no shipped tree in $program: run scripts/runtime.sh (make runtime) first"; exit 1; }

version=$("$program/node/bin/node" -p "require('$program/package.json').version")
package=$out_dir/backup365_${version}_amd64.deb
staging=$(mktemp -d "${TMPDIR:-/tmp}/backup365-deb.XXXXXX")
chmod 0755 "$staging"
trap 'rm -rf "$staging"' EXIT

lay_out_files() {
  install -d "$staging$libdir" "$staging/usr/bin" "$staging/usr/share/doc/backup365"
  cp -R --preserve=mode,timestamps "$program/." "$staging$libdir/"
  sed "s|@LIBDIR@|$libdir|" "$here/b365.in" >"$staging/usr/bin/b365"
  chmod 0755 "$staging/usr/bin/b365"
  install -m 0644 "$here/copyright" "$staging/usr/share/doc/backup365/copyright"
  install -m 0644 "$root/README.md" "$staging/usr/share/doc/backup365/README.md"
  install -d "$staging/usr/share/doc/backup365/docs"
  install -m 0644 "$root"/docs/*.md "$staging/usr/share/doc/backup365/docs/"
  # Nothing writable by others, whatever the umask of the build.
  chmod -R go-w "$staging"
}

write_control() {
  install -d -m 0755 "$staging/DEBIAN"
  local size
  size=$(du -sk --exclude=DEBIAN "$staging" | cut -f1)
  sed -e "s|@VERSION@|$version|" -e "s|@INSTALLED_SIZE@|$size|" "$here/control.in" >"$staging/DEBIAN/control"
  install -m 0755 "$here/postinst" "$here/postrm" "$staging/DEBIAN/"
}

lay_out_files
write_control
mkdir -p "$out_dir"
# zstd (dpkg and apt read it since Debian 12): 41 MB in 4 s of CPU, where xz makes 33 MB
# in 80 s of CPU, minutes on a busy build machine.
dpkg-deb --root-owner-group -Zzstd -z9 --threads-max=0 --build "$staging" "$package" >/dev/null
say "built $package ($(du -h "$package" | cut -f1), $(du -sh --exclude=DEBIAN "$staging" | cut -f1) installed)"
echo "$package"
