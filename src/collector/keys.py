"""The current key of each org, re-read when its file changes.

A key file is identified by what `stat` says of the file it resolves to
(device, inode, size, mtime), so Kubernetes' Secret volumes (an atomic
symlink swap), systemd credentials and a plain `mv` into place are all
noticed. A file that cannot be read right now keeps the last good key in
use: half-written rotations must not stop polling.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass

from collector.config import KeyLoadError, KeySource
from collector.secrets import ApiKey


class KeyStatus(enum.Enum):
    UNCHANGED = enum.auto()
    CHANGED = enum.auto()
    UNREADABLE = enum.auto()


@dataclass(frozen=True, slots=True)
class KeyRefresh:
    status: KeyStatus
    problem: str | None = None  # set when UNREADABLE; safe to log


UNCHANGED: KeyRefresh = KeyRefresh(KeyStatus.UNCHANGED)  # shared: checked for every org often

Signature = tuple[int, int, int, int]


def _signature(path: str) -> Signature | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


class KeyHolder:
    """An org's key and where it came from."""

    __slots__ = ("_environ", "_signature", "key", "problem", "source")

    def __init__(
        self, source: KeySource, key: ApiKey, environ: Mapping[str, str] | None = None
    ) -> None:
        self.source = source
        self.key = key
        self.problem: str | None = None
        self._environ = environ
        self._signature = _signature(source.location) if source.kind == "file" else None

    @property
    def watches_file(self) -> bool:
        return self.source.kind == "file"

    def refresh(self) -> KeyRefresh:
        """Re-read the key file if it changed since the last look."""
        if self.source.kind != "file":
            return UNCHANGED
        signature = _signature(self.source.location)
        if signature is not None and signature == self._signature and self.problem is None:
            return UNCHANGED
        try:
            key = self.source.load(self._environ)
        except KeyLoadError as error:
            self._signature = signature
            first = self.problem != str(error)
            self.problem = str(error)
            return KeyRefresh(KeyStatus.UNREADABLE if first else KeyStatus.UNCHANGED, self.problem)
        self._signature = signature
        self.problem = None
        if key == self.key:
            return KeyRefresh(KeyStatus.UNCHANGED)
        self.key = key
        return KeyRefresh(KeyStatus.CHANGED)
