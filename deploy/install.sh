#!/bin/sh
# install.sh: install, upgrade, roll back or uninstall a gateway release on a device (POSIX sh).
#
#   ./install.sh [--profile NAME|auto] [--keep N] [--socket|--no-socket] [--root DIR]
#                [--devices serial,i2c,spi,gpio,/dev/NODE...|none] [--no-start]
#                [--health-url URL] [--health-timeout S] [--python PY]
#   ./install.sh --uninstall [--purge] [--root DIR] [--no-start]
#
# Run from the unpacked release (gateway-<version>/). What it does:
#   1. builds one virtualenv per release, in place, under /opt/gateway/releases/<version>
#      (python3 -m venv + pip install --no-index from the release's own wheels: offline),
#      with the release's app (APP file, build_release.py --app) and its requirements;
#   2. renders the drop-ins (gateway.service.d/50-profile.conf, 60-app.conf: GATEWAY_APP,
#      70-devices.conf: --devices; gateway.socket.d/...) and the Avahi service file
#      (/etc/avahi/services/gateway.service: the device is found on the LAN as _http._tcp or
#      _https._tcp; none for a loopback-only profile) with that release's own code, after
#      checking the profile and importing the app (a bad one stops here: exit 78);
#   3. installs the units, switches /opt/gateway/current atomically (symlink + mv -T),
#      installs /etc/gateway/gateway.env only if absent (an edited one is kept, the new
#      default lands beside it as gateway.env.new), daemon-reload, restart;
#   4. health check (GET /_gateway/health, bounded retries); if unhealthy, rolls back to the
#      previous release (its units, drop-ins and venv) and checks that one;
#   5. keeps the last --keep releases (default 3), never the current or previous one.
# --root DIR stages all of that into an image root instead (no systemctl; the venv is still
# built at its final path, inside a private mount namespace); so does a machine where systemd
# is not running, or --no-start.
#
# Exit status: 0 installed (or staged) and healthy; 1 failed, nothing switched; 2 usage;
# 3 the new release was unhealthy and the previous one is back and healthy; 4 unhealthy and
# no healthy release to go back to; 78 the profile, the app or --devices is invalid.
# Environment: GATEWAY_INSTALL_HEALTH_CMD replaces the HTTP health check with a shell command
# (exit 0 = healthy), for tests; SYSTEMCTL overrides the systemctl command.
set -eu

PREFIX=/opt/gateway
ROOT=""
PROFILE=""
KEEP=3
START=auto
SOCKET=""
UNINSTALL=0
PURGE=0
HEALTH_URL_OPT=""
HEALTH_TIMEOUT=30
PYTHON=python3
DEVICES=""
DEVICES_SET=no
SYSTEMCTL=${SYSTEMCTL:-systemctl}

say() { printf 'install.sh: %s\n' "$*" >&2; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() { code=$1; shift; printf 'install.sh: error: %s\n' "$*" >&2; exit "$code"; }
usage() { sed -n '2,30s/^# \{0,1\}//p' "$0" >&2; exit 2; }

need_arg() { [ $# -ge 2 ] || { say "$1 needs a value"; usage; }; }
while [ $# -gt 0 ]; do
  case $1 in
    --profile) need_arg "$@"; PROFILE=$2; shift 2 ;;
    --keep) need_arg "$@"; KEEP=$2; shift 2 ;;
    --root) need_arg "$@"; ROOT=$2; shift 2 ;;
    --prefix) need_arg "$@"; PREFIX=$2; shift 2 ;;
    --python) need_arg "$@"; PYTHON=$2; shift 2 ;;
    --health-url) need_arg "$@"; HEALTH_URL_OPT=$2; shift 2 ;;
    --health-timeout) need_arg "$@"; HEALTH_TIMEOUT=$2; shift 2 ;;
    --devices) need_arg "$@"; DEVICES=$2; DEVICES_SET=yes; shift 2 ;;
    --socket) SOCKET=yes; shift ;;
    --no-socket) SOCKET=no; shift ;;
    --no-start) START=no; shift ;;
    --start) START=yes; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage ;;
    *) say "unknown argument: $1"; usage ;;
  esac
done

