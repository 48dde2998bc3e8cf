"""The two candidate stores for the state file, in-process: bytes dirtied per poll.

    python -m bench.statecandidates --orgs 2000 --tenants 10   # ~1 min

The same fleet (bench.statefile's) and the same polls: `--batches` writes of
`--per-batch` polls each (100 polls a second with a write every 5 s is 500),
each poll a steady one (same tenants, new times and counters). Each store
gets the records `state_file.py` encodes, and the bytes this process dirties
(`write_bytes` of /proc/self/io) are counted over the writes after the
first:

- `sqlite`: the standard library's sqlite3, WAL, `synchronous=NORMAL`, one
  row per org (name, record), one transaction per write, checkpoints as
  SQLite makes them (every 1,000 pages);
- `journal`: the daemon's own `StateWriter` (state_journal.py), appends
  only (a rewrite's share comes on top: see bench/statedisk.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import structlog

from bench.statefile import NOW, fleet
from collector.state import USAGE, OrgState
from collector.state_file import encode_org
from collector.state_store import StateWriter


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def poll(states: list[OrgState], number: int) -> OrgState:
    """The `number`th poll of the fleet, round robin: same answer, new times."""
    state = states[number % len(states)]
    assert state.report is not None
    polled = NOW + number * 0.01
    state.record_success(USAGE, polled, 0.0123 + number % 7 * 0.001)
    state.take_report(state.report)
    state.next_poll_at = polled + 20.0 + number % 13 * 0.37
    return state


def sqlite_bytes_per_poll(args: argparse.Namespace, directory: Path) -> float:
    states = fleet(args.orgs, args.tenants)
    database = sqlite3.connect(directory / "state.db", isolation_level=None)
    database.execute("pragma journal_mode=wal")
    database.execute("pragma synchronous=normal")
    database.execute("create table orgs (name text primary key, record blob)")
    with database:
        database.executemany(
            "insert into orgs values (?, ?)",
            [(s.name, encode_org(s, wall_now=NOW, monotonic_now=0.0)) for s in states],
        )
    started = write_bytes()
    for batch in range(args.batches):
        changed: dict[str, OrgState] = {}
        for number in range(batch * args.per_batch, (batch + 1) * args.per_batch):
            state = poll(states, number)
            changed[state.name] = state
        rows = [
            (encode_org(state, wall_now=NOW, monotonic_now=0.0), name)
            for name, state in changed.items()
        ]
        with database:
            database.executemany("update orgs set record = ? where name = ?", rows)
    database.close()
    polls: int = args.batches * args.per_batch
    return (write_bytes() - started) / polls


async def journal_bytes_per_poll(args: argparse.Namespace, directory: Path) -> float:
    states = fleet(args.orgs, args.tenants)
    writer = StateWriter(
        directory / "state.json",
        lambda: states,
        write_delay=5.0,
        monotonic=time.monotonic,
        logger=structlog.get_logger(),
    )
    assert await writer.write(clean_stop=False)  # the whole file, as at every start
    started = write_bytes()
    for batch in range(args.batches):
        for number in range(batch * args.per_batch, (batch + 1) * args.per_batch):
            poll(states, number)
        assert await writer.write(clean_stop=False)
    polls: int = args.batches * args.per_batch
    return (write_bytes() - started) / polls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orgs", type=int, default=2000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--per-batch", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="petra-bench-candidates-") as directory:
        sqlite = sqlite_bytes_per_poll(args, Path(directory))
        journal = asyncio.run(journal_bytes_per_poll(args, Path(directory)))
    print(
        json.dumps(
            {"sqlite_bytes_per_poll": round(sqlite, 1), "journal_bytes_per_poll": round(journal, 1)}
        )
    )


if __name__ == "__main__":
    main()
