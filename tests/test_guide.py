# docs/GUIDE.md cannot rot: every code block in it is run here. A block after
# `<!-- file: NAME -->` is written out as that file; a `console` block runs its `$` commands in
# one bash, in a scratch directory holding those files, and each command's output must match the
# lines printed under it (`<...>` matches any text). `gateway serve` commands run in the
# background until the block ends, on a free loopback port that replaces 8080. A block after
# `<!-- not run: ... -->` must name the test files that cover it, and they must exist.
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "GUIDE.md"
VENV_BIN = Path(sys.executable).parent
_MARK = re.compile(r"<!-- (file|not run): (.+?) -->")
_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    line: int
    lang: str
    text: str
    mark: tuple[str, str] | None


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)


def blocks(text: str) -> list[Block]:
    out: list[Block] = []
    lines = text.splitlines()
    mark: tuple[str, str] | None = None
    i = 0
    while i < len(lines):
        m = _MARK.fullmatch(lines[i].strip())
        if m:
            mark = (m.group(1), m.group(2))
        f = _FENCE.match(lines[i])
        if f and f.group(1):
            start = i
            i += 1
            body: list[str] = []
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append(Block(start + 1, f.group(1), "\n".join(body) + "\n", mark))
            mark = None
        i += 1
    return out


def commands(block: Block) -> list[Command]:
    cmds: list[Command] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            cmds.append(Command(line[2:]))
        else:
            assert cmds, f"GUIDE.md:{block.line}: output before any command"
            cmds[-1].expected.append(line.rstrip())
    return cmds


def matches(expected: list[str], got: list[str]) -> bool:
    if len(expected) != len(got):
        return False
    for want, line in zip(expected, got, strict=True):
        pattern = ".*".join(re.escape(part) for part in want.split("<...>"))
        if not re.fullmatch(pattern, line):
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def script(cmds: list[Command], port: int) -> str:
    """One bash script for a console block: markers between commands, servers in the
    background (waited for, bounded) and killed at the end."""
    out = [
        "set -u",
        "pids=()",
        'cleanup() { for p in "${pids[@]}"; do kill $p 2>/dev/null; done; wait 2>/dev/null; }',
        "trap cleanup EXIT",
    ]
    for n, cmd in enumerate(cmds):
        line = cmd.line.replace(".venv/bin/", f"{VENV_BIN}/").replace("8080", str(port))
        out.append(f"printf '\\n@@CMD {n}\\n'")
        if " serve " in f" {line} " and "gateway serve" in line:
            out.append(f"{line} >serve-{n}.log 2>&1 & pids+=($!)")
            out.append(
                f"for i in $(seq 200); do curl -sf -o /dev/null "
                f"http://127.0.0.1:{port}/_gateway/health && break; sleep 0.05; done"
            )
        else:
            out.append(f"{line} 2>&1")
    return "\n".join(out) + "\n"


def test_every_block_of_the_guide_runs_and_prints_what_it_says(tmp_path: Path) -> None:
    found = blocks(GUIDE.read_text())
    assert len(found) >= 15
    files: list[Path] = []
    consoles: list[Block] = []
    for block in found:
        where = f"GUIDE.md:{block.line}"
        if block.mark and block.mark[0] == "not run":
            named = re.findall(r"tests/(test_\w+\.py)", block.mark[1])
            assert named, f"{where}: a block not run must name the tests that cover it"
            for name in named:
                assert (ROOT / "tests" / name).is_file(), f"{where}: tests/{name} is missing"
        elif block.mark and block.mark[0] == "file":
            path = tmp_path / block.mark[1]
            path.write_text(block.text)
            files.append(path)
        elif block.lang == "console":
            consoles.append(block)
        else:
            pytest.fail(
                f"{where}: a {block.lang} block that is neither a file, a console "
                "session nor marked 'not run'"
            )
    for path in files:  # every Python file at least compiles, even one no command uses
        if path.suffix == ".py":
            compile(path.read_text(), str(path), "exec")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["PYTHONPATH"] = str(ROOT)
    for block in consoles:
        cmds = commands(block)
        port = free_port()
        env["GATEWAY_SERVER_PORT"] = str(port)
        proc = subprocess.run(
            ["bash", "-c", script(cmds, port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        parts = proc.stdout.split("\n@@CMD ")[1:]
        assert len(parts) == len(cmds), (block.line, proc.stdout, proc.stderr)
        for cmd, part in zip(cmds, parts, strict=True):
            got = part.split("\n")[1:]
            while got and not got[-1]:
                got.pop()
            if not matches(cmd.expected, got):
                logs = "".join(
                    f"\n--- {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("serve-*.log"))
                )
                pytest.fail(
                    f"GUIDE.md:{block.line}: $ {cmd.line}\nexpected:\n"
                    + "\n".join(cmd.expected)
                    + "\ngot:\n"
                    + "\n".join(got)
                    + logs
                )


def test_the_readme_links_the_guide_at_its_top() -> None:
    head = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    assert "docs/GUIDE.md" in head
