"""CPU per successful poll: the daemon against the raw aiohttp + orjson loop, side by side.

    python -m bench.pollcost --orgs 2000 10000 --tenants 10 100 --tls --runs 3

For each size, one simulator (pinned to CPU 1) serves 2N orgs; the daemon
(`python -m collector run`) polls the first N, the baseline (bench/baseline.py)
the other N, at the same rate (`--rate` polls per second each) and concurrency
(plain HTTP unless `--tls`),
both pinned to CPU 0 and running at the same time, so the machine's noise hits
both alike. With `--tls` the simulator serves HTTPS with a throwaway CA, trusted by
both through SSL_CERT_FILE (aiohttp's default context reads it), so handshakes
and session reuse count; with `--state-file` the daemon keeps one (at its default
write delay). After the daemon's first round (one interval), CPU
(utime + stime from /proc) and successful polls (the simulator's counts per org)
are taken over `--windows` windows of `--window` seconds each; the ratio of the
two CPU-per-poll figures in each window is the result. With `--first-round`, one
more window covers both pollers' first round (from `FIRST_ROUND_SETTLE` seconds
after the raw loop started, so its Python start is not counted, to the end of the
daemon's first interval), where every answer is read anew; it is reported on its own
rows. Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.run import DAEMON_CPU, SIMULATOR_CPU, cpu_seconds, free_port, wait_ready
from bench.run import Daemon as DaemonProcess
from collector.petra_simulator import bench_orgs, write_bench_config

FIRST_ROUND_SETTLE = 2.0  # s after the raw loop's start: its imports done, polling


@dataclass
class Window:
    seconds: float
    daemon_polls: int
    daemon_cpu_ms_per_poll: float
    baseline_polls: int
    baseline_cpu_ms_per_poll: float
    first_round: bool = False  # the window of both pollers' first round (--first-round)

    @property
    def ratio(self) -> float:
        return self.daemon_cpu_ms_per_poll / self.baseline_cpu_ms_per_poll


@dataclass
class CostRun:
    orgs: int
    tenants: int
    tls: bool
    rate: float
    windows: list[Window] = field(default_factory=list)
    drift: bool = False  # the tenants changed at every answer


# Taken at a window's ends: daemon CPU s, raw loop CPU s, their polls, CLOCK_MONOTONIC.
Mark = tuple[float, float, int, int, float]


def _window(before: Mark, after: Mark, first_round: bool = False) -> Window:
    daemon_polls, baseline_polls = after[2] - before[2], after[3] - before[3]
    return Window(
        round(after[4] - before[4], 2),
        daemon_polls,
        round(1000 * (after[0] - before[0]) / max(1, daemon_polls), 4),
        baseline_polls,
        round(1000 * (after[1] - before[1]) / max(1, baseline_polls), 4),
        first_round,
    )


async def _measure(
    args: argparse.Namespace, interval: float, mark: Callable[[], Awaitable[Mark]]
) -> list[Window]:
    """The windows, from just after the raw loop's start (see the module's docstring)."""
    windows = []
    await asyncio.sleep(FIRST_ROUND_SETTLE)
    before = await mark()
    await asyncio.sleep(math.ceil(interval) + 10 - FIRST_ROUND_SETTLE)
    after = await mark()
    if args.first_round:
        windows.append(_window(before, after, first_round=True))
        _log(f"first round: {windows[-1]} ratio {windows[-1].ratio:.2f}")
    before = after
    for _ in range(args.windows):
        await asyncio.sleep(args.window)
        after = await mark()
        windows.append(_window(before, after))
        _log(f"window: {windows[-1]} ratio {windows[-1].ratio:.2f}")
        before = after
    return windows


def _log(message: str) -> None:
    print(f"[pollcost {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)  # noqa: S603 - our own modules
    os.sched_setaffinity(process.pid, {DAEMON_CPU})
    return process


async def one_run(args: argparse.Namespace, orgs: int, tenants: int, workdir: Path) -> CostRun:
    run = CostRun(orgs, tenants, args.tls, args.rate, drift=args.drift)
    interval = orgs / args.rate
    command = [sys.executable, "-m", "bench.simserver", "--orgs", str(2 * orgs)]
    command += ["--tenants", str(tenants), "--cpu", str(SIMULATOR_CPU), "--max-seconds", "1200"]
    if args.tls:
        command += ["--tls-dir", str(workdir)]
    if args.drift:
        command += ["--drift"]
    sim = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603, ASYNC220 - our own module; the bench waits for it anyway
    assert sim.stdout is not None
    port = int(sim.stdout.readline())
    url = f"{'https' if args.tls else 'http'}://127.0.0.1:{port}"
    env = dict(os.environ)
    if args.tls:
        env["SSL_CERT_FILE"] = str(workdir / "ca.pem")
    polling = {
        "max_requests_per_second": round(2 * args.rate),
        "concurrency": args.concurrency,
        "requests_per_minute_per_key": min(10, max(5, math.ceil(60 / interval) + 1)),
        "max_staleness_seconds": 3600,
    }
    config = write_bench_config(
        bench_orgs(orgs, 0), workdir, url, math.ceil(interval), polling=polling
    )
    if args.state_file:
        with config.open("a") as out:  # the daemon's defaults otherwise (write_delay_seconds)
            out.write(f"state:\n  path: {json.dumps(str(workdir / 'state.json'))}\n")
    listen = free_port()
    daemon = _start(
        [
            sys.executable,
            "-m",
            "collector",
            "run",
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{listen}",
        ],
        env,
        workdir / "daemon.log",
    )
    baseline: subprocess.Popen[bytes] | None = None
    stats_url = f"{url}/_bench/stats"
    connector = aiohttp.TCPConnector(ssl=False)  # the bench's own requests: no need to verify
    try:
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=120)
        ) as http:
            await wait_ready(http, DaemonProcess("-", listen, daemon, []), 300)
            seconds = math.ceil(interval) + 10 + args.windows * args.window + 30
            baseline = _start(
                [
                    sys.executable,
                    "-m",
                    "bench.baseline",
                    "--url",
                    url,
                    "--orgs",
                    str(orgs),
                    "--first",
                    str(orgs + 1),
                    "--rate",
                    str(args.rate),
                    "--seconds",
                    str(seconds),
                    "--concurrency",
                    str(args.concurrency),
                    "--cpu",
                    str(DAEMON_CPU),
                ],
                env,
                workdir / "baseline.log",
            )
            _log(f"{orgs} x {tenants}{' TLS' if args.tls else ''}: first round ({interval:.0f} s)")

            async def mark() -> Mark:
                async with http.get(stats_url) as response:
                    counts: list[int] = (await response.json())["counts"]
                return (
                    cpu_seconds(daemon.pid),
                    cpu_seconds(baseline.pid),
                    sum(counts[:orgs]),
                    sum(counts[orgs:]),
                    time.monotonic(),
                )

            run.windows = await _measure(args, interval, mark)
    finally:
        for process in (daemon, baseline):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
        sim.terminate()
        sim.wait(timeout=30)
    return run


def summary(runs: list[CostRun]) -> list[str]:
    rows = [
        (
            "| orgs x tenants | TLS | tenants change | daemon ms/poll | baseline ms/poll "
            "| ratio: median (min-max) | windows |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[int, int, bool, bool, bool], list[Window]] = {}
    for run in runs:
        for w in run.windows:
            key = (run.orgs, run.tenants, run.tls, run.drift, w.first_round)
            groups.setdefault(key, []).append(w)
    for (orgs, tenants, tls, drift, first_round), windows in sorted(groups.items()):
        ratios = [w.ratio for w in windows]
        daemon = statistics.median(w.daemon_cpu_ms_per_poll for w in windows)
        baseline = statistics.median(w.baseline_cpu_ms_per_poll for w in windows)
        rows.append(
            f"| {orgs} x {tenants}{', first round' if first_round else ''} "
            f"| {'yes' if tls else 'no'} "
            f"| {'every answer' if drift else 'no'} | {daemon:.3f} | {baseline:.3f} | "
            f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
            f"| {len(windows)} |"
        )
    return rows


async def main_async(args: argparse.Namespace) -> list[CostRun]:
    runs = []
    for index in range(args.runs):
        for orgs in args.orgs:
            for tenants in args.tenants:
                _log(f"run {index + 1} of {args.runs}")
                with tempfile.TemporaryDirectory(prefix="petra-pollcost-") as workdir:
                    runs.append(await one_run(args, orgs, tenants, Path(workdir)))
                if args.json is not None:
                    with args.json.open("a") as out:
                        out.write(json.dumps(asdict(runs[-1])) + "\n")
    return runs


def _from_json(data: dict[str, Any]) -> CostRun:
    windows = [Window(**w) for w in data.pop("windows")]
    return CostRun(**data, windows=windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--tenants", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--rate", type=float, default=200.0, help="polls per second, each")
    parser.add_argument("--tls", action="store_true", help="HTTPS to the simulator")
    parser.add_argument("--state-file", action="store_true", help="the daemon keeps a state file")
    parser.add_argument(
        "--drift",
        action="store_true",
        help="the simulator changes every org's tenants at every answer (nothing to reuse)",
    )
    parser.add_argument(
        "--first-round",
        action="store_true",
        help="one more window over both pollers' first round, reported apart",
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--window", type=float, default=20.0, help="seconds per window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="append each run as one JSON line here")
    parser.add_argument("--report", type=Path, help="summarize earlier --json runs; run nothing")
    args = parser.parse_args()
    if args.report is not None:
        lines = [line for line in args.report.read_text().splitlines() if line.strip()]
        runs = [_from_json(json.loads(line)) for line in lines]
    else:
        runs = asyncio.run(main_async(args))
    print("\n".join(summary(runs)))


if __name__ == "__main__":
    main()
