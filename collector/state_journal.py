"""Where the state lives on disk: an append-only journal of org records, compacted.

A record is opaque bytes here (the state file's codec makes them: one org's
record). The file is a header line and frames:

    petra-collector-state journal 2 (a line)
    frame: <u32 payload length> <u32 CRC-32 of kind and payload> <u8 kind> <payload>

Kinds: a whole record (`FULL`: name, record), a record as a delta against the
org's last whole record in the file (`DELTA`: name, raw deflate with that
record as the preset dictionary), an org that is gone (`FORGET`: name), and
the end of one write (`COMMIT`: wall-clock time, clean stop). A name is a
u16 length and UTF-8.

A write appends the frames of the orgs that changed and a commit, then
fdatasync: a steady org's poll changes a few times and counters, and its
delta against the org's whole record is about 60 bytes. Readers take every
frame up to the last commit whose frames are all whole and match their CRC;
what follows (a write cut short by a crash or a full disk) is ignored, and
the next write starts the file anew. When the appended frames reach
`COMPACT_RATIO` times the size of the whole records, the file is rewritten
with one whole record per org (a temp file beside it, fsync, rename, fsync of
the directory), so a crash at any point leaves a file that reads whole.
"""

from __future__ import annotations

import enum
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

MAGIC: Final = b"petra-collector-state journal "
VERSION: Final = 2
HEADER: Final = MAGIC + str(VERSION).encode() + b"\n"
# Appended frames may grow to this many times the whole records before the file is
# rewritten: the rewrite then costs a third as many bytes again as the appends did, and
# the file stays within four times the size of the whole records.
COMPACT_RATIO: Final = 3.0
# A delta larger than this share of its record is written as a whole record instead,
# which becomes the org's new base. A steady org's delta is about 3 % of its record; one
# against a base without the org's report (an org first written before its first poll)
# is about 40 %, and would be paid again at every poll.
DELTA_MAX_SHARE: Final = 0.2
MAX_JOURNAL_BYTES: Final = 1 << 30  # a bound, so a foreign huge file is refused unread
TEMP_SUFFIX: Final = ".tmp"
WRITEV_PIECES: Final = 1024  # IOV_MAX on Linux

_FRAME: Final = struct.Struct("<IIB")
_NAME: Final = struct.Struct("<H")
_COMMIT: Final = struct.Struct("<d?")
_DEFLATE_WINDOW: Final = -15  # raw deflate: the frame's CRC already checks the bytes


class Kind(enum.IntEnum):
    FULL = 1
    DELTA = 2
    FORGET = 3
    COMMIT = 4


class JournalError(Exception):
    """The file cannot be used; the message names the problem."""


@dataclass(frozen=True, slots=True)
class Commit:
    written_at: float
    clean_stop: bool


@dataclass(frozen=True, slots=True)
class JournalContents:
    """Every org's latest record as of the last whole write."""

    records: dict[str, bytes]
    commit: Commit
    size: int  # bytes up to the end of the last whole write
    ignored_bytes: int  # after it: a write cut short


@dataclass(frozen=True, slots=True)
class Change:
    """One org's record to write; `base` is its last whole record in the file, if any."""

    name: str
    record: bytes
    base: bytes | None


# -- reading -----------------------------------------------------------------------


def is_journal(head: bytes) -> bool:
    return head.startswith(MAGIC)


def read_journal(data: bytes) -> JournalContents:
    """Parse a whole file. Raises JournalError naming the first problem."""
    header_end = data.find(b"\n", 0, 64)
    if not data.startswith(MAGIC) or header_end < 0:
        raise JournalError("is not a petra-collector state journal")
    version = data[len(MAGIC) : header_end]
    if version != str(VERSION).encode():
        shown = version.decode("ascii", "replace")
        raise JournalError(f"has version {shown}; this petra-collector reads version {VERSION}")
    bases: dict[str, bytes] = {}
    deltas: dict[str, bytes] = {}
    pending: list[tuple[Kind, str, bytes]] = []
    commit: Commit | None = None
    offset = committed_end = header_end + 1
    view = memoryview(data)
    while offset + _FRAME.size <= len(data):
        length, crc, kind = _FRAME.unpack_from(data, offset)
        body_start = offset + _FRAME.size
        body_end = body_start + length
        if body_end > len(data) or zlib.crc32(view[body_start:body_end], kind) != crc:
            break
        offset = body_end
        if kind == Kind.COMMIT:
            commit = _read_commit(view[body_start:body_end])
            for change in pending:
                _apply(change, bases, deltas)
            pending.clear()
            committed_end = offset
            continue
        if kind not in (Kind.FULL, Kind.DELTA, Kind.FORGET):
            raise JournalError(f"has a frame of unknown kind {kind} at byte {offset - length}")
        name, body = _split_name(view[body_start:body_end])
        pending.append((Kind(kind), name, body))
    if commit is None:
        raise JournalError("holds no complete write")
    records = {name: _record(name, base, deltas.get(name)) for name, base in bases.items()}
    return JournalContents(records, commit, committed_end, len(data) - committed_end)


def _read_commit(body: memoryview) -> Commit:
    if len(body) != _COMMIT.size:
        raise JournalError("has a commit frame of the wrong size")
    written_at, clean_stop = _COMMIT.unpack(body)
    return Commit(written_at, clean_stop)


