"""Load benchmark: the daemon against a raw aiohttp baseline and the stock exposition.

    python -m bench.run --orgs 10000 --tenants 10

Starts the simulator in its own process (pinned to CPU 1), then, each pinned to
CPU 0 and one after the other: the baseline poller (bench/baseline.py), and the
daemon (`python -m collector run`, or `--shards N` instances with `--shard I/N`)
on a generated config. CPU comes from /proc/<pid>/stat (utime + stime), polls
from the simulator's per-org request counts. Prints one table and writes the
figures as JSON (`--json`). Everything listens on 127.0.0.1 and stops by itself.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import gzip
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from bench.simserver import pin_to_cpu
from collector.exposition import Exposition
from collector.metrics import CollectorMetrics, PetraCollector
from collector.petra_simulator import Simulator, bench_orgs, write_bench_config
from collector.petra_usage import parse_usage_body
from collector.sharding import shard_of
from collector.state import OrgState

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
DAEMON_CPU = 0
SIMULATOR_CPU = 1
OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
SCRAPE_GAP_SECONDS = 15.0  # a common Prometheus scrape interval

T = TypeVar("T")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (resolution 1/CLK_TCK)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def aligned(rows: list[tuple[str, str]]) -> str:
    """Two columns of figures, the names padded to one width."""
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def append_json_line(path: Path, record: dict[str, Any]) -> None:
    """Append `record` to `path` as one JSON line."""
    with path.open("a") as out:
        out.write(json.dumps(record) + "\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Scrape:
    format: str
    encoding: str
    cpu_seconds: float
    wall_seconds: float
    body_bytes: int
    samples: int


@dataclass
class Instance:
    """One daemon process's figures."""

    shard: str
    orgs: int
    polls: int = 0
    cpu_seconds: float = 0.0
    cpu_ms_per_poll: float = 0.0
    rss_mb_by_round: list[float] = field(default_factory=list)
    scrapes: list[Scrape] = field(default_factory=list)
    cold_scrape_cpu_seconds: float = 0.0


@dataclass
class Results:
    orgs: int
    tenants: int
    interval: float
    shards: int
    max_requests_per_second: float
    baseline_polls: int = 0
    baseline_cpu_ms_per_poll: float = 0.0
    baseline_polls_per_second: float = 0.0
    instances: list[Instance] = field(default_factory=list)
    daemon_polls_per_second: float = 0.0
    first_round_seconds: float = 0.0
    first_round_from_ready_seconds: float = 0.0
    rate_per_second_min: int = 0
    rate_per_second_max: int = 0
    rate_per_second_mean: float = 0.0
    series: int = 0
    stock: dict[str, float] = field(default_factory=dict)
    fast: dict[str, float] = field(default_factory=dict)


