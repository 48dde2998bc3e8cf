"""KeyWatch's decisions, against a fake inotify: which orgs a directory's events refresh,
one refresh per org per loop turn, the sweep's pace, and the fallback when inotify fails.

The fake's descriptor is a pipe's read end: a queued event makes it readable, so the real
event loop calls the watcher exactly as it would for the kernel's.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import structlog
from structlog.testing import capture_logs

from collector import key_watch
from collector.key_watch import (
    IN_CLOSE_WRITE,
    IN_DELETE,
    IN_IGNORED,
    IN_MODIFY,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    KeyWatch,
    key_file_dirs,
)
from tests.waiting import eventually

T = TypeVar("T")


class FakeInotify:
    """Watches handed out per directory (one per path, as the kernel's per inode)."""

    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self._read_end, self._write_end = os.pipe()
        os.set_blocking(self._read_end, False)
        self.refuse = refuse or {}  # directory -> errno its add_watch fails with
        self.wds: dict[str, int] = {}
        self.removed: list[int] = []
        self.queued: list[tuple[int, int, int, str]] = []
        self.closed = False

    def fileno(self) -> int:
        return self._read_end

    def add_watch(self, path: str, mask: int) -> int:
        assert mask == key_watch.WATCHED_EVENTS
        if path in self.refuse:
            raise OSError(self.refuse[path], os.strerror(self.refuse[path]))
        return self.wds.setdefault(path, len(self.wds) + 1)

    def rm_watch(self, wd: int) -> None:
        self.removed.append(wd)

    def read(self, timeout: int | None = None) -> Iterable[tuple[int, int, int, str]]:
        assert timeout == 0  # never blocks the loop
        while True:
            try:
                os.read(self._read_end, 4096)
            except BlockingIOError:
                break
        events, self.queued = self.queued, []
        return events

    def send(self, directory: str, mask: int, name: str = "") -> None:
        self.send_wd(self.wds[directory] if directory else -1, mask, name)

    def send_wd(self, wd: int, mask: int, name: str = "") -> None:
        self.queued.append((wd, mask, 0, name))
        os.write(self._write_end, b"x")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        os.close(self._read_end)
        os.close(self._write_end)


class Refreshes:
    """The refresh calls a KeyWatch makes, each a list of org names."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, names: Iterable[str]) -> None:
        self.calls.append(sorted(names))

    def counts(self) -> Counter[str]:
        return Counter(name for call in self.calls for name in call)


@pytest.fixture
def fake() -> Iterator[FakeInotify]:
    inotify = FakeInotify()
    yield inotify
    inotify.close()


def new_watch(fake: FakeInotify, refreshes: Refreshes) -> KeyWatch:
    return KeyWatch(refreshes, structlog.get_logger(), open_watch=lambda: fake)


async def started(watch: KeyWatch, refreshes: Refreshes) -> asyncio.Task[None]:
    """The watch running, its first look at every key file taken (and forgotten)."""
    task = asyncio.create_task(watch.run())
    await eventually(_async(lambda: refreshes.calls), "the first look")
    refreshes.calls.clear()
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_key_file_is_watched_by_its_directory_and_where_it_resolves(tmp_path: Path) -> None:
    plain = tmp_path / "keys" / "acme"
    plain.parent.mkdir()
    plain.write_text("k")
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "globex").write_text("k")
    linked = tmp_path / "keys" / "globex"
    linked.symlink_to(vault / "globex")
    (tmp_path / "through").symlink_to(vault)

    assert key_file_dirs(str(plain)) == (str(plain.parent),)
    assert key_file_dirs(str(linked)) == (str(linked.parent), str(vault))
    assert key_file_dirs(str(tmp_path / "through" / "globex")) == (
        str(tmp_path / "through"),
        str(vault),
    )
    # A file not there (yet) is watched by its directory, for its creation.
    assert key_file_dirs(str(tmp_path / "keys" / "later")) == (str(plain.parent),)


@pytest.mark.usefixtures("_no_sweep")
async def test_an_event_refreshes_exactly_the_orgs_of_its_directory(fake: FakeInotify) -> None:
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/a/acme", "globex": "/keys/a/globex", "hooli": "/keys/b/hooli"})
    task = await started(watch, refreshes)

    assert set(fake.wds) == {"/keys/a", "/keys/b"}  # one watch per directory, not per file
    fake.send("/keys/a", IN_CLOSE_WRITE, "acme")
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    assert refreshes.calls == [["acme", "globex"]]

    fake.send("/keys/b", IN_MOVED_TO, "..data")
    await eventually(_async(lambda: len(refreshes.calls) == 2), "a second refresh")
    assert refreshes.calls[1] == ["hooli"]
    await stop(task)
    assert fake.closed


@pytest.mark.usefixtures("_no_sweep")
async def test_every_key_file_is_looked_at_once_the_watches_are_in_place(
    fake: FakeInotify,
) -> None:
    """A change between the config's read and the watch is seen; so after a reload."""
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/a/acme", "hooli": "/keys/b/hooli"})
    task = asyncio.create_task(watch.run())

    await eventually(_async(lambda: refreshes.calls), "the first look")
    assert refreshes.calls == [["acme", "hooli"]]
    assert set(fake.wds) == {"/keys/a", "/keys/b"}
    watch.track({"acme": "/keys/a/acme", "hooli": "/keys/c/hooli", "wonka": "/keys/a/wonka"})
    await eventually(_async(lambda: len(refreshes.calls) == 2), "a look at the new ones")
    assert refreshes.calls[1] == ["hooli", "wonka"]
    await stop(task)


@pytest.mark.usefixtures("_no_sweep")
async def test_a_burst_of_events_is_one_refresh_per_org(fake: FakeInotify) -> None:
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/a/acme", "globex": "/keys/a/globex", "hooli": "/keys/b/hooli"})
    task = await started(watch, refreshes)

    for mask in (IN_MODIFY, IN_MODIFY, IN_CLOSE_WRITE):
        fake.send("/keys/a", mask, "acme")
    fake.send("/keys/b", IN_DELETE, "hooli")
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    await asyncio.sleep(0)  # a turn more: nothing else comes
    assert refreshes.calls == [["acme", "globex", "hooli"]]
    await stop(task)


@pytest.mark.usefixtures("_no_sweep")
async def test_an_overflow_refreshes_every_key_file(fake: FakeInotify) -> None:
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/a/acme", "hooli": "/keys/b/hooli"})
    task = await started(watch, refreshes)

    fake.send("", IN_Q_OVERFLOW)
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    assert refreshes.calls == [["acme", "hooli"]]
    await stop(task)


@pytest.mark.usefixtures("_no_sweep")
async def test_a_reload_moves_the_watches(fake: FakeInotify) -> None:
    """Orgs added, removed or pointed elsewhere: a directory no org needs is let go."""
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/a/acme", "hooli": "/keys/b/hooli"})
    task = await started(watch, refreshes)

    watch.track({"acme": "/keys/c/acme", "wonka": "/keys/c/wonka"})
    assert set(fake.wds) == {"/keys/a", "/keys/b", "/keys/c"}
    assert sorted(fake.removed) == [fake.wds["/keys/a"], fake.wds["/keys/b"]]
    await eventually(_async(lambda: refreshes.calls), "the look at the moved ones")
    fake.send("/keys/c", IN_CLOSE_WRITE, "wonka")
    await eventually(_async(lambda: len(refreshes.calls) == 2), "a refresh")
    assert refreshes.calls == [["acme", "wonka"], ["acme", "wonka"]]
    await stop(task)


@pytest.mark.usefixtures("_no_sweep")
async def test_a_directory_whose_watch_went_is_watched_again(fake: FakeInotify) -> None:
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/a/acme"})
    task = await started(watch, refreshes)
    first = fake.wds.pop("/keys/a")

    fake.send_wd(first, IN_IGNORED)  # e.g. the directory was replaced
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    assert refreshes.calls == [["acme"]]
    assert "/keys/a" in fake.wds  # watched anew
    await stop(task)


def test_the_slow_sweep_looks_at_each_watched_file_once_in_five_minutes(
    fake: FakeInotify, loop: asyncio.AbstractEventLoop
) -> None:
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({f"org{n}": f"/keys/d{n % 20}/org{n}" for n in range(2000)})
    watch._start(loop)  # noqa: SLF001 - the sweep, without its timer
    ticks = round(key_watch.SLOW_SWEEP_SECONDS / key_watch.TICK_SECONDS)

    for _ in range(ticks):
        watch.tick()

    assert len(fake.wds) == 20
    assert {len(call) for call in refreshes.calls} == {13, 14}  # spread, not all at once
    assert set(refreshes.counts().values()) == {1}
    assert len(refreshes.counts()) == 2000
    watch.tick()
    assert refreshes.calls[-1] == sorted(f"org{n}" for n in range(13))  # round again
    watch.close()


def test_without_inotify_every_file_is_swept_fast_and_the_reason_logged_once(
    loop: asyncio.AbstractEventLoop,
) -> None:
    refreshes = Refreshes()

    def refuse() -> FakeInotify:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    watch = KeyWatch(refreshes, structlog.get_logger(), open_watch=refuse)
    watch.track({f"org{n}": f"/keys/org{n}" for n in range(1500)})
    with capture_logs() as logs:
        watch._start(loop)  # noqa: SLF001 - the sweep, without its timer
        for _ in range(3):
            watch.tick()

    assert [len(call) for call in refreshes.calls] == [1000, 1000, 1000]
    assert refreshes.counts()["org0"] == 2  # 1,500 files in 1.5 ticks
    degraded = [entry for entry in logs if entry["event"] == "key_watch_degraded"]
    assert len(degraded) == 1
    assert degraded[0]["log_level"] == "warning"
    assert "No space left on device" in degraded[0]["reason"]
    assert "max_user_watches" in degraded[0]["reason"]
    assert "1000 every 2 s" in degraded[0]["action"]


def test_a_directory_inotify_cannot_watch_is_swept_fast_the_others_slowly(
    loop: asyncio.AbstractEventLoop,
) -> None:
    refreshes = Refreshes()
    fake = FakeInotify(refuse={"/nfs/a": errno.ENOSPC, "/nfs/b": errno.ENOSPC})
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/nfs/a/acme", "globex": "/nfs/b/globex", "hooli": "/keys/hooli"})
    with capture_logs() as logs:
        watch._start(loop)  # noqa: SLF001 - the sweep, without its timer
        for _ in range(5):
            watch.tick()

    assert refreshes.calls == [["acme", "globex"]] * 5  # hooli: once in 5 minutes
    degraded = [entry for entry in logs if entry["event"] == "key_watch_degraded"]
    assert len(degraded) == 1  # once per reason, not per directory
    assert "/nfs/a" in degraded[0]["reason"]

    del fake.refuse["/nfs/a"]  # room again: the next retry watches it
    for _ in range(round(key_watch.SLOW_SWEEP_SECONDS / key_watch.TICK_SECONDS)):
        watch.tick()
    assert "/nfs/a" in fake.wds
    assert refreshes.calls[-1] == ["globex"]
    watch.close()
    assert fake.closed


def test_a_missing_directory_is_swept_fast_without_a_warning(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Its key file's own `key_unreadable` says what is wrong; no inotify problem is."""
    refreshes = Refreshes()
    fake = FakeInotify(refuse={"/gone": errno.ENOENT})
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/gone/acme"})
    with capture_logs() as logs:
        watch._start(loop)  # noqa: SLF001 - the sweep, without its timer
        watch.tick()
    assert refreshes.calls == [["acme"]]
    assert not [entry for entry in logs if entry["event"] == "key_watch_degraded"]
    watch.close()
    assert fake.closed


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop that is never run: the sweep's ticks are called by the test."""
    idle = asyncio.new_event_loop()
    yield idle
    idle.close()


@pytest.fixture
def _no_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep's timer never fires during the test: only events refresh."""
    monkeypatch.setattr(key_watch, "TICK_SECONDS", 3600.0)


def _async(check: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    async def checking() -> T:
        return check()

    return checking
