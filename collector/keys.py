"""Key sources: reading a key from a file, the environment or the config, and
re-reading key files when they change.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from collector.apikey import ApiKey, InvalidKeyError

MAX_KEY_FILE_BYTES: Final = 4096

KeyKind = Literal["file", "env", "inline"]


class KeyLoadError(Exception):
    """A key source that cannot give a key right now (message never holds the key)."""


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where an org's key comes from. `describe()` is what people see."""

    kind: KeyKind
    location: str = ""
    inline: ApiKey | None = field(default=None, repr=False, compare=True)

    def describe(self) -> str:
        if self.kind == "file":
            return f"file {self.location}"
        if self.kind == "env":
            return f"env ${self.location}"
        return "inline in the config file"

    def load(self, environ: Mapping[str, str] | None = None) -> ApiKey:
        """Read the key now. Raises KeyLoadError with a message safe to log."""
        if self.kind == "inline":
            assert self.inline is not None  # noqa: S101 - set by the parser for every inline source
            return self.inline
        if self.kind == "env":
            value = (os.environ if environ is None else environ).get(self.location)
            if value is None:
                raise KeyLoadError(f"environment variable {self.location} is not set")
            return _to_key(value.strip(), f"environment variable {self.location}")
        return _to_key(read_key_file(Path(self.location)), f"key file {self.location}")


def read_key_file(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeyLoadError(f"key file {path} not found") from None
    except IsADirectoryError:
        raise KeyLoadError(f"key file {path} is a directory") from None
    except OSError as error:
        raise KeyLoadError(f"key file {path} cannot be read: {error.strerror}") from None
    except ValueError:  # a NUL byte in the path
        raise KeyLoadError("the key file path contains a NUL byte") from None
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise KeyLoadError(f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise KeyLoadError(f"key file {path} is not UTF-8 text") from None


def permission_warning(path: str) -> str | None:
    """What to say when others can read a key file (as ssh does for private keys), else None.

    The mode is that of the file the path resolves to, so a Kubernetes Secret
    volume (symlinks into `..data/`, mode 0644 unless told otherwise) is judged
    by the key file itself. A file readable by its group is fine when that group
    is the collector's own (a systemd credential, a pod whose fsGroup is its
    runAsGroup): nobody else is in it.
    """
    try:
        info = Path(path).stat()  # of the file a symlink points to, as the load reads it
    except (OSError, ValueError):
        return None  # unreadable files are reported by the load itself
    world = info.st_mode & 0o007
    group = info.st_mode & 0o070 and info.st_gid != os.getegid()
    if not (world or group):
        return None
    who = "every user" if world else f"group {info.st_gid}"
    return (
        f"key file {path} is readable by {who} (mode {info.st_mode & 0o777:04o}); "
        f"chmod 600 {path} (0440 if its group is the collector's own); in a Kubernetes "
        "Secret volume set defaultMode: 0400 (with an fsGroup, its group may read it)"
    )


def _to_key(value: str, where: str) -> ApiKey:
    if not value:
        raise KeyLoadError(f"{where} is empty")
    try:
        return ApiKey(value)
    except InvalidKeyError as error:
        raise KeyLoadError(f"{where}: {error}") from None


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


def file_signature(path: str) -> Signature | None:
    try:
        # A Path built per look costs more than the stat itself (a look per inotify
        # event naming the file, and a sweep of every key file).
        info = os.stat(path)  # noqa: PTH116 - see the comment above
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
        self._signature = file_signature(source.location) if source.kind == "file" else None

    @property
    def watches_file(self) -> bool:
        return self.source.kind == "file"

    def refresh(self) -> KeyRefresh:
        """Re-read the key file if it changed since the last look."""
        if self.source.kind != "file":
            return UNCHANGED
        signature = file_signature(self.source.location)
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
