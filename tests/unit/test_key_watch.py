"""KeyWatch's decisions, against a fake inotify: which orgs an event refreshes, one
refresh per org per burst, the sweep's pace, and the fallback when inotify fails.

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
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_IGNORED,
    IN_MOVE_SELF,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    KeyWatch,
    Where,
    sweep_ticks,
    where,
)
from tests.virtualtime import run_virtual
from tests.waiting import eventually

T = TypeVar("T")


class FakeInotify:
    """Watches handed out per inode, as the kernel's: a path in `same` is another name of
    a directory (a symlink to it), and `replace` gives a path a new inode."""

    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self._read_end, self._write_end = os.pipe()
        os.set_blocking(self._read_end, False)
        self.refuse = refuse or {}  # directory -> errno its add_watch fails with
        self.same: dict[str, str] = {}  # path -> the directory it is another name of
        self.wds: dict[str, int] = {}  # path -> the watch add_watch last answered for it
        self._wd_of_inode: dict[str, int] = {}
        self._last_wd = 0
        self.removed: list[int] = []
        self.queued: list[tuple[int, int, int, str]] = []
        self.closed = False

    def fileno(self) -> int:
        return self._read_end

    def add_watch(self, path: str, mask: int) -> int:
        assert mask == key_watch.WATCHED_EVENTS
        if path in self.refuse:
            raise OSError(self.refuse[path], os.strerror(self.refuse[path]))
        inode = self.same.get(path, path)
        if inode not in self._wd_of_inode:
            self._last_wd += 1
            self._wd_of_inode[inode] = self._last_wd
        self.wds[path] = self._wd_of_inode[inode]
        return self.wds[path]

    def replace(self, directory: str) -> None:
        """`directory` is another inode from now on: its next watch is another one."""
        del self._wd_of_inode[self.same.get(directory, directory)]

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


def test_a_key_file_is_watched_by_its_entry_and_the_one_it_resolves_to(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()  # the paths compared are the resolved ones
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "acme").write_text("k")
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "globex").write_text("k")
    (keys / "globex").symlink_to(vault / "globex")
    (keys / "alias").symlink_to("acme")
    (tmp_path / "through").symlink_to(vault)

    assert where(str(keys / "acme")) == Where(((str(keys), "acme"),), (str(keys),), False)
    assert where(str(keys / "globex")) == Where(
        ((str(keys), "globex"), (str(vault), "globex")), (str(keys), str(vault)), True
    )
    assert where(str(keys / "alias")) == Where(
        ((str(keys), "alias"), (str(keys), "acme")), (str(keys),), True
    )
    # The link is above the key file's directory: its own entry is no symlink.
    assert where(str(tmp_path / "through" / "globex")) == Where(
        ((str(tmp_path / "through"), "globex"), (str(vault), "globex")),
        (str(tmp_path / "through"), str(vault)),
        False,
    )
    # A file not there (yet) is watched by its directory, for its creation.
    assert where(str(keys / "later")) == Where(((str(keys), "later"),), (str(keys),), False)


@pytest.mark.usefixtures("_no_sweep")
async def test_an_event_refreshes_only_the_org_it_names(fake: FakeInotify) -> None:
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/a/acme", "globex": "/keys/a/globex", "hooli": "/keys/b/hooli"})
    task = await started(watch, refreshes)

    assert set(fake.wds) == {"/keys/a", "/keys/b"}  # one watch per directory, not per file
    fake.send("/keys/a", IN_CLOSE_WRITE, "acme")
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    assert refreshes.calls == [["acme"]]

    fake.send("/keys/b", IN_MOVED_TO, "..data")  # hooli's key file is no symlink
    fake.send("/keys/a", IN_CREATE, "globex")
    await eventually(_async(lambda: len(refreshes.calls) == 2), "a second refresh")
    assert refreshes.calls == [["acme"], ["globex"]]

    fake.send("/keys/a", IN_ATTRIB)  # the directory itself: every org in it
    await eventually(_async(lambda: len(refreshes.calls) == 3), "a third refresh")
    assert refreshes.calls[2] == ["acme", "globex"]
    await stop(task)
    assert fake.closed


@pytest.mark.usefixtures("_no_sweep")
async def test_events_in_a_directory_of_a_thousand_orgs_cost_per_file_named(
    fake: FakeInotify, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented layouts put every key file in one directory: 500 events naming one
    file re-read that one, and a log written there over and over re-reads none."""
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({f"org{n}": f"/run/secrets/petra/org{n}" for n in range(1000)})
    task = await started(watch, refreshes)
    placed: list[str] = []

    def placing(path: str) -> Where:
        placed.append(path)
        return where(path)

    monkeypatch.setattr(key_watch, "where", placing)

    for _ in range(500):
        fake.send("/run/secrets/petra", IN_CLOSE_WRITE, "collector.log")
        fake.send("/run/secrets/petra", IN_CLOSE_WRITE, "org7")
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    assert refreshes.calls == [["org7"]]
    assert placed == ["/run/secrets/petra/org7"]
    await stop(task)


