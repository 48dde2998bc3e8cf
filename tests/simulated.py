"""The simulated Petra API served on 127.0.0.1 for a test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from collector.petra_simulator import Simulator, start_simulator


@contextlib.asynccontextmanager
async def running_simulator(simulator: Simulator) -> AsyncIterator[str]:
    """`simulator` on a free 127.0.0.1 port; yields its base URL, and stops it on the way out."""
    runner, port = await start_simulator(simulator, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
