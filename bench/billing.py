"""What asking /v1/billable-users costs: daemon CPU per billing request against a usage poll.

    python -m bench.billing --orgs 10000 --tenants 10 --interval 120 --rate 0.5 --seconds 60

Starts the simulator in its own process (bench/simserver.py, pinned to CPU 1),
then runs the daemon (`python -m collector run`, pinned to CPU 0) twice on the
same generated orgs: once with billing off, once with `billing.enabled` at
`--rate` requests per minute per key and an interval short enough that every
tenant is always due (so the route runs at its budget). After a warm-up of the
usage interval and one billing spacing, CPU (utime + stime from /proc) and the
simulator's request counts per route are measured for `--seconds`. Prints the
CPU per usage poll (billing off), the extra CPU per billing request (on minus
off, over the billing requests), and the requests each route made. Everything
listens on 127.0.0.1 and stops by itself.
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
from collector.petra_simulator import bench_orgs, write_bench_config


@dataclass
class Mode:
    billing: bool
    cpu_seconds: float
    seconds: float
    usage_requests: int
    billing_requests: int


@dataclass
class Figures:
    orgs: int
    tenants: int
    interval: float
    rate_per_key_minute: float
    off: Mode
    on: Mode
    cpu_ms_per_usage_poll: float
    extra_cpu_ms_per_billing_request: float
    billing_requests_per_second: float


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def measure(
    sim: Sim, http: aiohttp.ClientSession, args: argparse.Namespace, *, billing: bool
) -> Mode:
    workdir = Path(tempfile.mkdtemp(prefix="petra-bench-billing-"))
    interval = int(args.interval)
    spacing = 60 / args.rate
    polling = {
        "max_requests_per_second": 4 * args.orgs / args.interval + 2 * args.orgs / spacing,
        "concurrency": 64,
        "requests_per_minute_per_key": max(5, 120 / args.interval),
        "max_staleness_seconds": 3600,
    }
    # Every tenant always due: the route runs at its budget, one request per spacing.
    settings = {"interval_seconds": spacing, "requests_per_minute_per_key": args.rate}
    config = write_bench_config(
        bench_orgs(args.orgs, args.tenants),
        workdir,
        sim.url,
        interval,
        polling=polling,
        billing=settings if billing else None,
    )
    warm_up = args.interval + spacing
    _log(f"billing {'on' if billing else 'off'}: warming up for {warm_up:g} s")
    window = await measure_daemon(sim, http, config, warm_up=warm_up, seconds=args.seconds)
    mode = Mode(
        billing,
        window.cpu_seconds,
        window.seconds,
        window.requests(),
        window.requests("billing_requests"),
    )
    _log(f"billing {'on' if billing else 'off'}: {mode}")
    return mode


def figures(args: argparse.Namespace, off: Mode, on: Mode) -> Figures:
    per_usage_poll = 1000 * off.cpu_seconds / max(1, off.usage_requests)
    # On minus off, at the same usage rate: what the billing requests added.
    usage_cpu_on = per_usage_poll / 1000 * on.usage_requests
    extra = 1000 * (on.cpu_seconds - usage_cpu_on) / max(1, on.billing_requests)
    return Figures(
        orgs=args.orgs,
        tenants=args.tenants,
        interval=args.interval,
        rate_per_key_minute=args.rate,
        off=off,
        on=on,
        cpu_ms_per_usage_poll=round(per_usage_poll, 3),
        extra_cpu_ms_per_billing_request=round(extra, 3),
        billing_requests_per_second=round(on.billing_requests / on.seconds, 1),
    )


def report(result: Figures) -> str:
    rows = [
        ("orgs x tenants", f"{result.orgs} x {result.tenants}"),
        ("usage interval", f"{result.interval:g} s"),
        ("billing requests per minute per key", f"{result.rate_per_key_minute:g}"),
        ("daemon CPU per usage poll (billing off)", f"{result.cpu_ms_per_usage_poll} ms"),
        ("extra daemon CPU per billing request", f"{result.extra_cpu_ms_per_billing_request} ms"),
        ("billing requests per second (on)", f"{result.billing_requests_per_second}"),
        (
            "usage polls measured: off, on",
            f"{result.off.usage_requests}, {result.on.usage_requests}",
        ),
    ]
    return aligned(rows)


async def main_async(args: argparse.Namespace) -> Figures:
    spacing = 60 / args.rate
    max_seconds = 2 * (args.interval + spacing + args.seconds) + 600
    sim = Sim(args.orgs, args.tenants, max_seconds)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            off = await measure(sim, http, args, billing=False)
            on = await measure(sim, http, args, billing=True)
    finally:
        sim.stop()
    return figures(args, off, on)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=10000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--interval", type=float, default=120.0, help="usage, seconds")
    parser.add_argument("--rate", type=float, default=0.5, help="billing requests/min/key")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, per mode")
    parser.add_argument("--json", type=Path, help="append the figures as one JSON line")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(report(result))
    if args.json is not None:
        append_json_line(args.json, asdict(result))


if __name__ == "__main__":
    main()
