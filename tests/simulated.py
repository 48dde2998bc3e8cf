"""The simulated Petra API served on 127.0.0.1 for a test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

import aiohttp

from collector.petra_simulator import SimulatedOrg, Simulator, start_simulator

# The `serve` fixture (tests/unit/conftest.py): serves a simulator until the test ends,
# and gives a session whose base URL is the simulator's.
Serve = Callable[[Simulator], Awaitable[aiohttp.ClientSession]]


@contextlib.asynccontextmanager
async def running_simulator(simulator: Simulator) -> AsyncIterator[str]:
    """`simulator` on a free 127.0.0.1 port; yields its base URL, and stops it on the way out."""
    runner, port = await start_simulator(simulator, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def key_file_orgs(directory: Path, orgs: Iterable[SimulatedOrg]) -> list[dict[str, str]]:
    """Each org's key in a file of its own under `directory/keys`, readable by its owner
    only (else the daemon warns); the config's `orgs` entries that name them."""
    keys = directory / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    entries = []
    for org in orgs:
        (keys / org.name).write_text(org.key + "\n")
        (keys / org.name).chmod(0o600)
        entries.append({"name": org.name, "api_key_file": str(keys / org.name)})
    return entries
