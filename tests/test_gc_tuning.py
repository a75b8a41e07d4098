# The collector tuning the runner applies once start-up is over (gateway.server.runner): what
# start-up allocated moves to the permanent generation and the young threshold is raised, so a
# server with tens of requests in flight is not collecting every few requests.
from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway.server.runner import GC_YOUNG_THRESHOLD, tune_collector


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_tune_collector_freezes_start_up_and_raises_the_young_threshold() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    live = object()  # noqa: F841  (a start-up object: it must end up frozen)
    tune_collector()
    assert gc.get_freeze_count() > 1000  # the modules, the tests' objects: all of start-up
    young, middle, full = gc.get_threshold()
    assert young == GC_YOUNG_THRESHOLD > 700  # CPython's default
    assert (middle, full) == (10, 10)  # the older generations keep CPython's defaults


@pytest.mark.usefixtures("restore_gc")
def test_objects_made_after_start_up_are_still_collected() -> None:
    tune_collector()

    class Node:
        other: object

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    ref = weakref.ref(a)
    del a, b
    gc.collect()
    assert ref() is None
