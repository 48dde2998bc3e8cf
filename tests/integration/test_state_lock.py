"""Two real daemons pointed at one state file: the second does not start, and says why."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

from collector.petra_simulator import SimulatedOrg, Simulator, sim_key, start_simulator
from collector.state_store import read_saved_state
from tests.integration.harness import write_config
from tests.integration.test_cli import spawn_daemon
from tests.integration.test_state_crash import wait_ready
from tests.processes import free_port


async def test_a_second_collector_on_the_same_state_file_exits_2_naming_it(
    tmp_path: Path,
) -> None:
    acme = SimulatedOrg("acme", sim_key("acme"))
    runner, sim_port = await start_simulator(Simulator([acme]), "127.0.0.1", 0)
    state_path = tmp_path / "state.json"
    extra = f"state:\n  path: {json.dumps(str(state_path))}\n  write_delay_seconds: 0.05\n"
    config = write_config(tmp_path, f"http://127.0.0.1:{sim_port}", {"acme": acme.key}, extra=extra)
    try:
        first = await spawn_daemon(config, free_port())
        try:
            await wait_ready_or_fail(first)
            second = await spawn_daemon(config, free_port())
            stdout, _stderr = await asyncio.wait_for(second.communicate(), 30)
            assert second.returncode == 2
            events = [json.loads(line) for line in stdout.decode().splitlines()]
            (failed,) = [event for event in events if event["event"] == "startup_failed"]
            assert "state_restored" not in {event["event"] for event in events}
            assert failed["error"] == (
                f"state.path {state_path} is in use by another petra-collector"
                f" (process {first.pid}): it holds {state_path}.lock. Give each collector"
                " (each replica, each shard) its own state.path, or stop the other one first"
            )
            assert first.returncode is None  # the first one goes on
        finally:
            first.send_signal(signal.SIGTERM)
            await asyncio.wait_for(first.communicate(), 30)
        assert await first.wait() == 0
        assert await asyncio.to_thread(read_saved_state, state_path) is not None
        # The lock goes with the process that held it: the next collector starts.
        third = await spawn_daemon(config, free_port())
        try:
            await wait_ready_or_fail(third)
        finally:
            third.send_signal(signal.SIGKILL)
            await third.communicate()
        # Nor does a SIGKILL leave it behind.
        fourth = await spawn_daemon(config, free_port())
        try:
            await wait_ready_or_fail(fourth)
        finally:
            fourth.send_signal(signal.SIGTERM)
            await asyncio.wait_for(fourth.communicate(), 30)
        assert fourth.returncode == 0
    finally:
        await runner.cleanup()


async def wait_ready_or_fail(process: asyncio.subprocess.Process) -> None:
    port = await asyncio.wait_for(_listening_port(process), 20)
    await wait_ready(port, process)


async def _listening_port(process: asyncio.subprocess.Process) -> int:
    assert process.stdout is not None
    while line := await process.stdout.readline():
        event = json.loads(line)
        if event["event"] == "started":
            return int(event["listen"].rsplit(":", 1)[1])
    raise AssertionError("the daemon exited before it started")
