"""gcfreeze: what lives on is frozen out of full collections; young cycles are not."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from collector import gcfreeze


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
    gcfreeze.settle()
    assert gone() is None  # collected, not frozen where it would stay for good
    assert gc.get_freeze_count() > frozen_before
    assert living not in gc.get_objects()  # frozen: full collections never walk it


async def test_keep_settled_settles_again_and_again() -> None:
    task = asyncio.create_task(gcfreeze.keep_settled(every=0.001))
    gc.unfreeze()
    for _ in range(2):
        await asyncio.sleep(0.01)
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
    task.cancel()
