"""The state journal: atomic rewrites, appends, deltas, what a reader takes."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from collector.state_journal import (
    COMPACT_RATIO,
    HEADER,
    TEMP_SUFFIX,
    WRITEV_PIECES,
    Change,
    Commit,
    Journal,
    JournalError,
    Kind,
    block,
    delta,
    entry,
    read_journal,
    write_atomically,
)


def test_write_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_atomically(path, [b"old"])
    write_atomically(path, [b"new"])
    assert path.read_bytes() == b"new"
    assert not path.with_name(path.name + TEMP_SUFFIX).exists()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    """When the temp file cannot be made (here: a directory in its place), nothing changes."""
    path = tmp_path / "state.json"
    write_atomically(path, [b"old"])
    path.with_name(path.name + TEMP_SUFFIX).mkdir()
    with pytest.raises(OSError, match="Is a directory"):
        write_atomically(path, [b"new"])
    assert path.read_bytes() == b"old"


def test_a_rewrite_that_fails_half_way_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk after some bytes: the old file stays, and the part written is removed
    (it would hold the space the next write needs)."""
    path = tmp_path / "state.json"
    write_atomically(path, [b"old"])

    def disk_full(_descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, [b"new"])
    assert path.read_bytes() == b"old"
    assert not path.with_name(path.name + TEMP_SUFFIX).exists()


def test_many_pieces_are_written_in_order(tmp_path: Path) -> None:
    """More pieces than one writev takes: all of them, in order."""
    path = tmp_path / "state.json"
    pieces = [f"{i}:".encode() for i in range(WRITEV_PIECES * 2 + 7)]
    write_atomically(path, pieces)
    assert path.read_bytes() == b"".join(pieces)


def test_a_short_write_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """writev may write less than asked (a signal, a nearly full disk): the rest follows."""

    def short_writev(descriptor: int, pieces: list[bytes]) -> int:
        return os.write(descriptor, pieces[0][:3])

    monkeypatch.setattr(os, "writev", short_writev)
    path = tmp_path / "state.json"
    write_atomically(path, [b"first", b"second", b"third"])
    assert path.read_bytes() == b"firstsecondthird"


def test_read_only_file_system_errors_are_os_errors(tmp_path: Path) -> None:
    """A missing directory fails like a read-only one would: OSError, for the writer to log."""
    with pytest.raises(OSError, match="No such file"):
        write_atomically(tmp_path / "missing" / "state.json", [b"x"])
    assert not (tmp_path / "missing").exists()


COMMIT = Commit(1_795_671_116.0, clean_stop=False)
RECORD = b'"acme":{"poll":{"last_poll_at":1795671116.25,"next_poll_at":1795671416.5}}' * 8


def due(journal: Journal) -> bool:
    """Whether the next write is a rewrite (a function: mypy would keep a property narrowed)."""
    return journal.wants_rewrite


def later(record: bytes, step: int) -> bytes:
    return record.replace(b"1795671116.25", f"{1795671116 + step}.75".encode())


