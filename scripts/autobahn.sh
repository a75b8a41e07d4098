#!/usr/bin/env bash
# Autobahn|Testsuite fuzzingclient against the gateway's WebSocket echo route (bench.app:app /ws)
# on 127.0.0.1, with websocket.max_message_bytes = 16 MiB for the run (cases 9.* send 16 MiB).
# Sets up, once and idempotently, a CPython 2.7 virtualenv with autobahntestsuite (a Python 2
# program) under $AUTOBAHN_HOME (default ~/.cache/gateway-autobahn), with pinned versions.
#
# Usage: scripts/autobahn.sh            cases 1-10, report in $AUTOBAHN_OUT (default build/autobahn)
#   AUTOBAHN_CASES='1.*,5.*'  AUTOBAHN_EXCLUDE='9.*'  AUTOBAHN_OUT=/tmp/ab  scripts/autobahn.sh
#   scripts/autobahn.sh --setup-only
# Exit status: 0 when every case is OK, NON-STRICT or INFORMATIONAL; 1 otherwise; 2 on set-up
# failure; 3 when the gateway did not start. The JSON report is $AUTOBAHN_OUT/index.json (HTML
# pages beside it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
AB_HOME=${AUTOBAHN_HOME:-$HOME/.cache/gateway-autobahn}
OUT=${AUTOBAHN_OUT:-$ROOT/build/autobahn}
CASES=${AUTOBAHN_CASES:-1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*}
EXCLUDE=${AUTOBAHN_EXCLUDE:-}
GATEWAY_PY=${GATEWAY_PYTHON:-$ROOT/.venv/bin/python}
WSTEST=$AB_HOME/venv/bin/wstest

# Versions known to work together on Python 2.7 (autobahntestsuite pulls unpinned ones that no
# longer support it).
PINS=(
  autobahntestsuite==25.10.1 autobahn==0.10.9 Twisted==19.10.0 txaio==2.1.0 wsaccel==0.6.6
  ujson==2.0.3 zope.interface==4.6.0 six==1.16.0 attrs==21.4.0 Automat==22.10.0
  constantly==15.1.0 hyperlink==21.0.0 idna==2.10 incremental==16.10.1 PyHamcrest==1.10.1
  cryptography==3.3.2 cffi==1.15.1 pycparser==2.21 pyOpenSSL==19.1.0 service-identity==18.1.0
  pyasn1==0.5.1 pyasn1-modules==0.3.0 enum34==1.1.10 ipaddress==1.0.23 typing==3.10.0.0
  Jinja2==2.11.3 MarkupSafe==1.1.1 klein==17.10.0 Werkzeug==1.0.1 unittest2==1.1.0
  traceback2==1.4.0 linecache2==1.0.0 argparse==1.4.0
)

is_python27() {  # runs, and is 2.7 (a pyenv shim without 2.7 selected is on PATH but fails)
  [ -n "$1" ] && [ -x "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' \
    >/dev/null 2>&1
}

find_python27() {
  if [ -n "${PY27:-}" ]; then
    if is_python27 "$PY27"; then echo "$PY27"; return; fi
    echo "autobahn: PY27=$PY27 is not a working CPython 2.7" >&2
    return 1
  fi
  for p in "$HOME"/.pyenv/versions/2.7*/bin/python2.7 "$(command -v python2.7 || true)"; do
    if is_python27 "$p"; then echo "$p"; return; fi
  done
  return 1
}

setup() {
  if [ -x "$WSTEST" ] && "$WSTEST" --autobahnversion >/dev/null 2>&1; then
    return 0
  fi
  local py
  py=$(find_python27) || {
    echo "autobahn: no CPython 2.7 found: autobahntestsuite is a Python 2 program; install one" \
      "(pyenv: ~/.pyenv/versions/2.7.x) or set PY27=/path/to/python2.7" >&2
    exit 2
  }
  echo "autobahn: setting up $AB_HOME/venv with $py" >&2
  if ! "$py" -m virtualenv --version >/dev/null 2>&1; then
    "$py" -m pip install -q "virtualenv<20.22" >&2
  fi
  rm -rf "$AB_HOME/venv"
  mkdir -p "$AB_HOME"
  "$py" -m virtualenv -q "$AB_HOME/venv" >&2
  PIP_NO_PYTHON_VERSION_WARNING=1 "$AB_HOME/venv/bin/pip" install -q "${PINS[@]}" 2>&1 \
    | grep -v "WARNING: Url" >&2 || true
  "$WSTEST" --autobahnversion >/dev/null 2>&1 || { echo "autobahn: install failed" >&2; exit 2; }
}

setup
if [ "${1:-}" = "--setup-only" ]; then exit 0; fi

PORT=$("$GATEWAY_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$OUT"
SPEC=$OUT/fuzzingclient.json
"$GATEWAY_PY" - "$SPEC" "$OUT" "$PORT" "$CASES" "$EXCLUDE" <<'EOF'
import json, sys
spec, out, port, cases, exclude = sys.argv[1:]
split = lambda s: [c.strip() for c in s.split(",") if c.strip()]
json.dump({"outdir": out, "servers": [{"agent": "gateway", "url": f"ws://127.0.0.1:{port}/ws"}],
           "cases": split(cases), "exclude-cases": split(exclude), "exclude-agent-cases": {}},
          open(spec, "w"), indent=2)
EOF

cd "$ROOT"
# GATEWAY_PYTHON is this script's variable, not a setting: the gateway refuses unknown GATEWAY_*
env -u GATEWAY_PYTHON \
  "$GATEWAY_PY" -m gateway serve bench.app:app --profile default --host 127.0.0.1 --port "$PORT" \
  --set websocket.max_message_bytes=16MiB --set server.access_log=false \
  >"$OUT/gateway.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
up=0
for _ in $(seq 1 100); do
  if "$GATEWAY_PY" -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then
    up=1
    break
  fi
  sleep 0.1
done
if [ "$up" != 1 ]; then
  echo "autobahn: the gateway did not start on port $PORT:" >&2
  tail -n 20 "$OUT/gateway.log" >&2
  exit 3
fi

start=$(date +%s)
(cd "$OUT" && "$WSTEST" -m fuzzingclient -s "$SPEC") >"$OUT/wstest.log" 2>&1
echo "autobahn: wstest finished in $(( $(date +%s) - start )) s" >&2

"$GATEWAY_PY" - "$OUT/index.json" <<'EOF'
import collections, json, sys
report = json.load(open(sys.argv[1]))
results = next(iter(report.values()))
counts = collections.Counter()
bad = []
for case, r in sorted(results.items(), key=lambda kv: [int(x) for x in kv[0].split(".")]):
    counts[(r["behavior"], r["behaviorClose"])] += 1
    if r["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL") or r["behaviorClose"] not in (
            "OK", "INFORMATIONAL"):
        bad.append((case, r["behavior"], r["behaviorClose"]))
print(f"autobahn: {len(results)} cases: " + ", ".join(
    f"{b}/{c}: {n}" for (b, c), n in sorted(counts.items())))
for case, b, c in bad:
    print(f"autobahn: case {case}: {b} (close: {c})")
sys.exit(1 if bad else 0)
EOF
