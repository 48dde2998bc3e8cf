"""The state writer: coalesced, incremental, retried, and a clean write at stop; loading."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from collector import state_file, state_journal, state_store
from collector.petra_usage import TenantUsage, UsageReport
from collector.state import OrgState
from collector.state_file import encode_document, encode_org
from collector.state_journal import HEADER, TEMP_SUFFIX, write_atomically
from collector.state_records import StateFileError
from collector.state_store import (
    ENCODE_BATCH,
    LEGACY_SUFFIX,
    StateWriter,
    load_state,
    log_load,
    read_saved_state,
)
from tests.outcomes import saved_report, succeed

T0 = 1_795_671_116.0


def org(name: str) -> OrgState:
    state = OrgState(name, "sha256:aaaaaaaaaaaa", f"file /keys/{name}", 300.0)
    tenants = tuple(
        TenantUsage(f"t{i}", None, "Tenant", "EDR", None, False, 10.0, 5.0, 1.0, None, None)
        for i in range(10)
    )
    succeed(state, UsageReport(None, None, name, 10.0, tenants), T0, 0.1)
    return state


def writer(path: Path, states: list[OrgState], delay: float = 0.05) -> StateWriter:
    return StateWriter(
        path,
        lambda: list(states),
        write_delay=delay,
        monotonic=time.monotonic,
        logger=structlog.get_logger(),
    )


async def wait_until(check: object, within: float = 5.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_many_changes_share_one_write(tmp_path: Path) -> None:
    """A burst of notifications within the delay is one write, `write_delay` later."""
    path = tmp_path / "state.json"
    states = [org("acme"), org("globex")]
    saver = writer(path, states, delay=0.2)
    task = asyncio.create_task(saver.run())
    for _ in range(100):
        saver.notify()
        await asyncio.sleep(0)  # a burst: microseconds whatever the load, well within the delay
    assert not path.exists()  # not yet: the delay coalesces
    await wait_until(lambda: saver.writes == 1)
    await asyncio.sleep(0.3)
    assert saver.writes == 1  # no change since: no second write
    saved = read_saved_state(path)
    assert saved is not None
    assert set(saved.orgs) == {"acme", "globex"}
    assert not saved.clean_stop
    saver.stop()
    await task


async def test_only_changed_orgs_are_encoded_again(tmp_path: Path) -> None:
    """The second write reuses the bytes of every org whose state did not change."""
    states = [org(f"org-{i}") for i in range(20)]
    saver = writer(tmp_path / "state.json", states)
    assert await saver.write(clean_stop=False)
    assert saver.last_write is not None
    assert saver.last_write.encoded == 20
    succeed(states[3], states[3].report or UsageReport(None, None, None, None, ()), T0, 1.0)
    states[7].next_poll_at = T0 + 5  # a new due time alone is a change too
    assert await saver.write(clean_stop=False)
    assert saver.last_write.encoded == 2
    assert saver.last_write.orgs == 20
    saved = read_saved_state(tmp_path / "state.json")
    assert saved is not None
    assert saved.orgs["org-3"].usage.poll_duration == 1.0
    assert saved.orgs["org-7"].usage.next_poll_at == T0 + 5


async def test_unchanged_tenants_of_a_changed_org_are_not_encoded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll whose answer holds the same tenants keeps their tuple (state.py), so the
    next write re-encodes the org's record but reuses its tenants' bytes."""
    states = [org("same"), org("changed")]
    saver = writer(tmp_path / "state.json", states)
    assert await saver.write(clean_stop=False)
    encoded: list[int] = []
    real = state_file.encode_tenants

    def counted(tenants: tuple[TenantUsage, ...]) -> bytes:
        encoded.append(len(tenants))
        return real(tenants)

    monkeypatch.setattr(state_file, "encode_tenants", counted)
    same, changed = states
    assert same.report is not None
    assert changed.report is not None
    equal = tuple(TenantUsage(*tenant) for tenant in same.report.tenants)  # a new answer
    succeed(same, same.report._replace(tenants=equal), T0 + 60, 0.2)
    fewer = changed.report.tenants[:3]
    succeed(changed, changed.report._replace(tenants=fewer), T0 + 60, 0.2)
    assert await saver.write(clean_stop=False)
    assert saver.last_write is not None
    assert saver.last_write.encoded == 2
    assert encoded == [3]  # only the org whose tenants changed
    saved = read_saved_state(tmp_path / "state.json")
    assert saved is not None
    assert saved_report(saved.orgs["same"]) == same.report
    assert saved.orgs["same"].usage.poll_duration == 0.2
    assert saved_report(saved.orgs["changed"]) == changed.report