def test_a_rewrite_reads_back_whole(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.json")
    assert due(journal)  # nothing written in this run yet
    size = journal.rewrite([("acme", [RECORD[:10], RECORD[10:]]), ("globex", [b"{}"])], COMMIT)
    contents = read_journal((tmp_path / "state.json").read_bytes())
    assert contents.records == {"acme": RECORD, "globex": b"{}"}
    assert contents.commit == COMMIT
    assert (contents.size, contents.ignored_bytes) == (size, 0)
    assert not due(journal)
    journal.close()


def test_a_steady_change_appends_a_small_delta(tmp_path: Path) -> None:
    """An org whose record changed in a few digits costs a few dozen bytes, not its size."""
    path = tmp_path / "state.json"
    journal = Journal(path)
    journal.rewrite([("acme", [RECORD[:10], RECORD[10:]]), ("globex", [b"{}"])], COMMIT)
    newer = later(RECORD, 60)
    size, whole = journal.append([Change("acme", newer, RECORD)], [], COMMIT)
    assert whole == frozenset()
    assert size < 60 < len(RECORD)
    newest = later(RECORD, 120)  # against the same base: the reader needs only the last
    journal.append([Change("acme", newest, RECORD)], ["globex"], Commit(2.0, clean_stop=True))
    contents = read_journal(path.read_bytes())
    assert contents.records == {"acme": newest}
    assert contents.commit == Commit(2.0, clean_stop=True)
    journal.close()


def test_a_change_unlike_its_base_is_written_whole(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.json")
    journal.rewrite([("acme", [RECORD])], COMMIT)
    other = os.urandom(400)
    _size, whole = journal.append(
        [Change("acme", other, RECORD), Change("new", b"{}", None)], [], COMMIT
    )
    assert whole == {"acme", "new"}
    assert read_journal((tmp_path / "state.json").read_bytes()).records == {
        "acme": other,
        "new": b"{}",
    }
    journal.close()


def test_appends_grow_the_file_until_a_rewrite_is_due(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.json")
    journal.rewrite([("acme", [RECORD])], COMMIT)
    step = 0
    while not due(journal):
        step += 1
        journal.append([Change("acme", later(RECORD, step), RECORD)], [], COMMIT)
    assert journal.size - journal.whole_size > COMPACT_RATIO * journal.whole_size
    journal.rewrite([("acme", [later(RECORD, step)])], COMMIT)
    assert not due(journal)
    assert (tmp_path / "state.json").stat().st_size == journal.size
    journal.close()


@pytest.mark.parametrize("cut", [1, 5, 9, 20])
def test_a_write_cut_short_is_ignored(tmp_path: Path, cut: int) -> None:
    """A crash in the middle of an append: the reader takes the writes before it."""
    path = tmp_path / "state.json"
    journal = Journal(path)
    journal.rewrite([("acme", [RECORD])], COMMIT)
    first = later(RECORD, 1)
    journal.append([Change("acme", first, RECORD)], [], COMMIT)
    whole = path.stat().st_size
    journal.append([Change("acme", later(RECORD, 2), RECORD)], [], COMMIT)
    journal.close()
    data = path.read_bytes()
    contents = read_journal(data[: len(data) - cut])
    assert contents.records == {"acme": first}
    assert (contents.size, contents.ignored_bytes) == (whole, len(data) - cut - whole)


def test_a_changed_byte_ends_the_journal_at_the_write_before(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    journal = Journal(path)
    journal.rewrite([("acme", [RECORD])], COMMIT)
    whole = path.stat().st_size
    journal.append([Change("acme", later(RECORD, 1), RECORD)], [], COMMIT)
    journal.close()
    data = bytearray(path.read_bytes())
    data[whole + 12] ^= 0x40
    assert read_journal(bytes(data)).records == {"acme": RECORD}


def test_a_failed_append_makes_the_next_write_a_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "state.json")
    journal.rewrite([("acme", [RECORD])], COMMIT)

    def full_disk(_descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", full_disk)
    with pytest.raises(OSError, match="No space"):
        journal.append([Change("acme", later(RECORD, 1), RECORD)], [], COMMIT)
    assert due(journal)
    with pytest.raises(OSError, match="not open"):
        journal.append([], [], COMMIT)
    # The file still reads whole: the record before the append, or the appended one if
    # its bytes got written before the sync failed; once there is room, the rewrite
    # brings it up to date.
    path = tmp_path / "state.json"
    assert read_journal(path.read_bytes()).records["acme"] in {RECORD, later(RECORD, 1)}
    monkeypatch.undo()
    journal.rewrite([("acme", [later(RECORD, 2)])], COMMIT)
    journal.close()
    assert read_journal(path.read_bytes()).records == {"acme": later(RECORD, 2)}


def written(*entries: bytes, commit: Commit = COMMIT) -> bytes:
    return b"".join(block(commit, entries))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            b"petra-collector-state journal 3\n",
            "has version 3; this petra-collector reads version 2",
        ),
        (b"something else\n", "is not a petra-collector state journal"),
        (HEADER, "holds no complete write"),
        (HEADER + written(entry(Kind.DELTA, "acme", b"x")), "before any whole"),
        (
            HEADER + written(entry(Kind.FULL, "acme", b"{}"), entry(Kind.DELTA, "acme", b"\xff")),
            "does not inflate",
        ),
        (
            HEADER
            + written(
                entry(Kind.FULL, "acme", b"{}"),
                entry(Kind.DELTA, "acme", delta(b"{}", b"[]")[:-1]),
            ),
            "ends early",
        ),
        (HEADER + written(entry(Kind.FULL, "acme", b"{}")[:5]), "an entry cut short"),
        (HEADER + written(entry(Kind.FULL, "acme", b"{}")[:-1]), "runs past its write"),
        (HEADER + written(struct.pack("<BHI", Kind.FULL, 1, 2) + b"\xff{}"), "not UTF-8"),
        (HEADER + written(struct.pack("<BHI", 9, 4, 2) + b"acme{}"), "unknown kind 9"),
    ],
)
def test_what_a_reader_refuses(data: bytes, problem: str) -> None:
    with pytest.raises(JournalError, match=problem):
        read_journal(data)