@pytest.fixture
def secret_volume(tmp_path: Path) -> Path:
    """A Kubernetes Secret volume of acme (`acme -> ..data/acme`, `..data -> ..2026_01`),
    by its resolved path: the paths compared are the resolved ones."""
    volume = tmp_path.resolve()
    (volume / "..2026_01").mkdir()
    (volume / "..2026_01" / "acme").write_text("k")
    (volume / "..data").symlink_to("..2026_01")
    (volume / "acme").symlink_to(Path("..data") / "acme")
    return volume


@pytest.mark.usefixtures("_no_sweep")
async def test_an_entry_no_key_file_is_refreshes_the_symlinked_key_files_there(
    fake: FakeInotify, secret_volume: Path
) -> None:
    """An event naming `..data` (or any other entry no key file is) may have re-pointed
    acme: acme is looked at, the plain files beside it are not."""
    tmp_path = secret_volume
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    plain = {f"org{n}": str(tmp_path / f"org{n}") for n in range(1000)}
    watch.track({"acme": str(tmp_path / "acme"), **plain})
    task = await started(watch, refreshes)
    assert set(fake.wds) == {str(tmp_path), str(tmp_path / "..2026_01")}

    for _ in range(100):
        fake.send(str(tmp_path), IN_CLOSE_WRITE, "collector.log")
    fake.send(str(tmp_path), IN_MOVED_TO, "..data")
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    assert refreshes.calls == [["acme"]]
    await stop(task)


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

    for mask in (IN_CREATE, IN_ATTRIB, IN_CLOSE_WRITE):
        fake.send("/keys/a", mask, "acme")
    fake.send("/keys/b", IN_DELETE, "hooli")
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    await asyncio.sleep(2 * key_watch.SETTLE_SECONDS)  # nothing else comes
    assert refreshes.calls == [["acme", "hooli"]]
    await stop(task)


@pytest.mark.usefixtures("_no_sweep")
def test_a_refresh_waits_until_the_events_stop_and_at_most_a_second(fake: FakeInotify) -> None:
    """On virtual time: events 30 ms apart are one refresh 50 ms after the last; a
    stream that does not stop is refreshed a second after it began."""
    looks: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        watch = KeyWatch(
            lambda _names: looks.append(loop.time()),
            structlog.get_logger(),
            open_watch=lambda: fake,
        )
        watch.track({"acme": "/keys/a/acme"})
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(1.0)
        for _ in range(5):  # at 1.00, 1.03, ..., 1.12
            fake.send("/keys/a", IN_CLOSE_WRITE, "acme")
            await asyncio.sleep(0.03)
        await asyncio.sleep(1.0)
        began = loop.time()
        for _ in range(100):  # 3 s of events, 30 ms apart
            fake.send("/keys/a", IN_CLOSE_WRITE, "acme")
            await asyncio.sleep(0.03)
        await stop(task)
        assert looks[2] == pytest.approx(began + key_watch.SETTLE_AT_MOST_SECONDS)

    run_virtual(main())
    assert looks[:2] == [pytest.approx(0.05), pytest.approx(1.12 + 0.05)]
    # While they go on, one a second (the next burst begins with the next event); the
    # refresh due after the last event never comes: the watch stopped first.
    assert len(looks) == 4
    assert 1.0 <= looks[3] - looks[2] <= 1.0 + 0.03 + 1e-6