def _split_name(body: memoryview) -> tuple[str, bytes]:
    if len(body) < _NAME.size:
        raise JournalError("has a frame too short for an org name")
    (length,) = _NAME.unpack_from(body)
    end = _NAME.size + length
    if len(body) < end:
        raise JournalError("has a frame too short for its org name")
    try:
        name = str(body[_NAME.size : end], "utf-8")
    except UnicodeDecodeError:
        raise JournalError("has an org name that is not UTF-8") from None
    return name, bytes(body[end:])


def _apply(
    change: tuple[Kind, str, bytes], bases: dict[str, bytes], deltas: dict[str, bytes]
) -> None:
    kind, name, body = change
    deltas.pop(name, None)
    if kind == Kind.FULL:
        bases[name] = body
    elif kind == Kind.FORGET:
        bases.pop(name, None)
    elif name not in bases:
        raise JournalError(f"has a delta for org {name!r} before any whole record of it")
    else:
        deltas[name] = body


def _record(name: str, base: bytes, delta: bytes | None) -> bytes:
    if delta is None:
        return base
    inflater = zlib.decompressobj(_DEFLATE_WINDOW, zdict=base)
    try:
        record = inflater.decompress(delta) + inflater.flush()
    except zlib.error:
        raise JournalError(f"has a delta for org {name!r} that does not inflate") from None
    if not inflater.eof:
        raise JournalError(f"has a delta for org {name!r} that ends early")
    return record


# -- writing -----------------------------------------------------------------------


def frame(kind: Kind, body: bytes, name: str | None = None) -> bytes:
    if name is not None:
        encoded = name.encode()
        body = _NAME.pack(len(encoded)) + encoded + body
    return _FRAME.pack(len(body), zlib.crc32(body, kind), kind) + body


def commit_frame(commit: Commit) -> bytes:
    return frame(Kind.COMMIT, _COMMIT.pack(commit.written_at, commit.clean_stop))


def delta(base: bytes, record: bytes) -> bytes:
    deflater = zlib.compressobj(9, zlib.DEFLATED, _DEFLATE_WINDOW, zdict=base)
    return deflater.compress(record) + deflater.flush()


class Journal:
    """The open file. Blocking: call it from a worker thread, one call at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None
        self.size = 0  # bytes in the file, all of them whole writes
        self.whole_size = 0  # of the records at the last rewrite

    @property
    def wants_rewrite(self) -> bool:
        """The next write should be a rewrite: none yet in this run, a failed append,
        or enough appended to be worth compacting."""
        if self._descriptor is None:
            return True
        return self.size - self.whole_size > COMPACT_RATIO * self.whole_size

    def rewrite(self, records: Iterable[tuple[str, bytes]], commit: Commit) -> int:
        """Replace the file with one whole record per org. Raises OSError. Bytes written."""
        pieces = [HEADER]
        pieces.extend(frame(Kind.FULL, record, name) for name, record in records)
        pieces.append(commit_frame(commit))
        self.close()
        write_atomically(self.path, pieces)
        size = sum(map(len, pieces))
        self._descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self.size = self.whole_size = size
        return size

    def append(
        self, changes: Sequence[Change], gone: Iterable[str], commit: Commit
    ) -> tuple[int, frozenset[str]]:
        """Append the changes and a commit. Raises OSError (the next write is then a
        rewrite). Returns the bytes written and the orgs written whole (their new base)."""
        if self._descriptor is None:
            raise OSError("the state journal is not open")
        pieces: list[bytes] = []
        whole = []
        for change in changes:
            if change.base is not None:
                shrunk = delta(change.base, change.record)
                if len(shrunk) <= DELTA_MAX_SHARE * len(change.record):
                    pieces.append(frame(Kind.DELTA, shrunk, change.name))
                    continue
            pieces.append(frame(Kind.FULL, change.record, change.name))
            whole.append(change.name)
        pieces.extend(frame(Kind.FORGET, b"", name) for name in gone)
        pieces.append(commit_frame(commit))
        try:
            for start in range(0, len(pieces), WRITEV_PIECES):
                _write_all(self._descriptor, pieces[start : start + WRITEV_PIECES])
            os.fdatasync(self._descriptor)
        except OSError:
            self.close()  # what was appended may be cut short: rewrite next time
            raise
        size = sum(map(len, pieces))
        self.size += size
        return size, frozenset(whole)

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def write_atomically(path: Path, pieces: Sequence[bytes]) -> None:
    """Replace `path` with `pieces`, concatenated, so that a crash at any point leaves
    the old file or the new one, whole."""
    temp = path.with_name(path.name + TEMP_SUFFIX)
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        for start in range(0, len(pieces), WRITEV_PIECES):
            _write_all(descriptor, pieces[start : start + WRITEV_PIECES])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    temp.replace(path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _write_all(descriptor: int, pieces: Sequence[bytes]) -> None:
    written = os.writev(descriptor, pieces)
    if written == sum(map(len, pieces)):
        return
    # A short write (rare: a signal, a nearly full disk): the rest one piece at a time.
    for piece in pieces:
        if written >= len(piece):
            written -= len(piece)
            continue
        view = memoryview(piece)[written:]
        written = 0
        while view:
            view = view[os.write(descriptor, view) :]
