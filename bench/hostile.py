"""What idle and slowloris connections, and malformed requests, cost everyone else.

    python -m bench.hostile --runs 3          # the issue-22 figures, median (range) of 3

The simulator runs in this process; the daemon as `python -m collector run` with a
soft/hard open-file limit of `--nofile` (default 1024: the connection cap is then the
default 512), 10 orgs polled every 2 s, a state file, with and without TLS. For each of
`idle` and `slowloris` (one header line every second per connection; over TLS after
the handshake), 1.2x the cap of such connections are held open for `--hold-seconds` by
a process of their own: a connection the daemon closes is opened again on the next
tick (each second), as slowloris tools do. Meanwhile
`/healthz` is asked every 0.2 s on a new connection (as kubelet does) and timed, and
the gaps between one org's polls are read from the simulator (lateness: a gap minus
the 2 s interval). Last, `--bad` malformed requests are sent and the log lines the
daemon wrote meanwhile counted.

127.0.0.1 only; every process it starts is stopped before it returns.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.authflood import free_port, gaps, stop, wait_ready
from collector.petra_simulator import SimulatedOrg, Simulator, bench_orgs, start_simulator
from tests.simulated import key_file_orgs
from tests.webtls import TlsFiles, write_web_config

POLL_INTERVAL_SECONDS = 2.0
PROBE_EVERY_SECONDS = 0.2
PROBE_TIMEOUT_SECONDS = 10.0
TICK_SECONDS = 1.0
MALFORMED = b"GET /\x00bad HTTP/1.1\r\nHost: x\r\n\r\n"
SET_LIMIT_AND_RUN = (
    "import os, resource, sys; "
    "soft, hard = (int(n) for n in sys.argv[1].split(':')); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)); "
    "os.execv(sys.executable, [sys.executable, '-m', 'collector', *sys.argv[2:]])"
)


@dataclass
class Collector:
    """A daemon started as its own process with a low open-file limit."""

    process: asyncio.subprocess.Process
    port: int
    client_ssl: ssl.SSLContext | None
    log: Path
    state: Path
    ca_file: Path | None  # what `client_ssl` trusts

    @property
    def url(self) -> str:
        scheme = "http" if self.client_ssl is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def events(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log_lines():
            with contextlib.suppress(ValueError):
                parsed = json.loads(line)
                if isinstance(parsed, dict) and parsed.get("event") == event:
                    found.append(parsed)
        return found


def write_config(
    directory: Path, simulator_url: str, orgs: list[SimulatedOrg], server: dict[str, float]
) -> Path:
    orgs_entries = key_file_orgs(directory, orgs)  # makes `directory` too
    config = {
        "api": {"base_url": simulator_url},
        "polling": {
            "interval_seconds": POLL_INTERVAL_SECONDS,
            "requests_per_minute_per_key": 60,
            "max_requests_per_second": 1000,
        },
        "server": server,
        "state": {"path": str(directory / "state.json"), "write_delay_seconds": 0.5},
        "orgs": orgs_entries,
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.asynccontextmanager
async def limited_collector(
    directory: Path,
    simulator_url: str,
    orgs: list[SimulatedOrg],
    *,
    tls: bool,
    nofile: tuple[int, int],
    server: dict[str, float] | None = None,
) -> AsyncIterator[Collector]:
    """The daemon with open-file limit `nofile` (soft, hard), TLS when `tls`, until the
    block ends."""
    config = write_config(directory, simulator_url, orgs, server or {})
    command = ["run", "--config", str(config)]
    client_ssl = None
    ca_file = None
    if tls:
        files = TlsFiles(directory / "tls")
        web = write_web_config(directory / "tls" / "web.yml", tls=files.tls_section())
        command += ["--web.config.file", str(web)]
        client_ssl = files.client_context()
        ca_file = files.ca_file
    port = free_port()
    log = directory / "collector.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SET_LIMIT_AND_RUN,
            f"{nofile[0]}:{nofile[1]}",
            *command,
            "--listen",
            f"127.0.0.1:{port}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
    running = Collector(process, port, client_ssl, log, directory / "state.json", ca_file)
    try:
        await wait_ready(running)
        yield running
    finally:
        await stop(process)


async def probe(running: Collector, path: str = "/readyz") -> int:
    """One GET on a new connection, as kubelet probes; its status."""
    connector = aiohttp.TCPConnector(force_close=True, ssl=running.client_ssl or False)
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
        http.get(running.url + path) as response,
    ):
        await response.read()
        return response.status


@dataclass
class Holder:
    """`count` connections kept open against the daemon; reopened on the next tick when
    the daemon closes one. `slowloris`: each sends one more header line every tick."""

    port: int
    count: int
    slowloris: bool
    client_ssl: ssl.SSLContext | None = None  # slowloris over TLS: handshake, then trickle
    opened: int = 0
    closed_by_daemon: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: bool = False  # 3.11's wait_for may turn a cancel into a timeout: checked too

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._keep(n)) for n in range(self.count)]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _keep(self, number: int) -> None:
        while not self._stopping:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, ssl=self.client_ssl if self.slowloris else None
                )
            except OSError:
                await asyncio.sleep(TICK_SECONDS)
                continue
            self.opened += 1
            try:
                if self.slowloris:
                    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                line = 0
                while not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        if not await asyncio.wait_for(reader.read(1024), TICK_SECONDS):
                            break  # closed by the daemon
                    if self.slowloris:
                        line += 1
                        writer.write(f"X-{number}-{line}: {line}\r\n".encode())
                        await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()
            self.closed_by_daemon += 1
            await asyncio.sleep(TICK_SECONDS)


def _hold_forever(
    port: int, count: int, slowloris: bool, ca_file: str | None, opened: Synchronized[int]
) -> None:
    """A Holder in a process of its own, until terminated; `opened` counts connections."""
    client_ssl = None if ca_file is None else ssl.create_default_context(cafile=ca_file)
    holder = Holder(port, count, slowloris, client_ssl)

    async def run() -> None:
        holder.start()
        while True:
            await asyncio.sleep(0.5)
            opened.value = holder.opened

    asyncio.run(run())


@contextlib.asynccontextmanager
async def holding(
    running: Collector, count: int, *, slowloris: bool
) -> AsyncIterator[Synchronized[int]]:
    """`count` connections held by a child process (its CPU is not the prober's) while the
    block runs; yields the shared count of connections it opened."""
    spawn = multiprocessing.get_context("spawn")
    opened = spawn.Value("i", 0)
    ca_file = None if running.ca_file is None else str(running.ca_file)
    child = spawn.Process(
        target=_hold_forever, args=(running.port, count, slowloris, ca_file, opened), daemon=True
    )
    child.start()
    try:
        yield opened
    finally:
        child.terminate()
        await asyncio.to_thread(child.join, 10)


async def probe_latencies(running: Collector, seconds: float) -> tuple[list[float], int]:
    """`/healthz` latencies, one every PROBE_EVERY_SECONDS for `seconds`; and how many
    got no answer within PROBE_TIMEOUT_SECONDS."""
    latencies: list[float] = []
    failures = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            status = await probe(running, "/healthz")
        except (aiohttp.ClientError, OSError, TimeoutError):
            status = 0
        if status == 200:
            latencies.append(time.perf_counter() - started)
        else:
            failures += 1
        await asyncio.sleep(PROBE_EVERY_SECONDS)
    return latencies, failures


@dataclass
class HoldResult:
    probes: list[float]
    probe_failures: int
    lateness: list[float]  # poll gap minus the interval, during the hold
    opened: int
    log_lines: int
    state_writes: bool


async def hold(
    running: Collector,
    simulator: Simulator,
    org: str,
    *,
    count: int,
    slowloris: bool,
    seconds: float,
) -> HoldResult:
    """`count` connections held for `seconds` while /healthz is timed."""
    lines_before = len(running.log_lines())
    state_before = running.state.stat().st_mtime_ns if running.state.exists() else 0
    start = time.monotonic()
    async with holding(running, count, slowloris=slowloris) as opened:
        await asyncio.sleep(TICK_SECONDS * 2)  # every connection opened
        latencies, failures = await probe_latencies(running, seconds)
        opened_count = int(opened.value)
    end = time.monotonic()
    await asyncio.sleep(POLL_INTERVAL_SECONDS * 1.5)  # the poll that closes the last gap
    state_after = running.state.stat().st_mtime_ns if running.state.exists() else 0
    return HoldResult(
        probes=latencies,
        probe_failures=failures,
        lateness=[
            gap - POLL_INTERVAL_SECONDS
            for gap in gaps(simulator.request_times(org), start, end + POLL_INTERVAL_SECONDS)
        ],
        opened=opened_count,
        log_lines=len(running.log_lines()) - lines_before,
        state_writes=state_after > state_before,
    )


async def send_malformed(running: Collector, count: int) -> int:
    """`count` malformed requests, one connection each; returns the log lines written."""
    before = len(running.log_lines())
    for _ in range(count):
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", running.port, ssl=running.client_ssl
            )
            writer.write(MALFORMED)
            await writer.drain()
            await reader.read()
            writer.close()
    await asyncio.sleep(0.5)
    return len(running.log_lines()) - before


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    return (
        f"median {statistics.median(values) * 1000:.1f} ms, "
        f"max {max(values) * 1000:.1f} ms (n={len(values)})"
    )


async def one_run(args: argparse.Namespace, directory: Path) -> dict[str, float]:
    """One run of every scenario; figures by name."""
    orgs = bench_orgs(10, 10)
    simulator = Simulator(orgs)
    runner, sim_port = await start_simulator(simulator, "127.0.0.1", 0)
    figures: dict[str, float] = {}
    try:
        for tls in (False, True):
            kind = "tls" if tls else "plain"
            async with limited_collector(
                directory / kind,
                f"http://127.0.0.1:{sim_port}",
                orgs,
                tls=tls,
                nofile=(args.nofile, args.nofile),
            ) as running:
                (started,) = running.events("started")
                cap = int(started["max_connections"])
                count = int(cap * 1.2)
                await asyncio.sleep(POLL_INTERVAL_SECONDS * 1.5)
                for slowloris in (False, True):
                    name = f"{kind} {'slowloris' if slowloris else 'idle'}"
                    result = await hold(
                        running,
                        simulator,
                        orgs[0].name,
                        count=count,
                        slowloris=slowloris,
                        seconds=args.hold_seconds,
                    )
                    print(
                        f"{name}: {count} held (cap {cap}, {result.opened} opened); /healthz "
                        f"{summary(result.probes)}, {result.probe_failures} unanswered; poll "
                        f"lateness {summary(result.lateness)}; log lines {result.log_lines}; "
                        f"state file written: {result.state_writes}"
                    )
                    figures[f"{name} healthz median ms"] = statistics.median(result.probes) * 1000
                    figures[f"{name} healthz max ms"] = max(result.probes) * 1000
                    figures[f"{name} healthz unanswered"] = result.probe_failures
                    figures[f"{name} poll lateness max ms"] = max(result.lateness) * 1000
                    figures[f"{name} log lines"] = result.log_lines
                lines = await send_malformed(running, args.bad)
                print(f"{kind}: {args.bad} malformed requests wrote {lines} log lines")
                figures[f"{kind} log lines for {args.bad} malformed"] = lines
    finally:
        await runner.cleanup()
    return figures


async def main_async(args: argparse.Namespace) -> None:
    runs: list[dict[str, float]] = []
    for number in range(args.runs):
        print(f"-- run {number + 1} of {args.runs}")
        with tempfile.TemporaryDirectory(prefix="petra-hostile-") as tmp:
            runs.append(await one_run(args, Path(tmp)))
    print(f"-- median (min-max) of {args.runs} runs")
    for name in runs[0]:
        values = [run[name] for run in runs]
        print(f"{name}: {statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of every scenario (3)")
    parser.add_argument("--nofile", type=int, default=1024, help="the daemon's file limit")
    parser.add_argument("--hold-seconds", type=float, default=8.0, help="per scenario (8)")
    parser.add_argument("--bad", type=int, default=1000, help="malformed requests (1000)")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