def _spawn(command: list[str]) -> subprocess.Popen[str]:
    """Start a helper process whose stdout we read (it only prints a result)."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our own module


class Sim:
    """The simulator process."""

    def __init__(self, orgs: int, tenants: int, max_seconds: float, incidents: int = 3) -> None:
        command = [sys.executable, "-m", "bench.simserver", "--orgs", str(orgs)]
        command += ["--tenants", str(tenants), "--cpu", str(SIMULATOR_CPU)]
        command += ["--incidents", str(incidents)]
        command += ["--max-seconds", str(max_seconds)]
        self.process = _spawn(command)
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    async def stats(
        self, http: aiohttp.ClientSession, detail: bool = False, since: float = 0.0
    ) -> dict[str, Any]:
        query = f"?detail=1&since={since}" if detail else ""
        async with http.get(self.url + "/_bench/stats" + query) as response:
            data: dict[str, Any] = await response.json()
            return data

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run_baseline(sim: Sim, http: aiohttp.ClientSession, args: argparse.Namespace) -> Results:
    rate = args.orgs / args.interval
    results = Results(args.orgs, args.tenants, args.interval, args.shards, args.max_rps)
    command = [sys.executable, "-m", "bench.baseline", "--url", sim.url, "--orgs", str(args.orgs)]
    command += ["--rate", str(rate), "--seconds", str(args.baseline_seconds + 5)]
    command += ["--cpu", str(DAEMON_CPU), "--concurrency", str(args.concurrency)]
    _log(f"baseline: {rate:.0f} polls/s for {args.baseline_seconds + 5:.0f} s")
    process = _spawn(command)
    await asyncio.sleep(5)  # start-up and warm-up are not measured
    cpu0, polls0, t0 = cpu_seconds(process.pid), (await sim.stats(http))["requests"], time.time()
    await asyncio.sleep(args.baseline_seconds)
    cpu1, polls1, t1 = cpu_seconds(process.pid), (await sim.stats(http))["requests"], time.time()
    out, _ = await asyncio.to_thread(process.communicate, timeout=60)
    results.baseline_polls = polls1 - polls0
    results.baseline_cpu_ms_per_poll = 1000 * (cpu1 - cpu0) / max(1, polls1 - polls0)
    results.baseline_polls_per_second = (polls1 - polls0) / (t1 - t0)
    _log(f"baseline: {results.baseline_cpu_ms_per_poll:.3f} ms/poll, {out.strip()} polls ok")
    return results


@dataclass
class Daemon:
    shard: str
    port: int
    process: subprocess.Popen[bytes]
    orgs: list[int]  # indexes into the simulator's org list


def start_daemon(config: Path, log: Path, *options: str) -> tuple[subprocess.Popen[bytes], int]:
    """`python -m collector run` on `config` on a free port, pinned to the daemon's CPU,
    writing to `log`; and its port."""
    port = free_port()
    command = [sys.executable, "-m", "collector", "run", "--config", str(config)]
    command += ["--listen", f"127.0.0.1:{port}", *options]
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)  # noqa: S603 - our own module
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(process.pid, {DAEMON_CPU})
    return process, port


def start_daemons(config: Path, args: argparse.Namespace, workdir: Path) -> list[Daemon]:
    daemons = []
    names = [f"org-{i:05d}" for i in range(1, args.orgs + 1)]
    for index in range(args.shards):
        shard = f"{index}/{args.shards}" if args.shards > 1 else "-"
        options = ["--shard", shard] if args.shards > 1 else []
        process, port = start_daemon(config, workdir / f"daemon-{index}.log", *options)
        owned = [i for i, n in enumerate(names) if shard_of(n, args.shards) == index]
        daemons.append(Daemon(shard, port, process, owned))
    return daemons


async def wait_ready(http: aiohttp.ClientSession, daemon: Daemon, within: float) -> None:
    await daemon_ready(http, daemon.port, daemon.process, within, f"daemon {daemon.shard}")


async def daemon_ready(
    http: aiohttp.ClientSession,
    port: int,
    process: subprocess.Popen[bytes],
    within: float,
    name: str = "the daemon",
) -> None:
    """Returns when the daemon on `port` answers /readyz; raises when it exits or is late."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                if response.status == 200:
                    return
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{name} was not ready within {within:g} s")


@dataclass
class Measured:
    """A daemon's CPU and the simulator's request counts over one measured window."""

    cpu_seconds: float
    seconds: float
    before: dict[str, Any]  # the simulator's /_bench/stats at the window's start
    after: dict[str, Any]  # and at its end

    def requests(self, field: str = "requests") -> int:
        """Requests the simulator counted in the window (`requests`: usage; or
        `incident_requests`, `billing_requests`)."""
        return int(self.after[field]) - int(self.before[field])


