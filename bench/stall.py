"""No-stall benchmark: is the daemon's event loop free while `/metrics` is scraped?

    python -m bench.stall --orgs 20000 --tenants 10 --runs 3 --json stall.jsonl
    python -m bench.stall --orgs 20000 --encodings identity gzip --scrapes 4 --runs 3

Starts the simulator (pinned to CPU 1) and the daemon (pinned to CPU 0) as
bench/run.py does, waits until every org was polled once, then scrapes `/metrics`
(text): the first scrape after start, then `--scrapes` more, `--gap` seconds apart.
`--encodings` says how each scrape asks, in turn: `gzip` as Prometheus does
(`Accept-Encoding: gzip`), `identity` as a plain curl does (no Accept-Encoding).
Each scrape is made by curl (which must be installed), in its own process: a body
read here would hold up the probe. During every scrape this process (on CPU 1)
asks `/healthz` every 10 ms over its own connection and keeps each answer's
latency; the same probe for `IDLE_SECONDS` before the first scrape, with no scrape
running, is the run's baseline.
Afterwards the simulator's request times give each poll's lateness: a poll is due
one interval after the org's previous one started (the scheduler's rule), so
lateness is the gap between an org's two requests minus the interval. Polls due
during a scrape are reported apart from the others. Everything listens on
127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.run import Sim, cpu_seconds, rss_mb, start_daemons, wait_ready
from bench.simserver import pin_to_cpu
from collector.petra_simulator import bench_orgs, write_bench_config

PROBE_EVERY_SECONDS = 0.01
PROBE_CPU = 1  # with the simulator: the probe must not take the daemon's CPU
IDLE_SECONDS = 5.0  # the baseline: /healthz probed with no scrape running
ENCODINGS = {"gzip": {"Accept-Encoding": "gzip"}, "identity": {}}


@dataclass
class ScrapeFigures:
    wall_seconds: float
    cpu_seconds: float
    body_bytes: int
    probes: int
    probe_p50_ms: float
    probe_p99_ms: float
    probe_max_ms: float
    start: float = 0.0  # CLOCK_MONOTONIC, as the simulator's request times
    end: float = 0.0
    rss_mb: float = 0.0  # the daemon's, just after the scrape
    encoding: str = "gzip"  # how the scrape asked (ENCODINGS); runs before it was asked gzip


@dataclass
class StallRun:
    orgs: int
    tenants: int
    interval: float
    first: ScrapeFigures | None = None
    later: list[ScrapeFigures] = field(default_factory=list)
    late_during_scrapes_ms: dict[str, float] = field(default_factory=dict)
    late_otherwise_ms: dict[str, float] = field(default_factory=dict)
    rss_mb_after_first_scrape: float = 0.0
    rss_mb_end: float = 0.0
    idle_probe_ms: dict[str, float] = field(default_factory=dict)  # no scrape running


def quantiles(values: list[float]) -> dict[str, float]:
    """p50 / p99 / max (and the count) of `values`, rounded for the table."""
    if not values:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(ordered[len(ordered) // 2], 2),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max": round(ordered[-1], 2),
    }


async def probe(port: int, stop: asyncio.Event, latencies: list[float]) -> None:
    """GET /healthz every PROBE_EVERY_SECONDS until `stop`; each answer's latency (s)."""
    connector = aiohttp.TCPConnector(limit=1)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        url = f"http://127.0.0.1:{port}/healthz"
        next_at = time.monotonic()
        while not stop.is_set():
            sent = time.monotonic()
            async with session.get(url) as response:
                await response.read()
            latencies.append(time.monotonic() - sent)
            next_at = max(next_at + PROBE_EVERY_SECONDS, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())


async def idle_probe(port: int) -> dict[str, float]:
    """`/healthz` latency (ms) over IDLE_SECONDS with no scrape: what a scrape adds to."""
    latencies: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(port, stop, latencies))
    await asyncio.sleep(IDLE_SECONDS)
    stop.set()
    await prober
    return quantiles([1000 * latency for latency in latencies])


async def curl_scrape(port: int, encoding: str) -> int:
    """One `/metrics` scrape by curl asking `encoding` (ENCODINGS), the body thrown
    away; its size. curl runs in its own process: reading 140 MB of plain text in
    this one would hold up the probe's own event loop and count as the daemon's."""
    command = ["curl", "--silent", "--show-error", "--fail", "--noproxy", "*"]
    command += [
        "--output",
        "/dev/null",
        "--write-out",
        "%{size_download} %header{content-encoding}",
    ]
    for name, value in ENCODINGS[encoding].items():
        command += ["--header", f"{name}: {value}"]
    command.append(f"http://127.0.0.1:{port}/metrics")
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    size, _, got = out.decode().partition(" ")
    if process.returncode != 0 or (got or "identity") != encoding:
        raise RuntimeError(f"curl exited with {process.returncode}; asked {encoding}, got {got!r}")
    return int(size)


