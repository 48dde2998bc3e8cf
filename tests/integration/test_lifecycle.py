"""Orderly stops, and web clients that cannot stall polling."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import aiohttp

from collector.petra_simulator import HangFault, SimulatedOrg, Simulator, sim_key, start_simulator
from tests.integration.harness import running_daemon, write_config
from tests.integration.test_cli import spawn_daemon
from tests.processes import free_port
from tests.waiting import eventually

ACME = SimulatedOrg("acme", sim_key("acme"), tenant_count=2)


async def test_sigterm_mid_round_stops_within_the_grace_period(tmp_path: Path) -> None:
    """With requests hanging on the wire (for up to 60 s), SIGTERM still exits 0 soon after
    the 1 s grace period. That a request ending within the grace is recorded and the rest
    cancelled at its end is proven on virtual time, in test_scheduler_virtual_time's
    test_stop_lets_requests_on_the_wire_finish_within_the_grace_then_cancels."""
    hanging = [SimulatedOrg(f"hang{i}", sim_key(f"hang{i}")) for i in range(5)]
    sim = Simulator([ACME, *hanging])
    for org in hanging:
        sim.set_fault(org.name, HangFault())
    runner, port = await start_simulator(sim, "127.0.0.1", 0)
    config = write_config(
        tmp_path,
        f"http://127.0.0.1:{port}",
        {o.name: o.key for o in [ACME, *hanging]},
        polling={"shutdown_grace_seconds": 1},
        api={"timeout_seconds": 60},
    )
    process = await spawn_daemon(config, free_port())
    try:

        async def all_hanging() -> bool:
            assert process.returncode is None, "the daemon exited"
            return sum(sim.request_count(o.name) for o in hanging) >= len(hanging)

        await eventually(all_hanging, "a request of every hanging org")
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
        took = time.monotonic() - started
        assert process.returncode == 0, stderr.decode()
        # Far below the 60 s the requests would hang, with room for a busy machine.
        assert took < 1 + 5, f"took {took:.1f} s for a 1 s grace period"
        assert json.loads(stdout.decode().splitlines()[-1])["event"] == "stopped"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await runner.cleanup()


async def test_slow_and_flooding_web_clients_do_not_stall_polling(tmp_path: Path) -> None:
    """Idle half-open connections and a burst of status requests leave polling on schedule."""
    async with running_daemon(tmp_path, [ACME]) as run:
        await run.wait_metric("petra_up", 1, org="acme")
        # Clients that connect, send half a request line and then say nothing.
        stalled = []
        for _ in range(50):
            _reader, writer = await asyncio.open_connection("127.0.0.1", run.daemon.bound_port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            stalled.append(writer)
        before = run.simulator.request_count("acme")
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector) as flood:

            async def status() -> int:
                async with flood.get(run.url + "/api/v1/status") as response:
                    await response.read()
                    return response.status

            started = time.monotonic()
            codes = await asyncio.gather(*(status() for _ in range(300)))
            flood_seconds = time.monotonic() - started
        assert set(codes) == {200}
        await run.wait_for(lambda: _polled_since(run.simulator, before, 2), what="two more polls")
        assert (await run.get("/healthz"))[0] == 200
        for writer in stalled:
            writer.close()
        assert flood_seconds < 30


async def _polled_since(sim: Simulator, before: int, more: int) -> bool:
    return sim.request_count("acme") >= before + more