async def measure_daemon(
    sim: Sim, http: aiohttp.ClientSession, config: Path, *, warm_up: float, seconds: float
) -> Measured:
    """Start the daemon on `config`, let it run `warm_up` seconds (its first polls, not
    measured), measure it for `seconds`, then stop it."""
    process, port = start_daemon(config, config.parent / "daemon.log", "--log-level", "error")
    try:
        await daemon_ready(http, port, process, 120)
        await asyncio.sleep(warm_up)
        before, cpu0, t0 = await sim.stats(http), cpu_seconds(process.pid), time.monotonic()
        await asyncio.sleep(seconds)
        after, cpu1, t1 = await sim.stats(http), cpu_seconds(process.pid), time.monotonic()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    return Measured(cpu1 - cpu0, t1 - t0, before, after)


async def scrape(
    http: aiohttp.ClientSession, daemon: Daemon, openmetrics: bool, gzipped: bool
) -> Scrape:
    headers = {"Accept-Encoding": "gzip" if gzipped else "identity"}
    if openmetrics:
        headers["Accept"] = OPENMETRICS
    cpu0, wall0 = cpu_seconds(daemon.process.pid), time.perf_counter()
    async with http.get(
        f"http://127.0.0.1:{daemon.port}/metrics", headers=headers, auto_decompress=False
    ) as response:
        body = await response.read()
    wall1 = time.perf_counter()
    await asyncio.sleep(0.05)  # let the tick that sent the last byte be accounted
    cpu1 = cpu_seconds(daemon.process.pid)
    text = gzip.decompress(body) if gzipped else body
    samples = sum(1 for line in text.split(b"\n") if line and not line.startswith(b"#"))
    return Scrape(
        "openmetrics" if openmetrics else "text",
        "gzip" if gzipped else "identity",
        cpu1 - cpu0,
        wall1 - wall0,
        len(body),
        samples,
    )


async def run_daemons(
    sim: Sim, http: aiohttp.ClientSession, args: argparse.Namespace, results: Results
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="petra-bench-"))
    polling = {
        "max_requests_per_second": args.max_rps,
        "concurrency": args.concurrency,
        "requests_per_minute_per_key": 5,
        "max_staleness_seconds": 3600,
    }
    config = write_bench_config(
        bench_orgs(args.orgs, 0), workdir, sim.url, int(args.interval), polling=polling
    )
    launched = time.monotonic()
    daemons = start_daemons(config, args, workdir)
    instances = [Instance(d.shard, len(d.orgs)) for d in daemons]
    results.instances = instances
    try:
        for daemon in daemons:
            await wait_ready(http, daemon, 120)
        started = time.monotonic()  # the scheduler(s) run: first polls count from here
        _log(f"{len(daemons)} daemon(s) ready, {args.rounds} rounds of {args.interval:.0f} s")
        marks: list[tuple[list[float], list[int], float]] = []
        for round_index in range(1, args.rounds + 1):
            round_start = started + (round_index - 1) * args.interval
            if round_index >= 3 and not args.no_scrape:
                await asyncio.sleep(max(0.0, round_start + 5 - time.monotonic()))
                await scrape_round(http, daemons, instances, round_index == 3)
            await asyncio.sleep(max(0.0, round_start + args.interval - time.monotonic()))
            counts = (await sim.stats(http))["counts"]
            marks.append(
                (
                    [cpu_seconds(d.process.pid) for d in daemons],
                    [sum(counts[i] for i in d.orgs) for d in daemons],
                    time.monotonic(),
                )
            )
            for daemon, instance in zip(daemons, instances, strict=True):
                instance.rss_mb_by_round.append(round(rss_mb(daemon.process.pid), 1))
            _log(f"round {round_index}: RSS {[i.rss_mb_by_round[-1] for i in instances]} MB")
        # Poll CPU: round 2, where nothing but polling happens (round 1 includes start-up).
        (cpu_a, polls_a, t_a), (cpu_b, polls_b, t_b) = marks[0], marks[1]
        for index, instance in enumerate(instances):
            instance.polls = polls_b[index] - polls_a[index]
            instance.cpu_seconds = cpu_b[index] - cpu_a[index]
            instance.cpu_ms_per_poll = 1000 * instance.cpu_seconds / max(1, instance.polls)
        results.daemon_polls_per_second = (sum(polls_b) - sum(polls_a)) / (t_b - t_a)
        detail = await sim.stats(http, detail=True, since=launched)
        spread(results, detail, args.interval, args.rounds, started)
    finally:
        for daemon in daemons:
            daemon.process.send_signal(signal.SIGTERM)
        for daemon in daemons:
            try:
                daemon.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.process.kill()