async def scrape_probed(port: int, pid: int, encoding: str) -> ScrapeFigures:
    """One text scrape asking `encoding` (ENCODINGS), `/healthz` probed all along."""
    latencies: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(port, stop, latencies))
    await asyncio.sleep(0.05)  # the probe's connection is open before the scrape begins
    cpu0, start = cpu_seconds(pid), time.monotonic()
    body_bytes = await curl_scrape(port, encoding)
    end = time.monotonic()
    stop.set()
    await prober
    await asyncio.sleep(0.05)  # the last CPU tick accounted
    cpu1 = cpu_seconds(pid)
    rss = round(rss_mb(pid), 1)
    ms = quantiles([1000 * latency for latency in latencies])
    return ScrapeFigures(
        round(end - start, 3),
        round(cpu1 - cpu0, 2),
        body_bytes,
        len(latencies),
        ms["p50"],
        ms["p99"],
        ms["max"],
        start,
        end,
        rss,
        encoding,
    )


def lateness(
    times: list[list[float]], interval: float, windows: list[tuple[float, float]]
) -> tuple[list[float], list[float]]:
    """Each poll's lateness (ms), split into polls due within a scrape window and others."""
    during: list[float] = []
    otherwise: list[float] = []
    for org_times in times:
        for previous, current in itertools.pairwise(org_times):
            due = previous + interval
            late = 1000 * (current - due)
            if any(start <= due <= end for start, end in windows):
                during.append(late)
            else:
                otherwise.append(late)
    return during, otherwise


async def one_run(args: argparse.Namespace, workdir: Path) -> StallRun:
    run = StallRun(args.orgs, args.tenants, args.interval)
    sim = Sim(args.orgs, args.tenants, max_seconds=args.interval * 3 + 600)
    polling = {
        "max_requests_per_second": max(20.0, round(2 * args.orgs / args.interval)),
        "concurrency": 32,
        "requests_per_minute_per_key": 5,
        "max_staleness_seconds": 3600,
    }
    config = write_bench_config(
        bench_orgs(args.orgs, 0), workdir, sim.url, int(args.interval), polling=polling
    )
    daemon_args = argparse.Namespace(orgs=args.orgs, shards=1)
    (daemon,) = start_daemons(config, daemon_args, workdir)
    pid = daemon.process.pid
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
            await wait_ready(http, daemon, 300)
            deadline = time.monotonic() + args.interval + 60
            while (await sim.stats(http))["requests"] < args.orgs:
                if time.monotonic() > deadline:
                    raise RuntimeError("not every org was polled within an interval")
                await asyncio.sleep(1)
            run.idle_probe_ms = await idle_probe(daemon.port)
            _log(f"every org polled once; RSS {rss_mb(pid):.0f} MB; idle {run.idle_probe_ms}")
            encodings = itertools.cycle(args.encodings)
            run.first = await scrape_probed(daemon.port, pid, next(encodings))
            run.rss_mb_after_first_scrape = round(rss_mb(pid), 1)
            _log(f"first scrape: {run.first}")
            for _ in range(args.scrapes):
                await asyncio.sleep(args.gap)
                run.later.append(await scrape_probed(daemon.port, pid, next(encodings)))
                _log(f"later scrape: {run.later[-1]}")
            await asyncio.sleep(5)  # polls due in the last scrape have happened
            run.rss_mb_end = round(rss_mb(pid), 1)
            async with http.get(sim.url + "/_bench/stats?times=1") as response:
                data: dict[str, Any] = await response.json()
    finally:
        daemon.process.terminate()
        daemon.process.wait(timeout=30)
        sim.stop()
    scrapes = [run.first, *run.later] if run.first else run.later
    windows = [(s.start, s.end) for s in scrapes]
    during, otherwise = lateness(data["times"], args.interval, windows)
    run.late_during_scrapes_ms = quantiles(during)
    run.late_otherwise_ms = quantiles(otherwise)
    return run


