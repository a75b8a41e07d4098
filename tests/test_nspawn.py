# The service under a REAL systemd: a minimal Debian (scripts/mkroot.sh, cached) booted with
# systemd-nspawn in a network namespace of its own, the release tarball installed inside by the
# REAL deploy/install.sh, and then: active with our StatusText under a dynamic user, HTTP from
# the host over the veth, `systemctl reload` (a profile edit applies; a bad one is refused and
# the old process keeps serving), restart after SIGKILL, the watchdog killing and restarting a
# wedged trio loop, socket activation, an upgrade, a broken release rolled back; a device
# developer's app (build_release.py --app) served with its HTTP, WebSocket and privileged routes,
# given exactly one device node (install.sh --devices), upgraded, and rolled back with its device
# access when its next version cannot start; uninstall.
# The tests share one container and run in file order (each step starts from the previous
# one's end state). Every step is time-bounded; the container, its cgroups and its network
# namespace are removed on every path (tests/nspawn_support.py).
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import load_settings
from tests.deploy_support import (
    APP_DIST,
    SENSOR_NODE,
    broken_release,
    build_app_release,
    build_release,
    project_version,
)
from tests.nspawn_support import Container, build_root, require_usable

pytestmark = [pytest.mark.slow, pytest.mark.systemd]


@pytest.fixture(autouse=True, scope="module")
def _containers_usable() -> None:
    require_usable()  # fails, naming what is missing: never a silent skip


V0 = project_version()
V1 = f"{V0}.post1"
BROKEN = f"{V0}.post2"
APP1 = f"{V0}-{APP_DIST}-1.0"
APP2 = f"{V0}-{APP_DIST}-2.0"
APP3 = f"{V0}-{APP_DIST}-3.0"
V2_ROUTE = """

@app.get("/app/v2")
async def v2(req, res):
    await res.send("new in 2.0")
"""
# A node no app is given: same numbers as SENSOR_NODE (see test_app_release_serves_its_routes).
OTHER_NODE = "/dev/gwother0"
PORT = 8080  # the board profiles' port; the container has a network of its own
BOARD = 'extends = "generic-amd64"\n'
HANG_APP = """\
# A test app: the demo plus a route that blocks the trio loop (no awaits), as a wedged
# handler would; the watchdog must notice that the loop stopped pinging.
import time

from gateway.demo import app


@app.get("/hang")
async def hang(req, res):
    time.sleep(120)
    await res.send("unreachable")
"""
WATCHDOG_DROPIN = """\
[Service]
WatchdogSec=3s
Environment=PYTHONPATH=/usr/local/lib/gateway-test
Environment=GATEWAY_APP=hangapp:app
"""


def wait_until(what: str, pred: Callable[[], Any], timeout: float, step: float = 0.25) -> Any:
    # ``timeout`` is a generous cap for an event that must come, not a speed requirement: a
    # slow host (TCG, a busy CI) takes longer and still passes
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except (OSError, AssertionError, http.client.HTTPException) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    root = build_root()
    c = Container(root, tmp_path_factory.mktemp("nspawn"))
    try:
        c.prepare()
        c.start()
        yield c
    finally:
        c.stop()


