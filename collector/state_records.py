"""What an org's state is made of when it is not live: health, and the saved records.

The bottom of the state group. `state` takes a saved record over
(`OrgState.restore`), `state_file` writes and reads records; neither needs
the other for that, so the two never import each other.

Every route is saved the same way (`SavedRoute`: its health, times, failure
streak, counters), with what the route keeps of its answers in `data` (the
usage report, the incidents already announced, ...), read by the route's
own codec (routes.py).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Health(enum.StrEnum):
    """What the last poll said, as people read it."""

    PENDING = "pending"  # not polled yet
    OK = "ok"
    AUTH_FAILED = "auth_failed"  # 401
    RATE_LIMITED = "rate_limited"
    FORBIDDEN = "forbidden"  # 403
    ERROR = "error"  # transient or unusable answer


@dataclass(frozen=True, slots=True)
class SavedRoute:
    """One route of one org as the file keeps it. Times are wall-clock epoch seconds."""

    health: Health = Health.PENDING
    last_poll_at: float | None = None
    last_success_at: float | None = None
    next_poll_at: float | None = None
    poll_duration: float | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    rate_limited_until: float | None = None
    requests_by_code: Mapping[str, int] | None = None  # None: no counters kept
    data: object = None  # what the route keeps of its answers, as its codec read it


@dataclass(frozen=True, slots=True)
class SavedOrg:
    """One org as the file keeps it: its routes (by route name) and its key's health."""

    key_fingerprint: str
    routes: Mapping[str, SavedRoute] = field(default_factory=dict)
    auth_failing_since: float | None = None  # set while the key is rejected
    auth_failed_fingerprint: str | None = None
    auth_warned_at: float | None = None
    auth_rejected_routes: frozenset[str] = frozenset()  # the routes whose last answer was 401
    auth_failures_total: int = 0
    rate_limited_total: int = 0

    @property
    def auth_failing(self) -> bool:
        return self.auth_failing_since is not None

    @property
    def usage(self) -> SavedRoute:
        """The `/v1/usage` route's record (a pending one when the file has none)."""
        return self.routes.get("usage") or SavedRoute()


@dataclass(frozen=True, slots=True)
class SavedState:
    written_at: float
    clean_stop: bool  # written at a clean stop: nothing happened after it
    orgs: Mapping[str, SavedOrg] = field(default_factory=dict)


class StateFileError(Exception):
    """The state file cannot be used; the message names the problem (never a key)."""


class Reader:
    """Typed getters that name the path of what they refuse."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> StateFileError:
        where = f"{self.path}.{key}" if self.path else key
        return StateFileError(f"{where}: {message}")

    def section(self, record: dict[str, object], key: str) -> dict[str, object] | None:
        value = record.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, "must be an object")
        return value

    def number(self, record: dict[str, object], key: str) -> float | None:
        value = record.get(key)
        if value is None:
            return None
        if type(value) is float:  # never NaN or infinite: orjson refuses those as it parses
            return value
        if type(value) is int:
            return float(value)
        raise self.fail(key, "must be a number")

    def timestamp(
        self, record: dict[str, object], key: str, *, required: bool = False
    ) -> float | None:
        value = self.number(record, key)
        if value is None:
            if required:
                raise self.fail(key, "is missing")
            return None
        if value < 0:
            raise self.fail(key, "must not be negative")
        return value

    def count(self, record: dict[str, object], key: str) -> int:
        value = record.get(key, 0)
        if type(value) is not int or value < 0:
            raise self.fail(key, "must be a whole number, 0 or more")
        return value

    def text(self, record: dict[str, object], key: str, *, required: bool = False) -> str | None:
        value = record.get(key)
        if value is None:
            if required:
                raise self.fail(key, "is missing")
            return None
        if type(value) is not str:
            raise self.fail(key, "must be a string")
        return value
