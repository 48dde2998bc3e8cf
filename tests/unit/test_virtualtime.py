"""The virtual-time loop the scheduler's tests run on keeps its promises."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.virtualtime import DeadlockError, run_virtual


def test_an_hour_of_timers_passes_at_once_and_in_order() -> None:
    """Sleeps end at exactly their virtual moments, in order, without real waiting."""

    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        woke: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await asyncio.sleep(seconds)
            woke.append((name, loop.time()))

        async with asyncio.TaskGroup() as group:
            group.create_task(sleeper("hour", 3600.0))
            group.create_task(sleeper("minute", 60.0))
            await asyncio.wait_for(asyncio.sleep(10.0), timeout=20.0)
        return woke

    real_start = time.monotonic()
    assert run_virtual(main()) == [("minute", 60.0), ("hour", 3600.0)]
    assert time.monotonic() - real_start < 10.0  # an hour of timers, run without waiting


def test_waiting_for_nothing_raises_instead_of_hanging() -> None:
    """A task that waits for an event nobody will set raises DeadlockError, not hangs."""

    async def main() -> None:
        await asyncio.Event().wait()

    with pytest.raises(DeadlockError):
        run_virtual(main())
