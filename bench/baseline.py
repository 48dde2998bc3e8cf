"""The baseline: the leanest poller we would write by hand, for comparison.

One aiohttp session with keep-alive, the same GET /v1/usage with the same headers
as the daemon, and `orjson.loads` of each answer, dropped (`--keep nothing`, the
bare loop issue 21 measures against) or with each tenant's fields kept as one tuple
per tenant, the latest per org, as the daemon keeps its report (`--keep tuples`);
on uvloop, the daemon's loop in the default install, or asyncio's own
(`--loop asyncio`, what `asyncio.run` gives). Requests are paced evenly at
`--rate` per second over the orgs in turn, with at most `--concurrency` in flight;
nothing else (no limits per key, no state, no metrics, no logs). Stops by itself
after `--seconds`. An https `--url` is verified against the default CA store
(`SSL_CERT_FILE` names the bench's throwaway CA), as the daemon's session does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp
import orjson
import uvloop

from bench.simserver import pin_to_cpu
from collector.petra_simulator import sim_key
from collector.petra_usage import TENANT_KEYS


async def poll_all(
    base_url: str, names: list[str], rate: float, seconds: float, limit: int, *, keep: bool
) -> int:
    url = base_url + "/v1/usage"
    keys = [sim_key(name) for name in names]
    latest: dict[int, list[tuple[object, ...]]] = {}
    slots = asyncio.Semaphore(limit)
    ok = 0

    async def poll(session: aiohttp.ClientSession, index: int) -> None:
        nonlocal ok
        headers = {
            "Authorization": "Bearer " + keys[index],
            "User-Agent": "petra-collector-bench-baseline",
            "Accept": "application/json",
        }
        async with slots, session.get(url, headers=headers, allow_redirects=False) as response:
            body = await response.read()
            if response.status != 200:
                return
        data = orjson.loads(body)
        if keep:
            latest[index] = [tuple(map(tenant.get, TENANT_KEYS)) for tenant in data["tenants"]]
        ok += 1

    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks: set[asyncio.Task[None]] = set()
        start = loop.time()
        sent = 0
        while (now := loop.time()) < start + seconds:
            due = start + sent / rate
            if due > now:
                await asyncio.sleep(due - now)
            task = loop.create_task(poll(session, sent % len(names)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        if tasks:
            await asyncio.wait(tasks, timeout=10)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--orgs", type=int, required=True)
    parser.add_argument("--first", type=int, default=1, help="number of the first org polled")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to (-1: do not pin)")
    parser.add_argument(
        "--keep",
        choices=("nothing", "tuples"),
        default="nothing",
        help="nothing: parse and drop each answer (the issue's bare loop); tuples: keep a "
        "tuple per tenant, the latest per org, as the daemon keeps its report",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="uvloop (the daemon's loop in the default install) or asyncio.run's own",
    )
    args = parser.parse_args()
    if args.cpu >= 0:
        pin_to_cpu(args.cpu)
    names = [f"org-{i:05d}" for i in range(args.first, args.first + args.orgs)]
    run = poll_all(
        args.url, names, args.rate, args.seconds, args.concurrency, keep=args.keep == "tuples"
    )
    ok = uvloop.run(run) if args.loop == "uvloop" else asyncio.run(run)
    print(ok, file=sys.stdout, flush=True)


if __name__ == "__main__":
    main()
