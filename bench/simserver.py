"""The simulator in its own process, with request-rate statistics for the benchmark.

`python -m bench.simserver --orgs N --tenants T` prints the bound port on stdout,
then serves `collector.petra_simulator.Simulator` on 127.0.0.1 plus `GET /_bench/stats`:
per-second request counts (CLOCK_MONOTONIC, which every process on the machine
shares) and each org's first request time. With `--tls-dir DIR` it serves HTTPS,
with a throwaway CA whose certificate it writes to DIR/ca.pem. Stops on SIGTERM/SIGINT, or by itself
after `--max-seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
import sys
from collections import Counter
from pathlib import Path

import orjson
from aiohttp import web

from collector.petra_simulator import Simulator, bench_orgs


def pin_to_cpu(cpu: int) -> None:
    """Run this process on one CPU only, where the platform allows it."""
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})


def stats(
    sim: Simulator, names: list[str], detail: bool, since: float, with_times: bool = False
) -> dict[str, object]:
    """Requests in all and per org; with `detail`, per whole second and first times too,
    counting only requests at or after `since` (CLOCK_MONOTONIC); with `with_times`, every
    request's time, per org."""
    counts = [sim.request_count(name) for name in names]
    incidents = sum(sim.request_count(name, "incidents") for name in names)
    billing = sum(sim.request_count(name, "billable_users") for name in names)
    result: dict[str, object] = {
        "requests": sum(counts),
        "counts": counts,
        "incident_requests": incidents,
        "billing_requests": billing,
    }
    if with_times:
        result["times"] = [sim.request_times(name) for name in names]
    if detail:
        per_second: Counter[int] = Counter()
        first: list[float] = []
        for name in names:
            times = [t for t in sim.request_times(name) if t >= since]
            if times:
                first.append(times[0])
            per_second.update(int(t) for t in times)
        result["first_times"] = first
        result["per_second"] = sorted(per_second.items())
    return result


def tls_context(directory: Path) -> ssl.SSLContext:
    """A throwaway CA (its certificate written to `directory`/ca.pem, for clients to
    trust) and a server certificate for 127.0.0.1 signed by it."""
    import trustme  # noqa: PLC0415 - a dev dependency, needed only with --tls-dir

    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(directory / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


async def serve(
    orgs: int,
    tenants: int,
    max_seconds: float,
    incidents: int = 3,
    tls: Path | None = None,
    *,
    drift: bool = False,
    drift_share: float = 1.0,
) -> None:
    simulated = bench_orgs(orgs, tenants, incidents)
    names = [org.name for org in simulated]
    # Every n-th org, for a share of 1/n: spread over the fleet and the same in every run.
    drifting = None if drift_share >= 1 else names[:: round(1 / drift_share)]
    sim = Simulator(simulated, drift=drift, drifting=drifting)

    async def bench_stats(request: web.Request) -> web.Response:
        detail = request.query.get("detail") == "1"
        since = float(request.query.get("since", "0"))
        times = request.query.get("times") == "1"
        body = orjson.dumps(stats(sim, names, detail, since, times))
        return web.Response(body=body, content_type="application/json")

    app = sim.make_app()
    app.router.add_get("/_bench/stats", bench_stats)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
    await runner.setup()
    context = tls_context(tls) if tls is not None else None
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    port = int(runner.addresses[0][1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(port, flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    except TimeoutError:
        print("simserver: --max-seconds reached, stopping", file=sys.stderr)
    finally:
        await runner.cleanup()


def _share(text: str) -> float:
    share = float(text)
    if not 0 < share <= 1:
        raise argparse.ArgumentTypeError(f"{text}: a share is above 0 and at most 1")
    return share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orgs", type=int, required=True)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--cpu", type=int, default=1, help="CPU to pin to (-1: do not pin)")
    parser.add_argument("--incidents", type=int, default=3, help="incidents per org")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument(
        "--tls-dir", type=Path, help="serve HTTPS; the CA's certificate goes to DIR/ca.pem"
    )
    parser.add_argument(
        "--drift", action="store_true", help="tenants' billable counts move at every answer"
    )
    parser.add_argument(
        "--drift-share",
        type=_share,
        default=1.0,
        help="with --drift, the share of orgs whose answers move (0.03: every 33rd org)",
    )
    args = parser.parse_args()
    if args.cpu >= 0:
        pin_to_cpu(args.cpu)
    main_task = serve(
        args.orgs,
        args.tenants,
        args.max_seconds,
        args.incidents,
        args.tls_dir,
        drift=args.drift,
        drift_share=args.drift_share,
    )
    try:
        import uvloop  # noqa: PLC0415 - optional: a faster server leaves the bench less noisy
    except ImportError:
        asyncio.run(main_task)
    else:
        uvloop.run(main_task)


if __name__ == "__main__":
    main()
