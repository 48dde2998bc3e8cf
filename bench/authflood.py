"""What a flood of wrong passwords does to polling and scraping, and what TLS costs a scrape.

    python -m bench.authflood --wrong 300             # bcrypt costs, then the flood
    python -m bench.authflood --compare-tls           # scrape latency, TLS against plain HTTP

1. bcrypt: one check at cost 10 (htpasswd -B's default and the docs'), and a
   check of a remembered good pair.
2. The flood: the simulator runs in this process, the daemon as `python -m
   collector run` behind a web config (TLS and basic auth), its orgs polled
   every 2 s. After a quiet phase, `--wrong` requests with a wrong password go
   out `--concurrency` at a time while a right-password scrape is timed every
   0.25 s. Prints the gaps between one org's polls (as the simulator saw them
   arrive), quiet against flooded, the scrape latencies, and how the flood was
   answered.
3. `--compare-tls`: the same daemon with and without TLS; `--scrapes`
   sequential scrapes of /metrics each, on one kept-alive connection and on a
   new connection each time.

127.0.0.1 only; every process it starts is stopped before it returns.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp
import bcrypt
import yaml
from prometheus_client.parser import text_string_to_metric_families

from collector.petra_simulator import SimulatedOrg, Simulator, bench_orgs, start_simulator
from collector.web_basicauth import BasicAuth, new_check_executor
from tests.simulated import key_file_orgs
from tests.webtls import TlsFiles, basic_auth, bcrypt_hash, write_web_config

USER = "prometheus"
PASSWORD = "bench-password"
DEFAULT_COST = 10
POLL_INTERVAL_SECONDS = 2.0
SCRAPE_EVERY_SECONDS = 0.25


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bcrypt_check_ms(cost: int = DEFAULT_COST, rounds: int = 5) -> float:
    """The median time of one bcrypt check at `cost`, in milliseconds."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(cost))
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        bcrypt.checkpw(b"wrong", hashed)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def remembered_check_us(rounds: int = 2000) -> float:
    """The mean time of a check whose good pair is remembered, in microseconds."""
    executor = new_check_executor()
    try:
        auth = BasicAuth({USER: bcrypt_hash(PASSWORD, DEFAULT_COST)}, executor)
        header = basic_auth(USER, PASSWORD)["Authorization"]
        await auth.check(header)
        started = time.perf_counter()
        for _ in range(rounds):
            await auth.check(header)
        return (time.perf_counter() - started) / rounds * 1e6
    finally:
        executor.shutdown()


@dataclass
class Collector:
    """A daemon started as its own process, and how to reach it."""

    process: asyncio.subprocess.Process
    url: str
    client_ssl: ssl.SSLContext
    log: Path


