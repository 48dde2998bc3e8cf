"""Which orgs' key files may have changed: the kernel says (inotify), a slow sweep checks.

On Linux each directory that holds a key file, and each directory a key file's path
resolves into (symlinks: a Kubernetes Secret volume's `..data`), is watched once with
inotify, its descriptor read by the event loop. An event naming an entry re-reads only
the orgs whose key file is that entry (or resolves to it); an event naming anything
else re-reads only the orgs whose key file is a symlink in that directory (a `..data`
swap re-points them), so a fleet sharing one directory pays per changed file, not per
org. The re-read waits until no event has come for `SETTLE_SECONDS`, so a file created
and then written is read once, whole (a write alone sends nothing: a file is read once
its writer closes it).

inotify does not see changes made on another machine (NFS, some FUSE mounts), nor a
writer that keeps the file open, and can fail (`fs.inotify.max_user_watches` reached,
too many open files, not Linux), so a sweep stays: every watched key file once per
`SLOW_SWEEP_SECONDS`, a few at each tick; the files inotify cannot watch
`FAST_PER_TICK` per tick, as before inotify (a rotated key seen within seconds), with
a `key_watch_degraded` warning once per reason (`key_watch_unavailable`, info, off
Linux) and `key_watch_recovered` once every directory is watched again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Final, NamedTuple, Protocol, TypeVar, cast

import structlog

try:
    from inotify_simple import INotify
except ImportError:  # not Linux: the dependency is installed only there
    INotify = None

_K = TypeVar("_K")

TICK_SECONDS: Final = 2.0
# Files inotify cannot watch: this many per tick (a 1,000-org fleet sees a rotated key
# within 2 s, 10,000 orgs within 20 s).
FAST_PER_TICK: Final = 1000
# Files inotify watches: each once in this long, spread evenly over the ticks. The safety
# net for what inotify cannot see (a change made by an NFS server's other client).
SLOW_SWEEP_SECONDS: Final = 300.0
# A key file is re-read once no event has come for this long (`echo k > file` creates
# or truncates it before writing), and at the latest this long after a burst began.
SETTLE_SECONDS: Final = 0.05
SETTLE_AT_MOST_SECONDS: Final = 1.0

# inotify's event bits (linux/inotify.h), as the kernel sends them.
IN_ATTRIB: Final = 0x004
IN_CLOSE_WRITE: Final = 0x008
IN_MOVED_FROM: Final = 0x040
IN_MOVED_TO: Final = 0x080
IN_CREATE: Final = 0x100
IN_DELETE: Final = 0x200
IN_DELETE_SELF: Final = 0x400
IN_MOVE_SELF: Final = 0x800  # the watched directory now has another path
IN_Q_OVERFLOW: Final = 0x4000  # events were lost
IN_IGNORED: Final = 0x8000  # the watch is gone (directory deleted, unmounted, removed)
# No IN_MODIFY: it comes with every write, the first before a byte is there (O_TRUNC);
# a writer's close (IN_CLOSE_WRITE) says the file is whole.
WATCHED_EVENTS: Final = (
    IN_CLOSE_WRITE
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_MOVED_FROM
    | IN_ATTRIB
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)
# A directory that is not there (yet) is no failure of inotify: the key file's own
# `key_unreadable` says what is wrong, and the fast sweep sees it come back.
_QUIET_ERRORS: Final = frozenset({errno.ENOENT, errno.ENOTDIR})
_ADVICE: Final = {
    errno.ENOSPC: " (fs.inotify.max_user_watches reached)",
    errno.EMFILE: " (fs.inotify.max_user_instances or the open-file limit reached)",
}


class InotifyHandle(Protocol):
    """What is used of `inotify_simple.INotify` (which ships no type information)."""

    def fileno(self) -> int: ...
    def add_watch(self, path: str, mask: int) -> int: ...
    def rm_watch(self, wd: int) -> None: ...
    def read(self, timeout: int | None = None) -> Iterable[tuple[int, int, int, str]]: ...
    def close(self) -> None: ...


def open_inotify() -> InotifyHandle:
    if INotify is None:
        raise OSError(errno.ENOSYS, "inotify is not available on this platform")
    return cast(InotifyHandle, INotify(nonblocking=True))


def sweep_ticks() -> int:
    """The ticks of one slow sweep (read at each use: tests shorten the tick)."""
    return max(round(SLOW_SWEEP_SECONDS / TICK_SECONDS), 1)


class Where(NamedTuple):
    """The directory entries whose events concern a key file."""

    entries: tuple[tuple[str, str], ...]  # (directory, name): its own, then where it resolves
    dirs: tuple[str, ...]  # the directories of `entries`, each once
    linked: bool  # its own entry is a symlink: another entry there may re-point it


def where(path: str) -> Where:
    """The entry of `path` in its directory and, when a symlink leads elsewhere, the
    entry of the file it resolves to."""
    own = os.path.abspath(path)  # noqa: PTH100 - str in, str out, at every look
    real = os.path.realpath(path)
    own_entry = os.path.split(own)
    entries = (own_entry,) if real == own else (own_entry, os.path.split(real))
    dirs = tuple(dict.fromkeys(directory for directory, _name in entries))
    return Where(entries, dirs, os.path.islink(own))  # noqa: PTH114 - as above


class KeyWatch:
    """Calls `refresh(names)` with the orgs whose key file may have changed.

    `track()` says which orgs have which key file (at start and after every reload);
    `run()` watches until cancelled, and closes the inotify descriptor then.
    """

    def __init__(
        self,
        refresh: Callable[[Iterable[str]], None],
        log: structlog.typing.FilteringBoundLogger,
        open_watch: Callable[[], InotifyHandle] = open_inotify,
    ) -> None:
        self._refresh = refresh
        self._log = log
        self._open = open_watch
        self._inotify: InotifyHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._files: dict[str, str] = {}  # org -> key file path, as configured
        self._where: dict[str, Where] = {}  # org -> the entries it is watched by
        self._orgs_in: dict[str, set[str]] = {}  # directory -> orgs with an entry there
        self._named: dict[tuple[str, str], set[str]] = {}  # (directory, entry) -> orgs
        self._linked_in: dict[str, set[str]] = {}  # directory -> orgs whose entry is a link
        self._wd_of: dict[str, int] = {}  # directory -> watch descriptor
        self._dirs_at: dict[int, set[str]] = {}  # watch descriptor -> directories (one inode)
        self._failed: dict[str, int | None] = {}  # directory inotify could not watch -> errno
        self._said: set[str] = set()  # the degraded reasons logged already
        self._pending: set[str] = set()  # orgs to refresh once events settle
        self._flush_timer: asyncio.TimerHandle | None = None
        self._burst_began = 0.0
        self._last_event = 0.0
        self._slow: list[str] = []  # orgs whose directories are all watched
        self._fast: list[str] = []  # the others
        self._lists_stale = True
        self._slow_at = 0
        self._fast_at = 0
        self._slow_step = 0
        self._ticks_to_retry = 0

    # -- what is watched ---------------------------------------------------------------

    def track(self, files: Mapping[str, str]) -> None:
        """The orgs' key files from now on (org name -> path)."""
        for name in [name for name in self._files if name not in files]:
            del self._files[name]
            self._place(name, None)
        new = [name for name, path in files.items() if self._files.get(name) != path]
        for name in new:
            self._files[name] = files[name]
            self._place(name, self._where_for(files[name]))
        self._lists_stale = True
        self._say_if_recovered()  # the directories that could not be watched may be gone
        # The config read the key before the watch was there: a change in between is
        # seen by this look.
        self._refresh_soon(new)

    def _where_for(self, path: str) -> Where | None:
        if self._inotify is None:
            return None  # nothing to watch them with: no symlinks to follow either
        return where(path)

    def _place(self, name: str, new: Where | None) -> None:
        """Watch `name` by the entries of `new`: directories no org needs are let go."""
        old = self._where.get(name)
        if old != new:
            self._lists_stale = True
            if old is not None:
                self._unindex(name, old, new.dirs if new is not None else ())
            if new is not None:
                self._index(name, new)
        if new is None:
            return
        for directory in new.dirs:
            if directory not in self._wd_of and directory not in self._failed:
                self._watch(directory)

    def _index(self, name: str, place: Where) -> None:
        self._where[name] = place
        for entry in place.entries:
            self._named.setdefault(entry, set()).add(name)
        for directory in place.dirs:
            self._orgs_in.setdefault(directory, set()).add(name)
        if place.linked:
            self._linked_in.setdefault(place.entries[0][0], set()).add(name)

    def _unindex(self, name: str, place: Where, staying: tuple[str, ...]) -> None:
        del self._where[name]
        for entry in place.entries:
            _discard(self._named, entry, name)
        if place.linked:
            _discard(self._linked_in, place.entries[0][0], name)
        for directory in place.dirs:
            if directory not in staying:
                self._leave(name, directory)

    def _leave(self, name: str, directory: str) -> None:
        if _discard(self._orgs_in, directory, name):
            self._failed.pop(directory, None)
            self._detach(directory)

    def _detach(self, directory: str) -> None:
        """`directory` has no watch from now on; the watch goes once no path uses it."""
        wd = self._wd_of.pop(directory, None)
        if wd is None:
            return
        sharing = self._dirs_at.get(wd, set())
        sharing.discard(directory)
        if sharing:
            return  # another path of the same directory still needs the watch
        self._dirs_at.pop(wd, None)
        self._unwatch(wd)

    def _watch(self, directory: str) -> None:
        """Watch `directory` (again: the kernel answers the watch its inode has now)."""
        inotify = self._inotify
        if inotify is None:
            return
        try:
            wd = inotify.add_watch(directory, WATCHED_EVENTS)
        except OSError as error:
            self._detach(directory)
            self._failed[directory] = error.errno
            self._lists_stale = True
            if error.errno not in _QUIET_ERRORS:
                reason = f"cannot watch {directory}: {error.strerror}"
                self._degraded(reason + _ADVICE.get(error.errno or 0, ""), error.errno)
            return
        self._failed.pop(directory, None)
        if self._wd_of.get(directory) == wd:
            return
        self._detach(directory)
        self._wd_of[directory] = wd
        self._dirs_at.setdefault(wd, set()).add(directory)
        self._lists_stale = True

    def _degraded(self, reason: str, code: int | None) -> None:
        said = errno.errorcode.get(code or 0, reason)
        if said in self._said:
            return
        self._said.add(said)
        self._log.warning("key_watch_degraded", reason=reason, action=_stat_sweep())

    def _say_if_recovered(self) -> None:
        """Once every directory a warning was about is watched: said, and forgotten, so
        a later failure is said again."""
        if not self._said or self._inotify is None:
            return
        if any(code not in _QUIET_ERRORS for code in self._failed.values()):
            return
        self._said.clear()
        self._log.info(
            "key_watch_recovered",
            action="every key file is watched by inotify again, "
            f"and looked at by stat once every {SLOW_SWEEP_SECONDS:g} s",
        )

    def _watched(self, name: str) -> bool:
        place = self._where.get(name)
        return place is not None and all(directory in self._wd_of for directory in place.dirs)

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        """Watch, and sweep every `TICK_SECONDS`, until cancelled."""
        try:
            self._start(asyncio.get_running_loop())
            while True:
                await asyncio.sleep(TICK_SECONDS)
                self.tick()
        finally:
            self.close()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            inotify = self._open()
        except OSError as error:
            reason = f"inotify cannot be set up: {error.strerror}"
            if error.errno == errno.ENOSYS:  # not Linux: the sweep is all there is
                self._log.info("key_watch_unavailable", reason=reason, action=_stat_sweep())
                return
            self._degraded(reason + _ADVICE.get(error.errno or 0, ""), error.errno)
            return
        try:
            loop.add_reader(inotify.fileno(), self._on_events, inotify)
        except BaseException:
            inotify.close()
            raise
        self._inotify = inotify
        self._loop = loop
        for name, path in self._files.items():
            self._place(name, where(path))
        self._lists_stale = True
        self._refresh_soon(self._files)  # a change since the config was read

    def close(self) -> None:
        inotify, self._inotify = self._inotify, None
        if inotify is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(inotify.fileno())
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._pending.clear()
        inotify.close()
        self._wd_of.clear()
        self._dirs_at.clear()
        self._where.clear()
        self._orgs_in.clear()
        self._named.clear()
        self._linked_in.clear()
        self._failed.clear()
        self._lists_stale = True

    def _on_events(self, inotify: InotifyHandle) -> None:
        touched: set[tuple[int, str]] = set()  # (wd, entry name): "" for the directory
        gone: set[int] = set()
        overflow = False
        for wd, mask, _cookie, name in inotify.read(timeout=0):
            if mask & IN_Q_OVERFLOW:
                overflow = True
                continue
            touched.add((wd, name))
            if mask & (IN_IGNORED | IN_MOVE_SELF):
                gone.add(wd)
        names = set(self._files) if overflow else self._orgs_touched(touched)
        for wd in gone:
            self._forget(wd)  # its orgs, refreshed, watch their directories anew
        if overflow:
            self._rewatch()
        self._refresh_soon(names)

    def _orgs_touched(self, touched: Iterable[tuple[int, str]]) -> set[str]:
        """The orgs whose key file the events named, or may have re-pointed."""
        names: set[str] = set()
        for wd, entry in touched:
            for directory in self._dirs_at.get(wd, ()):
                if not entry:  # the directory itself: deleted, moved, its watch gone
                    names.update(self._orgs_in.get(directory, ()))
                    continue
                if (directory, entry) in self._named:
                    names.update(self._named[directory, entry])
                else:  # no key file: a symlink there may have been re-pointed
                    names.update(self._linked_in.get(directory, ()))
        return names

    def _rewatch(self) -> None:
        """After lost events: a watch the kernel dropped, or that is now on another
        inode than its path's (a directory moved or replaced), is set again."""
        for directory in list(self._wd_of):
            self._watch(directory)

    def _refresh_soon(self, names: Collection[str]) -> None:
        """Once events have stopped coming for `SETTLE_SECONDS`: one look per org."""
        if self._inotify is None or self._loop is None:
            return  # not watching: the sweep looks at every file within seconds
        if not names:
            return
        self._pending.update(names)
        self._last_event = self._loop.time()
        if self._flush_timer is None:
            self._burst_began = self._last_event
            self._flush_timer = self._loop.call_at(self._settled(), self._flush, self._loop)

    def _settled(self) -> float:
        return min(self._last_event + SETTLE_SECONDS, self._burst_began + SETTLE_AT_MOST_SECONDS)

    def _forget(self, wd: int) -> None:
        dirs = self._dirs_at.pop(wd, None)
        if dirs is None:
            return  # a watch let go of already
        for directory in dirs:
            self._wd_of.pop(directory, None)
        self._unwatch(wd)
        self._lists_stale = True

    def _unwatch(self, wd: int) -> None:
        if self._inotify is not None:
            # EINVAL: the kernel removed the watch already (its directory is gone).
            with contextlib.suppress(OSError):
                self._inotify.rm_watch(wd)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """One refresh per org, however many events named it since the last."""
        settled = self._settled()
        if loop.time() < settled:  # more events came meanwhile
            self._flush_timer = loop.call_at(settled, self._flush, loop)
            return
        self._flush_timer = None
        names, self._pending = self._pending, set()
        self._refresh_placed(names)

    def _refresh_placed(self, names: Iterable[str]) -> None:
        """Watch where each key file resolves to now, then refresh: a change after the
        watch is in place is always seen."""
        present = [name for name in names if name in self._files]
        for name in present:
            self._place(name, self._where_for(self._files[name]))
        self._refresh(present)

    def tick(self) -> None:
        """One step of the sweep: some watched files, and many unwatched ones."""
        if self._lists_stale:
            self._sort()
        fast = _take(self._fast, self._fast_at, FAST_PER_TICK)
        self._fast_at = (self._fast_at + len(fast)) % max(len(self._fast), 1)
        # Tick k of a sweep takes the files up to n*(k+1)//ticks: each once per sweep.
        ticks = sweep_ticks()
        step, total = self._slow_step % ticks, len(self._slow)
        slow = _take(self._slow, self._slow_at, total * (step + 1) // ticks - total * step // ticks)
        self._slow_step = step + 1
        self._slow_at = (self._slow_at + len(slow)) % max(len(self._slow), 1)
        if fast:
            self._refresh(fast)
        if slow:
            self._refresh_placed(slow)  # a missed symlink swap moves its watch too
        self._retry_failed()

    def _retry_failed(self) -> None:
        """Directories inotify could not watch are tried again once a slow sweep; one
        watched again has its key files looked at (as at start)."""
        if not self._failed or self._inotify is None:
            return
        self._ticks_to_retry -= 1
        if self._ticks_to_retry > 0:
            return
        self._ticks_to_retry = sweep_ticks()
        for directory in sorted(self._failed):
            self._watch(directory)
            if directory in self._wd_of:
                self._refresh_soon(self._orgs_in.get(directory, ()))
        self._lists_stale = True
        self._say_if_recovered()

    def _sort(self) -> None:
        self._lists_stale = False
        self._slow = [name for name in self._files if self._watched(name)]
        self._fast = [name for name in self._files if not self._watched(name)]


def _stat_sweep() -> str:
    return f"checking the key files not watched by stat, {FAST_PER_TICK} every {TICK_SECONDS:g} s"


def _discard(index: dict[_K, set[str]], key: _K, name: str) -> bool:
    """Take `name` from `index[key]`, and the key once empty; True when it went."""
    names = index.get(key)
    if names is None:
        return False
    names.discard(name)
    if names:
        return False
    del index[key]
    return True


def _take(names: list[str], start: int, count: int) -> list[str]:
    """`count` names from `start` on, round the list (each at most once)."""
    if not names or count <= 0:
        return []
    start %= len(names)
    batch = names[start : start + count]
    if len(batch) < count:
        batch += names[: min(count - len(batch), start)]
    return batch
