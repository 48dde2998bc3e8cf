"""Long-run stability: does anything grow while keys churn, configs reload and faults come and go?

    python -m bench.soak --duration 300

Starts the simulator (bench/simserver.py) in its own process and the daemon
(`python -m collector run`) on a generated config with fast polling, then for
`--duration` seconds keeps it busy: every few seconds one of key churn
(a key file replaced by a rejected key, later restored), a reload by SIGHUP
with a tenth of the orgs removed or added back, or an injected fault on some
orgs (503, hang, reset, 429, invalid JSON), later cleared. It samples the
daemon's resident memory (/proc/PID/status), open file descriptors
(/proc/PID/fd) and asyncio task count (petra_collector_asyncio_tasks), and
prints the figures after warm-up against the end. Stops by itself; 127.0.0.1
only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from collector.petra_simulator import bench_orgs, sim_key

FAULTS = (
    {"kind": "status", "status": 503, "message": "maintenance"},
    {"kind": "hang"},
    {"kind": "reset"},
    {"kind": "rate-limit", "retry_after_seconds": 3, "style": "seconds"},
    {"kind": "bad-body", "shape": "invalid-json"},
)
REJECTED_PREFIX = "petra_soak_rejected_"  # one rejected key per org: shared keys share a budget


@dataclass
class Sample:
    at: float
    rss_mb: float
    fds: int
    tasks: float
    polls: float


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def write_config(directory: Path, port: int, names: list[str], listen: int) -> Path:
    keys = directory / "keys"
    keys.mkdir(exist_ok=True)
    lines = [
        "api:",
        f"  base_url: http://127.0.0.1:{port}",
        "  timeout_seconds: 2",
        "polling:",
        "  interval_seconds: 5",
        "  requests_per_minute_per_key: 60",
        "  max_requests_per_second: 500",
        "  auth_failure_interval_seconds: 5",
        "server:",
        f"  listen: 127.0.0.1:{listen}",
        "orgs:",
    ]
    for name in names:
        key_file = keys / name
        if not key_file.exists():
            key_file.write_text(sim_key(name))
            key_file.chmod(0o600)  # readable by others, it would be warned about on every load
        lines += [f"  - name: {name}", f"    api_key_file: keys/{name}"]
    path = directory / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url) as response:
        text = await response.text()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("petra_collector_asyncio_tasks", "petra_api_requests_total"):
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


async def churn(
    step: int,
    *,
    rng: random.Random,
    directory: Path,
    names: list[str],
    pid: int,
    port: int,
    listen: int,
    http: aiohttp.ClientSession,
) -> str:
    """One disturbance; which one cycles with `step`."""
    kind = step % 3
    if kind == 0:
        # Every other time a key is rejected; in between, a rejected one is restored.
        key_dir = directory / "keys"
        rejected = sorted(
            p.name for p in key_dir.iterdir() if p.read_text().startswith(REJECTED_PREFIX)
        )
        bad = not rejected or step % 2 == 0
        victim = rng.choice(names) if bad else rejected[0]
        (key_dir / victim).write_text(REJECTED_PREFIX + victim if bad else sim_key(victim))
        return f"key of {victim} {'rejected' if bad else 'restored'}"
    if kind == 1:
        keep = names if step % 2 else names[: len(names) * 9 // 10]
        write_config(directory, port, keep, listen)
        os.kill(pid, signal.SIGHUP)
        return f"reload with {len(keep)} orgs"
    url = f"http://127.0.0.1:{port}/_sim/orgs"
    for victim in rng.sample(names, 5):
        fault = rng.choice(FAULTS)
        if rng.random() < 0.5:
            async with http.delete(f"{url}/{victim}/fault") as response:
                await response.read()
        else:
            async with http.post(f"{url}/{victim}/fault", json=fault) as response:
                await response.read()
    return "faults shuffled on 5 orgs"


async def soak(orgs: int, tenants: int, duration: float, sample_every: float) -> list[Sample]:
    directory = Path(tempfile.mkdtemp(prefix="petra-soak-"))
    simulator = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.simserver",
        "--orgs",
        str(orgs),
        "--tenants",
        str(tenants),
        "--max-seconds",
        str(duration + 60),
        stdout=asyncio.subprocess.PIPE,
    )
    assert simulator.stdout is not None
    port = int((await simulator.stdout.readline()).decode())
    names = [org.name for org in bench_orgs(orgs, tenants)]
    listen = _free_port()
    config = write_config(directory, port, names, listen)
    log_file = (directory / "collector.log").open("wb")
    daemon = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "collector",
        "run",
        "--config",
        str(config),
        stdout=log_file,
    )
    rng = random.Random(7)  # noqa: S311 - reproducible disturbances, not security
    samples: list[Sample] = []
    try:
        async with aiohttp.ClientSession() as http:
            metrics_url = f"http://127.0.0.1:{listen}/metrics"
            await _wait_up(http, metrics_url)
            started = time.monotonic()
            step = 0
            next_sample = started
            while (now := time.monotonic()) - started < duration:
                if daemon.returncode is not None:
                    raise SystemExit(f"the daemon exited with {daemon.returncode}")
                if now >= next_sample:
                    totals = await scrape(http, metrics_url)
                    samples.append(
                        Sample(
                            at=now - started,
                            rss_mb=rss_mb(daemon.pid),
                            fds=open_fds(daemon.pid),
                            tasks=totals.get("petra_collector_asyncio_tasks", 0.0),
                            polls=totals.get("petra_api_requests_total", 0.0),
                        )
                    )
                    next_sample += sample_every
                await churn(
                    step,
                    rng=rng,
                    directory=directory,
                    names=names,
                    pid=daemon.pid,
                    port=port,
                    listen=listen,
                    http=http,
                )
                step += 1
                await asyncio.sleep(2.0)
    finally:
        for process in (daemon, simulator):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await process.wait()
        log_file.close()
    if daemon.returncode != 0:
        raise SystemExit(f"the daemon stopped with exit code {daemon.returncode}")
    events = Counter(
        json.loads(line)["event"]
        for line in (directory / "collector.log").read_text().splitlines()
        if line.startswith("{")
    )
    print("log events:", dict(sorted(events.items())), file=sys.stderr)
    return samples


def _free_port() -> int:
    import socket  # noqa: PLC0415 - only needed here

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_up(http: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with http.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the daemon did not start serving within 30 s")


def report(samples: list[Sample], warmup: float) -> dict[str, float]:
    settled = [s for s in samples if s.at >= warmup] or samples
    first, last = settled[0], settled[-1]
    hours = max(last.at - first.at, 1.0) / 3600
    return {
        "seconds": round(last.at, 1),
        "polls": last.polls,
        "rss_mb_after_warmup": round(first.rss_mb, 1),
        "rss_mb_end": round(last.rss_mb, 1),
        "rss_mb_max": round(max(s.rss_mb for s in settled), 1),
        "rss_mb_growth_per_hour": round((last.rss_mb - first.rss_mb) / hours, 1),
        "fds_after_warmup": first.fds,
        "fds_end": last.fds,
        "fds_max": max(s.fds for s in settled),
        "tasks_after_warmup": first.tasks,
        "tasks_end": last.tasks,
        "tasks_max": max(s.tasks for s in settled),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orgs", type=int, default=300)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="seconds before the baseline sample (default 60)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    samples = asyncio.run(soak(args.orgs, args.tenants, args.duration, args.sample_every))
    figures = report(samples, min(args.warmup, args.duration / 3))
    print(f"{'seconds':>8} {'RSS MB':>8} {'fds':>5} {'tasks':>6} {'requests':>9}")
    for s in samples:
        print(f"{s.at:8.0f} {s.rss_mb:8.1f} {s.fds:5d} {s.tasks:6.0f} {s.polls:9.0f}")
    print()
    for name, number in figures.items():
        print(f"{name:>24}  {number}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
