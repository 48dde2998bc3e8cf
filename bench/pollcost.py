"""CPU per successful poll: the daemon against bare aiohttp + orjson loops, side by side.

    python -m bench.pollcost --orgs 2000 --tenants 10 --runs 3 [--tls]

For each size, one simulator (pinned to CPU 1) serves N orgs per poller; the daemon
(`python -m collector run`) polls the first N, each baseline (bench/baseline.py) its
own N, all at the same rate (`--rate` polls per second each) and concurrency, pinned
to CPU 0 and running at the same time, so the machine's noise hits them alike.
The baselines (`--baselines`): `bare` parses each answer with orjson and drops it, on
uvloop (the daemon's loop in the default install): the issue's bare loop, and the
ratio the goals are about; `bare-asyncio` the same on asyncio's own loop (what
`asyncio.run` gives a loop written by hand); `tuples` keeps a tuple per tenant, the
latest per org, as the daemon keeps its report (this benchmark's baseline until
issue 21). With `--tls` the simulator serves HTTPS with a throwaway CA, trusted by
all through SSL_CERT_FILE (aiohttp's default context reads it), so handshakes and
session reuse count; with `--state-file` the daemon keeps one (at its default write
delay); with `--drift` every answer's tenants change (nothing to reuse).

CPU (utime + stime from /proc) and successful polls (the simulator's counts per org)
are taken at the edges of: the first round (from `FIRST_ROUND_SETTLE` seconds after the
baselines started, so their Python start is not counted, to 10 s after the end of the
daemon's first interval), where every answer is read anew; then `--windows` windows of
`--window` seconds each. Rows: the whole run (first round included: the goal's
figure), the first round alone, and the windows after it (the median of their
ratios). Everything listens on 127.0.0.1 and stops by itself.
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

FIRST_ROUND_SETTLE = 2.0  # s after the baselines' start: their imports done, polling
# bench/baseline.py's --keep and --loop for each baseline this benchmark can run.
BASELINES = {
    "bare": ("nothing", "uvloop"),
    "bare-asyncio": ("nothing", "asyncio"),
    "tuples": ("tuples", "uvloop"),
}


@dataclass
class Figure:
    polls: int
    cpu_ms_per_poll: float


@dataclass
class Window:
    seconds: float
    daemon: Figure
    baselines: dict[str, Figure]
    first_round: bool = False  # the window of the pollers' first round

    def ratio(self, baseline: str) -> float:
        return self.daemon.cpu_ms_per_poll / self.baselines[baseline].cpu_ms_per_poll


@dataclass
class CostRun:
    orgs: int
    tenants: int
    tls: bool
    rate: float
    windows: list[Window] = field(default_factory=list)
    drift: bool = False  # the tenants changed at every answer

    def whole(self) -> Window:
        """Every window together: the run from the first round's start to its end."""
        names = self.windows[0].baselines
        return Window(
            sum(w.seconds for w in self.windows),
            _sum_figures([w.daemon for w in self.windows]),
            {name: _sum_figures([w.baselines[name] for w in self.windows]) for name in names},
        )


def _sum_figures(figures: list[Figure]) -> Figure:
    polls = sum(f.polls for f in figures)
    cpu_ms = sum(f.polls * f.cpu_ms_per_poll for f in figures)
    return Figure(polls, round(cpu_ms / max(1, polls), 4))


@dataclass
class Mark:
    """Taken at a window's ends: CPU s and polls of the daemon, then of each baseline."""

    cpu: list[float]
    polls: list[int]
    monotonic: float


def _figure(before: Mark, after: Mark, index: int) -> Figure:
    polls = after.polls[index] - before.polls[index]
    return Figure(polls, round(1000 * (after.cpu[index] - before.cpu[index]) / max(1, polls), 4))