case $KEEP in ''|*[!0-9]*|0) die 2 "--keep $KEEP: expected a number >= 1" ;; esac
case $HEALTH_TIMEOUT in ''|*[!0-9]*) die 2 "--health-timeout $HEALTH_TIMEOUT: expected seconds" ;; esac
case $PREFIX in /*) ;; *) die 2 "--prefix $PREFIX: expected an absolute path" ;; esac
case $DEVICES in *[!A-Za-z0-9_@+./,-]*) die 2 "--devices $DEVICES: expected serial, i2c, spi, gpio, /dev paths (comma-separated) or none" ;; esac
[ "$DEVICES" != none ] || DEVICES=""
case $PREFIX in /|*/../*|*/..|*/./*|*//*) die 2 "--prefix $PREFIX: expected a plain absolute path" ;; esac
PREFIX=${PREFIX%/}
if [ -n "$ROOT" ]; then
  [ -d "$ROOT" ] || die 2 "--root $ROOT: no such directory"
  ROOT=$(cd "$ROOT" && pwd -P)
  [ "$ROOT" = / ] && ROOT=""
fi
R=$ROOT
OPT=$R$PREFIX
RELEASES=$OPT/releases
CURRENT=$OPT/current
STATE=$OPT/state
ETC=$R/etc/gateway
UNITS=$R/etc/systemd/system
SVC_D=$UNITS/gateway.service.d
SOCK_D=$UNITS/gateway.socket.d
AVAHI_SERVICE=$R/etc/avahi/services/gateway.service

# Live (talk to systemd) or staged (files only)?
if [ "$START" = auto ]; then
  if [ -n "$R" ]; then
    START=no
  elif [ -d /run/systemd/system ]; then
    START=yes
  else
    START=no
    say "systemd is not running here: installing the files only (no systemctl)"
  fi
fi
live() { [ "$START" = yes ]; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Run a command where $PREFIX is at its real path. Live: directly. Staged: in a private mount
# namespace with $ROOT$PREFIX bound onto $PREFIX, so the venv's shebangs and paths are the
# device's own (a venv cannot be moved after it is built).
in_place() {
  if [ -z "$R" ]; then
    "$@"
    return
  fi
  command -v unshare >/dev/null 2>&1 || die 1 "staging with --root needs unshare (util-linux)"
  # shellcheck disable=SC2016 # the inner script expands its own positional parameters
  unshare --mount --propagation private -- sh -c '
    set -e
    staged=$1; prefix=$2; shift 2
    if [ ! -d "$prefix" ]; then
      # Hide the parent behind a tmpfs (in this namespace only) to make the mount point,
      # after binding the staged tree aside, in case it lives under that parent.
      aside=$(mktemp -d)
      mount --bind "$staged" "$aside"
      parent=$(dirname "$prefix")
      [ -d "$parent" ] || { echo "install.sh: error: $parent does not exist here" >&2; exit 1; }
      mount -t tmpfs -o mode=0755 gateway-stage "$parent"
      mkdir -p "$prefix"
      mount --move "$aside" "$prefix"
      rmdir "$aside" 2>/dev/null || true
    else
      mount --bind "$staged" "$prefix"
    fi
    exec "$@"
  ' in_place "$OPT" "$PREFIX" "$@"
}

# --- a release's files ---------------------------------------------------------------------------

SRC=$(cd "$(dirname "$0")" && pwd -P)

# systemctl, only when live.
sc() {
  if live; then "$SYSTEMCTL" "$@"; fi
}

# Install a unit file or drop-in (0644, atomically).
put() {
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.tmp.$$"
  chmod 0644 "$2.tmp.$$"
  mv -f "$2.tmp.$$" "$2"
}

# Make release $1 (a version) the current one: its units, its rendered drop-ins, the symlink.
activate() {
  rel=$RELEASES/$1
  put "$rel/share/gateway/systemd/gateway.service" "$UNITS/gateway.service"
  put "$rel/share/gateway/systemd/gateway.socket" "$UNITS/gateway.socket"
  put "$rel/share/gateway/rendered/gateway.service.conf" "$SVC_D/50-profile.conf"
  put "$rel/share/gateway/rendered/gateway.socket.conf" "$SOCK_D/50-profile.conf"
  # The release's app and device access: present or absent as that release had them (a
  # release from before these existed has neither, and its service serves the unit's default).
  for pair in app:60-app devices:70-devices; do
    if [ -f "$rel/share/gateway/rendered/gateway.${pair%%:*}.conf" ]; then
      put "$rel/share/gateway/rendered/gateway.${pair%%:*}.conf" "$SVC_D/${pair#*:}.conf"
    else
      rm -f "$SVC_D/${pair#*:}.conf"
    fi
  done
  # avahi-daemon watches its services directory: a new or removed file is (un)advertised at once
  if [ -f "$rel/share/gateway/rendered/avahi.service" ]; then
    put "$rel/share/gateway/rendered/avahi.service" "$AVAHI_SERVICE"
  else
    rm -f "$AVAHI_SERVICE"
  fi
  # The switch itself: a new symlink under a temporary name, renamed over the old one.
  ln -sfn "releases/$1" "$OPT/.current.$$"
  mv -T "$OPT/.current.$$" "$CURRENT"
  sc daemon-reload
}

# Enable the units as recorded (live: systemctl; staged: the [Install] symlinks by hand).
enable_units() {
  if live; then
    sc enable --quiet gateway.service
    if [ "$SOCKET" = yes ]; then sc enable --quiet gateway.socket; else sc disable --quiet gateway.socket 2>/dev/null || true; fi
    return
  fi
  mkdir -p "$UNITS/multi-user.target.wants" "$UNITS/sockets.target.wants"
  ln -sfn /etc/systemd/system/gateway.service "$UNITS/multi-user.target.wants/gateway.service"
  if [ "$SOCKET" = yes ]; then
    ln -sfn /etc/systemd/system/gateway.socket "$UNITS/sockets.target.wants/gateway.socket"
  else
    rm -f "$UNITS/sockets.target.wants/gateway.socket"
  fi
}

restart() {
  live || return 0
  # Installs and rollbacks must not trip StartLimitBurst= of earlier attempts.
  sc reset-failed gateway.service gateway.socket 2>/dev/null || true
  if [ "$SOCKET" = yes ]; then
    sc stop gateway.service gateway.socket
    sc start gateway.socket
  fi
  sc restart gateway.service
}

probe() {
  if [ -n "${GATEWAY_INSTALL_HEALTH_CMD:-}" ]; then
    sh -c "$GATEWAY_INSTALL_HEALTH_CMD"
    return
  fi
  if [ -z "$HEALTH_URL" ]; then
    sc is-active --quiet gateway.service
    return
  fi
  "$PYTHON" -c '
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        ok = r.status == 200 and json.load(r).get("status") == "ok"
except Exception:
    ok = False
sys.exit(0 if ok else 1)' "$HEALTH_URL"
}

# Healthy within HEALTH_TIMEOUT seconds? Gives up early when the unit has failed for good.
healthy() {
  deadline=$(( $(date +%s) + HEALTH_TIMEOUT ))
  while :; do
    if probe; then
      if live && [ "$SOCKET" != yes ] && ! sc is-active --quiet gateway.service; then
        : # answered, but not by our service (a stale process?): keep waiting
      else
        return 0
      fi
    fi
    if live && [ "$(sc is-failed gateway.service 2>/dev/null || true)" = failed ]; then
      return 1
    fi
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 1
  done
}

journal_tail() {
  if live && command -v journalctl >/dev/null 2>&1; then
    journalctl -u gateway.service -n 25 --no-pager -o cat >&2 2>/dev/null || true
  fi
}

# Install a default config file only if absent; replace one still equal to the default we
# installed before; beside an edited one write <file>.new. $1 source, $2 destination, $3 mode.
install_default() {
  src=$1 dest=$2 mode=$3
  rec=$STATE/defaults/$(basename "$dest").sha256
  mkdir -p "$STATE/defaults" "$(dirname "$dest")"
  if [ ! -e "$dest" ]; then
    cp "$src" "$dest.tmp.$$" && chmod "$mode" "$dest.tmp.$$" && mv -f "$dest.tmp.$$" "$dest"
    sha "$src" > "$rec"
    say "installed ${dest#"$R"}"
  elif cmp -s "$src" "$dest"; then
    sha "$src" > "$rec"
    rm -f "$dest.new"
  elif [ -f "$rec" ] && [ "$(sha "$dest")" = "$(cat "$rec")" ]; then
    cp "$src" "$dest.tmp.$$" && chmod "$mode" "$dest.tmp.$$" && mv -f "$dest.tmp.$$" "$dest"
    sha "$src" > "$rec"
    say "updated ${dest#"$R"} (it was the unedited default)"
  else
    cp "$src" "$dest.new"
    chmod "$mode" "$dest.new"
    warn "kept your edited ${dest#"$R"}; the new default is ${dest#"$R"}.new"
  fi
}

memory_check() {
  have=yes
  if [ -z "$R" ]; then
    if [ -r /sys/fs/cgroup/cgroup.controllers ]; then
      grep -qw memory /sys/fs/cgroup/cgroup.controllers || have=no
    elif [ -r /proc/cgroups ]; then
      awk '$1 == "memory" && $4 == 1 { found = 1 } END { exit !found }' /proc/cgroups || have=no
    fi
  fi
  for f in "$R/boot/firmware/cmdline.txt" "$R/boot/cmdline.txt" "$R/proc/cmdline"; do
    if [ -r "$f" ] && grep -qw 'cgroup_disable=memory' "$f"; then
      have=no
    fi
  done
  if [ "$have" = no ]; then
    limit=""
    [ "${MEMORY_MAX:-0}" = 0 ] || limit=" (this profile: $MEMORY_MAX bytes)"
    warn "the memory cgroup controller is missing (Raspberry Pi OS disables it:" \
      "cgroup_disable=memory): MemoryMax=$limit is then not enforced and only the" \
      "gateway's own memory budget bounds it. Add cgroup_enable=memory to the kernel" \
      "command line (/boot/firmware/cmdline.txt) to enforce it."
  fi
}

release_of() {  # the version a `current` symlink points at, or nothing
  if [ -L "$CURRENT" ]; then
    target=$(readlink "$CURRENT")
    basename "$target"
  fi
}

prune() {
  cur=$(release_of)
  n=0
  # Newest first by the time each release was installed (its .complete marker).
  # shellcheck disable=SC2045 # versions are [A-Za-z0-9.+_-] (checked), and ls -t sorts by time
  for marker in $(ls -1t "$RELEASES"/*/.complete 2>/dev/null); do
    d=$(dirname "$marker")
    v=$(basename "$d")
    if [ "$v" = "$cur" ] || [ "$v" = "${PREV:-}" ]; then
      n=$((n + 1))
      continue
    fi
    if [ "$n" -lt "$KEEP" ]; then
      n=$((n + 1))
    else
      rm -rf "$d"
      say "removed old release $v"
    fi
  done
  # Releases whose build never completed, except the current one.
  for d in "$RELEASES"/*/; do
    [ -d "$d" ] || continue
    v=$(basename "$d")
    if [ ! -e "$d/.complete" ] && [ "$v" != "$cur" ]; then rm -rf "$d"; fi
  done
  rm -f "$OPT"/.current.*
}

with_lock() {
  mkdir -p "$OPT"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$OPT/.lock"
    flock -n 9 || die 1 "another install.sh is running ($OPT/.lock)"
  fi
}

# --- uninstall -----------------------------------------------------------------------------------

if [ "$UNINSTALL" = 1 ]; then
  if live; then
    sc disable --now --quiet gateway.socket gateway.service 2>/dev/null || true
  fi
  rm -f "$UNITS/gateway.service" "$UNITS/gateway.socket" "$AVAHI_SERVICE" \
    "$SVC_D/50-profile.conf" "$SVC_D/60-app.conf" "$SVC_D/70-devices.conf" \
    "$SOCK_D/50-profile.conf" \
    "$UNITS/multi-user.target.wants/gateway.service" "$UNITS/sockets.target.wants/gateway.socket"
  rmdir "$SVC_D" "$SOCK_D" 2>/dev/null || true
  if live; then
    sc daemon-reload
    sc reset-failed gateway.service gateway.socket 2>/dev/null || true
  fi
  rm -rf "$OPT"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$ETC" "$R/var/lib/private/gateway" "$R/var/lib/gateway"
    say "removed $PREFIX, the units, /etc/gateway and the state directory"
  else
    say "removed $PREFIX and the units; kept /etc/gateway (--purge removes it too)"
  fi
  exit 0
fi

# --- install -------------------------------------------------------------------------------------

if [ ! -f "$SRC/VERSION" ] || [ ! -d "$SRC/wheels" ]; then
  die 1 "run install.sh from an unpacked release"
fi
VERSION=$(cat "$SRC/VERSION")
case $VERSION in ''|*/*|.*|*[!A-Za-z0-9.+_-]*) die 1 "bad VERSION file: $VERSION" ;; esac
# The app this release carries (build_release.py --app), if any: its MODULE:ATTR, its
# distribution and version, and the gateway version it was built with.
APP_SPEC="" APP_DIST="" APP_VERSION="" APP_PLATFORMS="" GATEWAY_VERSION=$VERSION
if [ -f "$SRC/APP" ]; then
  APP_SPEC=$(sed -n 's/^SPEC=//p' "$SRC/APP")
  APP_DIST=$(sed -n 's/^DIST=//p' "$SRC/APP")
  APP_VERSION=$(sed -n 's/^VERSION=//p' "$SRC/APP")
  APP_PLATFORMS=$(sed -n 's/^PLATFORMS=//p' "$SRC/APP")
  GATEWAY_VERSION=$(sed -n 's/^GATEWAY_VERSION=//p' "$SRC/APP")
  case $APP_SPEC in ''|*[!A-Za-z0-9_.:]*) die 1 "bad APP file: SPEC=$APP_SPEC" ;; esac
  case $APP_DIST in ''|*[!A-Za-z0-9_.-]*) die 1 "bad APP file: DIST=$APP_DIST" ;; esac
  case $APP_VERSION in ''|*[!A-Za-z0-9.+_-]*) die 1 "bad APP file: VERSION=$APP_VERSION" ;; esac
  case $GATEWAY_VERSION in ''|*[!A-Za-z0-9.+_-]*) die 1 "bad APP file: GATEWAY_VERSION=$GATEWAY_VERSION" ;; esac
