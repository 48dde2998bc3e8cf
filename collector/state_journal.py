"""Where the state lives on disk: an append-only journal of org records, compacted.

A record is opaque bytes here (the state file's codec makes them: one org's
record). The file is a header line, `petra-collector-state journal 2`, then
writes, each one block:

    block: <u32 length> <u32 CRC-32 of the payload> <payload>
    payload: <f64 written_at> <u8 clean_stop> <entry>...
    entry: <u8 kind> <u16 name length> <u32 body length> <name, UTF-8> <body>

Kinds: a whole record (`FULL`), a record as a delta against the org's last
whole record in the file (`DELTA`: raw deflate with that record as the
preset dictionary), and an org that is gone (`FORGET`, no body).

A write appends one block with the orgs that changed, then fdatasync: a
steady org's poll changes a few times and counters, and its delta against
the org's whole record is about 60-80 bytes. Readers take every block up to
the first that is not whole or does not match its CRC; from there on (a
write cut short by a crash or a full disk) nothing is used, and the next
write starts the file anew. When the appended blocks reach `COMPACT_RATIO`
times the size of the whole records, the file is rewritten with one whole
record per org (a temp file beside it, fsync, rename, fsync of the
directory), so a crash at any point leaves a file that reads whole.
"""

from __future__ import annotations

import contextlib
import enum
import mmap
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
# Appended blocks may grow to this many times the whole records before the file is
# rewritten: the rewrite then costs a third as many bytes again as the appends did, and
# the file stays within four times the size of the whole records.
COMPACT_RATIO: Final = 3.0
# A delta larger than this share of its record is written as a whole record instead,
# which becomes the org's new base. A steady org's delta is about 3 % of its record; one
# against a base without the org's report (an org first written before its first poll)
# is about 40 %, and would be paid again at every poll.
DELTA_MAX_SHARE: Final = 0.2
TEMP_SUFFIX: Final = ".tmp"
WRITEV_PIECES: Final = 1024  # IOV_MAX on Linux

_BLOCK: Final = struct.Struct("<II")
_COMMIT: Final = struct.Struct("<d?")
_ENTRY: Final = struct.Struct("<BHI")  # a name's length is a u16: config.py holds org names to it
_DEFLATE_WINDOW: Final = -15  # raw deflate: the block's CRC already checks the bytes


class Kind(enum.IntEnum):
    FULL = 1
    DELTA = 2
    FORGET = 3


_DELTA: Final = int(Kind.DELTA)
_FULL: Final = int(Kind.FULL)


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


def read_journal(data: bytes | mmap.mmap) -> JournalContents:
    """Parse a whole file (its bytes, or the file mapped: a journal near its largest is
    several times the records, better left in the page cache than copied). Raises
    JournalError naming the first problem."""
    header_end = data.find(b"\n", 0, 64)
    if data[: len(MAGIC)] != MAGIC or header_end < 0:
        raise JournalError("is not a petra-collector state journal")
    version = data[len(MAGIC) : header_end]
    if version != str(VERSION).encode():
        shown = version.decode("ascii", "replace")
        raise JournalError(f"has version {shown}; this petra-collector reads version {VERSION}")
    # Where each org's base and latest delta are, by name as bytes: a large file holds
    # hundreds of thousands of entries, and only the last of each org is used.
    bases: dict[bytes, tuple[int, int]] = {}
    deltas: dict[bytes, tuple[int, int]] = {}
    commit: Commit | None = None
    offset = header_end + 1
    with memoryview(data) as view:
        while offset + _BLOCK.size <= len(data):
            length, crc = _BLOCK.unpack_from(data, offset)
            start = offset + _BLOCK.size
            end = start + length
            if end > len(data) or length < _COMMIT.size or zlib.crc32(view[start:end]) != crc:
                break
            commit = Commit(*_COMMIT.unpack_from(data, start))
            _read_entries(data, start + _COMMIT.size, end, bases, deltas)
            offset = end
    if commit is None:
        raise JournalError("holds no complete write")
    records = {}
    for raw_name, (start, end) in bases.items():
        name = _name(raw_name)
        at = deltas.get(raw_name)
        records[name] = data[start:end] if at is None else _inflate(name, data, start, end, at)
    return JournalContents(records, commit, offset, len(data) - offset)