async def test_changed_tenants_become_the_base_once_they_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tenants that changed since the org's whole record are encoded at the next write
    (a delta) and, while they stay, once more at the one after, written whole as the
    org's new base; from then on their bytes are reused and the deltas are small."""
    path = tmp_path / "state.json"
    state = org("acme")
    saver = writer(path, [state])
    assert await saver.write(clean_stop=False)
    encoded: list[int] = []
    real = state_file.encode_tenants

    def counted(tenants: tuple[TenantUsage, ...]) -> bytes:
        encoded.append(len(tenants))
        return real(tenants)

    monkeypatch.setattr(state_file, "encode_tenants", counted)
    assert state.report is not None
    sizes = []
    for minute, report in enumerate(
        [state.report._replace(tenants=state.report.tenants[:9])] + [None] * 3, start=1
    ):
        succeed(state, report or state.report, T0 + 60 * minute, 0.2)
        assert await saver.write(clean_stop=False)
        assert saver.last_write is not None
        sizes.append(saver.last_write.bytes)
    assert encoded == [9, 9]  # the change, then the new base; never again
    delta, whole, *steady = sizes
    assert max(delta, *steady) * 5 < whole
    saved = read_saved_state(path)
    assert saved is not None
    assert saved_report(saved.orgs["acme"]) == state.report
    assert saved.orgs["acme"].usage.last_success_at == T0 + 240


