"""Keeps the state file: reads it once at start, writes what changed a few seconds
after changes and once more at a clean stop.

The file is a journal (`state_journal.py`) of the records that `state_file.py`
encodes, one per org. Writing is off the poll path: the scheduler only calls
`notify()` (setting an event). The writer wakes, waits `write_delay_seconds` so
that the changes of many polls share one write, encodes only the orgs that
changed since the last write (yielding to the loop every few hundred; an org
re-polled with the same tenants reuses their bytes), and appends them in a
worker thread, each as a delta against the org's last whole record. The first
write of a run, and one whenever the appended part has grown enough, rewrites
the file whole. A failed write is logged and retried with backoff; polling
never waits for it.

A state file of the JSON format (before the journal) is read as before and
replaced by the first write; a copy of it stays beside it (`LEGACY_SUFFIX`).
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import structlog

from collector.petra_usage import TenantUsage
from collector.state import OrgState
from collector.state_file import (
    MAX_STATE_FILE_BYTES,
    decode_state,
    encode_document,
    encode_org_pieces,
    set_aside,
)
from collector.state_journal import (
    MAGIC,
    Change,
    Commit,
    Journal,
    JournalContents,
    JournalError,
    is_journal,
    read_journal,
)
from collector.state_records import SavedState, StateFileError

# Work between two yields to the event loop, in orgs looked at: encoding one costs about
# as much as looking at eight unchanged ones, so a yield comes after 100 encodings, or
# after 800 orgs that are unchanged (a few milliseconds either way).
YIELD_EVERY: Final = 800
ENCODE_COST: Final = 8
ENCODE_BATCH: Final = YIELD_EVERY // ENCODE_COST
# At most this many bytes a second on average: after a rewrite of a large fleet's file
# (10,000 orgs of 10 tenants are about 21 MB) the next write waits ~40 s.
WRITE_BYTES_PER_SECOND: Final = 512 * 1024
RETRY_CAP_SECONDS: Final = 300.0
LEGACY_SUFFIX: Final = ".json-v1"  # the JSON file a journal replaced, kept beside it

_CacheKey = tuple[int, float | None]


@dataclass(frozen=True, slots=True)
class _Written:
    """What the file holds of an org: the state it was written from (`key`), and its
    last whole record (the base of its deltas), in `encode_org_pieces` pieces."""

    key: _CacheKey
    pieces: tuple[bytes, ...]
    tenants: tuple[TenantUsage, ...] | None  # the report's tenants in `pieces[1]`
    # The tenants of the last record written, when it went as a delta and they are not
    # `tenants`: while they stay, the next record goes whole (`_encode`).
    latest: tuple[TenantUsage, ...] | None = None


@dataclass(frozen=True, slots=True)
class WriteStats:
    """What the last write cost, for the benchmark and the tests."""

    orgs: int
    encoded: int  # orgs encoded (the others did not change since the last write)
    bytes: int
    rewrite: bool  # the whole file, not an append
    loop_seconds: float  # CPU time on the event loop: finding and encoding changes
    thread_seconds: float  # in the worker thread: deltas, writing, fsync (and rename)


@dataclass(frozen=True, slots=True)
class LoadResult:
    state: SavedState | None
    problem: str | None = None  # why the file was not used
    set_aside_as: Path | None = None
    set_aside_error: str | None = None
    legacy: bool = False  # a JSON state file was read; the first write replaces it
    legacy_kept_as: Path | None = None
    legacy_copy_error: str | None = None
    ignored_bytes: int = 0  # after the last whole write: one cut short by a crash


@dataclass(frozen=True, slots=True)
class _Read:
    state: SavedState
    ignored_bytes: int
    legacy: bool  # a state file of the JSON format


def _read_journal(handle: BinaryIO) -> JournalContents:
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        try:
            return read_journal(mapped)
        except JournalError as error:
            raise StateFileError(str(error)) from None


def read_saved_state(path: Path) -> SavedState | None:
    """The saved state; None when there is no file. Raises StateFileError."""
    read = _read(path)
    return None if read is None else read.state


def _read(path: Path) -> _Read | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(len(MAGIC))
            if not is_journal(head):
                return _read_json(head + handle.read(MAX_STATE_FILE_BYTES + 1 - len(head)))
            journal = _read_journal(handle)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StateFileError("is a directory, not a state file") from None
    except OSError as error:
        raise StateFileError(f"cannot be read: {error.strerror or error}") from None
    document = b"".join(
        encode_document(
            journal.records.values(),
            written_at=journal.commit.written_at,
            clean_stop=journal.commit.clean_stop,
        )
    )
    ignored = journal.ignored_bytes
    del journal  # its records are in the document now: not twice in memory while it parses
    return _Read(decode_state(document), ignored, legacy=False)


def _read_json(data: bytes) -> _Read:
    """A state file of the JSON format, of the releases before the journal."""
    if len(data) > MAX_STATE_FILE_BYTES:
        raise StateFileError(f"is larger than {MAX_STATE_FILE_BYTES} bytes")
    return _Read(decode_state(data), 0, legacy=True)


def load_state(path: Path, now: float) -> LoadResult:
    """Read the file; an unusable one is renamed aside. Blocking: run it in a thread."""
    try:
        read = _read(path)
    except StateFileError as error:
        problem = str(error)
    else:
        if read is None:
            return LoadResult(None)
        if not read.legacy:
            return LoadResult(read.state, ignored_bytes=read.ignored_bytes)
        kept, copy_error = _keep_legacy_copy(path)
        return LoadResult(
            read.state, legacy=True, legacy_kept_as=kept, legacy_copy_error=copy_error
        )
    try:
        target = set_aside(path, now)
    except OSError as error:
        return LoadResult(None, problem, set_aside_error=error.strerror or str(error))
    return LoadResult(None, problem, set_aside_as=target)


def _keep_legacy_copy(path: Path) -> tuple[Path | None, str | None]:
    """A second name for the JSON file, which stays when the journal replaces the first
    (for a downgrade), or why there is none. An older copy already there is kept."""
    copy = path.with_name(path.name + LEGACY_SUFFIX)
    try:
        os.link(path, copy)
    except FileExistsError:
        return copy, None
    except OSError:  # a file system without hard links: a copy of the bytes instead
        try:
            shutil.copyfile(path, copy)
        except OSError as error:
            return None, error.strerror or str(error)
    return copy, None


def log_load(log: structlog.typing.FilteringBoundLogger, path: Path, result: LoadResult) -> None:
    if result.legacy:
        kept = result.legacy_kept_as
        log.info(
            "state_migrated",
            path=str(path),
            old_file_kept_as=None if kept is None else str(kept),
            copy_error=result.legacy_copy_error,
            action="the JSON state file was read; the first write replaces it with a journal",
        )
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
        self._journal = Journal(path)
        self._written: dict[str, _Written] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._failures = 0
        self._last_bytes = 0
        self.last_write: WriteStats | None = None
        self.writes = 0

    @property
    def rewrite_due(self) -> bool:
        """The next write rewrites the file whole (the first of a run, after a failed one,
        or once the appends have grown enough)."""
        return self._journal.wants_rewrite

    def notify(self) -> None:
        """Something changed: write within `write_delay` seconds. Cheap; call freely."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        try:
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
        finally:
            self._journal.close()

    def _pause(self) -> float:
        """How long to wait before the next write, from the first change on."""
        if self._failures:
            return self._retry_delay()
        return max(self._delay, self._last_bytes / WRITE_BYTES_PER_SECOND)

    def _retry_delay(self) -> float:
        return min(RETRY_CAP_SECONDS, self._delay * 2.0 ** min(self._failures, 20))

    async def write(self, *, clean_stop: bool) -> bool:
        """Write what changed (or every org, when the file is due for a rewrite) now.
        False (and logged) when the write failed."""
        cpu_started = time.thread_time()
        cpu_spent = 0.0
        rewrite = self._journal.wants_rewrite
        states = self._states()
        changed: list[tuple[str, _Written, _Written | None]] = []
        work = 0
        for state in states:
            key = (state.version, state.next_poll_at)
            written = self._written.get(state.name)
            if rewrite or written is None or written.key != key:
                encoded, rebase = self._encode(state, key, written)
                changed.append((state.name, encoded, None if rebase else written))
                work += ENCODE_COST
            else:
                work += 1
            if work >= YIELD_EVERY:
                work = 0
                cpu_spent += time.thread_time() - cpu_started
                await asyncio.sleep(0)
                cpu_started = time.thread_time()
        names = {state.name for state in states}
        gone = [] if rewrite else [name for name in self._written if name not in names]
        cpu_spent += time.thread_time() - cpu_started
        commit = Commit(self._wall(), clean_stop)
        try:
            size, whole, thread_seconds = await asyncio.to_thread(
                self._write_journal, changed, gone, commit, rewrite
            )
        except OSError as error:
            self._failed(error, clean_stop)
            return False
        if rewrite:
            self._written = {}
        for name in gone:
            del self._written[name]
        for name, encoded, before in changed:
            if name in whole or before is None:
                self._written[name] = encoded
            else:  # appended as a delta: the base stays what it was
                latest = None if encoded.tenants is before.tenants else encoded.tenants
                self._written[name] = _Written(encoded.key, before.pieces, before.tenants, latest)
        if self._failures:
            self._log.info(
                "state_write_recovered", path=str(self._path), after_failures=self._failures
            )
            self._failures = 0
        self.writes += 1
        self._last_bytes = size
        self.last_write = WriteStats(
            len(states), len(changed), size, rewrite, cpu_spent, thread_seconds
        )
        return True

    def _failed(self, error: OSError, clean_stop: bool) -> None:
        self._failures += 1
        self._log.error(
            "state_write_failed",
            path=str(self._path),
            error=error.strerror or str(error),
            consecutive_failures=self._failures,
            retry_in_seconds=None if clean_stop else round(self._retry_delay(), 1),
            action="polling goes on; the previous state file, if any, is kept",
        )

    def _encode(
        self, state: OrgState, key: _CacheKey, written: _Written | None
    ) -> tuple[_Written, bool]:
        """A changed org's pieces, and whether to write them whole (as its new base).

        Its tenants are usually the very tuple of its last whole record (state.py keeps
        it while the answer says the same): reused. Tenants that changed since then
        are encoded; when they are still those of the last write, the record goes
        whole, so that from the next write on their bytes are reused (and the deltas
        are small again) rather than encoded at every write until the file is
        rewritten."""
        tenants = None if state.report is None else state.report.tenants
        reused = None
        rebase = False
        if written is not None and tenants is not None:
            if written.tenants is tenants:
                reused = written.pieces[1]
            else:
                rebase = written.latest is tenants
        pieces = encode_org_pieces(
            state, wall_now=self._wall(), monotonic_now=self._monotonic(), tenants=reused
        )
        return _Written(key, pieces, tenants), rebase

    def _write_journal(
        self,
        changed: list[tuple[str, _Written, _Written | None]],
        gone: list[str],
        commit: Commit,
        rewrite: bool,
    ) -> tuple[int, frozenset[str], float]:
        """In the worker thread: the records joined, deltas made, the file written."""
        started = time.thread_time()
        if rewrite:
            records = [(name, encoded.pieces) for name, encoded, _ in changed]
            size = self._journal.rewrite(records, commit)
            whole = frozenset(name for name, _ in records)
        else:
            changes = [
                Change(
                    name,
                    b"".join(encoded.pieces),
                    None if before is None else b"".join(before.pieces),
                )
                for name, encoded, before in changed
            ]
            size, whole = self._journal.append(changes, gone, commit)
        return size, whole, time.thread_time() - started