@pytest.mark.usefixtures("_no_sweep")
async def test_an_overflow_refreshes_every_key_file_and_sets_every_watch_again(
    fake: FakeInotify,
) -> None:
    """Lost events may have been a watch's end: a directory now on another inode gets
    a new watch, the old one goes."""
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/a/acme", "hooli": "/keys/b/hooli"})
    task = await started(watch, refreshes)
    a, old_b = fake.wds["/keys/a"], fake.wds["/keys/b"]
    fake.replace("/keys/b")

    fake.send("", IN_Q_OVERFLOW)
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    assert refreshes.calls == [["acme", "hooli"]]
    assert fake.wds["/keys/a"] == a
    assert fake.wds["/keys/b"] != old_b
    assert fake.removed == [old_b]

    fake.send_wd(old_b, IN_CLOSE_WRITE, "hooli")  # the old watch's last words: nobody's
    fake.send("/keys/a", IN_CLOSE_WRITE, "acme")
    await eventually(_async(lambda: len(refreshes.calls) == 2), "a refresh")
    fake.send("/keys/b", IN_CLOSE_WRITE, "hooli")
    await eventually(_async(lambda: len(refreshes.calls) == 3), "a refresh")
    assert refreshes.calls[1:] == [["acme"], ["hooli"]]
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
    assert refreshes.calls == [["acme", "wonka"], ["wonka"]]
    await stop(task)


@pytest.mark.usefixtures("_no_sweep")
async def test_a_reload_that_removes_an_org_with_an_event_pending(fake: FakeInotify) -> None:
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/a/acme", "globex": "/keys/a/globex"})
    task = await started(watch, refreshes)

    fake.send("/keys/a", IN_CLOSE_WRITE, "acme")
    fake.send("/keys/a", IN_CLOSE_WRITE, "globex")
    watch._on_events(fake)  # noqa: SLF001 - the events read now, their refresh not yet due
    watch.track({"globex": "/keys/a/globex"})
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    assert refreshes.calls == [["globex"]]
    await stop(task)


@pytest.mark.usefixtures("_no_sweep")
async def test_close_with_a_refresh_pending_refreshes_nothing(fake: FakeInotify) -> None:
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/a/acme"})
    task = await started(watch, refreshes)

    fake.send("/keys/a", IN_CLOSE_WRITE, "acme")
    watch._on_events(fake)  # noqa: SLF001 - the events read now, their refresh not yet due
    await stop(task)
    # The refresh would have been due long before this sleep ends (timers run in order).
    await asyncio.sleep(4 * key_watch.SETTLE_SECONDS)
    assert refreshes.calls == []
    assert fake.closed


@pytest.mark.usefixtures("_no_sweep")
async def test_a_directory_whose_watch_went_is_watched_again(fake: FakeInotify) -> None:
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/a/acme"})
    task = await started(watch, refreshes)
    first = fake.wds["/keys/a"]
    fake.replace("/keys/a")

    fake.send_wd(first, IN_IGNORED)  # e.g. the directory was replaced
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    assert refreshes.calls == [["acme"]]
    assert fake.wds["/keys/a"] != first  # watched anew
    await stop(task)


@pytest.mark.usefixtures("_no_sweep")
async def test_a_directory_moved_away_is_watched_again_at_its_path(fake: FakeInotify) -> None:
    """IN_MOVE_SELF: the watch would follow the directory to its new path; the key
    file's path is watched instead, and the old watch removed."""
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/a/acme", "hooli": "/keys/b/hooli"})
    task = await started(watch, refreshes)
    first = fake.wds["/keys/a"]
    fake.replace("/keys/a")

    fake.send_wd(first, IN_MOVE_SELF)
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    assert refreshes.calls == [["acme"]]
    assert fake.removed == [first]
    assert fake.wds["/keys/a"] != first

    fake.send_wd(first, IN_IGNORED)  # the kernel's answer to the removal: nobody's now
    fake.send("/keys/a", IN_CLOSE_WRITE, "acme")
    await eventually(_async(lambda: len(refreshes.calls) == 2), "a refresh")
    assert refreshes.calls[1] == ["acme"]
    await stop(task)


@pytest.mark.usefixtures("_no_sweep")
async def test_two_paths_of_one_directory_share_its_watch(fake: FakeInotify) -> None:
    """`/keys/link -> real`: the kernel gives both paths one watch (one inode). It goes
    when both are gone, and both are watched anew when it ends."""
    fake.same["/keys/link"] = "/keys/real"
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/keys/link/acme", "globex": "/keys/real/globex"})
    task = await started(watch, refreshes)
    shared = fake.wds["/keys/link"]
    assert fake.wds["/keys/real"] == shared

    fake.send_wd(shared, IN_CLOSE_WRITE, "acme")
    await eventually(_async(lambda: refreshes.calls), "a refresh")
    assert refreshes.calls == [["acme"]]

    fake.replace("/keys/real")
    fake.send_wd(shared, IN_IGNORED)  # the directory was replaced: both paths' orgs
    await eventually(_async(lambda: len(refreshes.calls) == 2), "a second refresh")
    assert refreshes.calls[1] == ["acme", "globex"]
    renewed = fake.wds["/keys/link"]
    assert renewed != shared
    assert fake.wds["/keys/real"] == renewed
    assert fake.removed == [shared]

    watch.track({"globex": "/keys/real/globex"})
    assert fake.removed == [shared]  # /keys/real still needs it
    watch.track({})
    assert fake.removed == [shared, renewed]
    await stop(task)


