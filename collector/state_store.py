"""Keeps the state file: reads it once at start, rewrites it a few seconds after
changes and once more at a clean stop.

Writing is off the poll path: the scheduler only calls `notify()` (setting an
event). The writer wakes, waits `write_delay_seconds` so that the changes of
many polls share one write, re-encodes only the orgs that changed since the
last write (yielding to the loop every few hundred; an org re-polled with the
same tenants reuses their bytes), and writes the file in a worker thread. A
failed write is logged and retried with backoff; polling never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from collector.petra_usage import TenantUsage
from collector.state import OrgState
from collector.state_file import (
    encode_document_pieces,
    encode_org_pieces,
    read_state_file,
    set_aside,
    write_atomically,
)
from collector.state_records import SavedState, StateFileError

# Work between two yields to the event loop, in orgs looked at: encoding one costs about
# as much as looking at eight unchanged ones, so a yield comes after 100 encodings, or
# after 800 orgs that are reused (a few milliseconds either way).
YIELD_EVERY: Final = 800
ENCODE_COST: Final = 8
ENCODE_BATCH: Final = YIELD_EVERY // ENCODE_COST
# A large fleet's file is rewritten less often: at most this many bytes a second on
# average. 10,000 orgs of 10 tenants (about 21 MB) are written every ~40 s instead of
# every 5 s (about 45 GB a day, not 350); a fleet of a few hundred orgs every 5 s.
WRITE_BYTES_PER_SECOND: Final = 512 * 1024
RETRY_CAP_SECONDS: Final = 300.0

_CacheKey = tuple[int, float | None]


@dataclass(frozen=True, slots=True)
class _Encoded:
    """An org's bytes from the last write, and what they were made of."""

    key: _CacheKey
    pieces: tuple[bytes, ...]
    tenants: tuple[TenantUsage, ...] | None  # the report's tenants in `pieces[1]`


@dataclass(frozen=True, slots=True)
class WriteStats:
    """What the last write cost, for the benchmark and the tests."""

    orgs: int
    encoded: int  # orgs re-encoded (the others reused their bytes from the last write)
    bytes: int
    loop_seconds: float  # CPU time on the event loop: finding and encoding changes
    thread_seconds: float  # in the worker thread: joining, writing, fsync, rename


@dataclass(frozen=True, slots=True)
class LoadResult:
    state: SavedState | None
    problem: str | None = None  # why the file was not used
    set_aside_as: Path | None = None
    set_aside_error: str | None = None


def load_state(path: Path, now: float) -> LoadResult:
    """Read the file; an unusable one is renamed aside. Blocking: run it in a thread."""
    try:
        return LoadResult(read_state_file(path))
    except StateFileError as error:
        problem = str(error)
    try:
        target = set_aside(path, now)
    except OSError as error:
        return LoadResult(None, problem, set_aside_error=error.strerror or str(error))
    return LoadResult(None, problem, set_aside_as=target)


def log_load_problem(
    log: structlog.typing.FilteringBoundLogger, path: Path, result: LoadResult
) -> None:
    if result.problem is None:
        return
    log.warning(
        "state_unreadable",
        path=str(path),
        problem=result.problem,
        set_aside_as=None if result.set_aside_as is None else str(result.set_aside_as),
        set_aside_error=result.set_aside_error,
        action="starting fresh: every org is polled on its first-poll schedule",
    )


class StateWriter:
    """The writer task's logic. `run()` until `stop()`, which ends with a clean write."""

    def __init__(
        self,
        path: Path,
        states: Callable[[], list[OrgState]],
        *,
        write_delay: float,
        monotonic: Callable[[], float],
        wall: Callable[[], float] = time.time,
        logger: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._path = path
        self._states = states
        self._delay = write_delay
        self._monotonic = monotonic
        self._wall = wall
        self._log = logger
        self._cache: dict[str, _Encoded] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._failures = 0
        self._last_bytes = 0
        self.last_write: WriteStats | None = None
        self.writes = 0

    def notify(self) -> None:
        """Something changed: write within `write_delay` seconds. Cheap; call freely."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            await self._wake.wait()
            pause = self._pause()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)
            if self._stopping.is_set():
                break
            self._wake.clear()
            if not await self.write(clean_stop=False):
                self._wake.set()
        await self.write(clean_stop=True)

    def _pause(self) -> float:
        """How long to wait before the next write, from the first change on."""
        if self._failures:
            return self._retry_delay()
        return max(self._delay, self._last_bytes / WRITE_BYTES_PER_SECOND)

    def _retry_delay(self) -> float:
        return min(RETRY_CAP_SECONDS, self._delay * 2.0 ** min(self._failures, 20))

    async def write(self, *, clean_stop: bool) -> bool:
        """Write the state of every org now. False (and logged) when the write failed."""
        cpu_started = time.thread_time()
        cpu_spent = 0.0
        orgs: list[tuple[bytes, ...]] = []
        cache: dict[str, _Encoded] = {}
        encoded = work = 0
        for state in self._states():
            key = (state.version, state.next_poll_at)
            cached = self._cache.get(state.name)
            if cached is None or cached.key != key:
                cached = self._encode(state, key, cached)
                encoded += 1
                work += ENCODE_COST
            else:
                work += 1
            if work >= YIELD_EVERY:
                work = 0
                cpu_spent += time.thread_time() - cpu_started
                await asyncio.sleep(0)
                cpu_started = time.thread_time()
            cache[state.name] = cached
            orgs.append(cached.pieces)
        self._cache = cache
        cpu_spent += time.thread_time() - cpu_started
        written_at = self._wall()
        try:
            size, thread_seconds = await asyncio.to_thread(
                self._write_file, orgs, written_at, clean_stop
            )
        except OSError as error:
            self._failures += 1
            self._log.error(
                "state_write_failed",
                path=str(self._path),
                error=error.strerror or str(error),
                consecutive_failures=self._failures,
                retry_in_seconds=None if clean_stop else round(self._retry_delay(), 1),
                action="polling goes on; the previous state file, if any, is kept",
            )
            return False
        if self._failures:
            self._log.info(
                "state_write_recovered", path=str(self._path), after_failures=self._failures
            )
            self._failures = 0
        self.writes += 1
        self._last_bytes = size
        self.last_write = WriteStats(len(orgs), encoded, size, cpu_spent, thread_seconds)
        return True

    def _encode(self, state: OrgState, key: _CacheKey, cached: _Encoded | None) -> _Encoded:
        """A changed org's bytes. Its tenants are usually the very tuple of the last write
        (state.py keeps it while the answer says the same), whose bytes are reused."""
        tenants = None if state.report is None else state.report.tenants
        reused = None
        if cached is not None and tenants is not None and cached.tenants is tenants:
            reused = cached.pieces[1]
        pieces = encode_org_pieces(
            state, wall_now=self._wall(), monotonic_now=self._monotonic(), tenants=reused
        )
        return _Encoded(key, pieces, tenants)

    def _write_file(
        self, orgs: list[tuple[bytes, ...]], written_at: float, clean_stop: bool
    ) -> tuple[int, float]:
        started = time.thread_time()
        pieces = encode_document_pieces(orgs, written_at=written_at, clean_stop=clean_stop)
        write_atomically(self._path, pieces)
        return sum(map(len, pieces)), time.thread_time() - started
