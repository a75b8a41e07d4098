# The fleet: deploy/ansible/site.yml (ansible-core from PyPI, in a venv of its own, cached) rolls
# releases out over ssh to three booted Debian containers (tests/nspawn_support.py), each in a
# network namespace of its own behind a veth pair, each with sshd and a different board
# profile. The role runs the same install.sh as a person would. Checked: a good release goes
# canary first, then the waves; a broken one fails on the canary, which rolls itself back, and
# the rollout stops there; forced past the canary, every device tries it and rolls back.
from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy_support import (
    DEPLOY,
    SYSTEM_PYTHON,
    broken_release,
    build_release,
    project_version,
)
from tests.nspawn_support import Container, build_root, require_usable

pytestmark = [pytest.mark.slow, pytest.mark.systemd]


@pytest.fixture(autouse=True, scope="module")
def _containers_usable() -> None:
    require_usable()  # fails, naming what is missing: never a silent skip


ANSIBLE_SPEC = "ansible-core>=2.17,<2.18"
TOOLS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gateway-test-tools"
PLAYBOOK = DEPLOY / "ansible" / "site.yml"
V0 = project_version()
V1 = f"{V0}.post1"
BROKEN = f"{V0}.post2"
# inventory name -> board profile; the first is the canary.
HOSTS = {"canary": "generic-amd64", "wave1": "pi4-2gb", "wave2": "tiny"}
CANARY = "canary"


@pytest.fixture(scope="module")
def ansible_playbook() -> Path:
    """ansible-playbook from a venv of its own (built once, then reused from the cache)."""
    tag = re.sub(r"[^A-Za-z0-9.]+", "-", ANSIBLE_SPEC).strip("-")
    venv = TOOLS / tag
    if not (venv / ".complete").exists():  # absent, or a build that did not finish
        TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["rm", "-rf", str(venv)], check=True, timeout=60)
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", str(venv)], check=True, timeout=120)
        proc = subprocess.run(
            [str(venv / "bin/pip"), "install", "-q", ANSIBLE_SPEC],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        assert proc.returncode == 0, proc.stderr
        (venv / ".complete").touch()
    return venv / "bin/ansible-playbook"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Container]]:
    work = tmp_path_factory.mktemp("fleet")
    key = work / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gateway-fleet-test", "-f", str(key)],
        check=True,
        timeout=30,
    )
    root = build_root()
    boxes: dict[str, Container] = {}
    try:
        for name in HOSTS:
            c = Container(root, work / name)
            boxes[name] = c
            c.prepare(ssh_key=(work / "id_ed25519.pub").read_text())
            c.start()
        for c in boxes.values():
            c.run(["systemctl", "is-active", "--quiet", "ssh.service"], timeout=30)
        inventory = {
            "all": {
                "vars": {
                    "ansible_user": "root",
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "ansible_ssh_private_key_file": str(key),
                    "ansible_ssh_common_args": "-o StrictHostKeyChecking=no "
                    "-o UserKnownHostsFile=/dev/null "
                    "-o ConnectTimeout=10",
                },
                "children": {
                    "gateway": {
                        "children": {"gateway_canary": {"hosts": {CANARY: {}}}},
                        "hosts": {n: {} for n in HOSTS if n != CANARY},
                    }
                },
            },
        }
        hostvars = {
            n: {"ansible_host": boxes[n].ip, "gateway_profile": p} for n, p in HOSTS.items()
        }
        groups = inventory["all"]["children"]["gateway"]  # type: ignore[index]
        groups["children"]["gateway_canary"]["hosts"][CANARY] = hostvars[CANARY]
        for n in HOSTS:
            if n != CANARY:
                groups["hosts"][n] = hostvars[n]
        (work / "inventory.json").write_text(json.dumps(inventory, indent=1))
        yield boxes
    finally:
        for c in boxes.values():
            c.stop()


def playbook(
    ansible: Path, fleet: dict[str, Container], tarball: Path, *extra: str, timeout: float = 400
) -> subprocess.CompletedProcess[str]:
    work = fleet[CANARY].dir.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "GATEWAY_"))}
    env.update(
        {
            "ANSIBLE_CONFIG": str(DEPLOY / "ansible" / "ansible.cfg"),
            "ANSIBLE_HOME": str(work / "ansible-home"),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORKS": "5",
        }
    )
    argv = [
        str(ansible),
        "-i",
        str(work / "inventory.json"),
        str(PLAYBOOK),
        "-e",
        f"gateway_release_tarball={tarball}",
        *extra,
    ]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        cwd=DEPLOY / "ansible",
    )


def current(c: Container) -> str:
    return c.sh("readlink /opt/gateway/current", check=False).stdout.strip()


def healthy(c: Container) -> bool:
    conn = http.client.HTTPConnection(c.ip, 8080, timeout=5)
    try:
        conn.request("GET", "/_gateway/health")
        resp = conn.getresponse()
        return resp.status == 200 and json.loads(resp.read())["status"] == "ok"
    finally:
        conn.close()


def installed_at(c: Container, version: str) -> float:
    return float(c.sh(f"stat -c %.9Y /opt/gateway/releases/{version}/.complete").stdout)


def test_good_release_canary_first_then_waves(
    ansible_playbook: Path, fleet: dict[str, Container]
) -> None:
    proc = playbook(ansible_playbook, fleet, build_release())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert out.index("PLAY [Canary]") < out.index("PLAY [Fleet, in waves]")
    for name, profile in HOSTS.items():
        c = fleet[name]
        assert current(c) == f"releases/{V0}", name
        assert healthy(c), name
        status = c.show("gateway.service", "StatusText")["StatusText"]
        assert status.endswith(f"(profile {profile})"), (name, status)
    t = {n: installed_at(fleet[n], V0) for n in HOSTS}
    assert t[CANARY] < t["wave1"] < t["wave2"], t  # canary, then wave 1 (34%), then wave 2


def test_broken_canary_stops_the_rollout(
    ansible_playbook: Path, fleet: dict[str, Container]
) -> None:
    proc = playbook(ansible_playbook, fleet, build_release(V1))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert all(current(c) == f"releases/{V1}" for c in fleet.values())

    proc = playbook(ansible_playbook, fleet, broken_release(BROKEN))  # bounded by its timeout
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-6000:]
    assert "rolled back to the previous release, which is healthy" in out, out[-6000:]
    assert "PLAY [Fleet, in waves]" not in out  # any_errors_fatal: nobody else was touched
    for c in fleet.values():
        assert current(c) == f"releases/{V1}" and healthy(c), c.name
        assert BROKEN not in c.sh("ls /opt/gateway/releases").stdout
    for name in ("wave1", "wave2"):
        assert fleet[name].sh("test ! -e /var/tmp/gateway-release", check=False).returncode == 0


def test_forced_broken_release_is_rolled_back_everywhere(
    ansible_playbook: Path, fleet: dict[str, Container]
) -> None:
    proc = playbook(
        ansible_playbook, fleet, broken_release(BROKEN), "-e", "gateway_rollback_fatal=false"
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-6000:]
    for name in HOSTS:
        assert f"was unhealthy on {name}: rolled back to the previous release" in out, name
    assert "PLAY [Summary]" in out
    assert re.search(r"rolled back or failed\) on: canary, wave1, wave2", out), out[-3000:]
    for c in fleet.values():
        assert current(c) == f"releases/{V1}" and healthy(c), c.name
        assert BROKEN not in c.sh("ls /opt/gateway/releases").stdout
        journal = c.sh("journalctl -u gateway.service --no-pager -o cat").stdout
        assert "deliberately broken" in journal, c.name
