"""N replicas over one config poll every org exactly once between them."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

from collector.config import Shard
from collector.petra_simulator import SimulatedOrg, Simulator, sim_key
from tests.integration.harness import Running, running_daemon, value

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
