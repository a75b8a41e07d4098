# TOML text to a document without keeping the parser in the process that asks. tomllib imports
# datetime, and once imported a module stays: the two held 0.22-0.28 MiB of the server's RSS
# (datetime's C module, tomllib's compiled patterns) for the life of a server that reads TOML
# once at start and nothing of which imports either again (docs/BENCHMARKS.md, "A profile
# read in a child"). Owns: parse(), which forks a child that parses and sends the
# document back with marshal, where that is safe and exact, and parses here otherwise.
# Must not: change what a text parses to or how an error reads (tests/test_tomlfile.py holds
# the child's answers equal to tomllib's), or import trio or any other gateway module.
#
# Safe: the child is forked only from a process with one thread (fork copies the caller's
# thread alone, so a lock another thread held would stay held in the child), runs nothing but
# the parse, and leaves with os._exit (no atexit handler, no buffered output of the parent's
# flushed twice). Exact: marshal carries dicts (in order), lists, str, int, float (NaN and -0.0
# included) and bool as they are; TOML's date and time values it cannot carry, and then, as
# when the fork or the child fails, the text is parsed here, with tomllib's own outcome.
from __future__ import annotations

import contextlib
import marshal
import os
import select
import signal
import sys
import time
from typing import Any

__all__ = ["TOMLError", "parse"]

# A child that has not answered by then is killed and the text parsed here (it takes
# milliseconds: a child that does not answer is stopped or starved, not busy).
_CHILD_TIMEOUT_S = 30.0


class TOMLError(ValueError):
    """The text is not TOML. The message is tomllib's (what, at which line and column), or
    _TOO_DEEP."""


# tomllib reads nested arrays and inline tables by recursion, with no limit of its own: a
# document nested past Python's recursion limit (a few thousand "[") raised RecursionError.
_TOO_DEEP = "arrays or inline tables nested too deeply"


def parse(text: str) -> dict[str, Any]:
    """``tomllib.loads(text)``, parsed in a forked child where that is safe.

    Raises:
        TOMLError: the text is not TOML.
    """
    if "tomllib" not in sys.modules and _single_threaded():
        answer = parse_in_child(text)
        if answer is not None:
            ok, value = answer
            if ok:
                return value  # type: ignore[no-any-return]
            raise TOMLError(value)
    return parse_here(text)


def parse_here(text: str) -> dict[str, Any]:
    """``tomllib.loads(text)`` in this process (tomllib and datetime stay loaded).

    Raises:
        TOMLError: the text is not TOML.
    """
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TOMLError(str(exc)) from None
    except RecursionError:
        raise TOMLError(_TOO_DEEP) from None


def _single_threaded() -> bool:
    """Whether this process runs one thread (Linux's count: threads started outside the
    threading module count too). False where it cannot be read."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def parse_in_child(text: str) -> tuple[bool, Any] | None:
    """``(True, document)`` or ``(False, tomllib's error message)``, from a forked child.

    None where the child could not answer: a date or time value (marshal cannot carry it), a
    document marshal cannot nest as deeply as tomllib did, no fork (a task limit), a child
    killed or silent for _CHILD_TIMEOUT_S. The caller then parses
    here, with the outcome it would always have had. Call it from one thread only (parse
    checks).
    """
    try:
        r, w = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # pragma: no cover (the child: coverage does not see it leave by os._exit)
        status = 1
        try:
            os.close(r)
            import tomllib

            try:
                answer = marshal.dumps((True, tomllib.loads(text)))
            except tomllib.TOMLDecodeError as exc:
                answer = marshal.dumps((False, str(exc)))
            except RecursionError:
                answer = marshal.dumps((False, _TOO_DEEP))
            view = memoryview(answer)
            while view:
                view = view[os.write(w, view) :]
            status = 0
        finally:
            os._exit(status)
    os.close(w)
    chunks: list[bytes] = []
    complete = False
    try:
        poller = select.poll()
        poller.register(r, select.POLLIN)
        deadline = time.monotonic() + _CHILD_TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            if poller.poll(left * 1000):
                chunk = os.read(r, 65536)
                if not chunk:
                    complete = True
                    break
                chunks.append(chunk)
    finally:
        os.close(r)
        if not complete:  # silent, or we were interrupted: the child must not outlive this
            with contextlib.suppress(ProcessLookupError):  # (gone, and reaped by the kernel)
                os.kill(pid, signal.SIGKILL)
        exited = _reap(pid)
    if not (complete and exited):
        return None
    try:
        answer = marshal.loads(b"".join(chunks))
    except (EOFError, ValueError, TypeError):  # pragma: no cover (exit 0: it wrote it whole)
        return None
    return answer  # type: ignore[no-any-return]


def _reap(pid: int) -> bool:
    """Wait for the child; whether it exited with status 0 (also true where SIGCHLD is ignored
    and the kernel reaped it: its answer is then checked by marshal alone)."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return True
    return os.waitstatus_to_exitcode(status) == 0
