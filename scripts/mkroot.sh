#!/bin/sh
# mkroot.sh: a minimal bootable Debian root for the systemd-nspawn tests (tests/test_nspawn.py,
# tests/test_fleet.py), built with mmdebstrap and cached under
# ${GATEWAY_TEST_ROOTS:-~/.cache/gateway-test-roots}/<hash>/root, the hash covering the suite,
# the package list and this script, so a rerun costs nothing and any change builds a new one.
# Prints the root's path. Builds are bounded (MKROOT_TIMEOUT, default 600 s), serialized by a
# lock, and atomic (a half-built root is never used). Needs root and mmdebstrap.
#
# Usage: scripts/mkroot.sh [container|vm] [--print-hash]
#   container (default): for systemd-nspawn; vm: also a kernel, its initramfs and udev, for the
#   QEMU test (tests/test_qemu.py, scripts/mkvm.sh).
set -eu

FLAVOR=container
case ${1:-} in container|vm) FLAVOR=$1; shift ;; esac

SUITE=${MKROOT_SUITE:-bookworm}
# systemd as PID 1 (+ dbus, nss-systemd for DynamicUser names), python3-venv for install.sh,
# iproute2/procps for checks, openssh-server for the fleet test, ca-certificates for nothing
# (no network): left out.
PACKAGES="systemd systemd-sysv dbus libnss-systemd python3 python3-venv iproute2 procps openssh-server"
if [ "$FLAVOR" = vm ]; then
  PACKAGES="$PACKAGES udev initramfs-tools linux-image-$(dpkg --print-architecture)"
fi
TIMEOUT=${MKROOT_TIMEOUT:-600}
CACHE=${GATEWAY_TEST_ROOTS:-${XDG_CACHE_HOME:-$HOME/.cache}/gateway-test-roots}

self=$(cat "$0")
hash=$FLAVOR-$(printf '%s\n%s\n%s\n' "$SUITE" "$PACKAGES" "$self" | sha256sum | cut -c1-16)
if [ "${1:-}" = --print-hash ]; then
  echo "$hash"
  exit 0
fi
dest=$CACHE/$hash
if [ -e "$dest/root/.complete" ]; then
  touch "$dest/.used" 2>/dev/null || true
  echo "$dest/root"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "mkroot.sh: needs root" >&2; exit 1; }
command -v mmdebstrap >/dev/null 2>&1 || { echo "mkroot.sh: needs mmdebstrap (Debian package)" >&2; exit 1; }
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w "$TIMEOUT" 9
if [ -e "$dest/root/.complete" ]; then  # built by whoever held the lock
  echo "$dest/root"
  exit 0
fi
tmp=$CACHE/.build-$hash-$$
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT INT TERM
pkgs=$(echo "$PACKAGES" | tr ' ' ',')
# No machine-id or ssh host keys in the cache: each container copy makes its own.
# shellcheck disable=SC2016 # the hooks expand "$1" (the root) themselves
if ! timeout "$TIMEOUT" mmdebstrap --variant=minbase --include="$pkgs" \
    --customize-hook='rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id; : > "$1"/etc/machine-id' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
    "$SUITE" "$tmp/root" >"$tmp/mmdebstrap.log" 2>&1; then
  echo "mkroot.sh: mmdebstrap failed or timed out after ${TIMEOUT}s; last lines:" >&2
  tail -n 20 "$tmp/mmdebstrap.log" >&2
  exit 1
fi
touch "$tmp/root/.complete" "$tmp/.used"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT INT TERM
# Roots of this flavor from older package lists or scripts, unused for two days, go.
for old in "$CACHE/$FLAVOR"-*; do
  if [ ! -d "$old" ] || [ "$old" = "$dest" ]; then continue; fi
  if [ -z "$(find "$old/.used" -newermt '2 days ago' 2>/dev/null)" ]; then rm -rf "$old"; fi
done
echo "$dest/root"
