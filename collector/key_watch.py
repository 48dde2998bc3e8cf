"""Which orgs' key files may have changed: the kernel says (inotify), a slow sweep checks.

On Linux each directory that holds a key file, and each directory a key file's path
resolves into (symlinks: a Kubernetes Secret volume's `..data`), is watched once with
inotify, its descriptor read by the event loop: nothing runs while nothing changes, and
any event in a directory (the file rewritten or replaced, `..data` swapped) refreshes
every org whose key file lives there, once per loop turn however many events came.

inotify does not see changes made on another machine (NFS, some FUSE mounts) and can
fail (`fs.inotify.max_user_watches` reached, too many open files, not Linux), so a sweep
stays: every watched key file once per `SLOW_SWEEP_SECONDS`, a few at each tick; the
files inotify cannot watch `FAST_PER_TICK` per tick, as before inotify (a rotated key
seen within seconds), with a `key_watch_degraded` warning once per reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Protocol, cast

import structlog

try:
    from inotify_simple import INotify
except ImportError:  # not Linux: the dependency is installed only there
    INotify = None

TICK_SECONDS: Final = 2.0
# Files inotify cannot watch: this many per tick (a 1,000-org fleet sees a rotated key
# within 2 s, 10,000 orgs within 20 s).
FAST_PER_TICK: Final = 1000
# Files inotify watches: each once in this long, spread evenly over the ticks. The safety
# net for what inotify cannot see (a change made by an NFS server's other client).
SLOW_SWEEP_SECONDS: Final = 300.0

# inotify's event bits (linux/inotify.h), as the kernel sends them.
IN_MODIFY: Final = 0x002
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
WATCHED_EVENTS: Final = (
    IN_CLOSE_WRITE
    | IN_MODIFY
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


class Inotify(Protocol):
    """What is used of `inotify_simple.INotify` (which ships no type information)."""

    def fileno(self) -> int: ...
    def add_watch(self, path: str, mask: int) -> int: ...
    def rm_watch(self, wd: int) -> None: ...
    def read(self, timeout: int | None = None) -> Iterable[tuple[int, int, int, str]]: ...
    def close(self) -> None: ...


def open_inotify() -> Inotify:
    if INotify is None:
        raise OSError(errno.ENOSYS, "inotify is not available on this platform")
    return cast(Inotify, INotify(nonblocking=True))


def key_file_dirs(path: str) -> tuple[str, ...]:
    """The directory of `path` and, when a symlink leads elsewhere, of the file it resolves to."""
    own = os.path.dirname(os.path.abspath(path))  # noqa: PTH100, PTH120 - str in, str out, often
    real = os.path.dirname(os.path.realpath(path))  # noqa: PTH120 - as above
    return (own,) if real == own else (own, real)


class KeyWatch:
    """Calls `refresh(names)` with the orgs whose key file may have changed.

    `track()` says which orgs have which key file (at start and after every reload);
    `run()` watches until cancelled, and closes the inotify descriptor then.
    """

    def __init__(
        self,
        refresh: Callable[[Iterable[str]], None],
        log: structlog.typing.FilteringBoundLogger,
        open_watch: Callable[[], Inotify] = open_inotify,
    ) -> None:
        self._refresh = refresh
        self._log = log
        self._open = open_watch
        self._inotify: Inotify | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._files: dict[str, str] = {}  # org -> key file path, as configured
        self._dirs_of: dict[str, tuple[str, ...]] = {}  # org -> directories it is watched by
        self._orgs_in: dict[str, set[str]] = {}  # directory -> orgs
        self._wd_of: dict[str, int] = {}  # directory -> watch descriptor
        self._dirs_at: dict[int, set[str]] = {}  # watch descriptor -> directories (one inode)
        self._failed: set[str] = set()  # directories inotify could not watch
        self._said: set[str] = set()  # the degraded reasons logged already
        self._pending: set[str] = set()  # orgs to refresh at the next loop turn
        self._flush_soon = False
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
            self._place(name, ())
        new = [name for name, path in files.items() if self._files.get(name) != path]
        for name in new:
            self._files[name] = files[name]
            self._place(name, self._dirs_for(files[name]))
        self._lists_stale = True
        # The config read the key before the watch was there: a change in between is
        # seen by this look.
        self._refresh_soon(new)

    def _dirs_for(self, path: str) -> tuple[str, ...]:
        if self._inotify is None:
            return ()  # nothing to watch them with: no symlinks to follow either
        return key_file_dirs(path)

    def _place(self, name: str, dirs: tuple[str, ...]) -> None:
        """Watch `name` by `dirs`: directories no org needs any more are let go."""
        old = self._dirs_of.get(name, ())
        for directory in old:
            if directory not in dirs:
                self._leave(name, directory)
        if dirs:
            self._dirs_of[name] = dirs
        else:
            self._dirs_of.pop(name, None)
        for directory in dirs:
            self._orgs_in.setdefault(directory, set()).add(name)
            if directory not in self._wd_of and directory not in self._failed:
                self._watch(directory)
        if old != dirs:
            self._lists_stale = True

    def _leave(self, name: str, directory: str) -> None:
        orgs = self._orgs_in.get(directory)
        if orgs is None:
            return
        orgs.discard(name)
        if orgs:
            return
        del self._orgs_in[directory]
        self._failed.discard(directory)
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
        assert self._inotify is not None  # noqa: S101 - directories are listed only with inotify
        try:
            wd = self._inotify.add_watch(directory, WATCHED_EVENTS)
        except OSError as error:
            self._failed.add(directory)
            self._lists_stale = True
            if error.errno not in _QUIET_ERRORS:
                reason = f"cannot watch {directory}: {error.strerror}"
                self._degraded(reason + _ADVICE.get(error.errno or 0, ""), error.errno)
            return
        self._failed.discard(directory)
        self._wd_of[directory] = wd
        self._dirs_at.setdefault(wd, set()).add(directory)

    def _degraded(self, reason: str, code: int | None) -> None:
        said = errno.errorcode.get(code or 0, reason)
        if said in self._said:
            return
        self._said.add(said)
        self._log.warning(
            "key_watch_degraded",
            reason=reason,
            action=f"checking the key files not watched by stat, {FAST_PER_TICK} every "
            f"{TICK_SECONDS:g} s",
        )

    def _watched(self, name: str) -> bool:
        dirs = self._dirs_of.get(name, ())
        return bool(dirs) and all(directory in self._wd_of for directory in dirs)

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        """Watch, and sweep every `TICK_SECONDS`, until cancelled."""
        self._start(asyncio.get_running_loop())
        try:
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
            self._degraded(reason + _ADVICE.get(error.errno or 0, ""), error.errno)
            return
        self._inotify = inotify
        self._loop = loop
        loop.add_reader(inotify.fileno(), self._on_events)
        for name, path in self._files.items():
            self._place(name, self._dirs_for(path))
        self._lists_stale = True
        self._refresh_soon(self._files)  # a change since the config was read

    def close(self) -> None:
        inotify, self._inotify = self._inotify, None
        if inotify is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(inotify.fileno())
        inotify.close()
        self._wd_of.clear()
        self._dirs_at.clear()
        self._dirs_of.clear()
        self._orgs_in.clear()
        self._failed.clear()
        self._lists_stale = True

    def _on_events(self) -> None:
        assert self._inotify is not None  # noqa: S101 - the reader is removed on close
        for wd, mask, _cookie, _name in self._inotify.read(timeout=0):
            if mask & IN_Q_OVERFLOW:
                self._pending.update(self._files)
                continue
            for directory in self._dirs_at.get(wd, ()):
                self._pending.update(self._orgs_in.get(directory, ()))
            if mask & (IN_IGNORED | IN_MOVE_SELF):
                self._forget(wd)  # its orgs, refreshed, watch their directories anew
        self._refresh_soon(())

    def _refresh_soon(self, names: Iterable[str]) -> None:
        """At the next loop turn, with whatever else comes before it: one look per org."""
        if self._inotify is None or self._loop is None:
            return  # not watching: the sweep looks at every file within seconds
        self._pending.update(names)
        if self._pending and not self._flush_soon:
            self._flush_soon = True
            self._loop.call_soon(self._flush)

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

    def _flush(self) -> None:
        """One refresh per org, however many events named its directory since the last."""
        self._flush_soon = False
        names, self._pending = self._pending, set()
        if self._inotify is not None:  # else stopped since
            self._refresh_placed(names)

    def _refresh_placed(self, names: Iterable[str]) -> None:
        """Watch where each key file resolves to now, then refresh: a change after the
        watch is in place is always seen."""
        present = [name for name in names if name in self._files]
        for name in present:
            self._place(name, self._dirs_for(self._files[name]))
        self._refresh(present)

    def tick(self) -> None:
        """One step of the sweep: some watched files, and many unwatched ones."""
        if self._lists_stale:
            self._sort()
        fast = _take(self._fast, self._fast_at, FAST_PER_TICK)
        self._fast_at = (self._fast_at + len(fast)) % max(len(self._fast), 1)
        # Tick k of a sweep takes the files up to n*(k+1)//ticks: each once per sweep.
        ticks = max(round(SLOW_SWEEP_SECONDS / TICK_SECONDS), 1)
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
        """Directories inotify could not watch are tried again once a slow sweep."""
        if not self._failed or self._inotify is None:
            return
        self._ticks_to_retry -= 1
        if self._ticks_to_retry > 0:
            return
        self._ticks_to_retry = round(SLOW_SWEEP_SECONDS / TICK_SECONDS)
        for directory in sorted(self._failed):
            if directory in self._orgs_in:
                self._watch(directory)
        self._lists_stale = True

    def _sort(self) -> None:
        self._lists_stale = False
        self._slow = [name for name in self._files if self._watched(name)]
        self._fast = [name for name in self._files if not self._watched(name)]


def _take(names: list[str], start: int, count: int) -> list[str]:
    """`count` names from `start` on, round the list (each at most once)."""
    if not names or count <= 0:
        return []
    start %= len(names)
    batch = names[start : start + count]
    if len(batch) < count:
        batch += names[: min(count - len(batch), start)]
    return batch