async def test_encoding_yields_to_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Encoding a large fleet gives the event loop a turn every ENCODE_BATCH orgs."""
    states = [org(f"org-{i}") for i in range(ENCODE_BATCH * 4)]
    saver = writer(tmp_path / "state.json", states)
    turns = 0
    turns_before_the_thread: list[int] = []

    def counted(path: Path, pieces: Sequence[bytes]) -> None:
        turns_before_the_thread.append(turns)
        write_atomically(path, pieces)

    monkeypatch.setattr(state_journal, "write_atomically", counted)

    async def ticker() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = turns
    assert await saver.write(clean_stop=False)
    ticking.cancel()
    # Turns the loop had while the orgs were encoded, before the file went to the thread.
    assert turns_before_the_thread[0] - before >= 3


async def test_a_failed_write_is_logged_and_retried_until_it_works(tmp_path: Path) -> None:
    """state_write_failed, a retry with backoff, and state_write_recovered once it works."""
    path = tmp_path / "state.json"
    blocker = path.with_name(path.name + TEMP_SUFFIX)
    blocker.mkdir()  # the temp file cannot be created: as root, a read-only dir is not
    saver = writer(path, [org("acme")], delay=0.02)
    with capture_logs() as logs:
        task = asyncio.create_task(saver.run())
        saver.notify()
        await wait_until(lambda: sum(e["event"] == "state_write_failed" for e in logs) >= 2)
        blocker.rmdir()
        await wait_until(lambda: saver.writes == 1)
        saver.stop()
        await task
    failed = [e for e in logs if e["event"] == "state_write_failed"]
    assert failed[0]["log_level"] == "error"
    assert failed[0]["path"] == str(path)
    assert failed[0]["error"] == "Is a directory"
    assert failed[0]["consecutive_failures"] == 1
    assert failed[1]["retry_in_seconds"] > failed[0]["retry_in_seconds"]  # backing off
    recovered = [e for e in logs if e["event"] == "state_write_recovered"]
    assert recovered[0]["after_failures"] == len(failed)
    assert read_saved_state(path) is not None


async def test_stop_writes_once_more_marked_clean(tmp_path: Path) -> None:
    """A clean stop writes at once (not after the delay), with clean_stop set."""
    path = tmp_path / "state.json"
    saver = writer(path, [org("acme")], delay=60.0)
    task = asyncio.create_task(saver.run())
    saver.notify()
    await asyncio.sleep(0.05)
    started = time.monotonic()
    saver.stop()
    await task
    assert time.monotonic() - started < 5.0
    saved = read_saved_state(path)
    assert saved is not None
    assert saved.clean_stop


def test_load_sets_a_corrupt_file_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b'{"format": "something else"}')
    result = load_state(path, T0)
    assert result.state is None
    assert result.problem is not None
    assert "not a petra-collector state file" in result.problem
    assert result.set_aside_as is not None
    assert result.set_aside_as.read_bytes() == b'{"format": "something else"}'
    assert not path.exists()


def test_load_without_a_file_is_no_problem(tmp_path: Path) -> None:
    result = load_state(tmp_path / "state.json", T0)
    assert (result.state, result.problem) == (None, None)


def test_load_reads_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    asyncio.run(writer(path, [org("acme")]).write(clean_stop=True))
    result = load_state(path, T0)
    assert result.state is not None
    assert saved_report(result.state.orgs["acme"]) is not None
    assert result.state == read_saved_state(path)
    assert (result.legacy, result.ignored_bytes) == (False, 0)


@pytest.mark.parametrize("content", [b"", b"{", b"null"])
def test_load_of_a_broken_file_says_why_and_starts_fresh(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    result = load_state(path, T0)
    assert result.state is None
    assert result.problem
    assert result.set_aside_as is not None


async def test_a_large_file_is_written_less_often(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between writes, at least `bytes / WRITE_BYTES_PER_SECOND` seconds: disk wear is bounded."""
    path = tmp_path / "state.json"
    states = [org(f"org-{i}") for i in range(20)]
    saver = writer(path, states, delay=0.01)
    assert await saver.write(clean_stop=False)
    assert saver.last_write is not None
    monkeypatch.setattr(state_store, "WRITE_BYTES_PER_SECOND", saver.last_write.bytes / 0.5)
    task = asyncio.create_task(saver.run())
    saver.notify()
    started = time.monotonic()
    await wait_until(lambda: saver.writes == 2)
    took = time.monotonic() - started
    saver.stop()
    await task
    assert took >= 0.5


def test_no_file_is_no_state(tmp_path: Path) -> None:
    assert read_saved_state(tmp_path / "state.json") is None


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="is a directory"):
        read_saved_state(tmp_path)


def test_a_journal_that_does_not_read_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(HEADER)
    result = load_state(path, T0)
    assert result.problem == "holds no complete write"
    assert result.set_aside_as is not None


def test_a_json_state_file_is_read_and_replaced_by_a_journal(tmp_path: Path) -> None:
    """The format before the journal: read as it was, kept beside as `.json-v1`, logged,
    and replaced by the first write."""
    path = tmp_path / "state.json"
    states = [org("acme")]
    old = encode_document(
        [encode_org(states[0], wall_now=T0, monotonic_now=0.0)], written_at=T0, clean_stop=True
    )
    path.write_bytes(b"".join(old))
    result = load_state(path, T0)
    assert result.state is not None
    assert result.state.clean_stop
    assert saved_report(result.state.orgs["acme"]) == states[0].report
    assert result.legacy_kept_as == path.with_name("state.json" + LEGACY_SUFFIX)
    assert result.legacy_kept_as.read_bytes() == b"".join(old)
    with capture_logs() as logs:
        log_load(structlog.get_logger(), path, result)
    assert logs[0]["event"] == "state_migrated"
    assert logs[0]["old_file_kept_as"] == str(result.legacy_kept_as)
    assert asyncio.run(writer(path, states).write(clean_stop=False))
    assert path.read_bytes().startswith(HEADER)
    assert not load_state(path, T0).legacy
    assert result.legacy_kept_as.read_bytes() == b"".join(old)  # still there, for a downgrade


