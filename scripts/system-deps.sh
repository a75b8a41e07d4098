#!/bin/sh
# Debian packages the test suite uses as real peers; installed only when missing (idempotent).
# systemd: systemd-analyze, systemd-socket-activate. nodejs/npm are assumed (README).
set -eu
need=""
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
command -v systemd-socket-activate >/dev/null 2>&1 || need="$need systemd"
if [ -n "$need" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing$need; run as root or install them" >&2
    exit 1
  fi
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