def write_config(directory: Path, simulator_url: str, orgs: list[SimulatedOrg]) -> Path:
    config = {
        "api": {"base_url": simulator_url},
        "polling": {
            "interval_seconds": POLL_INTERVAL_SECONDS,
            "requests_per_minute_per_key": 60,
            "max_requests_per_second": 1000,
        },
        "orgs": key_file_orgs(directory, orgs),
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def prepare(
    directory: Path, simulator_url: str, orgs: list[SimulatedOrg], *, tls: bool, cost: int
) -> tuple[list[str], ssl.SSLContext]:
    """The files of a daemon behind a web config; its command line (but --listen) and a
    client context that trusts its certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "tls")
    web = write_web_config(
        directory / "tls" / "web.yml",
        tls=files.tls_section() if tls else None,
        users={USER: bcrypt_hash(PASSWORD, cost)},
    )
    config = write_config(directory, simulator_url, orgs)
    command = [sys.executable, "-m", "collector", "run", "--config", str(config)]
    return [*command, "--web.config.file", str(web)], files.client_context()


@contextlib.asynccontextmanager
async def collector(
    directory: Path, simulator_url: str, orgs: list[SimulatedOrg], *, tls: bool, cost: int
) -> AsyncIterator[Collector]:
    """The daemon behind a web config (basic auth, and TLS when `tls`), until the block ends."""
    command, client_ssl = prepare(directory, simulator_url, orgs, tls=tls, cost=cost)
    port = free_port()
    log = directory / "collector.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *command,
            "--listen",
            f"127.0.0.1:{port}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
    scheme = "https" if tls else "http"
    running = Collector(process, f"{scheme}://127.0.0.1:{port}", client_ssl, log)
    try:
        await wait_ready(running)
        yield running
    finally:
        await stop(process)


class Started(Protocol):
    """A daemon this module or `bench.hostile` started, as waiting for it needs it."""

    @property
    def process(self) -> asyncio.subprocess.Process: ...
    @property
    def url(self) -> str: ...
    @property
    def client_ssl(self) -> ssl.SSLContext | None: ...
    @property
    def log(self) -> Path: ...


async def wait_ready(running: Started, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while True:
            if running.process.returncode is not None:
                raise RuntimeError(f"the collector exited: {running.log.read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                ssl_context = running.client_ssl or False
                async with http.get(running.url + "/readyz", ssl=ssl_context) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError("the collector did not get ready")
            await asyncio.sleep(0.1)


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, and SIGKILL when it is still running 10 s later."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def flood(
    running: Collector, count: int, concurrency: int, per_second: float | None = None
) -> Counter[int]:
    """`count` requests with a wrong password, at most `concurrency` at a time, started
    `per_second` (all at once when None); their statuses counted (0: no answer)."""
    statuses: Counter[int] = Counter()
    wrong = basic_auth(USER, "not-the-password")
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=running.client_ssl)
    async with aiohttp.ClientSession(connector=connector, headers=wrong) as http:

        async def one() -> None:
            try:
                async with http.get(running.url + "/metrics") as response:
                    await response.read()
                    statuses[response.status] += 1
            except aiohttp.ClientError:
                statuses[0] += 1

        requests = []
        for _ in range(count):
            requests.append(asyncio.ensure_future(one()))
            if per_second is not None:
                await asyncio.sleep(1 / per_second)
        await asyncio.gather(*requests)
    return statuses


async def refusals(running: Collector) -> dict[str, float]:
    """petra_collector_http_auth_failures_total by reason, read with the right password."""
    async with (
        aiohttp.ClientSession(headers=basic_auth(USER, PASSWORD)) as http,
        http.get(running.url + "/metrics", ssl=running.client_ssl) as response,
    ):
        text = await response.text()
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "petra_collector_http_auth_failures"
        for sample in family.samples
    }


async def timed_scrape(http: aiohttp.ClientSession, running: Collector) -> float:
    """Seconds for one right-password scrape of /metrics (fails on anything but 200)."""
    started = time.perf_counter()
    async with http.get(running.url + "/metrics", ssl=running.client_ssl) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"a right-password scrape got {response.status}")
    return time.perf_counter() - started


async def scrape_while(running: Collector, busy: Callable[[], bool]) -> list[float]:
    """Right-password scrape latencies, one every SCRAPE_EVERY_SECONDS while `busy()`."""
    latencies = []
    async with aiohttp.ClientSession(headers=basic_auth(USER, PASSWORD)) as http:
        await timed_scrape(http, running)  # the good pair is remembered from here on
        while busy():
            latencies.append(await timed_scrape(http, running))
            await asyncio.sleep(SCRAPE_EVERY_SECONDS)
    return latencies


def gaps(times: list[float], start: float, end: float) -> list[float]:
    """Seconds between consecutive requests that arrived in [start, end]."""
    inside = [t for t in times if start <= t <= end]
    return [b - a for a, b in itertools.pairwise(inside)]


@dataclass
class FloodResult:
    quiet_gaps: list[float]
    flood_gaps: list[float]
    quiet_scrapes: list[float]
    flood_scrapes: list[float]
    statuses: Counter[int]
    refused: dict[str, float]  # by reason, from the collector's own counter
    flood_seconds: float


async def run_flood(
    running: Collector,
    simulator: Simulator,
    org: str,
    *,
    wrong: int,
    concurrency: int,
    per_second: float | None,
    quiet_seconds: float,
) -> FloodResult:
    """A quiet phase, then the flood; both with timed good scrapes and the org's poll times
    (the simulator's monotonic clock, which this process shares)."""
    quiet_start = time.monotonic()
    quiet_end = quiet_start + quiet_seconds
    quiet_scrapes = await scrape_while(running, lambda: time.monotonic() < quiet_end)
    flood_start = time.monotonic()
    flooding = asyncio.ensure_future(flood(running, wrong, concurrency, per_second))
    flood_scrapes = await scrape_while(running, lambda: not flooding.done())
    statuses = await flooding
    flood_end = time.monotonic()
    # The first poll after the flood closes the last gap that overlaps it.
    await asyncio.sleep(POLL_INTERVAL_SECONDS * 1.5)
    times = simulator.request_times(org)
    return FloodResult(
        quiet_gaps=gaps(times, quiet_start, quiet_end),
        flood_gaps=gaps(times, flood_start, flood_end + POLL_INTERVAL_SECONDS * 1.5),
        quiet_scrapes=quiet_scrapes,
        flood_scrapes=flood_scrapes,
        statuses=statuses,
        refused=await refusals(running),
        flood_seconds=flood_end - flood_start,
    )


def describe(values: list[float], unit: float = 1000.0, suffix: str = "ms") -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    digits = 3 if suffix == "s" else 1
    return (
        f"n={len(values)} median {statistics.median(values) * unit:.{digits}f} {suffix}, "
        f"p95 {p95 * unit:.{digits}f} {suffix}, max {max(values) * unit:.{digits}f} {suffix}"
    )


async def compare_tls(
    directory: Path, sim_url: str, orgs: list[SimulatedOrg], scrapes: int
) -> None:
    for tls in (False, True):
        async with collector(
            directory / f"tls-{tls}", sim_url, orgs, tls=tls, cost=DEFAULT_COST
        ) as run:
            await asyncio.sleep(POLL_INTERVAL_SECONDS * 1.5)  # every org polled once
            credentials = basic_auth(USER, PASSWORD)
            async with aiohttp.ClientSession(headers=credentials) as http:
                await timed_scrape(http, run)
                kept = [await timed_scrape(http, run) for _ in range(scrapes)]
            fresh = []
            for _ in range(scrapes):
                connector = aiohttp.TCPConnector(force_close=True)
                async with aiohttp.ClientSession(connector=connector, headers=credentials) as http:
                    fresh.append(await timed_scrape(http, run))
            kind = "TLS  " if tls else "plain"
            print(f"{kind} kept-alive connection: {describe(kept)}")
            print(f"{kind} new connection each:  {describe(fresh)}")


async def main_async(args: argparse.Namespace) -> None:
    orgs = bench_orgs(args.orgs, args.tenants)
    simulator = Simulator(orgs)
    runner, sim_port = await start_simulator(simulator, "127.0.0.1", 0)
    sim_url = f"http://127.0.0.1:{sim_port}"
    try:
        with tempfile.TemporaryDirectory(prefix="petra-authflood-") as tmp:
            directory = Path(tmp)
            if args.compare_tls:
                await compare_tls(directory, sim_url, orgs, args.scrapes)
                return
            print(f"bcrypt check at cost {DEFAULT_COST}: {bcrypt_check_ms():.1f} ms (median of 5)")
            print(f"remembered good pair: {await remembered_check_us():.1f} us per check")
            async with collector(directory, sim_url, orgs, tls=True, cost=DEFAULT_COST) as run:
                result = await run_flood(
                    run,
                    simulator,
                    orgs[0].name,
                    wrong=args.wrong,
                    concurrency=args.concurrency,
                    per_second=args.per_second,
                    quiet_seconds=args.quiet_seconds,
                )
            pace = "at once" if args.per_second is None else f"{args.per_second:g}/s"
            print(
                f"flood: {args.wrong} wrong passwords ({pace}, at most {args.concurrency} "
                f"in flight) took {result.flood_seconds:.2f} s; answers {dict(result.statuses)}; "
                f"refused by reason {result.refused}"
            )
            print(f"poll gaps, quiet:   {describe(result.quiet_gaps, 1, 's')}")
            print(f"poll gaps, flooded: {describe(result.flood_gaps, 1, 's')}")
            print(f"good scrapes, quiet:   {describe(result.quiet_scrapes)}")
            print(f"good scrapes, flooded: {describe(result.flood_scrapes)}")
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wrong", type=int, default=300, help="wrong-password requests (300)")
    parser.add_argument("--concurrency", type=int, default=50, help="of them in flight (50)")
    parser.add_argument(
        "--per-second", type=float, help="start the flood's requests at this rate (all at once)"
    )
    parser.add_argument("--quiet-seconds", type=float, default=6.0, help="before the flood (6)")
    parser.add_argument("--orgs", type=int, default=10, help="simulated orgs (10)")
    parser.add_argument("--tenants", type=int, default=10, help="tenants per org (10)")
    parser.add_argument("--compare-tls", action="store_true", help="scrape latency only")
    parser.add_argument("--scrapes", type=int, default=200, help="per kind, --compare-tls (200)")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
