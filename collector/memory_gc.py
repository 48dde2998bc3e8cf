"""Long-lived objects kept out of the cyclic garbage collector's full collections.

A full collection walks every container object the process holds, with the
event loop stopped: at 20,000 orgs x 10 tenants about a million of them (org
states, reports, tenant tuples, the `/metrics` cache), 0.4-1.4 s on a busy
2-core machine. CPython starts one whenever the objects that survived since the
last one reach a quarter of those that had survived before it, so they recur
exactly while the fleet's state grows: the first polling round and the first
render of `/metrics`.

`settle()` collects the young generations, then freezes every object left
(`gc.freeze`): later collections never walk them again, so a full collection
only walks what was made since. Frozen objects are still freed by reference
counting when the last reference goes; only garbage that is a reference cycle
among frozen objects stays. A successful poll leaves no cycle (none found after
1,000 polls against the simulator), and young cycles are collected just before
freezing, so what can stay is at most the cycles of the few failing requests
that are in flight at that moment. The daemon settles every
`SETTLE_EVERY_SECONDS`, before a `/metrics` render and between its slices
(exposition.py).

Why that often: CPython starts a young collection on allocations less frees, and
polling frees about as much as it makes (each report replaces the last), so what
it keeps piles up in the youngest generation untouched until something collects:
ten seconds of polls at 20,000 orgs is over 30,000 objects, 10-25 ms to walk
with the loop stopped. Every 2 s it is a few milliseconds, and the render that
starts with a settle walks only what was made since.

A cycle that outlived two young collections and died later (a pooled
connection closed after its keep-alive, say) would be frozen for good, and a
daemon that runs for months must not keep such garbage: once every
`RECLAIM_EVERY_SECONDS` everything is unfrozen and collected in full. That one
collection stalls the loop as long as a full collection does (up to about a
second at 20,000 orgs), once an hour instead of whenever CPython would.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Final

from collector import memory_trim

SETTLE_EVERY_SECONDS: Final = 2.0
RECLAIM_EVERY_SECONDS: Final = 3600.0


def settle() -> None:
    """Collect the young generations, then freeze everything that is left."""
    gc.collect(1)
    gc.freeze()


def reclaim() -> None:
    """Unfreeze and collect everything: frees the cycles that died while frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def keep_settled(
    every: float = SETTLE_EVERY_SECONDS, reclaim_every: float = RECLAIM_EVERY_SECONDS
) -> None:
    """`settle()` every `every` seconds and `reclaim()` every `reclaim_every`, each
    followed by `memory_trim.trim()`, for as long as the task runs."""
    loop = asyncio.get_running_loop()
    next_reclaim = loop.time() + reclaim_every
    while True:
        await asyncio.sleep(every)
        if loop.time() >= next_reclaim:
            next_reclaim = loop.time() + reclaim_every
            reclaim()
        else:
            settle()
        memory_trim.trim()  # what polling freed since, back to the system