def _window(names: list[str], before: Mark, after: Mark, first_round: bool = False) -> Window:
    return Window(
        round(after.monotonic - before.monotonic, 2),
        _figure(before, after, 0),
        {name: _figure(before, after, i + 1) for i, name in enumerate(names)},
        first_round,
    )


def _describe(window: Window) -> str:
    ratios = ", ".join(
        f"{name} {figure.cpu_ms_per_poll:.3f} ms ({window.ratio(name):.2f}x)"
        for name, figure in window.baselines.items()
    )
    return f"{window.seconds:.0f} s, daemon {window.daemon.cpu_ms_per_poll:.3f} ms/poll; {ratios}"


async def _measure(
    args: argparse.Namespace, interval: float, mark: Callable[[], Awaitable[Mark]]
) -> list[Window]:
    """The windows, from just after the baselines' start (see the module's docstring)."""
    await asyncio.sleep(FIRST_ROUND_SETTLE)
    before = await mark()
    await asyncio.sleep(math.ceil(interval) + 10 - FIRST_ROUND_SETTLE)
    after = await mark()
    windows = [_window(args.baselines, before, after, first_round=True)]
    _log(f"first round: {_describe(windows[-1])}")
    before = after
    for _ in range(args.windows):
        await asyncio.sleep(args.window)
        after = await mark()
        windows.append(_window(args.baselines, before, after))
        _log(f"window: {_describe(windows[-1])}")
        before = after
    return windows


def _log(message: str) -> None:
    print(f"[pollcost {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)  # noqa: S603 - our own modules
    os.sched_setaffinity(process.pid, {DAEMON_CPU})
    return process


def _baseline_command(args: argparse.Namespace, name: str, url: str, first: int) -> list[str]:
    keep, loop = BASELINES[name]
    interval = args.current_orgs / args.rate
    seconds = math.ceil(interval) + 10 + args.windows * args.window + 30
    return [
        sys.executable,
        "-m",
        "bench.baseline",
        *("--url", url, "--orgs", str(args.current_orgs), "--first", str(first)),
        *("--rate", str(args.rate), "--seconds", str(seconds)),
        *("--concurrency", str(args.concurrency), "--cpu", str(DAEMON_CPU)),
        *("--keep", keep, "--loop", loop),
    ]


async def one_run(args: argparse.Namespace, orgs: int, tenants: int, workdir: Path) -> CostRun:
    run = CostRun(orgs, tenants, args.tls, args.rate, drift=args.drift)
    interval = orgs / args.rate
    pollers = 1 + len(args.baselines)
    command = [sys.executable, "-m", "bench.simserver", "--orgs", str(pollers * orgs)]
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
            *(sys.executable, "-m", "collector", "run"),
            *("--config", str(config), "--listen", f"127.0.0.1:{listen}"),
        ],
        env,
        workdir / "daemon.log",
    )
    baselines: list[subprocess.Popen[bytes]] = []
    stats_url = f"{url}/_bench/stats"
    connector = aiohttp.TCPConnector(ssl=False)  # the bench's own requests: no need to verify
    args.current_orgs = orgs
    try:
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=120)
        ) as http:
            await wait_ready(http, DaemonProcess("-", listen, daemon, []), 300)
            for index, name in enumerate(args.baselines, start=1):
                command = _baseline_command(args, name, url, index * orgs + 1)
                baselines.append(_start(command, env, workdir / f"baseline-{name}.log"))
            _log(f"{orgs} x {tenants}{' TLS' if args.tls else ''}: first round ({interval:.0f} s)")
            pids = [daemon.pid] + [b.pid for b in baselines]

            async def mark() -> Mark:
                async with http.get(stats_url) as response:
                    counts: list[int] = (await response.json())["counts"]
                return Mark(
                    [cpu_seconds(pid) for pid in pids],
                    [sum(counts[i * orgs : (i + 1) * orgs]) for i in range(pollers)],
                    time.monotonic(),
                )

            run.windows = await _measure(args, interval, mark)
    finally:
        for process in (daemon, *baselines):
            process.terminate()
            process.wait(timeout=30)
        sim.terminate()
        sim.wait(timeout=30)
    return run