def _read_entries(
    data: bytes | mmap.mmap,
    position: int,
    end: int,
    bases: dict[bytes, tuple[int, int]],
    deltas: dict[bytes, tuple[int, int]],
) -> None:
    # The loop a large file runs hundreds of thousands of times: names bound locally, the
    # kinds as plain ints (an enum member is looked up on its class each time).
    unpack, head, delta_kind, full_kind = _ENTRY.unpack_from, _ENTRY.size, _DELTA, _FULL
    while position < end:
        if position + head > end:
            raise JournalError(f"has an entry cut short at byte {position}")
        kind, name_length, body_length = unpack(data, position)
        body_start = position + head + name_length
        name = data[position + head : body_start]
        position = body_start + body_length
        if position > end:
            raise JournalError(f"has an entry that runs past its write at byte {body_start}")
        if kind == delta_kind:
            if name not in bases:
                raise JournalError(f"has a delta for org {name!r} before any whole record of it")
            deltas[name] = (body_start, position)
        elif kind == full_kind:
            bases[name] = (body_start, position)
            deltas.pop(name, None)
        elif kind == Kind.FORGET:
            bases.pop(name, None)
            deltas.pop(name, None)
        else:
            raise JournalError(f"has an entry of unknown kind {kind} at byte {body_start}")


def _name(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise JournalError("has an org name that is not UTF-8") from None


def _inflate(
    name: str, data: bytes | mmap.mmap, start: int, end: int, delta_at: tuple[int, int]
) -> bytes:
    inflater = zlib.decompressobj(_DEFLATE_WINDOW, zdict=data[start:end])
    try:
        record = inflater.decompress(data[delta_at[0] : delta_at[1]]) + inflater.flush()
    except zlib.error:
        raise JournalError(f"has a delta for org {name!r} that does not inflate") from None
    if not inflater.eof:
        raise JournalError(f"has a delta for org {name!r} that ends early")
    return record


# -- writing -----------------------------------------------------------------------


def entry(kind: Kind, name: str, body: bytes = b"") -> bytes:
    return _entry_head(kind, name, len(body)) + body


def _entry_head(kind: Kind, name: str, body_length: int) -> bytes:
    encoded = name.encode()
    return _ENTRY.pack(kind, len(encoded), body_length) + encoded


def block(commit: Commit, entries: Sequence[bytes]) -> list[bytes]:
    """One write's bytes, in pieces to write one after another (`entries` may be cut
    anywhere: they are written as they are)."""
    head = _COMMIT.pack(commit.written_at, commit.clean_stop)
    crc = zlib.crc32(head)
    length = len(head)
    for piece in entries:
        crc = zlib.crc32(piece, crc)
        length += len(piece)
    return [_BLOCK.pack(length, crc), head, *entries]


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

    def rewrite(self, records: Iterable[tuple[str, Sequence[bytes]]], commit: Commit) -> int:
        """Replace the file with one whole record per org, each given in pieces to write
        one after another (never joined: a large fleet's records are tens of MB). Raises
        OSError. Returns the bytes written."""
        entries: list[bytes] = []
        for name, record in records:
            entries.append(_entry_head(Kind.FULL, name, sum(map(len, record))))
            entries.extend(record)
        pieces = [HEADER, *block(commit, entries)]
        self.close()
        write_atomically(self.path, pieces)
        size = sum(map(len, pieces))
        self._descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self.size = self.whole_size = size
        return size

    def append(
        self, changes: Sequence[Change], gone: Iterable[str], commit: Commit
    ) -> tuple[int, frozenset[str]]:
        """Append the changes as one write. Raises OSError (the next write is then a
        rewrite). Returns the bytes written and the orgs written whole (their new base)."""
        if self._descriptor is None:
            raise OSError("the state journal is not open")
        entries: list[bytes] = []
        whole = []
        for change in changes:
            if change.base is not None:
                shrunk = delta(change.base, change.record)
                if len(shrunk) <= DELTA_MAX_SHARE * len(change.record):
                    entries.append(entry(Kind.DELTA, change.name, shrunk))
                    continue
            entries.append(entry(Kind.FULL, change.name, change.record))
            whole.append(change.name)
        entries.extend(entry(Kind.FORGET, name) for name in gone)
        pieces = block(commit, entries)
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
        try:
            for start in range(0, len(pieces), WRITEV_PIECES):
                _write_all(descriptor, pieces[start : start + WRITEV_PIECES])
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        temp.replace(path)
    except OSError:
        # Most often a full disk: the part written would hold the space the next try needs.
        with contextlib.suppress(OSError):  # the first error is the one to report
            temp.unlink(missing_ok=True)
        raise
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
