"""petra_collector_asyncio_tasks: the loop's tasks, counted in the background."""

from __future__ import annotations

import asyncio

from collector.app import _TaskCount


def test_the_gauge_follows_the_tasks_by_background_counts() -> None:
    """A scrape reads the last count (no walk over every task); the next count sees
    tasks that came since, as a leak would show."""

    async def run() -> list[float]:
        count = _TaskCount()
        seen = [count()]  # no count yet: counted when read (this task alone)
        counting = asyncio.create_task(count.keep_counting(every=0.05))
        await asyncio.sleep(0)  # counted: this task and the counting one
        extra = [asyncio.create_task(asyncio.sleep(5)) for _ in range(3)]
        seen.append(count())  # not counted again yet
        await asyncio.sleep(0.1)  # the next round
        seen.append(count())
        for task in [*extra, counting]:
            task.cancel()
        await asyncio.gather(*extra, counting, return_exceptions=True)
        return seen

    assert asyncio.run(run()) == [1.0, 2.0, 5.0]


def test_outside_a_loop_nothing_is_counted() -> None:
    assert _TaskCount()() == 0.0
