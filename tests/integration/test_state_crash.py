"""SIGKILL in the middle of state writes, many times: the next start always reads a whole file."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from collector.petra_simulator import SimulatedOrg, Simulator, sim_key, start_simulator
from collector.state_journal import TEMP_SUFFIX
from collector.state_store import read_saved_state
from tests.integration.harness import write_config
from tests.integration.test_cli import spawn_daemon
from tests.outcomes import saved_report
from tests.processes import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.slow

ROUNDS = 8  # half aimed at a write in progress; more rounds add time, not confidence
ORGS = 60
TENANTS = 60  # about 1 MB a write


async def wait_ready(port: int, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http:

        async def ready() -> bool:
            assert process.returncode is None, "the daemon exited"
            async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                return response.status == 200

        await eventually(ready, "the daemon's /readyz", every=0.02, ignore=(aiohttp.ClientError,))


# Spins in a process of its own: this one's GIL is busy with the simulator, and the window
# between creating the temp file and renaming it is a few milliseconds.
_SPINNER = """
import os, signal, sys, time
pid, temp, deadline = int(sys.argv[1]), sys.argv[2], time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline and not os.path.exists(temp):
    pass
os.kill(pid, signal.SIGKILL)
"""


async def kill_when_writing(pid: int, temp: Path, within: float) -> None:
    """SIGKILL `pid` the moment a rewrite is under way (its temp file exists), or after
    `within` seconds."""
    spinner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SPINNER, str(pid), str(temp), str(within)
    )
    await spinner.wait()


async def test_sigkill_during_writes_never_leaves_a_torn_state_file(tmp_path: Path) -> None:
    orgs = [
        SimulatedOrg(
            f"org-{i}", sim_key(f"org-{i}"), tenant_count=TENANTS, requests_per_minute=10**6
        )
        for i in range(ORGS)
    ]
    sim = Simulator(orgs, drift=True)  # every poll changes the tenants: every write differs
    runner, sim_port = await start_simulator(sim, "127.0.0.1", 0)
    state_path = tmp_path / "state.json"
    config = write_config(
        tmp_path,
        f"http://127.0.0.1:{sim_port}",
        {o.name: o.key for o in orgs},
        polling={"interval_seconds": 0.5},
        extra=f"state:\n  path: {json.dumps(str(state_path))}\n  write_delay_seconds: 0.01\n",
    )
    temp = state_path.with_name(state_path.name + TEMP_SUFFIX)
    rng = random.Random(11)  # noqa: S311 - kill times, not secrets
    killed_mid_write = 0
    written_before = False
    try:
        for round_number in range(ROUNDS):
            port = free_port()
            process = await spawn_daemon(config, port)
            try:
                if round_number % 2:  # at any time: mostly during or between appends
                    await wait_ready(port, process)
                    await asyncio.sleep(rng.uniform(0.05, 0.35))
                else:  # aimed at the rewrite that is each run's first write
                    await kill_when_writing(process.pid, temp, 5.0)
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGKILL)
                stdout, _stderr = await process.communicate()
            events = [json.loads(line)["event"] for line in stdout.decode().splitlines()]
            assert "state_unreadable" not in events, f"round {round_number}: torn file read"
            if written_before:
                assert "state_restored" in events, f"round {round_number}"
            if temp.exists():
                killed_mid_write += 1
            saved = read_saved_state(state_path)  # raises on a torn file
            if saved is None:
                assert not written_before
                continue
            written_before = True
            assert set(saved.orgs) == {o.name for o in orgs}
            reports = [saved_report(s) for s in saved.orgs.values()]
            polled = [report for report in reports if report is not None]
            assert all(len(report.tenants) == TENANTS for report in polled)
        names = await asyncio.to_thread(lambda: [p.name for p in tmp_path.iterdir()])
        assert not [name for name in names if name.startswith("state.json.corrupt-")]
        # Not luck: some kills did land between the temp file's creation and its rename.
        assert killed_mid_write >= 1, "no kill hit a write; the test proved nothing"
    finally:
        await runner.cleanup()
