#!/bin/bash
# A short life of an installed b365: its version, a server on loopback, one image of a small
# partitioned disk file, the image listed, then restored into a new file and compared.
# Needs no loop device or mount, so it also runs inside a bare chroot (make deb-test).
# Usage: smoke.sh [B365_COMMAND]   (default: b365 on the PATH)
set -euo pipefail

b365=${1:-b365}
work=$(mktemp -d /tmp/b365-smoke.XXXXXX)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf 'smoke: %s\n' "$*" >&2; }
fail() {
  say "$*"
  [ -f "$work/server.out" ] && sed 's/^/server: /' "$work/server.out" "$work/server.err" >&2
  exit 1
}

say "b365 $("$b365" --version)"

# A GPT disk with one ext4 partition filled from a directory: mkfs -d writes the files
# without mounting anything.
disk=$work/disk.img
mkdir -p "$work/content/docs"
echo "smoke test of $(date -u +%FT%TZ)" >"$work/content/hello.txt"
head -c 3000000 /dev/urandom >"$work/content/random.bin"
cp -r /usr/share/common-licenses/. "$work/content/docs/"
truncate -s 64M "$disk"
printf 'label: gpt\nstart=2048, size=60MiB, type=linux, name=data\n' | sfdisk -q "$disk"
mkfs.ext4 -q -F -L smoke -d "$work/content" -E offset=1048576 "$disk" 61440k

# HTTPS, as installed: the server makes its certificate with the package's openssl, and the
# client pins the fingerprint the server printed.
"$b365" server --repo "$work/repo" --listen 127.0.0.1:0 --log-file "$work/server.log" \
  >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
url=
for _ in $(seq 1 120); do
  url=$(grep -oE 'listening on https://[^ ]+' "$work/server.out" | head -1 | cut -d' ' -f3 || true)
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || fail "the server exited before listening"
  sleep 0.5
done
[ -n "$url" ] || fail "the server did not say it listens within 60 s"
say "server $url"
fingerprint=$(grep -oE 'fingerprint: [0-9A-F:]{95}' "$work/server.out" | head -1 | cut -d' ' -f2)
[ "$fingerprint" = "$("$b365" server fingerprint --repo "$work/repo")" ] || fail "the printed fingerprint is not the one b365 server fingerprint reads"
export B365_FINGERPRINT=$fingerprint

export B365_SERVER=$url B365_TOKEN
B365_TOKEN=$(cat "$work/repo/admin.token")
export B365_STATE_DIR=$work/client-state
"$b365" image "$disk" --machine smoke >"$work/image.out" || fail "b365 image failed"
"$b365" images | grep -q smoke || fail "b365 images does not list the image"
refused=0
B365_FINGERPRINT=$(printf '00:%.0s' $(seq 1 31))00 "$b365" images >/dev/null 2>"$work/refused.err" || refused=$?
[ "$refused" -eq 11 ] || fail "a wrong fingerprint gave exit $refused, not 11 (untrusted server)"
# The checks after a restore (fsck) need a loop device, which a bare chroot has not;
# the content digests are compared all the same, and cmp compares every byte.
"$b365" restore smoke@latest --to "$work/restored.img" --yes --skip-checks >"$work/restore.out" || fail "b365 restore failed"
cmp "$disk" "$work/restored.img" || fail "the restored disk differs from the original"
say "ok: imaged, listed, restored and compared $(du -h --apparent-size "$disk" | cut -f1)"