async def scrape_round(
    http: aiohttp.ClientSession, daemons: list[Daemon], instances: list[Instance], first: bool
) -> None:
    """The first scrape renders everything (cold); the measured ones follow 15 s apart."""
    for daemon, instance in zip(daemons, instances, strict=True):
        if first:
            cold = await scrape(http, daemon, openmetrics=False, gzipped=True)
            instance.cold_scrape_cpu_seconds = cold.cpu_seconds
            for openmetrics, gzipped in ((False, True), (True, True), (False, False)):
                await asyncio.sleep(SCRAPE_GAP_SECONDS)
                instance.scrapes.append(await scrape(http, daemon, openmetrics, gzipped))
        else:
            instance.scrapes.append(await scrape(http, daemon, openmetrics=False, gzipped=True))
        _log(f"scrapes of {daemon.shard}: {instance.scrapes[-1]}")


def spread(
    results: Results, detail: dict[str, Any], interval: float, rounds: int, ready: float
) -> None:
    """Requests per whole second over every full second of the run, and the first round."""
    first_times: list[float] = detail["first_times"]
    per_second = dict(detail["per_second"])
    if not first_times or not per_second:
        return
    results.first_round_seconds = max(first_times) - min(first_times)
    results.first_round_from_ready_seconds = max(first_times) - ready
    begin = int(min(first_times)) + 1
    end = int(min(first_times) + interval * rounds) - 1
    counts = [per_second.get(second, 0) for second in range(begin, min(end, max(per_second)))]
    if counts:
        results.rate_per_second_min = min(counts)
        results.rate_per_second_max = max(counts)
        results.rate_per_second_mean = sum(counts) / len(counts)


def _timed(function: Callable[..., T], *args: Any) -> tuple[float, T]:
    start = time.process_time()
    value = function(*args)
    return time.process_time() - start, value


def polled(states: list[OrgState], now: float) -> None:
    """Record one more successful poll (the same report) for every org."""
    for state in states:
        assert state.report is not None
        state.count_request("usage", "200")
        state.record_success("usage", now, 0.02)
        state.take_report(state.report)


def stock_comparison(args: argparse.Namespace, results: Results) -> None:
    """Stock and fast exposition of the same series, in this process, on the same states."""
    pin_to_cpu(DAEMON_CPU)
    orgs = bench_orgs(args.orgs, args.tenants)
    sim = Simulator(orgs)
    states = []
    now = time.time()
    for org in orgs:
        state = OrgState(org.name, "sha256:0", "file", args.interval)
        for _ in range(2):
            body = sim._report_bytes(sim._state(org.name), None)  # noqa: SLF001 - same bytes as served
            state.count_request("usage", "200")
            state.record_success("usage", now, 0.01)
            state.take_report(parse_usage_body(body))
        states.append(state)
    exposition = Exposition(PetraCollector(lambda: states, lambda: 3600.0))
    CollectorMetrics(exposition.own).config_loaded(len(states), now)
    registry = exposition.registry
    gc.collect()
    stock_text_s, stock_text = _timed(generate_latest, registry)
    stock_om_s, _ = _timed(openmetrics_latest, registry)
    gzip1_s, _ = _timed(gzip.compress, stock_text, 1)
    gzip9_s, _ = _timed(gzip.compress, stock_text, 9)
    results.series = sum(1 for line in stock_text.split(b"\n") if line and line[:1] != b"#")
    cold_s, _ = _timed(exposition.body_gzip, "text")
    warm_s, fast_gzip = _timed(exposition.body_gzip, "text")
    polled(states, now + 60)  # every org polled since the last scrape: org lines re-rendered
    polled_s, _ = _timed(exposition.body_gzip, "text")
    polled(states, now + 120)
    om_s, _ = _timed(exposition.body_gzip, "openmetrics")
    plain_s, fast_text = _timed(exposition.body, "text")
    assert fast_text == generate_latest(registry), "fast and stock bodies differ"
    assert gzip.decompress(fast_gzip)[:1000] == stock_text[:1000]
    results.stock = {
        "text_seconds": round(stock_text_s, 3),
        "openmetrics_seconds": round(stock_om_s, 3),
        "gzip1_seconds": round(gzip1_s, 3),
        "gzip9_seconds": round(gzip9_s, 3),
        "text_bytes": len(stock_text),
    }
    results.fast = {
        "cold_gzip_seconds": round(cold_s, 3),
        "unchanged_gzip_seconds": round(warm_s, 3),
        "all_polled_gzip_seconds": round(polled_s, 3),
        "all_polled_openmetrics_gzip_seconds": round(om_s, 3),
        "all_polled_identity_seconds": round(plain_s, 3),
        "gzip_bytes": len(fast_gzip),
    }


