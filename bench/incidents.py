"""What polling incidents costs: daemon CPU per org with incidents off and on.

    python -m bench.incidents --orgs 1000 --interval 30 --seconds 60

Starts the simulator in its own process (bench/simserver.py, pinned to CPU 1),
then runs the daemon (`python -m collector run`, pinned to CPU 0) twice on the
same generated orgs: once with incidents off, once with `incidents.enabled` at
the same interval as usage. After one interval of warm-up, CPU (utime + stime
from /proc) and the simulator's request counts per route are measured for
`--seconds`. Prints the CPU per org per hour at the measured interval and
scaled to the defaults (300 s on each route), the extra CPU per org that
incidents add, and the requests per key per minute each route used (measured,
and at the defaults). Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from bench.run import Sim, aligned, append_json_line, measure_daemon
from collector.config import IncidentsSettings, PollingSettings
from collector.petra_simulator import bench_orgs, write_bench_config

DEFAULT_INTERVAL = PollingSettings().interval_seconds
DEFAULT_INCIDENTS_INTERVAL = IncidentsSettings().interval_seconds


@dataclass
class Mode:
    incidents: bool
    cpu_seconds: float
    seconds: float
    usage_requests: int
    incident_requests: int


@dataclass
class Figures:
    orgs: int
    tenants: int
    incidents_per_org: int
    interval: float
    off: Mode
    on: Mode
    cpu_ms_per_org_hour_off: float
    cpu_ms_per_org_hour_on: float
    extra_cpu_ms_per_org_hour: float
    extra_cpu_ms_per_incidents_poll: float
    extra_cpu_ms_per_org_hour_at_defaults: float
    usage_requests_per_key_minute: float
    incident_requests_per_key_minute: float
    usage_requests_per_key_minute_at_defaults: float
    incident_requests_per_key_minute_at_defaults: float


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def measure(
    sim: Sim, http: aiohttp.ClientSession, args: argparse.Namespace, *, incidents: bool
) -> Mode:
    workdir = Path(tempfile.mkdtemp(prefix="petra-bench-incidents-"))
    interval = int(args.interval)
    polling = {
        "max_requests_per_second": 4 * args.orgs / args.interval,
        "concurrency": 32,
        "requests_per_minute_per_key": max(5, 120 / args.interval),
        "max_staleness_seconds": 3600,
    }
    config = write_bench_config(
        bench_orgs(args.orgs, args.tenants, args.incidents),
        workdir,
        sim.url,
        interval,
        polling=polling,
        incidents_interval_seconds=interval if incidents else None,
    )
    _log(f"incidents {'on' if incidents else 'off'}: warming up for {args.interval:g} s")
    window = await measure_daemon(sim, http, config, warm_up=args.interval, seconds=args.seconds)
    mode = Mode(
        incidents,
        window.cpu_seconds,
        window.seconds,
        window.requests(),
        window.requests("incident_requests"),
    )
    _log(f"incidents {'on' if incidents else 'off'}: {mode}")
    return mode


def figures(args: argparse.Namespace, off: Mode, on: Mode) -> Figures:
    orgs = int(args.orgs)

    def per_org_hour(mode: Mode) -> float:
        return 1000 * mode.cpu_seconds / mode.seconds * 3600 / orgs

    extra_per_hour = per_org_hour(on) - per_org_hour(off)
    incident_polls_per_org_hour = 3600 / args.interval
    extra_per_poll = extra_per_hour / incident_polls_per_org_hour
    return Figures(
        orgs=args.orgs,
        tenants=args.tenants,
        incidents_per_org=args.incidents,
        interval=args.interval,
        off=off,
        on=on,
        cpu_ms_per_org_hour_off=round(per_org_hour(off), 2),
        cpu_ms_per_org_hour_on=round(per_org_hour(on), 2),
        extra_cpu_ms_per_org_hour=round(extra_per_hour, 2),
        extra_cpu_ms_per_incidents_poll=round(extra_per_poll, 3),
        extra_cpu_ms_per_org_hour_at_defaults=round(
            extra_per_poll * 3600 / DEFAULT_INCIDENTS_INTERVAL, 2
        ),
        usage_requests_per_key_minute=round(on.usage_requests / args.orgs / on.seconds * 60, 3),
        incident_requests_per_key_minute=round(
            on.incident_requests / args.orgs / on.seconds * 60, 3
        ),
        usage_requests_per_key_minute_at_defaults=60 / DEFAULT_INTERVAL,
        incident_requests_per_key_minute_at_defaults=60 / DEFAULT_INCIDENTS_INTERVAL,
    )


def report(result: Figures) -> str:
    rows = [
        (
            "orgs x tenants, incidents per org",
            f"{result.orgs} x {result.tenants}, {result.incidents_per_org}",
        ),
        ("interval (both routes)", f"{result.interval:g} s"),
        ("daemon CPU per org per hour, incidents off", f"{result.cpu_ms_per_org_hour_off} ms"),
        ("daemon CPU per org per hour, incidents on", f"{result.cpu_ms_per_org_hour_on} ms"),
        ("extra CPU per incidents poll", f"{result.extra_cpu_ms_per_incidents_poll} ms"),
        (
            "extra CPU per org per hour at 300 s",
            f"{result.extra_cpu_ms_per_org_hour_at_defaults} ms",
        ),
        (
            "requests per key per minute (measured): usage, incidents",
            f"{result.usage_requests_per_key_minute}, {result.incident_requests_per_key_minute}",
        ),
        (
            "requests per key per minute at the defaults: usage, incidents",
            (
                f"{result.usage_requests_per_key_minute_at_defaults:g}, "
                f"{result.incident_requests_per_key_minute_at_defaults:g}"
            ),
        ),
    ]
    return aligned(rows)


async def main_async(args: argparse.Namespace) -> Figures:
    max_seconds = 2 * (args.interval + args.seconds) + 240
    sim = Sim(args.orgs, args.tenants, max_seconds, incidents=args.incidents)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            off = await measure(sim, http, args, incidents=False)
            on = await measure(sim, http, args, incidents=True)
    finally:
        sim.stop()
    return figures(args, off, on)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--incidents", type=int, default=5, help="incidents per org")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds, both routes")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, per mode")
    parser.add_argument("--json", type=Path, help="append the figures as one JSON line")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(report(result))
    if args.json is not None:
        append_json_line(args.json, asdict(result))


if __name__ == "__main__":
    main()
