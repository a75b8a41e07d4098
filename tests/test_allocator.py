# The allocator settings of gateway.body.budget, checked in a child process (they change the
# process's malloc state): freed heap memory really goes back to the OS.
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc allocator")


def _child(code: str) -> list[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    ).stdout.split()


def test_release_free_memory_returns_freed_heap_pages() -> None:
    # 40 MiB of 2 KiB blocks (heap, under the mmap threshold), all freed but the last one,
    # which pins the heap's top: only a trim hands the pages below it back.
    code = (
        "from gateway.body.budget import release_free_memory\n"
        "def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096\n"
        "blocks = [bytes(2000) + bytes([i % 256]) for i in range(20000)]\n"
        "keep = blocks[-1]\n"
        "del blocks\n"
        "before = rss()\n"
        "print(release_free_memory(), before - rss())\n"
    )
    trimmed, freed = _child(code)
    assert trimmed == "True" and int(freed) > 30 * 2**20, (trimmed, freed)


def test_tune_allocator_leaves_an_operator_setting_alone() -> None:
    code = (
        "import os\nos.environ['MALLOC_MMAP_THRESHOLD_'] = '65536'\n"
        "from gateway.body.budget import tune_allocator\nprint(tune_allocator())"
    )
    assert _child(code) == ["False"]
    assert _child("from gateway.body.budget import tune_allocator\nprint(tune_allocator())") == [
        "True"
    ]