def _ratio_cell(windows: list[Window], baseline: str) -> str:
    ratios = [w.ratio(baseline) for w in windows]
    median = statistics.median(w.baselines[baseline].cpu_ms_per_poll for w in windows)
    return (
        f"{median:.3f} ms: **{statistics.median(ratios):.2f}x** "
        f"({min(ratios):.2f}-{max(ratios):.2f})"
    )


def summary(runs: list[CostRun]) -> list[str]:
    """One row per size, TLS, drift and part of the run (whole run, first round, after it),
    each baseline's median ms per poll and the daemon's ratio to it (median, range)."""
    names = sorted({n for run in runs for w in run.windows for n in w.baselines}, key=_order)
    rows = [
        "| orgs x tenants | TLS | tenants change | part | daemon ms/poll | "
        + " | ".join(f"{name}: ms/poll, ratio (range)" for name in names)
        + " | windows |",
        "|---|---|---|---|---|" + "---|" * len(names) + "---|",
    ]
    parts = ("whole run", "first round", "after the first round")
    groups: dict[tuple[int, int, bool, bool, int], list[Window]] = {}
    for run in runs:
        key = (run.orgs, run.tenants, run.tls, run.drift)
        if any(w.first_round for w in run.windows):
            groups.setdefault((*key, 0), []).append(run.whole())
        for w in run.windows:
            groups.setdefault((*key, 1 if w.first_round else 2), []).append(w)
    for (orgs, tenants, tls, drift, part), windows in sorted(groups.items()):
        daemon = statistics.median(w.daemon.cpu_ms_per_poll for w in windows)
        cells = [
            _ratio_cell(windows, name) if all(name in w.baselines for w in windows) else ""
            for name in names
        ]
        rows.append(
            f"| {orgs} x {tenants} | {'yes' if tls else 'no'} "
            f"| {'every answer' if drift else 'no'} | {parts[part]} | {daemon:.3f} | "
            + " | ".join(cells)
            + f" | {len(windows)} |"
        )
    return rows


def _order(name: str) -> int:
    return list(BASELINES).index(name) if name in BASELINES else len(BASELINES)


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
    """A run from a `--json` line; lines written before issue 21's several baselines had
    one (`baseline_polls`, `baseline_cpu_ms_per_poll`): the `tuples` loop."""
    windows = []
    for w in data.pop("windows"):
        if "baselines" in w:
            baselines = {name: Figure(**figure) for name, figure in w["baselines"].items()}
            daemon = Figure(**w["daemon"])
        else:
            baselines = {"tuples": Figure(w["baseline_polls"], w["baseline_cpu_ms_per_poll"])}
            daemon = Figure(w["daemon_polls"], w["daemon_cpu_ms_per_poll"])
        windows.append(Window(w["seconds"], daemon, baselines, w.get("first_round", False)))
    return CostRun(**data, windows=windows)


def _baseline_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BASELINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a comma-separated list of {', '.join(BASELINES)}"
        )
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, nargs="+", default=[2000])
    parser.add_argument("--tenants", type=int, nargs="+", default=[10])
    parser.add_argument("--rate", type=float, default=200.0, help="polls per second, each")
    parser.add_argument("--tls", action="store_true", help="HTTPS to the simulator")
    parser.add_argument("--state-file", action="store_true", help="the daemon keeps a state file")
    parser.add_argument(
        "--drift",
        action="store_true",
        help="the simulator changes every org's tenants at every answer (nothing to reuse)",
    )
    parser.add_argument(
        "--baselines",
        type=_baseline_names,
        default=["bare", "bare-asyncio"],
        help=f"comma-separated, run side by side: {', '.join(BASELINES)} (default: %(default)s)",
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
