"""One collector per state file: an OS lock on a file beside it, held while running.

`flock` on `<state path>.lock` (not on the state file itself, which a
rewrite replaces by rename). The kernel drops the lock when the process
ends, however it ends, so a crash never leaves a stale lock behind; the
lock file itself stays and holds the holder's process id, for the message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Final

LOCK_SUFFIX: Final = ".lock"


class StateInUseError(Exception):
    """Another process holds the state file's lock; the message says which and what to do."""


class StateLock:
    """Holds the lock from `acquire()` to `release()`."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.path = state_path.with_name(state_path.name + LOCK_SUFFIX)
        self._descriptor: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise StateInUseError (held elsewhere) or OSError."""
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise StateInUseError(
                f"state.path {self.state_path} is in use by another petra-collector"
                f"{'' if holder is None else f' (process {holder})'}: it holds {self.path}."
                " Give each collector (each replica, each shard) its own state.path,"
                " or stop the other one first"
            ) from None
        except OSError:
            os.close(descriptor)
            raise
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing drops the lock
            self._descriptor = None


def _holder(descriptor: int) -> int | None:
    text = os.pread(descriptor, 32, 0).strip()
    return int(text) if text.isdigit() else None