def results_from_json(data: dict[str, Any]) -> Results:
    """Results as `--json` wrote them."""
    instances = [
        Instance(**{**i, "scrapes": [Scrape(**s) for s in i["scrapes"]]}) for i in data["instances"]
    ]
    data = {"first_round_from_ready_seconds": float("nan"), **data}  # older runs lack it
    return Results(**{**data, "instances": instances})


def table(r: Results) -> Iterator[str]:
    """The results as rows of (figure, value, goal, verdict)."""

    def row(name: str, value: str, goal: str = "", ok: bool | None = None) -> str:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        return f"| {name} | {value} | {goal} | {verdict} |"

    yield f"orgs={r.orgs} tenants={r.tenants} interval={r.interval:g}s shards={r.shards}"
    yield "| figure | value | goal | |"
    yield "|---|---|---|---|"
    base = r.baseline_cpu_ms_per_poll
    yield row("baseline CPU per poll", f"{base:.3f} ms ({r.baseline_polls} polls)")
    for inst in r.instances:
        tag = f"daemon[{inst.shard}] ({inst.orgs} orgs)"
        ratio = inst.cpu_ms_per_poll / base if base else float("nan")
        yield row(
            f"{tag} CPU per poll",
            f"{inst.cpu_ms_per_poll:.3f} ms ({inst.polls} polls) = {ratio:.2f}x baseline",
            "<= 1.5x baseline",
            ratio <= 1.5,
        )
        rss = inst.rss_mb_by_round
        if rss:
            growth = rss[-1] - rss[min(2, len(rss) - 1)]
            yield row(
                f"{tag} RSS by round",
                " / ".join(f"{v:.0f}" for v in rss) + f" MB (last-round-3 {growth:+.0f})",
                "< 300 MB, flat" if r.tenants <= 10 else "",
                (max(rss) < 300 and growth < 0.1 * rss[-1]) if r.tenants <= 10 else None,
            )
        if inst.scrapes:
            yield row(f"{tag} cold scrape CPU", f"{inst.cold_scrape_cpu_seconds:.2f} s")
        for s in inst.scrapes[:3]:
            yield row(
                f"{tag} scrape {s.format}/{s.encoding} CPU",
                f"{s.cpu_seconds:.2f} s, {s.wall_seconds:.2f} s wall, "
                f"{s.body_bytes / 1e6:.1f} MB, {s.samples} samples",
                "< 0.5 s" if s.encoding == "gzip" else "",
                s.cpu_seconds < 0.5 if s.encoding == "gzip" else None,
            )
    yield row("daemon polls/s (all instances)", f"{r.daemon_polls_per_second:.1f}")
    yield row(
        "requests/s per second: min / mean / max",
        f"{r.rate_per_second_min} / {r.rate_per_second_mean:.1f} / {r.rate_per_second_max}",
        f"max <= {r.max_requests_per_second:g}, min >= mean/2",
        r.rate_per_second_max <= r.max_requests_per_second
        and r.rate_per_second_min >= r.rate_per_second_mean / 2,
    )
    from_ready = r.first_round_from_ready_seconds
    known = not math.isnan(from_ready)  # NaN for runs from before it was measured
    yield row(
        "first round: last org's first poll, from readiness",
        (f"{from_ready:.2f} s " if known else "not measured ")
        + f"(first to last org: {r.first_round_seconds:.2f} s)",
        f"<= {r.interval:g} s",
        (from_ready <= r.interval) if known else r.first_round_seconds <= r.interval,
    )
    if r.stock:
        stock_total = r.stock["text_seconds"] + r.stock["gzip1_seconds"]
        fast = r.fast["all_polled_gzip_seconds"]
        yield row("series (stock exposition)", f"{r.series}")
        yield row("stock text exposition CPU", f"{r.stock['text_seconds']:.2f} s")
        yield row("stock OpenMetrics exposition CPU", f"{r.stock['openmetrics_seconds']:.2f} s")
        yield row(
            "stock gzip level 1 / 9 CPU",
            f"{r.stock['gzip1_seconds']:.2f} / {r.stock['gzip9_seconds']:.2f} s",
        )
        yield row(
            "fast gzip body, every org polled since last scrape",
            f"{fast:.3f} s = {stock_total / fast:.0f}x less than stock text + gzip 1",
            ">= 10x",
            stock_total / fast >= 10,
        )
        om_total = r.stock["openmetrics_seconds"] + r.stock["gzip1_seconds"]
        om_fast = r.fast["all_polled_openmetrics_gzip_seconds"]
        yield row(
            "fast OpenMetrics gzip body, every org polled",
            f"{om_fast:.3f} s = {om_total / om_fast:.0f}x less than stock OM + gzip 1",
            ">= 10x",
            om_total / om_fast >= 10,
        )
        yield row(
            "fast gzip body: cold / nothing changed",
            f"{r.fast['cold_gzip_seconds']:.2f} / {r.fast['unchanged_gzip_seconds']:.3f} s",
        )


