"""The key file watch alone: its CPU while nothing changes, and how soon a rotation is seen.

    python -m bench.keywatch --orgs 2000 --seconds 20 --runs 3 --rotations 5

A scheduler of `--orgs` orgs, each with its own key file (100 to a directory), runs
only its key file watch (no polling) on uvloop where installed. Each run reads
`time.process_time()` over `--seconds` with no file changing; then `--rotations` key
files are replaced one after another (a new file moved over the old), each timed from
the `rename` to the org showing the new key's fingerprint. Prints one JSON line per
run and a summary: median and spread (min to max). Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import structlog

from collector.apikey import ApiKey
from collector.config import OrgConfig, PollingSettings
from collector.keys import KeySource
from collector.petra_billing import BillingReport
from collector.petra_incidents import IncidentsReport
from collector.petra_usage import UsageReport
from collector.routes import Sections
from collector.scheduler import Scheduler

try:
    import uvloop
except ImportError:  # the daemon's fallback loop then: asyncio's own
    uvloop = None  # type: ignore[assignment]

POLLING = PollingSettings(interval_seconds=86_400.0)
PER_DIRECTORY = 100


def key_of(org: int, generation: int) -> str:
    return f"petra_bench_key_{org:06d}_{generation:04d}_padding"


def make_orgs(root: Path, count: int) -> list[OrgConfig]:
    orgs = []
    for org in range(count):
        directory = root / f"d{org // PER_DIRECTORY:03d}"
        directory.mkdir(exist_ok=True)
        path = directory / f"org{org}"
        path.write_text(key_of(org, 0))
        path.chmod(0o600)
        source = KeySource("file", str(path))
        orgs.append(OrgConfig(f"org{org}", source, POLLING.interval_seconds, source.load()))
    return orgs


@dataclass(frozen=True)
class Run:
    orgs: int
    seconds: float
    idle_cpu_percent: float
    rotation_noticed_seconds: list[float]


async def one_run(root: Path, count: int, seconds: float, rotations: int) -> Run:
    orgs = make_orgs(root, count)
    scheduler = Scheduler(_NoFetcher(), Sections(POLLING))
    scheduler.apply(orgs, Sections(POLLING))
    watching = asyncio.create_task(scheduler._watch_key_files())  # noqa: SLF001 - the watch alone
    await asyncio.sleep(1.0)  # set up; not counted
    cpu = time.process_time()
    await asyncio.sleep(seconds)
    idle_cpu = time.process_time() - cpu
    noticed = []
    for rotation in range(rotations):
        org = (rotation * 797) % count  # spread over the directories and the sweep's order
        path = Path(orgs[org].key_source.location)
        new = key_of(org, rotation + 1)
        staged = path.with_name(f".{path.name}.new")
        staged.write_text(new)
        staged.chmod(0o600)
        started = time.monotonic()
        staged.replace(path)
        await _until(partial(_shows, scheduler, f"org{org}", new))
        noticed.append(time.monotonic() - started)
    watching.cancel()
    await asyncio.gather(watching, return_exceptions=True)
    return Run(
        orgs=count,
        seconds=seconds,
        idle_cpu_percent=round(100 * idle_cpu / seconds, 3),
        rotation_noticed_seconds=[round(each, 4) for each in noticed],
    )


def _shows(scheduler: Scheduler, org: str, key: str) -> bool:
    state = scheduler.state(org)
    return state is not None and state.key_fingerprint == ApiKey(key).fingerprint


async def _until(check: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("a rotation was not noticed within a minute")
        await asyncio.sleep(0.001)


class _NoFetcher:
    """Nothing is polled: the orgs' first polls are a day away."""

    async def fetch_usage(self, key: ApiKey, previous: UsageReport | None = None) -> UsageReport:
        raise AssertionError((key, previous))

    async def fetch_incidents(
        self, key: ApiKey, *, start_date: str, limit: int = 100, tenant_id: str | None = None
    ) -> IncidentsReport:
        raise AssertionError((key, start_date, limit, tenant_id))

    async def fetch_billing(self, key: ApiKey, *, tenant_id: str) -> BillingReport:
        raise AssertionError((key, tenant_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rotations", type=int, default=5)
    args = parser.parse_args()
    # `key_reloaded` lines would drown the results; a `key_watch_degraded` one still shows.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as root:
            loop_factory = uvloop.new_event_loop if uvloop is not None else None
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                result = runner.run(one_run(Path(root), args.orgs, args.seconds, args.rotations))
        print(json.dumps(asdict(result)))
        results.append(result)
    cpu = [each.idle_cpu_percent for each in results]
    noticed = [one for each in results for one in each.rotation_noticed_seconds]
    print(
        json.dumps(
            {
                "idle_cpu_percent_median": statistics.median(cpu),
                "idle_cpu_percent_spread": [min(cpu), max(cpu)],
                "rotation_noticed_seconds_median": round(statistics.median(noticed), 4),
                "rotation_noticed_seconds_spread": [min(noticed), max(noticed)],
            }
        )
    )


if __name__ == "__main__":
    main()