fi
if [ -z "$R" ] && [ "$(id -u)" -ne 0 ]; then die 1 "run as root (or stage with --root DIR)"; fi
"$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die 1 "$PYTHON: need Python >= 3.11 with venv and ensurepip (Debian: apt install python3-venv)"

with_lock
mkdir -p "$RELEASES" "$STATE"
# The choices of the last install stay unless given again.
if [ -f "$STATE/install.conf" ]; then
  last_profile=$(sed -n 's/^PROFILE=//p' "$STATE/install.conf")
  last_socket=$(sed -n 's/^SOCKET=//p' "$STATE/install.conf")
  last_devices=$(sed -n 's/^DEVICES=//p' "$STATE/install.conf")
fi
[ -n "$PROFILE" ] || PROFILE=${last_profile:-auto}
[ -n "$SOCKET" ] || SOCKET=${last_socket:-no}
[ "$DEVICES_SET" = yes ] || DEVICES=${last_devices:-}

# A profile given as a file is checked from a staging copy, then installed into
# /etc/gateway/profiles (on the service's search path) and used by name from then on.
PROFILE_SRC=""
case $PROFILE in
  */*|*.toml)
    [ -f "$PROFILE" ] || die 78 "profile file $PROFILE: not found"
    name=$(basename "$PROFILE" .toml)
    case $name in ''|*[!A-Za-z0-9._+-]*) die 78 "profile file name $name: expected [A-Za-z0-9._+-]" ;; esac
    rm -rf "$STATE/incoming"
    mkdir -p "$STATE/incoming"
    cp "$PROFILE" "$STATE/incoming/$name.toml"
    PROFILE_SRC=$STATE/incoming/$name.toml
    PROFILE=$name
    ;;
esac

REL=$RELEASES/$VERSION
REL_REAL=$PREFIX/releases/$VERSION
OLD=$(release_of)
# The rollback target: the release that was current before this one (kept when this very
# release is installed again).
if [ "$OLD" != "$VERSION" ]; then
  PREV=$OLD
else
  PREV=$(cat "$STATE/previous" 2>/dev/null || true)
fi
FRESH=no

# 1. The venv, built at its final path (reused when this exact release is already there).
if [ -e "$REL/.complete" ] && cmp -s "$REL/share/gateway/SHA256SUMS" "$SRC/SHA256SUMS"; then
  say "release $VERSION is already built"
else
  if [ "$VERSION" = "$OLD" ]; then
    die 1 "release $VERSION is the current one but its files differ: give it a new version"
  fi
  say "building release $VERSION in $REL_REAL"
  rm -rf "$REL"
  FRESH=yes
  mkdir -p "$REL/share/gateway" "$REL/share/doc/gateway"
  for f in VERSION SHA256SUMS gwinstall.py install.sh gateway.env APP app-requirements.txt; do
    [ ! -f "$SRC/$f" ] || cp "$SRC/$f" "$REL/share/gateway/$f"
  done
  cp -R "$SRC/wheels" "$SRC/systemd" "$SRC/profiles" "$REL/share/gateway/"
  cp "$SRC/README.md" "$REL/share/doc/gateway/README.md"
  in_place env PIP_CONFIG_FILE=/dev/null "$PYTHON" -m venv "$REL_REAL" \
    || die 1 "$PYTHON -m venv failed"
  # Offline, from the release's wheels only; the machine's pip configuration is ignored.
  # The app and its requirements are resolved together with the gateway.
  set -- "gateway==$GATEWAY_VERSION"
  [ -z "$APP_DIST" ] || set -- "$@" "$APP_DIST==$APP_VERSION"
  [ ! -f "$SRC/app-requirements.txt" ] || set -- "$@" -r "$REL_REAL/share/gateway/app-requirements.txt"
  if ! in_place env PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
      PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore "$REL_REAL/bin/python" -m pip install \
      --quiet --no-index --find-links "$REL_REAL/share/gateway/wheels" "$@"; then
    rm -rf "$REL"
    if [ -n "$APP_PLATFORMS" ]; then
      die 1 "pip install of release $VERSION failed: its app was built for $APP_PLATFORMS;" \
        "this board is $(uname -m) with $("$PYTHON" -c 'import sys; print("Python %d.%d" % sys.version_info[:2])')"
    fi
    die 1 "pip install of release $VERSION failed"
  fi
fi

# 2. Render the drop-ins with this release's own code: the profile, the app (imported as
#    `gateway check APP` does) and --devices are checked here, before anything live changes.
nodetect=""
[ -z "$R" ] || nodetect=--no-detect
mkdir -p "$REL/share/gateway/rendered"
profiles_dir=$ETC/profiles
[ -z "$PROFILE_SRC" ] || profiles_dir=$STATE/incoming
# shellcheck disable=SC2086
if ! vars=$(in_place "$REL_REAL/bin/python" "$REL_REAL/share/gateway/gwinstall.py" render \
    --profile "$PROFILE" --env-file "$ETC/gateway.env" --profiles-dir "$profiles_dir" $nodetect \
    --service-dropin "$REL/share/gateway/rendered/gateway.service.conf" \
    --socket-dropin "$REL/share/gateway/rendered/gateway.socket.conf" \
    --app "$APP_SPEC" --app-dropin "$REL/share/gateway/rendered/gateway.app.conf" \
    --devices "$DEVICES" --devices-dropin "$REL/share/gateway/rendered/gateway.devices.conf" \
    --avahi-service "$REL/share/gateway/rendered/avahi.service" --version "$VERSION" \
    --root "$R"); then
  [ "$FRESH" = no ] || rm -rf "$REL"
  die 78 "release $VERSION (profile $PROFILE${APP_SPEC:+, app $APP_SPEC}${DEVICES:+, devices $DEVICES}) not installed: see the error above; nothing changed"
fi
RESOLVED="" HEALTH_URL="" CREDENTIALS="" MEMORY_MAX="" APP=""
eval "$vars"   # RESOLVED HEALTH_URL CREDENTIALS MEMORY_MAX APP, shell-quoted by gwinstall.py
HEALTH_URL=${HEALTH_URL_OPT:-$HEALTH_URL}
touch "$REL/.complete"
printf 'PROFILE=%s\nSOCKET=%s\nDEVICES=%s\n' "$PROFILE" "$SOCKET" "$DEVICES" \
  > "$REL/share/gateway/install.conf"
[ ! -f "$STATE/install.conf" ] || cp "$STATE/install.conf" "$STATE/install.conf.prev"
cp "$REL/share/gateway/install.conf" "$STATE/install.conf"

# 3. The profile file (the one it replaces kept for a rollback), configuration defaults (never
#    over an edited file), units, the switch.
rm -rf "$STATE/rollback-profiles"
if [ -n "$PROFILE_SRC" ]; then
  dest=$ETC/profiles/$PROFILE.toml
  if [ -f "$dest" ] && ! cmp -s "$PROFILE_SRC" "$dest"; then
    mkdir -p "$STATE/rollback-profiles"
    cp -p "$dest" "$STATE/rollback-profiles/"
  fi
  mkdir -p "$ETC/profiles"
  cp "$PROFILE_SRC" "$dest.tmp.$$"
  chmod 0644 "$dest.tmp.$$"
  mv -f "$dest.tmp.$$" "$dest"
  rm -rf "$STATE/incoming"
  say "installed profile $PROFILE as /etc/gateway/profiles/$PROFILE.toml"
fi
install_default "$SRC/gateway.env" "$ETC/gateway.env" 0644
if [ -n "$CREDENTIALS" ] && [ ! -e "$R$CREDENTIALS" ]; then
  mkdir -p "$(dirname "$R$CREDENTIALS")"
  ( umask 077
    printf '# gateway credentials: one "sha256:<hex> name" line per token.\n# Make one with: %s\n' \
      "$PREFIX/current/bin/gateway token --name admin" > "$R$CREDENTIALS" )
  say "created an empty $CREDENTIALS (0600): add tokens with gateway token"
fi
activate "$VERSION"
enable_units
if [ -n "$PREV" ]; then printf '%s\n' "$PREV" > "$STATE/previous"; fi
say "release $VERSION is current (profile $RESOLVED, app $APP${DEVICES:+, devices $DEVICES}${PREV:+, previous $PREV})"
if [ -f "$AVAHI_SERVICE" ] && [ ! -x "$R/usr/sbin/avahi-daemon" ]; then
  say "not advertised on the LAN until Avahi is installed (apt install avahi-daemon)"
fi
memory_check

if ! live; then
  prune
  say "staged; start it with: systemctl daemon-reload && systemctl start gateway.service"
  exit 0
fi

# 4. Restart, health check, rollback.
restart || true
if healthy; then
  say "healthy: ${HEALTH_URL:-gateway.service active}"
  # MemoryMax= needs the memory controller; without it systemd has no MemoryCurrent either.
  if [ "${MEMORY_MAX:-0}" != 0 ]; then
    case $(sc show -P MemoryCurrent gateway.service 2>/dev/null || true) in
      ''|'[not set]'|infinity|18446744073709551615)
        warn "systemd has no memory accounting for gateway.service here (no usable memory" \
          "cgroup controller): MemoryMax=$MEMORY_MAX is not enforced; only the gateway's own" \
          "memory budget bounds it" ;;
    esac
  fi
  prune
  exit 0
fi
warn "release $VERSION is not healthy (${HEALTH_URL:-gateway.service not active})"
journal_tail
if [ -z "$PREV" ] || [ "$PREV" = "$VERSION" ] || [ ! -e "$RELEASES/$PREV/.complete" ]; then
  die 4 "no previous release to roll back to; $VERSION stays installed"
fi
say "rolling back to $PREV"
if [ -f "$STATE/install.conf.prev" ]; then
  mv -f "$STATE/install.conf.prev" "$STATE/install.conf"
  SOCKET=$(sed -n 's/^SOCKET=//p' "$STATE/install.conf")
fi
for f in "$STATE"/rollback-profiles/*.toml; do
  [ -f "$f" ] || continue
  cp -p "$f" "$ETC/profiles/$(basename "$f")"
  say "restored /etc/gateway/profiles/$(basename "$f")"
done
activate "$PREV"
enable_units
rm -f "$STATE/previous"
restart || true
if healthy; then
  rm -rf "$REL"
  die 3 "release $VERSION was unhealthy: rolled back to $PREV, which is healthy"
fi
journal_tail
die 4 "rolled back to $PREV, but it is not healthy either"
