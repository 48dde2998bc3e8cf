"""What the state file costs, and how fast a restart serves everything again.

    python -m bench.statefile --orgs 10000 --tenants 10            # in-process, ~1 min
    python -m bench.statefile --orgs 10000 --tenants 10 --restart  # + the real daemon, ~4 min
    python -m bench.statefile --orgs 10000 --tenants 10 --billing  # with billing figures

In-process (no network): 10,000 org states with their reports, written by the
daemon's own `StateWriter`:
- the first write (every org encoded) and a steady-state write (the orgs one
  write delay of polling at `--interval` changes), each: CPU on the event
  loop, CPU in the worker thread (join, write, fsync, rename), bytes, and the
  longest the event loop was kept from running (a ticker task measures it);
- reading it back (`load_state`), and restoring it into a scheduler.

With `--billing`, every org also has billing figures for each tenant, and the
steady-state write also has the orgs whose billing route answered in one write
delay (at `billing.requests_per_minute_per_key`'s default).

With `--restart`: the simulator and `python -m collector run` with a state
file; once every org has been polled, SIGTERM (how long the stop and its
final write take), then a new daemon against an API that never answers: the
time from starting the process to a `/metrics` with every org's series, all
from the state file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import aiohttp
import structlog

from bench.run import Sim, free_port
from collector.apikey import ApiKey
from collector.config import BillingSettings, OrgConfig, PollingSettings
from collector.keys import KeySource
from collector.petra_billing import BillingReport
from collector.petra_incidents import IncidentsReport
from collector.petra_simulator import HangFault, bench_orgs, fault_to_json, write_bench_config
from collector.petra_usage import TenantUsage, UsageReport
from collector.routes import BILLING, BillingFigures, BillingSide, Sections
from collector.scheduler import Scheduler
from collector.state import USAGE, OrgState, RouteState
from collector.state_store import WRITE_BYTES_PER_SECOND, StateWriter, WriteStats, load_state

WRITE_DELAY = 5.0
NOW = 1_795_671_116.0
KEY = ApiKey("petra_bench_state_key_0123456789")


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Results:
    orgs: int
    tenants: int
    interval: float
    billing: bool = False
    first_write: dict[str, float] = field(default_factory=dict)
    steady_write: dict[str, float] = field(default_factory=dict)
    writes_per_minute: float = 0.0
    read_seconds: float = 0.0
    largest_file_bytes: int = 0  # the journal just before it is due for a rewrite
    largest_read_seconds: float = 0.0
    restore_seconds: float = 0.0
    restart: dict[str, float] = field(default_factory=dict)


def tenants_for(org: int, count: int) -> tuple[TenantUsage, ...]:
    return tuple(
        TenantUsage(
            str(uuid.UUID(int=org * 1000 + i)),
            str(uuid.UUID(int=org * 1000 + i + 1)),
            f"Tenant {org}-{i} GmbH",
            "EDR",
            "billable",
            False,
            float(50 + i),
            float(40 + i),
            0.75,
            1_700_000_000.0,
            1_700_086_400.0,
        )
        for i in range(count)
    )


def fleet(orgs: int, tenants: int, *, billing: bool = False) -> list[OrgState]:
    states = []
    for index in range(orgs):
        state = OrgState(f"org-{index:05d}", KEY.fingerprint, "file /k", 300.0)
        report = UsageReport("2026-11-26", NOW, f"Org {index}", float(tenants), ())
        state.record_success("usage", NOW, 0.05)
        state.take_report(report._replace(tenants=tenants_for(index, tenants)))
        state.next_poll_at = NOW + index % 300
        if billing:
            state.start_route(BILLING, BillingSide())
            for tenant in tenants_for(index, tenants):
                billed(state, tenant.tenant_id, NOW)
        states.append(state)
    return states


def billed(state: OrgState, tenant_id: str, now: float) -> None:
    """One good billable-users answer about `tenant_id`, kept as the route keeps it."""
    figures = BillingFigures(BillingReport(tenant_id, 41.0, 38.75, now), now)

    def keep(side: RouteState) -> bool:
        assert isinstance(side, BillingSide)
        side.attempted[tenant_id] = now
        side.figures[tenant_id] = figures
        return True

    state.record_success(BILLING, now, 0.05)
    state.change_side(BILLING, keep)


async def timed_write(writer: StateWriter) -> dict[str, float]:
    """One write, with the longest stretch the event loop could not run during it, and
    the longest garbage collection in it (the heap of 10,000 orgs is large)."""
    longest = 0.0
    running = True
    collections: list[float] = []
    gc_started = 0.0

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        nonlocal gc_started
        if phase == "start":
            gc_started = time.perf_counter()
        else:
            collections.append(time.perf_counter() - gc_started)

    gc.callbacks.append(on_gc)

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    assert await writer.write(clean_stop=False)
    wall = time.perf_counter() - started
    running = False
    await ticking
    gc.callbacks.remove(on_gc)
    stats: WriteStats | None = writer.last_write
    assert stats is not None
    return {
        "orgs_encoded": stats.encoded,
        "bytes": stats.bytes,
        "loop_cpu_ms": round(stats.loop_seconds * 1000, 1),
        "thread_cpu_ms": round(stats.thread_seconds * 1000, 1),
        "wall_ms": round(wall * 1000, 1),
        "longest_loop_stall_ms": round(longest * 1000, 1),
        "longest_gc_ms": round(max(collections, default=0.0) * 1000, 1),
    }


async def in_process(args: argparse.Namespace, workdir: Path, results: Results) -> None:
    states = fleet(args.orgs, args.tenants, billing=args.billing)
    path = workdir / "state.json"
    writer = StateWriter(
        path,
        lambda: states,
        write_delay=WRITE_DELAY,
        monotonic=time.monotonic,
        logger=structlog.get_logger(),
    )
    results.first_write = await timed_write(writer)
    _log(f"first write: {results.first_write}")
    # The polls between two writes (orgs / interval a second), each a change.
    assert writer.last_write is not None
    pause = max(WRITE_DELAY, writer.last_write.bytes / WRITE_BYTES_PER_SECOND)
    changed = round(args.orgs / args.interval * pause)
    for state in states[:changed]:
        assert state.report is not None
        state.record_success("usage", NOW + 300, 0.05)
        state.take_report(state.report)
    if args.billing:
        # One billable-users answer per key every 60 / requests_per_minute_per_key s.
        asked = round(args.orgs * BillingSettings().requests_per_minute_per_key / 60 * pause)
        for state in states[-asked:]:
            assert state.report is not None
            billed(state, state.report.tenants[0].tenant_id, NOW + 300)
    results.steady_write = await timed_write(writer)
    pause = max(WRITE_DELAY, results.steady_write["bytes"] / WRITE_BYTES_PER_SECOND)
    seconds_per_write = pause + results.steady_write["wall_ms"] / 1000
    results.writes_per_minute = round(60 / seconds_per_write, 1)
    _log(f"steady write ({changed} orgs changed): {results.steady_write}")

    started = time.perf_counter()
    loaded = load_state(path, time.time())
    results.read_seconds = round(time.perf_counter() - started, 3)
    assert loaded.state is not None
    scheduler = Scheduler(_NoFetch(), Sections(PollingSettings()))
    orgs = [OrgConfig(s.name, KeySource("inline", inline=KEY), 300.0, KEY) for s in states]
    scheduler.apply(orgs, Sections(PollingSettings()))
    started = time.perf_counter()
    restored = scheduler.restore(loaded.state.orgs, counters=True)
    results.restore_seconds = round(time.perf_counter() - started, 3)
    assert len(restored) == args.orgs
    _log(f"read {results.read_seconds} s, restore {results.restore_seconds} s")
    await grow_to_largest(writer, states)
    results.largest_file_bytes = path.stat().st_size
    started = time.perf_counter()
    assert load_state(path, time.time()).state is not None
    results.largest_read_seconds = round(time.perf_counter() - started, 3)
    _log(f"largest: {results.largest_file_bytes} bytes, read {results.largest_read_seconds} s")


async def grow_to_largest(writer: StateWriter, states: list[OrgState]) -> None:
    """Writes with every org polled again in between, until the next write would rewrite
    the file: the journal at its largest, the longest read at start."""
    rounds = 0
    while not writer.rewrite_due:
        rounds += 1
        for index, state in enumerate(states):
            assert state.report is not None
            polled = NOW + 300 * rounds + index * 0.0173
            state.record_success(USAGE, polled, 0.05 + index % 97 * 0.000931)
            state.take_report(state.report)
            state.next_poll_at = polled + 300 + index % 89 * 0.0117
        assert await writer.write(clean_stop=False)


class _NoFetch:
    async def fetch_usage(self, key: ApiKey, previous: UsageReport | None = None) -> UsageReport:
        del previous
        raise AssertionError(f"the benchmark does not poll ({key})")

    async def fetch_incidents(
        self, key: ApiKey, *, start_date: str, limit: int = 500, tenant_id: str | None = None
    ) -> IncidentsReport:
        del start_date, limit, tenant_id
        raise AssertionError(f"the benchmark does not poll ({key})")

    async def fetch_billing(self, key: ApiKey, *, tenant_id: str) -> BillingReport:
        del tenant_id
        raise AssertionError(f"the benchmark does not poll ({key})")


async def series_count(http: aiohttp.ClientSession, port: int) -> int:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        body = await response.read()
    return body.count(b"\npetra_tenant_info{")


async def restart(args: argparse.Namespace, workdir: Path, results: Results) -> None:
    sim = Sim(args.orgs, args.tenants, max_seconds=3600)
    polling = {
        "max_requests_per_second": 2 * args.orgs / args.interval,
        "concurrency": 64,
        "requests_per_minute_per_key": 5,
        "shutdown_grace_seconds": 2,
    }
    config = write_bench_config(
        bench_orgs(args.orgs, 0), workdir, sim.url, int(args.interval), polling=polling
    )
    state_path = workdir / "state.json"
    with config.open("a") as out:
        out.write(f"state:\n  path: {json.dumps(str(state_path))}\n")
    wanted = args.orgs * args.tenants
    log = (workdir / "daemon.log").open("ab")
    try:
        async with aiohttp.ClientSession() as http:
            port = free_port()
            first = _daemon(config, port, log)
            _log(f"first daemon: waiting for {wanted} tenant series (about one interval)")
            await _wait_series(http, port, wanted, first, args.interval * 3)
            await asyncio.sleep(WRITE_DELAY + 1)
            results.restart["first_daemon_peak_rss_mb"] = peak_rss_mb(first.pid)
            started = time.perf_counter()
            first.send_signal(signal.SIGTERM)
            first.wait(timeout=120)
            results.restart["stop_seconds"] = round(time.perf_counter() - started, 2)
            results.restart["state_file_bytes"] = state_path.stat().st_size
            # From now on the API never answers: whatever is served comes from the file.
            async with http.post(
                sim.url + "/_sim/fault", json=fault_to_json(HangFault())
            ) as response:
                assert response.status == 200, await response.text()
            port = free_port()
            started = time.perf_counter()
            second = _daemon(config, port, log)
            await _wait_ready(http, port, second, 120)
            results.restart["start_to_ready_seconds"] = round(time.perf_counter() - started, 2)
            await _wait_series(http, port, wanted, second, 120)
            results.restart["start_to_all_series_seconds"] = round(time.perf_counter() - started, 2)
            results.restart["restored_daemon_peak_rss_mb"] = peak_rss_mb(second.pid)
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=120)
    finally:
        sim.stop()
        log.close()
    for line in (workdir / "daemon.log").read_text().splitlines():
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("event") == "state_restored":
            results.restart["state_read_seconds"] = event["read_seconds"]
            results.restart["orgs_restored"] = event["orgs"]
    _log(f"restart: {results.restart}")


def _daemon(config: Path, port: int, log: BinaryIO) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "collector", "run", "--config", str(config)]
    command += ["--listen", f"127.0.0.1:{port}"]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own module


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def _wait_ready(
    http: aiohttp.ClientSession, port: int, process: subprocess.Popen[bytes], within: float
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited with {process.returncode}")
        try:
            async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.02)
    raise RuntimeError(f"not ready within {within} s")


async def _wait_series(
    http: aiohttp.ClientSession,
    port: int,
    wanted: int,
    process: subprocess.Popen[bytes],
    within: float,
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited with {process.returncode}")
        try:
            if await series_count(http, port) >= wanted:
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"fewer than {wanted} tenant series within {within} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--interval", type=float, default=300.0, help="polling interval (s)")
    parser.add_argument("--restart", action="store_true", help="also restart the real daemon")
    parser.add_argument("--billing", action="store_true", help="every tenant with billing figures")
    parser.add_argument("--restart-interval", type=float, default=60.0)
    args = parser.parse_args()
    results = Results(args.orgs, args.tenants, args.interval, billing=args.billing)
    with tempfile.TemporaryDirectory(prefix="petra-bench-state-") as directory:
        asyncio.run(in_process(args, Path(directory), results))
        if args.restart:
            restart_args = argparse.Namespace(**{**vars(args), "interval": args.restart_interval})
            asyncio.run(restart(restart_args, Path(directory), results))
    print(json.dumps(asdict(results)))


if __name__ == "__main__":
    main()
