#!/bin/sh
# `make install` / `make uninstall`: copies the shipped tree of scripts/runtime.sh (the
# program, its dependencies and its Node) to $PREFIX/lib/backup365 and writes the b365
# launcher in $PREFIX/bin. DESTDIR stages it elsewhere, as packagers expect.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${PREFIX:-/usr/local}
destdir=${DESTDIR:-}
libdir=$prefix/lib/backup365
program=${RUNTIME_DIR:-$root/build/runtime}/backup365

uninstall() {
  rm -rf "$destdir$libdir"
  rm -f "$destdir$prefix/bin/b365"
  echo "removed $destdir$libdir and $destdir$prefix/bin/b365"
}

install_tree() {
  [ -x "$program/node/bin/node" ] || { echo "install: no shipped tree in $program: run make runtime first" >&2; exit 1; }
  # Copied beside the old one and moved in place: a b365 that is running keeps its files.
  install -d "$destdir$prefix/lib" "$destdir$prefix/bin"
  rm -rf "$destdir$libdir.new"
  cp -R --preserve=mode,timestamps "$program" "$destdir$libdir.new"
  chmod -R go-w "$destdir$libdir.new"
  rm -rf "$destdir$libdir"
  mv "$destdir$libdir.new" "$destdir$libdir"
  # Earlier versions linked b365 into a build tree: replace the link, never write through it.
  rm -f "$destdir$prefix/bin/b365"
  sed "s|@LIBDIR@|$libdir|" "$root/scripts/deb/b365.in" >"$destdir$prefix/bin/b365"
  chmod 0755 "$destdir$prefix/bin/b365"
  echo "installed $destdir$libdir and $destdir$prefix/bin/b365"
}

case "${1:-}" in
--uninstall) uninstall ;;
"") install_tree ;;
*) echo "usage: scripts/install.sh [--uninstall]" >&2; exit 2 ;;
esac
