# gateway.body.budget at its edges, where an off-by-one or a lost count would go unnoticed by the
# end-to-end tests: exactly-full reservations and pledges, counts that add up over several
# refusals, the figures /_gateway/stats shows while bytes are held and pledged, and the
# allocator calls (a fake ctypes library at the seam; test_allocator.py checks the real effect
# in a child process). Written against the surviving mutants listed in docs/TESTING.md.
from __future__ import annotations

import ctypes
import logging
from typing import Any

import pytest

from gateway.body.budget import MemoryBudget, release_free_memory, tune_allocator
from gateway.errors import BudgetExceeded


def test_a_new_budget_is_all_free() -> None:
    assert MemoryBudget(100).statistics() == {
        "total_bytes": 100,
        "used_bytes": 0,
        "pledged_bytes": 0,
        "free_bytes": 100,
        "over_bytes": 0,
        "peak_bytes": 0,
        "rejections": 0,
    }


def test_reserving_exactly_what_is_free_succeeds() -> None:
    b = MemoryBudget(100)
    b.pledge(30)
    b.reserve(70)  # used + pledged == total: allowed
    assert (b.used, b.pledged, b.free) == (70, 30, 0)
    with pytest.raises(BudgetExceeded):
        b.reserve(1)


def test_pledging_exactly_what_is_free_succeeds() -> None:
    b = MemoryBudget(100)
    b.reserve(40)
    b.pledge(60)
    assert (b.used, b.pledged, b.free) == (40, 60, 0)
    with pytest.raises(BudgetExceeded):
        b.pledge(1)


def test_pledges_add_up() -> None:
    b = MemoryBudget(100)
    b.pledge(30)
    b.pledge(20)
    assert (b.pledged, b.free) == (50, 50)
    b.redeem(30)
    assert (b.used, b.pledged, b.peak) == (30, 20, 30)
    b.unpledge(50)  # more than is left: floored at 0, never negative
    assert b.pledged == 0


def test_every_refusal_is_counted() -> None:
    b = MemoryBudget(10)
    for _ in range(2):
        with pytest.raises(BudgetExceeded):
            b.pledge(11)
    assert b.rejections == 2
    for _ in range(2):
        with pytest.raises(BudgetExceeded):
            b.reserve(11)
    assert b.rejections == 4
    exc = b.reject()
    assert isinstance(exc, BudgetExceeded) and exc.status == 503
    b.reject()
    assert b.rejections == 6


def test_statistics_while_bytes_are_held_and_pledged() -> None:
    b = MemoryBudget(1000)
    b.reserve(300)
    b.pledge(200)
    b.release(100)
    assert b.statistics() == {
        "total_bytes": 1000,
        "used_bytes": 200,
        "pledged_bytes": 200,
        "free_bytes": 600,
        "over_bytes": 0,
        "peak_bytes": 300,
        "rejections": 0,
    }


def test_releasing_exactly_what_is_held_is_not_an_error(caplog: Any) -> None:
    b = MemoryBudget(100)
    b.reserve(60)
    with caplog.at_level(logging.ERROR, logger="gateway.body"):
        b.release(60)
    assert b.used == 0 and caplog.records == []


def test_releasing_more_than_is_held_is_logged_exactly(caplog: Any) -> None:
    b = MemoryBudget(100)
    b.reserve(3)
    with caplog.at_level(logging.ERROR, logger="gateway.body"):
        b.release(5)
    assert b.used == 0
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "memory budget: released 5 bytes with only 3 in use"


# -- the allocator calls, at the ctypes seam ------------------------------------------------------
class FakeLibc:
    def __init__(self, result: int, *, has: tuple[str, ...] = ("mallopt", "malloc_trim")) -> None:
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self.result = result
        self.has = has

    def __getattr__(self, name: str) -> Any:
        if name not in self.has:
            raise AttributeError(name)

        def call(*args: int) -> int:
            self.calls.append((name, args))
            return self.result

        return call


@pytest.fixture
def libc(monkeypatch: pytest.MonkeyPatch) -> list[FakeLibc]:
    """ctypes.CDLL(None) returns the next FakeLibc of the list the test fills."""
    fakes: list[FakeLibc] = []

    def cdll(name: Any, *args: Any, **kwargs: Any) -> FakeLibc:
        assert name is None  # the process's own C library, not a named one
        return fakes.pop(0)

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    return fakes


@pytest.mark.parametrize(("result", "expected"), [(1, True), (0, False)])
def test_tune_allocator_pins_the_mmap_threshold(
    libc: list[FakeLibc], result: int, expected: bool
) -> None:
    fake = FakeLibc(result)
    libc.append(fake)
    assert tune_allocator() is expected
    assert fake.calls == [("mallopt", (-3, 128 * 1024))]  # M_MMAP_THRESHOLD from <malloc.h>
    fake.calls.clear()
    libc.append(fake)
    assert tune_allocator(4096) is expected
    assert fake.calls == [("mallopt", (-3, 4096))]


def test_tune_allocator_leaves_the_operator_setting(
    libc: list[FakeLibc], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    fake = FakeLibc(1)
    libc.append(fake)
    assert tune_allocator() is False
    assert fake.calls == []


def test_without_glibc_the_allocator_calls_do_nothing(
    libc: list[FakeLibc], monkeypatch: pytest.MonkeyPatch
) -> None:
    libc.extend([FakeLibc(1, has=()), FakeLibc(1, has=())])  # musl: no mallopt, no malloc_trim
    assert tune_allocator() is False
    assert release_free_memory() is False

    def no_library(name: Any, *args: Any, **kwargs: Any) -> Any:
        raise OSError("no C library")

    monkeypatch.setattr(ctypes, "CDLL", no_library)
    assert tune_allocator() is False
    assert release_free_memory() is False


@pytest.mark.parametrize(("result", "expected"), [(1, True), (0, False)])
def test_release_free_memory_trims_the_whole_heap(
    libc: list[FakeLibc], result: int, expected: bool
) -> None:
    fake = FakeLibc(result)
    libc.append(fake)
    assert release_free_memory() is expected
    assert fake.calls == [("malloc_trim", (0,))]  # 0: keep no padding at the top


# -- resize (a profile reload) at its edges -------------------------------------------------------
def test_resize_to_zero_is_allowed_and_refuses_every_charge() -> None:
    b = MemoryBudget(100)
    b.resize(0)  # a zero budget is a valid (if strict) profile: only a negative one is a bug
    assert (b.total, b.free) == (0, 0)
    with pytest.raises(BudgetExceeded):
        b.reserve(1)
    b.reserve(0)


def test_resize_to_a_negative_total_names_it() -> None:
    b = MemoryBudget(100)
    with pytest.raises(ValueError, match=r"^a memory budget cannot be negative: -1$"):
        b.resize(-1)
    assert b.total == 100  # refused before anything changed


def test_resize_to_exactly_what_is_held_is_not_logged(caplog: Any) -> None:
    b = MemoryBudget(100)
    b.reserve(50)
    b.pledge(10)
    with caplog.at_level(logging.WARNING, logger="gateway.body"):
        b.resize(60)  # held == total: full, but not over it
    assert caplog.records == [] and b.free == 0


def test_resize_below_what_is_held_is_logged_exactly(caplog: Any) -> None:
    b = MemoryBudget(100)
    b.reserve(50)
    b.pledge(40)
    with caplog.at_level(logging.WARNING, logger="gateway.body"):
        b.resize(60)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "memory budget resized to 60 bytes with 90 held: new bodies are "
        "refused until 30 bytes are released"
    )