def _log(message: str) -> None:
    print(f"[stall {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def summary(runs: list[StallRun]) -> list[str]:
    """Median (min-max) over the runs of every figure, as table rows."""

    def row(name: str, values: list[float], unit: str, goal: str, ok: bool | None) -> str:
        median = statistics.median(values)
        spread = f"{min(values):g}-{max(values):g}"
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        return f"| {name} | {median:g} {unit} ({spread}) | {goal} | {verdict} |"

    rows = [
        f"orgs={runs[0].orgs} tenants={runs[0].tenants} runs={len(runs)}: median (min-max)",
        "| figure | value | goal | |",
        "|---|---|---|---|",
    ]
    idle = [r.idle_probe_ms for r in runs if r.idle_probe_ms]
    if idle:
        for key in ("p99", "max"):
            values = [figures[key] for figures in idle]
            rows.append(row(f"/healthz with no scrape (baseline): {key}", values, "ms", "", None))
    for encoding in ENCODINGS:
        rows += _scrape_rows(runs, encoding, row)
    for key in ("p50", "p99", "max"):
        values = [r.late_during_scrapes_ms[key] for r in runs]
        rows.append(row(f"poll lateness, due during scrapes: {key}", values, "ms", "", None))
    for key in ("p50", "p99", "max"):
        values = [r.late_otherwise_ms[key] for r in runs]
        rows.append(row(f"poll lateness, other polls: {key}", values, "ms", "", None))
    rss = [r.rss_mb_after_first_scrape for r in runs]
    rows.append(row("RSS after the first scrape", rss, "MB", "", None))
    if any(r.later for r in runs):  # flat is the goal (fragments of a render settle)
        growth = [
            max(s.rss_mb for s in r.later) - r.rss_mb_after_first_scrape for r in runs if r.later
        ]
        rows.append(row("RSS growth after the first scrape (max)", growth, "MB", "", None))
    return rows


def _scrape_rows(
    runs: list[StallRun],
    encoding: str,
    row: Callable[[str, list[float], str, str, bool | None], str],
) -> list[str]:
    """The rows of the scrapes that asked `encoding`: times, and `/healthz` meanwhile."""
    firsts = [r.first for r in runs if r.first and r.first.encoding == encoding]
    later_by_run = [[s for s in r.later if s.encoding == encoding] for r in runs]
    later = [s for scrapes in later_by_run for s in scrapes]
    rows = []
    timed = encoding == "gzip"  # issue 13's time goals are Prometheus' scrapes'
    if firsts:
        first_wall = [s.wall_seconds for s in firsts]
        ok = max(first_wall) <= 5 if timed else None
        goal = "<= 5 s" if timed else ""
        rows.append(row(f"first scrape ({encoding}), wall", first_wall, "s", goal, ok))
        first_cpu = [s.cpu_seconds for s in firsts]
        rows.append(row(f"first scrape ({encoding}), CPU", first_cpu, "s", "", None))
    if later:
        slowest_by_run = [
            max(s.wall_seconds for s in scrapes) for scrapes in later_by_run if scrapes
        ]
        ok = max(slowest_by_run) <= 0.5 if timed else None
        name = f"slowest later scrape ({encoding}), wall"
        rows.append(row(name, slowest_by_run, "s", "<= 0.5 s" if timed else "", ok))
        later_cpu = [s.cpu_seconds for s in later]
        rows.append(row(f"later scrape ({encoding}), CPU", later_cpu, "s", "", None))
        sizes = [s.body_bytes / 1e6 for s in later]
        rows.append(row(f"later scrape ({encoding}), body", sizes, "MB", "", None))
    for name, scrapes in (
        (f"first scrape ({encoding})", firsts),
        (f"later scrapes ({encoding})", later),
    ):
        if scrapes:
            worst = [s.probe_max_ms for s in scrapes]
            p99 = [s.probe_p99_ms for s in scrapes]
            ok = max(worst) <= 100
            rows.append(row(f"/healthz during {name}: max", worst, "ms", "<= 100 ms", ok))
            rows.append(row(f"/healthz during {name}: p99", p99, "ms", "", None))
    return rows


async def main_async(args: argparse.Namespace) -> list[StallRun]:
    runs = []
    for index in range(args.runs):
        _log(f"run {index + 1} of {args.runs}: {args.orgs} orgs x {args.tenants} tenants")
        with tempfile.TemporaryDirectory(prefix="petra-stall-") as workdir:
            runs.append(await one_run(args, Path(workdir)))
        if args.json is not None:
            with args.json.open("a") as out:
                out.write(json.dumps(asdict(runs[-1])) + "\n")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--interval", type=float, default=60.0, help="polling interval, s")
    parser.add_argument("--scrapes", type=int, default=3, help="scrapes after the first")
    parser.add_argument("--gap", type=float, default=15.0, help="seconds between scrapes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--encodings",
        nargs="+",
        choices=sorted(ENCODINGS),
        default=["gzip"],
        help="how the scrapes ask, in turn: gzip (as Prometheus), identity (as a plain curl)",
    )
    parser.add_argument("--json", type=Path, help="append each run as one JSON line here")
    parser.add_argument("--report", type=Path, help="summarize earlier --json runs; run nothing")
    args = parser.parse_args()
    if args.report is not None:
        lines = [line for line in args.report.read_text().splitlines() if line.strip()]
        runs = [_from_json(json.loads(line)) for line in lines]
    else:
        pin_to_cpu(PROBE_CPU)
        runs = asyncio.run(main_async(args))
    print("\n".join(summary(runs)))


def _from_json(data: dict[str, Any]) -> StallRun:
    first = ScrapeFigures(**data.pop("first")) if data.get("first") else None
    later = [ScrapeFigures(**s) for s in data.pop("later")]
    return StallRun(**data, first=first, later=later)


if __name__ == "__main__":
    main()