def test_the_slow_sweep_looks_at_each_watched_file_once_in_five_minutes(
    fake: FakeInotify, loop: asyncio.AbstractEventLoop
) -> None:
    refreshes = Refreshes()
    watch = new_watch(fake, refreshes)
    watch.track({f"org{n}": f"/keys/d{n % 20}/org{n}" for n in range(2000)})
    watch._start(loop)  # noqa: SLF001 - the sweep, without its timer

    for _ in range(sweep_ticks()):
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


def test_off_linux_the_sweep_is_said_at_info(loop: asyncio.AbstractEventLoop) -> None:
    """Nothing is wrong where inotify does not exist: no warning."""
    refreshes = Refreshes()

    def absent() -> FakeInotify:
        raise OSError(errno.ENOSYS, "inotify is not available on this platform")

    watch = KeyWatch(refreshes, structlog.get_logger(), open_watch=absent)
    watch.track({"acme": "/keys/acme"})
    with capture_logs() as logs:
        watch._start(loop)  # noqa: SLF001 - the sweep, without its timer
        watch.tick()

    assert refreshes.calls == [["acme"]]
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("key_watch_unavailable", "info")
    ]
    assert "not available" in logs[0]["reason"]


def test_a_watch_that_cannot_start_closes_its_descriptor(
    fake: FakeInotify, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reader(*_: object) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(loop, "add_reader", no_reader)
    watch = new_watch(fake, Refreshes())
    watch.track({"acme": "/keys/a/acme"})

    with pytest.raises(OSError, match="not permitted"):
        loop.run_until_complete(watch.run())
    assert fake.closed


def test_a_directory_inotify_cannot_watch_is_swept_fast_the_others_slowly(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Until it can be watched: then its key files are looked at once, and once every
    directory is watched that is said, so that a later failure is said again."""
    refreshes = Refreshes()
    fake = FakeInotify(refuse={"/nfs/a": errno.ENOSPC, "/nfs/b": errno.ENOSPC})
    watch = new_watch(fake, refreshes)
    watch.track({"acme": "/nfs/a/acme", "globex": "/nfs/b/globex", "hooli": "/keys/hooli"})
    with capture_logs() as logs:
        watch._start(loop)  # noqa: SLF001 - the sweep, without its timer
        loop.run_until_complete(eventually(_async(lambda: refreshes.calls), "the first look"))
        refreshes.calls.clear()
        for _ in range(5):
            watch.tick()

        assert refreshes.calls == [["acme", "globex"]] * 5  # hooli: once in 5 minutes
        degraded = [entry for entry in logs if entry["event"] == "key_watch_degraded"]
        assert len(degraded) == 1  # once per reason, not per directory
        assert "/nfs/a" in degraded[0]["reason"]

        del fake.refuse["/nfs/a"]  # room again: the next retry watches it
        for _ in range(sweep_ticks()):
            watch.tick()
        assert "/nfs/a" in fake.wds
        assert refreshes.calls[-1] == ["globex"]
        swept = len(refreshes.calls)
        loop.run_until_complete(
            eventually(_async(lambda: len(refreshes.calls) > swept), "the look once watched")
        )
        assert refreshes.calls[swept:] == [["acme"]]
        assert not [entry for entry in logs if entry["event"] == "key_watch_recovered"]

        del fake.refuse["/nfs/b"]
        for _ in range(sweep_ticks()):
            watch.tick()
        recovered = [entry for entry in logs if entry["event"] == "key_watch_recovered"]
        assert [entry["log_level"] for entry in recovered] == ["info"]

        fake.refuse["/nfs/c"] = errno.ENOSPC
        watch.track({"acme": "/nfs/a/acme", "globex": "/nfs/b/globex", "wonka": "/nfs/c/wonka"})
    degraded = [entry for entry in logs if entry["event"] == "key_watch_degraded"]
    assert len(degraded) == 2
    assert "/nfs/c" in degraded[1]["reason"]
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
    """A loop run only when a test asks: the sweep's ticks are called by the test."""
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
