"""Key rotations seen by the real scheduler through the real inotify, on real files.

The sweep's tick is an hour here, so only an inotify event can explain a rotation noticed
within the test's deadline: each is noticed long before the 5-minute sweep would. The org
polls once an hour, so the request with the new key that follows is the wake-up a
rotation gives every route of its org.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from collector import key_watch
from collector.apikey import ApiKey
from collector.config import OrgConfig, PollingSettings
from collector.keys import KeySource
from collector.petra_billing import BillingReport
from collector.petra_incidents import IncidentsReport
from collector.petra_usage import UsageReport
from collector.routes import Sections
from collector.scheduler import Scheduler, initial_offset
from tests.leaks import assert_no_key_material
from tests.waiting import eventually

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's")

OLD = "petra_live_OldKey1111aaaa2222bbbb3333"
BAD = "petra_live_BadKey7777 eeee8888ffff9999"  # a space: no key
NEW = "petra_live_NewKey4444cccc5555dddd6666ee"  # another length: a new size, whatever mtime says
HOUR = 3600.0
POLLING = PollingSettings(interval_seconds=HOUR)
REPORT = UsageReport("2026-11-26", None, "Acme MSP", 0.0, ())


@dataclass
class KeysSeen:
    """A fetcher that answers every usage request, recording its key."""

    keys: list[str] = field(default_factory=list)

    async def fetch_usage(self, key: ApiKey, previous: UsageReport | None = None) -> UsageReport:
        del previous
        self.keys.append(key.reveal())
        return REPORT

    async def fetch_incidents(
        self, key: ApiKey, *, start_date: str, limit: int = 100, tenant_id: str | None = None
    ) -> IncidentsReport:
        del key, start_date, limit, tenant_id
        raise AssertionError("incidents are not polled here")

    async def fetch_billing(self, key: ApiKey, *, tenant_id: str) -> BillingReport:
        del key, tenant_id
        raise AssertionError("billing is not polled here")


@dataclass
class Running:
    scheduler: Scheduler
    fetcher: KeysSeen
    logs: list[MutableMapping[str, Any]]
    looks: list[list[str]]  # the orgs of each call of the scheduler's key file look

    def events(self, name: str) -> list[MutableMapping[str, Any]]:
        return [entry for entry in self.logs if entry["event"] == name]

    async def wait(self, what: str, check: Callable[[], bool]) -> None:
        async def checking() -> bool:
            return check()

        await eventually(checking, what, details=lambda: repr(self.logs))

    async def wait_rotated(self) -> None:
        """`key_reloaded` is logged and the org, woken, polls with the new key."""
        await self.wait("key_reloaded", lambda: bool(self.events("key_reloaded")))
        await self.wait("a poll with the new key", lambda: NEW in self.fetcher.keys)
        state = self.scheduler.state("acme")
        assert state is not None
        assert state.key_fingerprint == ApiKey(NEW).fingerprint
        reloaded = self.events("key_reloaded")
        assert len(reloaded) == 1
        assert reloaded[0]["previous_key_fingerprint"] == ApiKey(OLD).fingerprint
        assert_no_key_material([OLD, NEW], repr(self.logs))


@pytest.fixture(autouse=True)
def _no_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_watch, "TICK_SECONDS", HOUR)


@pytest.fixture
async def running(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[[Path], Running]]:
    """Starts a scheduler of one org, acme, whose key file is the path given."""
    started: list[tuple[Scheduler, asyncio.Task[None]]] = []
    looks: list[list[str]] = []
    look = Scheduler._refresh_key_files  # noqa: SLF001 - recorded, then run as it is

    def recorded(scheduler: Scheduler, names: Iterable[str]) -> None:
        looks.append(list(names))
        look(scheduler, looks[-1])

    monkeypatch.setattr(Scheduler, "_refresh_key_files", recorded)
    with capture_logs() as logs:

        def start(key_file: Path) -> Running:
            source = KeySource("file", str(key_file))
            fetcher = KeysSeen()
            scheduler = Scheduler(fetcher, Sections(POLLING))
            scheduler.apply([OrgConfig("acme", source, HOUR, source.load())], Sections(POLLING))
            started.append((scheduler, asyncio.create_task(scheduler.run())))
            return Running(scheduler, fetcher, logs, looks)

        yield start
        for scheduler, task in started:
            scheduler.stop()
            await task
    assert initial_offset("acme", HOUR) > 60  # no poll of its own during a test


async def started_with(running: Callable[[Path], Running], key_file: Path) -> Running:
    """The scheduler running, its watches set: their first look at the key file is taken
    once they are in place, so a change made after it can only be seen through them."""
    run = running(key_file)
    await run.wait("the watch's first look", lambda: bool(run.looks))
    return run


async def test_a_key_file_rewritten_in_place(
    tmp_path: Path, running: Callable[[Path], Running]
) -> None:
    key_file = tmp_path / "acme"
    key_file.write_text(OLD)
    run = await started_with(running, key_file)

    key_file.write_text(NEW + "\n")

    await run.wait_rotated()


async def test_a_key_file_written_in_steps_is_read_once_whole(
    tmp_path: Path, running: Callable[[Path], Running]
) -> None:
    """`echo k > file` truncates the file before a byte is written, and a writer may
    write in pieces: neither the empty file nor half a key is ever read or used."""
    key_file = tmp_path / "acme"
    key_file.write_text(OLD)
    run = await started_with(running, key_file)

    def write_in_two_steps() -> None:
        with key_file.open("w") as file:  # O_TRUNC, the descriptor kept open
            file.write(NEW[:12])
            file.flush()
            time.sleep(0.3)  # a slow writer: the half key stays there a while
            file.write(NEW[12:] + "\n")

    await asyncio.to_thread(write_in_two_steps)

    await run.wait_rotated()
    assert set(run.fetcher.keys) <= {OLD, NEW}
    assert not run.events("key_unreadable")


async def test_a_key_file_changed_before_the_watch_was_set(
    tmp_path: Path, running: Callable[[Path], Running]
) -> None:
    """The config read the key; the file changed before the scheduler ran."""
    key_file = tmp_path / "acme"
    key_file.write_text(OLD)
    run = running(key_file)
    key_file.write_text(NEW)

    await run.wait_rotated()


async def test_a_new_file_moved_over_the_key_file(
    tmp_path: Path, running: Callable[[Path], Running]
) -> None:
    key_file = tmp_path / "acme"
    key_file.write_text(OLD)
    run = await started_with(running, key_file)

    (tmp_path / ".acme.new").write_text(NEW)
    (tmp_path / ".acme.new").replace(key_file)

    await run.wait_rotated()


async def test_a_kubernetes_secret_swap(tmp_path: Path, running: Callable[[Path], Running]) -> None:
    """kubelet's update: a new timestamped directory, a `..data_tmp` symlink renamed over
    `..data`; the key file is `acme -> ..data/acme`. Then a second swap: the watch moved
    to the new directory along."""
    first = tmp_path / "..2026_01"
    first.mkdir()
    (first / "acme").write_text(OLD)
    (tmp_path / "..data").symlink_to(first.name)
    key_file = tmp_path / "acme"
    key_file.symlink_to(Path("..data") / "acme")
    run = await started_with(running, key_file)

    _swap(tmp_path, "..2026_02", NEW)
    await run.wait_rotated()
    _swap(tmp_path, "..2026_03", OLD)
    await run.wait("the second swap", lambda: len(run.events("key_reloaded")) == 2)


def _swap(directory: Path, new: str, key: str) -> None:
    old = (directory / "..data").readlink()
    (directory / new).mkdir()
    (directory / new / "acme").write_text(key)
    (directory / "..data_tmp").symlink_to(new)
    (directory / "..data_tmp").replace(directory / "..data")
    (directory / old / "acme").unlink()
    (directory / old).rmdir()


async def test_a_key_file_with_a_bad_key_is_said_without_the_key(
    tmp_path: Path, running: Callable[[Path], Running]
) -> None:
    """A key file rewritten with a value that is no key (a space in it): said once as
    `key_unreadable`, the last good key kept, and no piece of the bad value in any line
    (it may be a real key with a typo)."""
    key_file = tmp_path / "acme"
    key_file.write_text(OLD)
    run = await started_with(running, key_file)

    key_file.write_text(BAD)
    await run.wait("key_unreadable", lambda: bool(run.events("key_unreadable")))
    assert "spaces" in str(run.events("key_unreadable")[0]["error"])
    assert run.events("key_reloaded") == []
    assert_no_key_material([BAD, OLD], repr(run.logs))


async def test_a_key_file_deleted_then_created_again(
    tmp_path: Path, running: Callable[[Path], Running]
) -> None:
    key_file = tmp_path / "acme"
    key_file.write_text(OLD)
    run = await started_with(running, key_file)

    key_file.unlink()
    await run.wait("key_unreadable", lambda: bool(run.events("key_unreadable")))
    assert "not found" in str(run.events("key_unreadable")[0]["error"])
    key_file.write_text(NEW)

    await run.wait_rotated()


async def test_a_key_file_in_a_directory_reached_through_a_symlink(
    tmp_path: Path, running: Callable[[Path], Running]
) -> None:
    real = tmp_path / "srv-keys"
    real.mkdir()
    (real / "acme").write_text(OLD)
    (tmp_path / "keys").symlink_to(real)
    run = await started_with(running, tmp_path / "keys" / "acme")

    (real / ".acme.new").write_text(NEW)
    (real / ".acme.new").replace(real / "acme")

    await run.wait_rotated()


async def test_a_symlinked_key_file_whose_target_is_replaced(
    tmp_path: Path, running: Callable[[Path], Running]
) -> None:
    """keys/acme -> ../vault/acme: the change is in vault/, where the file resolves. The
    link pointed elsewhere later, the watch follows it there."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "acme").write_text(OLD)
    (tmp_path / "keys").mkdir()
    key_file = tmp_path / "keys" / "acme"
    key_file.symlink_to(Path("..") / "vault" / "acme")
    run = await started_with(running, key_file)

    (vault / ".acme.new").write_text(NEW)
    (vault / ".acme.new").replace(vault / "acme")
    await run.wait_rotated()

    elsewhere = tmp_path / "vault2"
    elsewhere.mkdir()
    (elsewhere / "acme").write_text(OLD)
    (tmp_path / "keys" / ".acme.new").symlink_to(Path("..") / "vault2" / "acme")
    (tmp_path / "keys" / ".acme.new").replace(key_file)
    await run.wait("the re-pointed link", lambda: len(run.events("key_reloaded")) == 2)
    (elsewhere / ".acme.new").write_text(NEW)
    (elsewhere / ".acme.new").replace(elsewhere / "acme")
    await run.wait("a change in vault2", lambda: len(run.events("key_reloaded")) == 3)


async def test_without_inotify_the_stat_sweep_still_notices(
    tmp_path: Path, running: Callable[[Path], Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    """inotify_init failing (here ENOSPC): a warning once, and key files looked at by stat
    every tick, as before inotify."""

    def no_room(**_: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(key_watch, "INotify", no_room)
    monkeypatch.setattr(key_watch, "TICK_SECONDS", 0.01)
    key_file = tmp_path / "acme"
    key_file.write_text(OLD)
    run = await started_with(running, key_file)

    key_file.write_text(NEW)
    await run.wait_rotated()
    key_file.write_text(OLD)  # a sweep after more ticks: still one warning
    await run.wait("the second rotation", lambda: len(run.events("key_reloaded")) == 2)

    degraded = run.events("key_watch_degraded")
    assert len(degraded) == 1
    assert degraded[0]["log_level"] == "warning"
    assert "No space left on device" in str(degraded[0]["reason"])
    assert OLD not in repr(run.logs)
    assert NEW not in repr(run.logs)
