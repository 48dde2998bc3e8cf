"""petra_collector_asyncio_tasks: the loop's tasks, counted in the background."""

from __future__ import annotations

import asyncio

from collector.app import _TaskCount


def test_the_last_background_count_is_what_a_scrape_reads() -> None:
    async def run() -> list[float]:
        count = _TaskCount()
        seen = [count()]  # no count yet: counted when read (this task alone)
        counting = asyncio.create_task(count.keep_counting(every=3600))
        await asyncio.sleep(0)  # counted: this task and the counting one
        extra = [asyncio.create_task(asyncio.sleep(1)) for _ in range(3)]
        seen.append(count())  # not counted again until the next round
        for task in [*extra, counting]:
            task.cancel()
        await asyncio.gather(*extra, counting, return_exceptions=True)
        return seen

    assert asyncio.run(run()) == [1.0, 2.0]


def test_outside_a_loop_nothing_is_counted() -> None:
    assert _TaskCount()() == 0.0
