# Booted Debian containers for the deployment tests: systemd-nspawn on a copy of the cached root
# (scripts/mkroot.sh), each in a network namespace of its own joined to the host by a veth pair
# on a link-local /30 (169.254.213.0/24: never routed, and inside the gateway's default
# allowed_networks), reachable from the host only.
#
# No systemd on the host (it is not PID 1 here), so: --keep-unit --register=no (no machined, no
# scope unit); the nspawn process is first moved into a cgroup of its own, which holds everything
# the container creates and is removed at teardown; commands run inside with
# `nsenter -t <container PID 1> -a` (machinectl/systemd-run --machine need registration).
# Teardown (stop(), also on every failure path): SIGTERM to nspawn (the container powers off),
# then SIGKILL to nspawn and the container's PID 1 after a bound, then the cgroups, the network
# namespace (which takes the veth pair with it) and the root copy.
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy_support import REPO

MKROOT = REPO / "scripts" / "mkroot.sh"
NSPAWN = shutil.which("systemd-nspawn")
SUBNET = "169.254.213"
# Slots (a /30 and the names that go with it) are taken with a lock file held for the
# container's life: several test runs on one machine never share a name or an address, and a
# crashed run's slot is free again (the kernel drops the lock with the process).
SLOTS_DIR = Path("/run/gateway-test-net")
SLOTS = range(1, 63)
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Units a test container does not need: they only slow the boot down or talk to a console.
MASK = (
    "console-getty.service",
    "getty@.service",
    "getty.target",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-timesyncd.service",
    "systemd-networkd-wait-online.service",
)


def usable() -> str | None:
    """Why containers cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("systemd-nspawn", "mmdebstrap", "nsenter", "ip", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (scripts/system-deps.sh installs it)"
    return None


def require_usable() -> None:
    """Fail the test (never skip) when containers cannot run here, saying why: `make test`
    runs as root and installs the tools (scripts/system-deps.sh)."""
    why = usable()
    if why is not None:
        pytest.fail(f"containers cannot run here: {why}", pytrace=False)


def build_root(timeout: float = 660) -> Path:
    """The cached Debian root (built on first use, bounded by mkroot.sh itself)."""
    proc = subprocess.run(
        ["sh", str(MKROOT)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"mkroot.sh failed:\n{proc.stderr}"
    return Path(proc.stdout.strip().splitlines()[-1])


def _cgroup_bases() -> list[Path]:
    """The hierarchies nspawn and the container's systemd write to, at our own cgroup."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    bases = []
    if Path("/sys/fs/cgroup/unified/cgroup.procs").exists():  # hybrid: v2 + name=systemd v1
        bases.append(Path("/sys/fs/cgroup/unified") / own.get("", "/").lstrip("/"))
        bases.append(Path("/sys/fs/cgroup/systemd") / own.get("name=systemd", "/").lstrip("/"))
    elif Path("/sys/fs/cgroup/cgroup.procs").exists() and "" in own:  # unified
        bases.append(Path("/sys/fs/cgroup") / own[""].lstrip("/"))
    return bases


def _remove_cgroup(path: Path) -> None:
    if not path.is_dir():
        return
    for _ in range(50):
        pids = []
        for procs in path.rglob("cgroup.procs"):
            try:
                pids += [int(p) for p in procs.read_text().split()]
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        dirs = sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, path]:
            try:
                d.rmdir()
            except OSError:
                pass
        if not path.exists():
            return
        time.sleep(0.1)