async def main_async(args: argparse.Namespace) -> Results:
    duration = args.baseline_seconds + args.interval * (args.rounds + 2) + 300
    sim = Sim(args.orgs, args.tenants, max_seconds=duration)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            results = await run_baseline(sim, http, args)
            await run_daemons(sim, http, args, results)
    finally:
        sim.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--interval", type=float, default=60.0, help="polling interval, s")
    parser.add_argument("--rounds", type=int, default=4, help="daemon rounds (at least 3)")
    parser.add_argument("--shards", type=int, default=1, help="daemon instances, --shard I/N")
    parser.add_argument("--baseline-seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-rps", type=float, default=0, help="default: 2 x orgs/interval")
    parser.add_argument("--no-scrape", action="store_true", help="skip /metrics scrapes")
    parser.add_argument("--no-stock", action="store_true", help="skip the stock comparison")
    parser.add_argument("--json", type=Path, help="append the results as one JSON line here")
    parser.add_argument(
        "--report", type=Path, help="print the tables of earlier --json results; run nothing"
    )
    args = parser.parse_args()
    if args.report is not None:
        for line in args.report.read_text().splitlines():
            if line.strip():
                print("\n".join(table(results_from_json(json.loads(line)))) + "\n")
        return
    if args.rounds < 3:
        parser.error("--rounds must be at least 3")
    if not args.max_rps:
        args.max_rps = max(20.0, round(2 * args.orgs / args.interval))
    results = asyncio.run(main_async(args))
    if not args.no_stock:
        _log("stock vs fast exposition, in this process")
        stock_comparison(args, results)
    print("\n".join(table(results)))
    if args.json is not None:
        with args.json.open("a") as out:
            out.write(json.dumps(asdict(results)) + "\n")


if __name__ == "__main__":
    main()
