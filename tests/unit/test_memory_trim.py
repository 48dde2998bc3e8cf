"""memory_trim: pages freed between live objects go back to the system."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from collector import memory_trim


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not memory_trim.AVAILABLE, reason="not glibc: nothing to trim")
def test_trim_gives_back_what_a_render_like_burst_freed() -> None:
    """Like a first render: 200 MB made in 2 KB pieces, a few of them kept, the rest
    dropped. Without the trim the freed pages stay in RSS (the kept pieces pin the
    heap's top); with it most of them go."""
    gc.collect()
    memory_trim.trim()
    before = rss_mb()
    pieces = [bytes(2048) + bytes([i % 251]) for i in range(100_000)]
    kept = pieces[::500]  # live objects scattered through the heap
    del pieces
    grown = rss_mb()
    assert grown - before > 100, "the burst did not stay in the heap: nothing to test"
    assert memory_trim.trim()
    assert rss_mb() - before < (grown - before) / 4
    assert len(kept) == 200