def http_get(c: Container, path: str = "/_gateway/health", timeout: float = 5) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(c.ip, PORT, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_post(c: Container, path: str, body: bytes, timeout: float = 5) -> int:
    conn = http.client.HTTPConnection(c.ip, PORT, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def healthy(c: Container) -> bool:
    status, body = http_get(c)
    return status == 200 and json.loads(body)["status"] == "ok"


def service(c: Container) -> dict[str, str]:
    return c.show(
        "gateway.service", "ActiveState", "SubState", "StatusText", "MainPID", "NRestarts", "Result"
    )


def install(
    c: Container, version: str, *args: str, tarball: Path | None = None, timeout: float = 240
) -> Any:
    tarball = tarball or build_release(None if version == V0 else version)
    c.put(f"/root/{tarball.name}", tarball.read_bytes())
    return c.sh(
        f"cd /root && rm -rf gateway-{version} && tar xzf {tarball.name} && "
        f"./gateway-{version}/install.sh --health-timeout 40 {' '.join(args)}",
        timeout=timeout,
        check=False,
    )


def http_json(c: Container, path: str) -> tuple[int, Any]:
    status, body = http_get(c, path)
    return status, json.loads(body) if status == 200 else body


def ws_echo(c: Container, path: str, text: str, timeout: float = 5) -> tuple[bytes, bool, bytes]:
    """A raw WebSocket handshake and one masked text frame: (status line, whether
    Sec-WebSocket-Accept is right, the echoed payload)."""
    key = base64.b64encode(os.urandom(16)).decode()
    want = base64.b64encode(
        hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    ).decode()
    with socket.create_connection((c.ip, PORT), timeout=timeout) as s:
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {c.ip}:{PORT}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf and len(buf) < 16384:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        fields = dict(ln.split(b":", 1) for ln in head.split(b"\r\n")[1:] if b":" in ln)
        accepted = {k.strip().lower(): v.strip() for k, v in fields.items()}.get(
            b"sec-websocket-accept"
        ) == want.encode()
        payload = text.encode()
        assert len(payload) < 126
        mask = os.urandom(4)
        s.sendall(
            bytes([0x81, 0x80 | len(payload)])
            + mask
            + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        )
        while len(rest) < 2 + len(payload):
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
    assert rest[:2] == bytes([0x81, len(payload)]), rest[:16]
    return status, accepted, rest[2 : 2 + len(payload)]


def device_open(c: Container, node: str) -> Any:
    """What the app sees when it opens ``node`` (its /app/device route)."""
    status, answer = http_json(c, f"/app/device?path={node}")
    assert status == 200, answer
    return answer


def main_cmdline(c: Container) -> str:
    pid = service(c)["MainPID"]
    return c.sh(f"tr '\\0' ' ' < /proc/{pid}/cmdline").stdout


# --- install and run -----------------------------------------------------------------------------


def test_install_runs_as_a_dynamic_user_and_answers_the_host(box: Container) -> None:
    box.put("/root/board.toml", BOARD)
    proc = install(box, V0, "--profile", "/root/board.toml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "healthy: http://127.0.0.1:8080/_gateway/health" in proc.stderr, proc.stderr
    svc = service(box)
    assert (svc["ActiveState"], svc["SubState"]) == ("active", "running"), svc
    assert re.match(r"serving on .*8080.* \(profile board\)", svc["StatusText"]), svc
    pid = svc["MainPID"]
    user, uid = box.sh(f"ps -o user=,uid= -p {pid}").stdout.split()
    assert user == "gateway" and 61184 <= int(uid) <= 65519, (user, uid)  # DynamicUser range
    assert f"/opt/gateway/releases/{V0}/bin/python" in main_cmdline(box)
    # From the host, over the veth: the profile listens on 0.0.0.0.
    assert healthy(box)
    status, page = http_get(box, "/")
    assert status == 200 and b"gateway is running" in page and b"board" in page
    dropin = box.sh("cat /etc/systemd/system/gateway.service.d/50-profile.conf").stdout
    assert "Environment=GATEWAY_PROFILE=board" in dropin
    assert box.sh("systemctl is-enabled gateway.service").stdout.strip() == "enabled"
    # MemoryMax= is only real with a usable memory controller; install.sh says when it is not
    # (as here: nspawn gives a container on a cgroup-v1-memory host no memory controller).
    mem = box.show("gateway.service", "MemoryCurrent", "MemoryMax")
    limit = load_settings("generic-amd64", env={}).systemd.memory_max_bytes
    assert mem["MemoryMax"] == str(limit), mem  # from the rendered drop-in
    if mem["MemoryCurrent"] in ("", "[not set]"):
        assert f"MemoryMax={limit} is not enforced" in proc.stderr, proc.stderr
    else:
        assert "not enforced" not in proc.stderr, proc.stderr


def test_reload_applies_a_profile_edit_and_refuses_a_bad_one(box: Container) -> None:
    pid = service(box)["MainPID"]
    assert http_post(box, "/upload", b"x" * 4096) == 200
    box.put(
        "/etc/gateway/profiles/board.toml",
        BOARD + "[limits.user]\nmax_body_bytes = 2048\nmax_cache_bytes = 1024\n",
    )
    box.run(["systemctl", "reload", "gateway.service"], timeout=60)
    svc = service(box)
    assert svc["MainPID"] == pid and svc["ActiveState"] == "active", svc
    assert svc["StatusText"] == "reloaded profile board", svc
    assert http_post(box, "/upload", b"x" * 4096) == 413
    assert http_post(box, "/upload", b"x" * 1000) == 200

    # A bad profile: ExecReload's `gateway check` fails the reload, the process is untouched.
    box.put("/etc/gateway/profiles/board.toml", BOARD + "[limits.user]\nmax_body_bytes = -1\n")
    bad = box.run(["systemctl", "reload", "gateway.service"], timeout=60, check=False)
    assert bad.returncode != 0
    svc = service(box)
    assert svc["MainPID"] == pid and svc["ActiveState"] == "active", svc
    assert http_post(box, "/upload", b"x" * 4096) == 413  # still the last good limits
    journal = box.sh("journalctl -u gateway.service --no-pager -o cat").stdout
    assert "max_body_bytes" in journal, journal[-2000:]
    box.put("/etc/gateway/profiles/board.toml", BOARD)
    box.run(["systemctl", "reload", "gateway.service"], timeout=60)
    assert http_post(box, "/upload", b"x" * 4096) == 200


def test_restarted_after_sigkill(box: Container) -> None:
    before = service(box)
    box.sh(f"kill -KILL {before['MainPID']}")
    after = wait_until(
        "a new main process",
        lambda: (
            (s := service(box))["ActiveState"] == "active"
            and s["SubState"] == "running"
            and s["MainPID"] not in ("0", before["MainPID"])
            and s
        ),
        90,
    )
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1, (before, after)
    wait_until("healthy again", lambda: healthy(box), 60)


def test_watchdog_restarts_a_wedged_loop(box: Container) -> None:
    box.put("/usr/local/lib/gateway-test/hangapp.py", HANG_APP)
    box.put("/etc/systemd/system/gateway.service.d/60-test-watchdog.conf", WATCHDOG_DROPIN)
    try:
        box.run(["systemctl", "daemon-reload"])
        box.run(["systemctl", "restart", "gateway.service"], timeout=60)
        assert box.show("gateway.service", "WatchdogUSec")["WatchdogUSec"] == "3s"
        wait_until("healthy with the test app", lambda: healthy(box), 60)
        before = service(box)
        with pytest.raises((TimeoutError, OSError)):
            http_get(box, "/hang", timeout=1)  # the loop is now blocked: no more pings
        after = wait_until(
            "restart by the watchdog",
            lambda: (
                (s := service(box))["MainPID"] not in ("0", before["MainPID"])
                and s["ActiveState"] == "active"
                and s
            ),
            90,
        )
        assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1, (before, after)
        journal = box.sh("journalctl -u gateway.service --no-pager -o cat").stdout
        assert "Watchdog timeout" in journal, journal[-2000:]
        wait_until("healthy after the watchdog restart", lambda: healthy(box), 60)
    finally:
        box.sh(
            "rm -f /etc/systemd/system/gateway.service.d/60-test-watchdog.conf && "
            "systemctl daemon-reload && systemctl restart gateway.service",
            timeout=60,
        )
    wait_until("healthy with the demo app", lambda: healthy(box), 60)


def test_socket_activation(box: Container) -> None:
    proc = install(box, V0, "--socket")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert box.sh("systemctl is-enabled gateway.socket").stdout.strip() == "enabled"
    box.run(["systemctl", "stop", "gateway.service"], timeout=60)
    assert box.show("gateway.socket", "ActiveState")["ActiveState"] == "active"
    assert service(box)["ActiveState"] == "inactive"
    # The first connection starts the service, which takes the socket PID 1 holds.
    assert healthy(box)
    svc = service(box)
    assert svc["ActiveState"] == "active" and "8080" in svc["StatusText"], svc
    listeners = box.sh(f"ss -Hltnp 'sport = :{PORT}'").stdout
    assert "systemd" in listeners and f"pid={svc['MainPID']},fd=3" in listeners, listeners
    assert listeners.count("LISTEN") == 1, listeners  # the gateway did not bind its own
    # Back to a plain service.
    proc = install(box, V0, "--no-socket")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert box.show("gateway.socket", "UnitFileState")["UnitFileState"] == "disabled"
    assert healthy(box)


# --- upgrade, rollback, uninstall ------------------------------------------------------------------


def test_upgrade(box: Container) -> None:
    proc = install(box, V1)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert box.sh("readlink /opt/gateway/current").stdout.strip() == f"releases/{V1}"
    assert f"/opt/gateway/releases/{V1}/bin/python" in main_cmdline(box)
    assert service(box)["StatusText"].endswith("(profile board)")  # the profile was kept
    assert sorted(box.sh("ls /opt/gateway/releases").stdout.split()) == sorted([V0, V1])
    assert healthy(box)


def test_broken_release_is_rolled_back(box: Container) -> None:
    tarball = broken_release(BROKEN)
    proc = install(box, BROKEN, tarball=tarball)  # bounded by install()'s own timeout
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"rolling back to {V1}" in proc.stderr
    assert "deliberately broken" in proc.stderr, proc.stderr  # the journal tail says why
    assert box.sh("readlink /opt/gateway/current").stdout.strip() == f"releases/{V1}"
    assert sorted(box.sh("ls /opt/gateway/releases").stdout.split()) == sorted([V0, V1])
    svc = service(box)
    assert svc["ActiveState"] == "active", svc
    assert f"/opt/gateway/releases/{V1}/bin/python" in main_cmdline(box)
    assert healthy(box)


# --- your app on a device ----------------------------------------------------------------------


def test_app_release_serves_its_routes(box: Container) -> None:
    # Two char device nodes the app may or may not be given. A container cannot reach real
    # hardware, so they borrow /dev/net/tun's numbers (10:200): a misc device any process may
    # open without a driver behind it; root:dialout 0660, as udev makes a serial port.
    for node in (SENSOR_NODE, OTHER_NODE):
        box.sh(
            f"rm -f {node} && mknod {node} c 10 200 && chgrp dialout {node} && chmod 0660 {node}"
        )
    proc = install(box, APP1, tarball=build_app_release("1.0"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"app {APP_DIST}:app" in proc.stderr
    assert box.sh("readlink /opt/gateway/current").stdout.strip() == f"releases/{APP1}"
    assert f"{APP_DIST}:app" in main_cmdline(box)
    assert (
        "Environment=GATEWAY_APP=gwtestapp:app"
        in box.sh("cat /etc/systemd/system/gateway.service.d/60-app.conf").stdout
    )
    status, hello = http_json(box, "/app/hello")
    assert status == 200 and hello == {"app": APP_DIST, "version": "1.0", "sensor": "sensor-42"}, (
        hello
    )
    line, accepted, echoed = ws_echo(box, "/app/live", "ping from the host")
    assert line == b"HTTP/1.1 101 Switching Protocols" and accepted, line
    assert echoed == b"ping from the host"
    assert http_post(box, "/app/config", b"{}") == 401  # privileged: no token
    # No device drop-in: the service's private /dev has no such node.
    assert device_open(box, SENSOR_NODE) == {"path": SENSOR_NODE, "ok": False, "errno": "ENOENT"}


def test_device_access_drop_in(box: Container) -> None:
    proc = install(box, APP1, "--devices", SENSOR_NODE, tarball=build_app_release("1.0"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "already built" in proc.stderr
    dropin = box.sh("cat /etc/systemd/system/gateway.service.d/70-devices.conf").stdout
    assert f"BindPaths=-{SENSOR_NODE}" in dropin.splitlines()
    assert "SupplementaryGroups=dialout" in dropin.splitlines()  # the node's own group
    svc = box.show(
        "gateway.service",
        "PrivateDevices",
        "DevicePolicy",
        "DynamicUser",
        "ProtectSystem",
        "CapabilityBoundingSet",
    )
    assert svc == {
        "PrivateDevices": "yes",
        "DevicePolicy": "closed",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "CapabilityBoundingSet": "",
    }, svc
    assert device_open(box, SENSOR_NODE) == {"path": SENSOR_NODE, "ok": True}
    # Exactly that node: another with the same group, mode and numbers stays out of its /dev.
    assert device_open(box, OTHER_NODE)["errno"] == "ENOENT"
    assert device_open(box, "/dev/null")["ok"] is True  # the pseudo devices, as before


def test_app_upgrade_serves_the_new_version(box: Container) -> None:
    proc = install(box, APP2, tarball=build_app_release("2.0", extra=V2_ROUTE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"/opt/gateway/releases/{APP2}/bin/python" in main_cmdline(box)
    assert http_get(box, "/app/v2") == (200, b"new in 2.0")
    assert http_json(box, "/app/hello")[1]["version"] == "2.0"
    assert device_open(box, SENSOR_NODE)["ok"] is True  # --devices was remembered


def test_app_rollback_takes_the_old_app_and_its_devices_back(box: Container) -> None:
    # 3.0 opens the sensor when it starts serving; installed without device access it never
    # becomes healthy, and the rollback must bring back 2.0 with its device drop-in.
    tarball = build_app_release("3.0", needs_device=True)
    started = time.monotonic()
    proc = install(box, APP3, "--devices", "none", tarball=tarball)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"rolling back to {APP2}" in proc.stderr
    assert SENSOR_NODE in proc.stderr, proc.stderr  # the journal tail: why 3.0 failed
    assert time.monotonic() - started < 120
    assert box.sh("readlink /opt/gateway/current").stdout.strip() == f"releases/{APP2}"
    assert http_get(box, "/app/v2") == (200, b"new in 2.0")
    assert device_open(box, SENSOR_NODE)["ok"] is True
    assert f"DEVICES={SENSOR_NODE}" in box.sh("cat /opt/gateway/state/install.conf").stdout


def test_uninstall(box: Container) -> None:
    proc = box.sh(f"/root/gateway-{V1}/install.sh --uninstall", timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert box.show("gateway.service", "LoadState")["LoadState"] == "not-found"
    assert box.sh("test ! -e /opt/gateway && test -d /etc/gateway/profiles").returncode == 0
    assert box.sh("test ! -e /etc/systemd/system/gateway.service.d").returncode == 0
    with pytest.raises(OSError):
        http_get(box, timeout=2)
