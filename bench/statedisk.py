"""Bytes of disk the state file costs per successful poll: this daemon against a baseline.

    python -m bench.statedisk --orgs 2000 --tenants 10 --rate 100 --runs 3   # ~25 min

In each run, for each share of changing orgs (`--changing`, default 0 and 3 %:
every 33rd org's answer moves at every poll, the simulator's drift), the
simulator and the real daemon (`python -m collector run`, a state file, the
default `write_delay_seconds`) polling `--orgs` orgs at `--rate` polls a
second; first the baseline, the daemon of `--baseline-rev` (a git revision of
this repository, unpacked with `git archive`: the whole-file writer before the
journal), then this checkout's. Once every org has been polled and one more
interval has passed, `--window` seconds are measured: the bytes the daemon
process dirtied (`write_bytes` of /proc/PID/io, counted as it dirties page
cache pages: what it costs the disk, whether or not another write covers the
page again before writeback) over the polls the simulator answered (all 200).

The journal also rewrites its file whole, after its appends have grown to
`COMPACT_RATIO` times the whole records: at 100 polls a second every quarter
of an hour or so, beyond a window. So its figure is the window's (appends)
plus the rewrite's share: the file's size after a rewrite over the polls
between two rewrites, which is the file's growth per poll over
`COMPACT_RATIO`. A window that holds a rewrite (the file's inode changed) is
taken as measured. The baseline's rewrites (one every few seconds) are all in
its window.

Prints one JSON object: every measurement, and per variant and share the
median and the spread (lowest, highest) over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from bench.run import free_port
from collector.petra_simulator import bench_orgs, write_bench_config
from collector.state_journal import COMPACT_RATIO

REPOSITORY = Path(__file__).resolve().parents[1]
BASELINE_REV = "ee9e268"  # main before the journal: the JSON file rewritten whole


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Measurement:
    run: int
    variant: str  # "baseline" or "journal"
    changing_share: float
    polls: int
    seconds: float
    write_bytes: int
    file_bytes_start: int
    file_bytes_end: int
    rewritten_in_window: bool
    bytes_per_poll_window: float
    rewrite_bytes_per_poll: float  # the journal's amortized rewrite share (0: in the window)
    bytes_per_poll: float


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"no write_bytes in /proc/{pid}/io")


def unpack_baseline(revision: str, into: Path) -> Path:
    """The `collector` package of `revision`, unpacked under `into`."""
    archive = into / "baseline.tar"
    with archive.open("wb") as out:
        subprocess.run(  # noqa: S603 - git, with a revision the user named
            ["git", "-C", str(REPOSITORY), "archive", revision, "collector"],  # noqa: S607 - git from PATH
            stdout=out,
            check=True,
        )
    root = into / "baseline"
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return root


class Simulator:
    """bench.simserver in its own process."""

    def __init__(self, orgs: int, tenants: int, changing: float) -> None:
        command = [sys.executable, "-m", "bench.simserver", "--orgs", str(orgs)]
        command += ["--tenants", str(tenants), "--cpu", "-1", "--incidents", "0"]
        if changing > 0:
            command += ["--drift", "--drift-share", str(changing)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our own module
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    async def requests(self, http: aiohttp.ClientSession) -> int:
        async with http.get(self.url + "/_bench/stats") as response:
            return int((await response.json())["requests"])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


async def measure(
    args: argparse.Namespace, run: int, variant: str, changing: float, code: Path | None
) -> Measurement:
    interval = args.orgs / args.rate
    with tempfile.TemporaryDirectory(prefix="petra-bench-disk-") as directory:
        workdir = Path(directory)
        sim = Simulator(args.orgs, args.tenants, changing)
        polling = {
            "max_requests_per_second": 2 * args.rate,
            "concurrency": 64,
            "requests_per_minute_per_key": max(1, round(2 * 60 / interval)),
        }
        config = write_bench_config(
            bench_orgs(args.orgs, 0), workdir, sim.url, round(interval), polling=polling
        )
        state = workdir / "state.json"
        with config.open("a") as out:
            out.write(f"state:\n  path: {json.dumps(str(state))}\n")
        daemon = start_daemon(config, code)
        try:
            async with aiohttp.ClientSession() as http:
                _log(f"run {run}, {variant}, {changing:.0%} changing: warming up")
                while await sim.requests(http) < args.orgs:
                    _check(daemon)
                    await asyncio.sleep(1)
                await asyncio.sleep(interval + 6)  # a whole interval more: every org written
                _check(daemon)
                inode = state.stat().st_ino
                size0, bytes0, polls0 = state.stat().st_size, write_bytes(daemon.pid), 0
                polls0, started = await sim.requests(http), time.monotonic()
                await asyncio.sleep(args.window)
                polls1, bytes1 = await sim.requests(http), write_bytes(daemon.pid)
                seconds = time.monotonic() - started
                after = state.stat()
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            sim.stop()
    polls = polls1 - polls0
    rewritten = after.st_ino != inode
    window = (bytes1 - bytes0) / polls
    growth = (after.st_size - size0) / polls
    share = 0.0 if variant == "baseline" or rewritten else growth / COMPACT_RATIO
    result = Measurement(
        run,
        variant,
        changing,
        polls,
        round(seconds, 1),
        bytes1 - bytes0,
        size0,
        after.st_size,
        rewritten,
        round(window, 1),
        round(share, 1),
        round(window + share, 1),
    )
    _log(f"{variant}: {result.bytes_per_poll} bytes per poll ({polls} polls, {result})")
    return result


def start_daemon(config: Path, code: Path | None) -> subprocess.Popen[bytes]:
    """`python -m collector run`, of this checkout or of the baseline's `code`."""
    command = [sys.executable, "-m", "collector", "run", "--config", str(config)]
    command += ["--listen", f"127.0.0.1:{free_port()}"]
    environment = dict(os.environ)
    if code is not None:  # the baseline's package first on the path
        environment["PYTHONPATH"] = str(code)
    return subprocess.Popen(  # noqa: S603 - our own module
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=code or REPOSITORY,
        env=environment,
    )


def _check(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"the daemon exited with {process.returncode}")


def summary(results: list[Measurement]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for variant in ("baseline", "journal"):
        for share in sorted({r.changing_share for r in results}):
            figures = [
                r.bytes_per_poll
                for r in results
                if r.variant == variant and r.changing_share == share
            ]
            if figures:
                rows.append(
                    {
                        "variant": variant,
                        "changing_share": share,
                        "runs": len(figures),
                        "median_bytes_per_poll": round(statistics.median(figures), 1),
                        "lowest": min(figures),
                        "highest": max(figures),
                    }
                )
    return rows


async def main_async(args: argparse.Namespace) -> None:
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="petra-bench-baseline-") as directory:
        baseline = unpack_baseline(args.baseline_rev, Path(directory))
        for run in range(1, args.runs + 1):
            for share in args.changing:
                results.append(await measure(args, run, "baseline", share, baseline))
                results.append(await measure(args, run, "journal", share, None))
    print(json.dumps({"measurements": [asdict(r) for r in results], "summary": summary(results)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orgs", type=int, default=2000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0, help="polls a second")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    parser.add_argument(
        "--changing",
        type=float,
        nargs="+",
        default=[0.0, 0.03],
        help="shares of orgs whose answer changes at every poll",
    )
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
