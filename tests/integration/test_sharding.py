"""N replicas over one config poll every org exactly once between them, or `copies` times."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TypeVar

import aiohttp

from collector.config import Shard
from collector.petra_simulator import SimulatedOrg, Simulator, sim_key, start_simulator
from tests.integration.harness import (
    Running,
    parse_metrics,
    running_daemon,
    value,
    write_config,
)
from tests.integration.test_cli import COMMAND
from tests.processes import free_port

T = TypeVar("T")

ORGS = [SimulatedOrg(f"org-{i:02d}", sim_key(f"org-{i:02d}"), tenant_count=1) for i in range(12)]
SHARDS = 3


async def test_three_shards_cover_each_org_exactly_once(tmp_path: Path) -> None:
    """Each org is polled by one shard only; each shard reports what it owns."""
    sim = Simulator(ORGS)
    async with AsyncExitStack() as stack:
        runs: list[Running] = []
        for index in range(SHARDS):
            directory = tmp_path / f"shard{index}"
            directory.mkdir()
            runs.append(
                await stack.enter_async_context(
                    running_daemon(directory, ORGS, simulator=sim, shard=Shard(index, SHARDS))
                )
            )
        owners: dict[str, list[int]] = {org.name: [] for org in ORGS}
        for index, run in enumerate(runs):
            owned = [state.name for state in run.daemon.org_states()]
            samples = await run.metrics()
            assert value(samples, "petra_collector_orgs") == len(owned)
            for name in owned:
                owners[name].append(index)
                await run.wait_metric("petra_up", 1, org=name)
            status = (await run.get("/api/v1/status"))[1]
            assert f'"shard": "{index}/{SHARDS}"' in status
        assert all(len(shards) == 1 for shards in owners.values()), owners
        assert all(owners[name] for name in owners)
        assert all(sim.request_count(org.name) >= 1 for org in ORGS)
        assert len({shards[0] for shards in owners.values()}) == SHARDS  # none is idle


COPIES_CONFIG = "sharding:\n  copies: 2\n"
# Two pollers of each org at the tests' 1 s interval would exceed the simulated 10 a
# minute per key, and a 429's wait would outlast the test: these keys are never limited.
UNLIMITED_ORGS = [
    SimulatedOrg(org.name, org.key, tenant_count=1, requests_per_minute=1_000_000) for org in ORGS
]


async def _owned_and_up(http: aiohttp.ClientSession, port: int) -> set[str] | None:
    """The orgs a daemon polls, once each of them has had a successful poll (else None)."""
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        samples = parse_metrics(await response.text())
    up = {dict(labels)["org"]: v for (name, labels), v in samples.items() if name == "petra_up"}
    if len(up) != value(samples, "petra_collector_orgs") or not all(up.values()):
        return None
    return set(up)


async def _wait_until(
    check: Callable[[], Awaitable[T | None]], what: str, within: float = 20.0
) -> T:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            found = await check()
            if found is not None:
                return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_three_shards_with_two_copies_poll_each_org_twice_and_survive_a_loss(
    tmp_path: Path,
) -> None:
    """Three `run --shard I/3` processes with sharding.copies 2: every org is polled by exactly
    the two shards `check --shard I/3` names; after one is killed, every org is still polled."""
    sim = Simulator(UNLIMITED_ORGS)
    runner, sim_port = await start_simulator(sim, "127.0.0.1", 0)
    keys = {org.name: org.key for org in ORGS}
    config = write_config(tmp_path, f"http://127.0.0.1:{sim_port}", keys, extra=COPIES_CONFIG)
    ports = [free_port() for _ in range(SHARDS)]
    processes = [
        await asyncio.create_subprocess_exec(
            *COMMAND,
            "run",
            "--config",
            str(config),
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--shard",
            f"{index}/{SHARDS}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for index, port in enumerate(ports)
    ]
    try:
        async with aiohttp.ClientSession() as http:
            owned: list[set[str]] = []
            for index, port in enumerate(ports):

                async def up(port: int = port) -> set[str] | None:
                    return await _owned_and_up(http, port)

                owned.append(await _wait_until(up, f"shard {index}/{SHARDS} polling"))
            for index in range(SHARDS):
                listed = await asyncio.to_thread(_check_rows, config, f"{index}/{SHARDS}")
                for name, here, shards in listed:
                    holders = {shard for shard in range(SHARDS) if name in owned[shard]}
                    assert len(holders) == 2, (name, holders)
                    assert set(shards) == holders, (name, shards, holders)
                    assert here == (index in holders)

            processes[0].kill()
            await processes[0].wait()
            counts = {org.name: sim.request_count(org.name) for org in ORGS}

            async def all_polled_again() -> bool | None:
                again = all(sim.request_count(name) > count for name, count in counts.items())
                return True if again else None

            await _wait_until(all_polled_again, "every org polled after shard 0 died")
            survivors = owned[1] | owned[2]
            assert survivors == {org.name for org in ORGS}
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
                await process.wait()
        await runner.cleanup()


def _check_rows(config: Path, shard: str) -> list[tuple[str, bool, tuple[int, ...]]]:
    """`check --shard` as a script reads it: (org, polled here, the shards that poll it)."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and module, no shell
        [*COMMAND, "check", "--config", str(config), "--shard", shard, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [
        (org["org"], org["in_this_shard"], tuple(org["shards"]))
        for org in json.loads(result.stdout)["orgs"]
    ]
