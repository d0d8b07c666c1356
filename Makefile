# Backup365. Quick start: `make demo`, then `make test`. See README.md.
SHELL := /bin/bash
NODE ?= node
NPM ?= npm

# Debian packages the project needs: disk tools for capture and restore, the field's
# tools that tests use as oracles, and what native addons need to build.
DEB_PACKAGES := ca-certificates python3 make g++ util-linux fdisk gdisk parted e2fsprogs \
	dosfstools mtools ntfs-3g lz4 b3sum partclone restic qemu-system-x86 qemu-utils \
	netcat-openbsd ovmf nbd-client psmisc kmod time attr acl lvm2 systemd systemd-container strace
# Extra packages to build the rescue ISO.
BOOTMEDIA_PACKAGES := debootstrap squashfs-tools xorriso grub-pc-bin grub-efi-amd64-bin \
	grub-common mtools dosfstools cpio zstd qemu-system-x86 ovmf netcat-openbsd b3sum
# The Debian base of the rescue ISO and the e2e test disk are cached here, outside the
# work tree, so that every checkout and CI run on this machine reuses them.
BOOTMEDIA_CACHE ?= /var/cache/backup365/bootmedia

.PHONY: setup build test e2e bench demo serve bootmedia clean install uninstall runtime deb deb-test lint lint-api
# `make install` puts the program under $(PREFIX)/lib/backup365 and b365 in $(PREFIX)/bin.
PREFIX ?= /usr/local

setup: node_modules/.installed
	@scripts/apt-ensure.sh $(DEB_PACKAGES)

node_modules/.installed: package.json package-lock.json
	@scripts/apt-ensure.sh $(DEB_PACKAGES)
	$(NPM) ci --no-audit --no-fund
	@touch $@

build: node_modules/.installed
	rm -rf dist
	npx tsc -p .

test: setup build
	npx tap

demo: setup build
	$(NODE) dist/scripts/demo.js

serve: setup build
	bin/b365 server --repo $${B365_REPO:-./var/repo} --listen $${B365_LISTEN:-127.0.0.1:8365}

bench: setup build
	$(NODE) dist/bench/run.js

# Biome's formatter check and linter over the whole tree (biome.json); CI runs it.
lint: node_modules/.installed
	npx biome ci --error-on-warnings --max-diagnostics=50 .

# The OpenAPI document, written to a file and linted with Redocly's recommended rules.
lint-api: build
	$(NODE) dist/scripts/openapi.js dist/openapi.json
	npx redocly lint --config redocly.yaml dist/openapi.json

# build/runtime/backup365: the program as it ships, on its own Node LTS; see README.md "Runtime".
runtime: build
	scripts/runtime.sh

install: runtime
	DESTDIR=$(DESTDIR) PREFIX=$(PREFIX) scripts/install.sh

uninstall:
	DESTDIR=$(DESTDIR) PREFIX=$(PREFIX) scripts/install.sh --uninstall

# dist/backup365_<version>_amd64.deb; see docs/install.md.
deb: runtime
	scripts/deb/build.sh

# Installs the .deb in a throwaway Debian 12 root (cached under /var/cache/backup365/deb-test),
# runs a smoke test there, removes and purges it and checks nothing is left.
deb-test: deb
	@scripts/apt-ensure.sh debootstrap
	scripts/deb/test.sh

# dist/b365-rescue.iso: hybrid ISO (CD or dd'ed USB stick, BIOS or UEFI); see bootmedia/README.md.
bootmedia: setup build
	@scripts/apt-ensure.sh $(BOOTMEDIA_PACKAGES)
	BOOTMEDIA_CACHE=$(BOOTMEDIA_CACHE) bootmedia/build.sh

# Boots the rescue ISO in qemu (TCG): unattended restore of a bootable disk, refused code, UEFI and BIOS boots,
# power cuts of a repository disk the ISO serves (b365.serve).
e2e: bootmedia
	BOOTMEDIA_CACHE=$(BOOTMEDIA_CACHE) B365_E2E=1 npx tap --jobs 1 --timeout 2400 --disable-coverage dist/test/e2e/*.test.js

clean:
	rm -rf dist .tap
