"""memory_gc: what lives on is frozen out of full collections; young cycles are not."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from collector import memory_gc


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test process collects as usual


def test_settle_freezes_what_lives_and_collects_young_cycles_first() -> None:
    living = _Node()
    garbage = _Node()
    garbage.other = _Node()
    garbage.other.other = garbage  # a cycle, unreachable once `garbage` goes
    gone = weakref.ref(garbage)
    del garbage
    frozen_before = gc.get_freeze_count()
    memory_gc.settle()
    assert gone() is None  # collected, not frozen where it would stay for good
    assert gc.get_freeze_count() > frozen_before
    assert living not in gc.get_objects()  # frozen: full collections never walk it


async def test_keep_settled_settles_again_and_again() -> None:
    task = asyncio.create_task(memory_gc.keep_settled(every=0.001))
    gc.unfreeze()
    for _ in range(2):
        await asyncio.sleep(0.01)
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
    task.cancel()


def test_reclaim_frees_a_cycle_that_died_while_frozen() -> None:
    """Without it, garbage that was alive at a settle would stay for the daemon's life."""
    cycle = _Node()
    cycle.other = _Node()
    cycle.other.other = cycle
    gone = weakref.ref(cycle)
    memory_gc.settle()  # frozen while alive
    del cycle
    memory_gc.settle()
    assert gone() is not None  # a settle never frees it
    memory_gc.reclaim()
    assert gone() is None


async def test_keep_settled_reclaims_on_its_own_pace() -> None:
    """The periodic task reclaims too, not only settles."""
    cycle = _Node()
    cycle.other = _Node()
    cycle.other.other = cycle
    gone = weakref.ref(cycle)
    memory_gc.settle()
    del cycle
    task = asyncio.create_task(memory_gc.keep_settled(every=0.001, reclaim_every=0.005))
    for _ in range(100):
        await asyncio.sleep(0.002)
        if gone() is None:
            break
    task.cancel()
    assert gone() is None
