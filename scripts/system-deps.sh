#!/bin/sh
# Debian packages the test suite uses as real peers; installed only when missing (idempotent).
# systemd: systemd-analyze, systemd-socket-activate. nodejs, npm: the stock Socket.IO/Sails
# clients and the real Express/Sails of the differential tests (tests/node, `npm ci` by
# `make node-deps`); curl: tests/test_guide.py runs the guide's curl commands.
# Deployment tests (tests/test_install.py, test_nspawn.py, test_fleet.py):
#   systemd-container: systemd-nspawn; mmdebstrap: the container root (scripts/mkroot.sh);
#   python3-venv: /usr/bin/python3 -m venv, as on a board; shellcheck: deploy/install.sh lint;
#   iproute2: ip netns/veth; util-linux: unshare, nsenter, flock; openssh-client: the fleet
#   and the VM.
# The status page, metrics and discovery (tests/test_status_page.py, test_sse.py,
# test_metrics.py, test_discovery.py): chromium: the page and EventSource in a real browser;
# prometheus: a real scrape; avahi-daemon, avahi-utils, dbus: the service file advertised and
# browsed in network namespaces (the tests run their own daemons; on a machine with systemd
# the packages also enable their services); libxml2-utils: xmllint against Avahi's DTD.
# The MQTT bridge (tests/test_mqtt.py): mosquitto, the broker (the tests start their own on a
# free loopback port; on a machine with systemd the package also enables one on port 1883,
# which the tests never use); mosquitto-clients: mosquitto_rr/_sub/_pub, the MQTT 5 peers.
set -eu
need=""
have() { command -v "$1" >/dev/null 2>&1; }
have curl || need="$need curl"
have systemd-analyze || need="$need systemd"
have node || need="$need nodejs"
have npm || need="$need npm"
have systemd-socket-activate || need="$need systemd"
have systemd-nspawn || need="$need systemd-container"
have mmdebstrap || need="$need mmdebstrap"
have shellcheck || need="$need shellcheck"
have ip || need="$need iproute2"
have unshare && have nsenter && have flock || need="$need util-linux"
have ssh || need="$need openssh-client"
have ssh-keygen || need="$need openssh-client"
# tests/test_qemu.py: a VM (amd64 hosts only) whose image is an ext4 file made with mkfs.ext4 -d.
if [ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ]; then
  have qemu-system-x86_64 || need="$need qemu-system-x86"
fi
have mkfs.ext4 || need="$need e2fsprogs"
have chromium || need="$need chromium"
have prometheus || need="$need prometheus"
have avahi-daemon || need="$need avahi-daemon"
have avahi-browse || need="$need avahi-utils"
have dbus-daemon || need="$need dbus"
have xmllint || need="$need libxml2-utils"
have mosquitto || [ -x /usr/sbin/mosquitto ] || need="$need mosquitto"
have mosquitto_rr || need="$need mosquitto-clients"
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need="$need python3-venv"
# One name once (word splitting intended: the names have no spaces).
# shellcheck disable=SC2086
need=$(printf '%s\n' $need | sort -u | tr '\n' ' ')
if [ -n "${need% }" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing $need; run as root or install them" >&2
    exit 1
  fi
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