def _take_slot() -> tuple[int, int]:
    SLOTS_DIR.mkdir(parents=True, exist_ok=True)
    for slot in SLOTS:
        fd = os.open(SLOTS_DIR / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd
    raise AssertionError(f"all {len(SLOTS)} container slots are taken ({SLOTS_DIR})")


class Container:
    """One booted container in a free slot N: machine gwtN, host .4N+1, container .4N+2."""

    def __init__(self, root_cache: Path, workdir: Path) -> None:
        self.cache = root_cache
        self.dir = workdir
        self.index, self._slot_fd = _take_slot()
        self.name = name = f"gwt{self.index}"
        self._created: set[str] = set()
        self.root = workdir / "root"
        self.netns = f"{name}-ns"
        self.host_if = f"{name}-h"[:15]
        self.cont_if = f"{name}-c"[:15]
        self.host_ip = f"{SUBNET}.{4 * self.index + 1}"
        self.ip = f"{SUBNET}.{4 * self.index + 2}"
        self.cgroups = [b / f"gwtest-{name}" for b in _cgroup_bases()]
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None
        self.log_path = workdir / "console.log"

    # -- lifecycle --------------------------------------------------------------------------------
    def prepare(self, ssh_key: str | None = None) -> None:
        """Copy the root and make it this container's (hostname, masks; sshd with host keys of
        its own and ``ssh_key`` authorized for root, or no sshd at all)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._created.add("root")
        subprocess.run(
            ["cp", "-a", "--reflink=auto", str(self.cache), str(self.root)], check=True, timeout=300
        )
        (self.root / "etc/hostname").write_text(self.name + "\n")
        wants = self.root / "etc/systemd/system"
        masked = MASK
        if ssh_key is None:
            masked += ("ssh.service", "ssh.socket")
        else:
            subprocess.run(
                ["ssh-keygen", "-A", "-f", str(self.root)],
                check=True,
                timeout=60,
                capture_output=True,
            )
            ssh_dir = self.root / "root/.ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            (ssh_dir / "authorized_keys").write_text(ssh_key.strip() + "\n")
            (ssh_dir / "authorized_keys").chmod(0o600)
        for unit in masked:
            link = wants / unit
            if not link.exists() and not link.is_symlink():
                link.symlink_to("/dev/null")

    def start(self, boot_timeout: float = 90) -> None:
        assert NSPAWN is not None
        # Leftovers of a crashed run in this (now free) slot are ours to clear.
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=30)
        for cg in self.cgroups:
            _remove_cgroup(cg)
        self._created.add("net")
        subprocess.run(["ip", "netns", "add", self.netns], check=True, timeout=30)
        for argv in (
            ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.cont_if],
            ["ip", "link", "set", self.cont_if, "netns", self.netns],
            ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if],
            ["ip", "link", "set", self.host_if, "up"],
            ["ip", "-n", self.netns, "addr", "add", f"{self.ip}/30", "dev", self.cont_if],
            ["ip", "-n", self.netns, "link", "set", self.cont_if, "up"],
            ["ip", "-n", self.netns, "link", "set", "lo", "up"],
        ):
            subprocess.run(argv, check=True, timeout=30)
        self._created.add("cgroup")
        for cg in self.cgroups:
            cg.mkdir(exist_ok=True)
        # The shell moves itself into our cgroups, then becomes systemd-nspawn (same pid).
        move = "; ".join(f"echo $$ > {cg}/cgroup.procs" for cg in self.cgroups) or ":"
        argv = [
            NSPAWN,
            "--quiet",
            "--keep-unit",
            "--register=no",
            "--boot",
            f"--directory={self.root}",
            f"--machine={self.name}",
            f"--network-namespace-path=/run/netns/{self.netns}",
            "--console=read-only",
            "--resolv-conf=off",
            "--timezone=off",
            "--link-journal=no",
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["sh", "-c", f'{move}; exec "$@"', "sh", *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + boot_timeout
        while self.leader is None:
            assert self.proc.poll() is None, f"nspawn exited {self.proc.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"no container init:\n{self.log()}"
            self.leader = self._find_leader()
            time.sleep(0.1)
        while True:  # PID 1 listens on its private bus a moment after it starts
            remaining = max(5.0, deadline - time.monotonic())
            state = self.run(
                ["systemctl", "is-system-running", "--wait"], timeout=remaining, check=False
            )
            # "offline": nsenter joined the mount namespace before the container's init had
            # switched to its root (the leader is pid 1 of the new pid namespace from the start),
            # so systemctl saw the host's /run without systemd. Seen on a loaded machine.
            early = "Failed to connect to bus" in state.stderr or state.stdout.strip() == "offline"
            if not early or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert state.stdout.strip() in ("running", "degraded"), (
            f"{state.stdout}{state.stderr}\n"
            f"{self.run(['systemctl', '--failed', '--no-pager'], check=False).stdout}"
        )

    def _find_leader(self) -> int | None:
        assert self.proc is not None
        # The container's init is a child of nspawn, in a pid namespace of its own.
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return None
        mine = os.readlink("/proc/self/ns/pid")
        for pid in children.split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                if os.readlink(f"/proc/{pid}/ns/pid") == mine:
                    continue
            except OSError:
                continue
            nspid = [ln for ln in status.splitlines() if ln.startswith("NSpid:")]
            if nspid and nspid[0].split()[-1] == "1":
                return int(pid)
        return None

    def stop(self, timeout: float = 30) -> None:
        """Power off (bounded), then remove every trace of what this object made (nothing of
        another run's). Safe to call on any path, twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn asks the container to power off
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                if self.leader is not None:
                    try:
                        os.kill(self.leader, signal.SIGKILL)  # takes its pid namespace with it
                    except ProcessLookupError:
                        pass
                self.proc.kill()
                self.proc.wait(timeout=30)
        if "cgroup" in self._created:
            for cg in self.cgroups:
                _remove_cgroup(cg)
        if "net" in self._created:
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=30)
            subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=30)
        if self.proc is not None:
            shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.name}", ignore_errors=True)
        if "root" in self._created and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
        self._created.clear()
        if self._slot_fd >= 0:
            os.close(self._slot_fd)  # the slot is free again
            self._slot_fd = -1

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # -- inside -----------------------------------------------------------------------------------
    def run(
        self, argv: list[str], timeout: float = 60, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside (all the container's namespaces, a clean environment)."""
        assert self.leader is not None
        full = [
            "nsenter",
            "-t",
            str(self.leader),
            "-a",
            "--",
            "env",
            "-i",
            f"PATH={PATH}",
            "LANG=C.UTF-8",
            "SYSTEMD_PAGER=",
            "SYSTEMD_COLORS=0",
            *argv,
        ]
        proc = subprocess.run(
            full,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check:
            assert proc.returncode == 0, (
                f"{argv} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    def sh(
        self, script: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run(["sh", "-c", script], timeout=timeout, check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run(["systemctl", "show", unit, "-p", ",".join(props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def put(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write a file into the container's root (from the host side)."""
        dest = self.root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data.encode() if isinstance(data, str) else data)
        dest.chmod(mode)