def test_an_older_json_copy_is_kept_and_one_that_cannot_be_made_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    copy = path.with_name("state.json" + LEGACY_SUFFIX)
    document = encode_document([], written_at=T0, clean_stop=False)
    copy.write_bytes(b"an older copy")
    path.write_bytes(b"".join(document))
    assert load_state(path, T0).legacy_kept_as == copy
    assert copy.read_bytes() == b"an older copy"
    copy.unlink()

    def no_links(_source: Path, _target: Path) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    assert load_state(path, T0).legacy_kept_as == copy  # copied instead
    assert copy.read_bytes() == b"".join(document)
    copy.unlink()
    copy.mkdir()  # neither can be made
    result = load_state(path, T0)
    assert (result.legacy, result.legacy_kept_as) == (True, None)
    assert result.legacy_copy_error == "Is a directory"
    with capture_logs() as logs:
        log_load(structlog.get_logger(), path, result)
    assert logs[0]["event"] == "state_migrated"
    assert (logs[0]["old_file_kept_as"], logs[0]["copy_error"]) == (None, "Is a directory")


async def test_a_steady_poll_appends_a_few_dozen_bytes(tmp_path: Path) -> None:
    """After the first write (the whole file), an org polled again with the same answer
    is appended as a delta: far less than its record."""
    path = tmp_path / "state.json"
    states = [org(f"org-{i}") for i in range(20)]
    saver = writer(path, states)
    assert await saver.write(clean_stop=False)
    assert saver.last_write is not None
    assert saver.last_write.rewrite
    whole = saver.last_write.bytes
    for state in states[:10]:
        assert state.report is not None
        succeed(state, state.report, T0 + 300.123456, 0.0123456)
    assert await saver.write(clean_stop=False)
    steady = saver.last_write
    assert steady is not None
    assert not steady.rewrite
    assert steady.encoded == 10
    assert steady.bytes < 10 * 120 < whole / 2
    saved = read_saved_state(path)
    assert saved is not None
    assert saved.orgs["org-3"].usage.last_success_at == T0 + 300.123456
    assert saved.orgs["org-13"].usage.last_success_at == T0


async def test_an_org_gone_from_the_config_is_gone_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    states = [org("acme"), org("globex")]
    saver = writer(path, states)
    assert await saver.write(clean_stop=False)
    del states[1]
    assert await saver.write(clean_stop=True)
    saved = read_saved_state(path)
    assert saved is not None
    assert set(saved.orgs) == {"acme"}


async def test_a_grown_journal_is_rewritten_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_journal, "COMPACT_RATIO", 0.01)
    path = tmp_path / "state.json"
    states = [org("acme"), org("globex")]
    saver = writer(path, states)
    assert await saver.write(clean_stop=False)
    states[0].next_poll_at = T0 + 5
    assert await saver.write(clean_stop=False)
    assert saver.last_write is not None
    assert not saver.last_write.rewrite
    states[0].next_poll_at = T0 + 10
    assert await saver.write(clean_stop=False)
    rewrite = saver.last_write
    assert rewrite is not None
    assert rewrite.rewrite
    assert rewrite.encoded == 2
    assert path.stat().st_size == rewrite.bytes
    saved = read_saved_state(path)
    assert saved is not None
    assert saved.orgs["acme"].usage.next_poll_at == T0 + 10
