"""Per-org snapshot: the last good report, the last outcome, counters and times.

This module is the only writer of an `OrgState`: the scheduler asks one of
its methods to record what happened (`record_success`, `key_replaced`,
`schedule`, ...), the metrics collector and the web pages only read. Every
method that changes a state bumps `version`, which is what lets readers
cache what they derive from it (the `/metrics` cache does). New kinds of
change (restoring from a state file, recording incidents) become new
methods here, bumping `version` the same way; tests/unit/test_state_writer.py
fails when code elsewhere assigns a field.

All times here are wall-clock epoch seconds (they are exported as
timestamps), except `*_monotonic` fields, which pace logging.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collector.usage import UsageReport

if TYPE_CHECKING:
    from collector.statefile import SavedOrg

AUTH_STILL_FAILING_EVERY = 3600.0


class Health(enum.StrEnum):
    """What the last poll said, as people read it."""

    PENDING = "pending"  # not polled yet
    OK = "ok"
    AUTH_FAILED = "auth_failed"  # 401
    RATE_LIMITED = "rate_limited"
    FORBIDDEN = "forbidden"  # 403
    ERROR = "error"  # transient or unusable answer


class AuthEvent(enum.Enum):
    NONE = enum.auto()
    FAILED = enum.auto()
    STILL_FAILING = enum.auto()
    RECOVERED = enum.auto()


@dataclass(slots=True)
class OrgState:
    name: str
    key_fingerprint: str
    key_source: str
    interval_seconds: float
    health: Health = Health.PENDING
    report: UsageReport | None = None
    last_poll_at: float | None = None
    last_success_at: float | None = None
    poll_duration: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_failures: int = 0
    auth_failing: bool = False
    auth_failing_since: float | None = None
    auth_failed_fingerprint: str | None = None
    auth_warned_monotonic: float = 0.0
    next_poll_at: float | None = None
    rate_limited_until: float | None = None
    # code="200" exists from the start, so rate() and increase() see an org's first success.
    requests_by_code: dict[str, int] = field(default_factory=lambda: {"200": 0})
    auth_failures_total: int = 0
    rate_limited_total: int = 0
    restored: bool = False  # served from the state file; cleared by the first poll outcome
    version: int = 0  # bumped on every change; lets readers cache what they derive

    def reconfigure(self, *, interval_seconds: float, key_source: str) -> None:
        """A reload changed the org's interval or where its key comes from."""
        self.interval_seconds = interval_seconds
        self.key_source = key_source
        self.version += 1

    def key_replaced(self, fingerprint: str, source: str) -> None:
        """A new key (from `source`) is in use from the next request on."""
        self.key_fingerprint = fingerprint
        self.key_source = source
        self.version += 1

    def schedule(self, next_poll_at: float) -> None:
        """When the next poll is due, as far as the org's own loop knows."""
        self.next_poll_at = next_poll_at
        self.version += 1

    def restore(
        self, saved: SavedOrg, *, wall_now: float, monotonic_now: float, counters: bool
    ) -> None:
        """Take over what the state file kept of this org (same name and key fingerprint).

        Counters are taken only from a file written at a clean stop: after a crash the
        file may lag what Prometheus scraped, and a counter that goes back reads as a
        reset, which `increase()` would count as a burst of requests.
        """
        self.health = saved.health
        self.report = saved.report
        self.last_poll_at = saved.last_poll_at
        self.last_success_at = saved.last_success_at
        self.poll_duration = saved.poll_duration
        self.last_error = saved.last_error
        self.last_error_at = saved.last_error_at
        self.consecutive_failures = saved.consecutive_failures
        self.rate_limited_until = saved.rate_limited_until
        self.next_poll_at = saved.next_poll_at
        self.auth_failing = saved.auth_failing
        self.auth_failing_since = saved.auth_failing_since
        self.auth_failed_fingerprint = saved.auth_failed_fingerprint
        if saved.auth_warned_at is not None:
            self.auth_warned_monotonic = monotonic_now - (wall_now - saved.auth_warned_at)
        if counters and saved.requests_by_code is not None:
            self.requests_by_code = {"200": 0, **saved.requests_by_code}
            self.auth_failures_total = saved.auth_failures_total
            self.rate_limited_total = saved.rate_limited_total
        self.restored = True
        self.version += 1

    def count_request(self, code: str) -> None:
        """One more answer (or failure) with this `code` label."""
        self.requests_by_code[code] = self.requests_by_code.get(code, 0) + 1
        self.version += 1

    def record_success(self, report: UsageReport, now: float, duration: float) -> AuthEvent:
        was_failing = self.auth_failing
        self.health = Health.OK
        if self.report is not None and report.tenants == self.report.tenants:
            # Usually nothing changed: keep the old tuple, so only one copy lives and
            # readers that cache what they derive from it (the /metrics cache) see
            # the very same object.
            report = report._replace(tenants=self.report.tenants)
        self.report = report
        self.last_poll_at = self.last_success_at = now
        self.poll_duration = duration
        self.consecutive_failures = 0
        self.auth_failing = False
        self.auth_failing_since = None
        self.auth_failed_fingerprint = None
        self.rate_limited_until = None
        self.restored = False
        self.version += 1
        return AuthEvent.RECOVERED if was_failing else AuthEvent.NONE

    def record_auth_failure(
        self, message: str, now: float, duration: float, monotonic_now: float
    ) -> AuthEvent:
        """A 401. Says which log event is due: loud once, then at most hourly."""
        self._record_failure(Health.AUTH_FAILED, message, now, duration)
        self.auth_failures_total += 1
        if not self.auth_failing or self.auth_failed_fingerprint != self.key_fingerprint:
            # A new failure, or a replaced key that is rejected too: both are news.
            if not self.auth_failing:
                self.auth_failing_since = now
            self.auth_failing = True
            self.auth_failed_fingerprint = self.key_fingerprint
            self.auth_warned_monotonic = monotonic_now
            return AuthEvent.FAILED
        if monotonic_now - self.auth_warned_monotonic >= AUTH_STILL_FAILING_EVERY:
            self.auth_warned_monotonic = monotonic_now
            return AuthEvent.STILL_FAILING
        return AuthEvent.NONE

    def record_rate_limited(self, message: str, now: float, duration: float, until: float) -> None:
        self._record_failure(Health.RATE_LIMITED, message, now, duration)
        self.rate_limited_total += 1
        self.rate_limited_until = until

    def record_error(
        self, health: Health, message: str, now: float, duration: float | None
    ) -> None:
        self._record_failure(health, message, now, duration)

    def _record_failure(
        self, health: Health, message: str, now: float, duration: float | None
    ) -> None:
        # `auth_failing` is deliberately left alone: a 429 or a timeout while
        # re-checking a rejected key says nothing about the key, so the alert holds.
        self.health = health
        self.last_poll_at = now
        if duration is not None:
            self.poll_duration = duration
        self.last_error = message
        self.last_error_at = now
        self.consecutive_failures += 1
        self.restored = False
        self.version += 1

    @property
    def up(self) -> bool:
        return self.health is Health.OK

    @property
    def pending(self) -> bool:
        """No poll outcome yet, and none restored: neither up nor failing."""
        return self.health is Health.PENDING

    def is_stale(self, now: float, max_staleness: float) -> bool:
        """True when the kept report is too old to export."""
        return self.last_success_at is None or now - self.last_success_at > max_staleness
