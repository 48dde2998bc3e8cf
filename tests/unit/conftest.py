"""Fixtures shared by the unit tests of one part (the others are in tests/conftest.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from collector.petra_simulator import Simulator
from tests.simulated import Serve, running_simulator


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serves simulators on 127.0.0.1 until the test ends; each with a session whose base
    URL points at it."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(sim: Simulator) -> aiohttp.ClientSession:
            url = await stack.enter_async_context(running_simulator(sim))
            return await stack.enter_async_context(aiohttp.ClientSession(url))

        yield start
