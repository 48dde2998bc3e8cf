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

An org has two routes: `/v1/usage` (the fields of `OrgState` itself) and,
when enabled, `/v1/incidents` (`OrgState.incidents`). Each has its own
outcome and schedule; the key's health is one thing: a 401 on either route
marks the key rejected, a success on either clears it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collector.petra_incidents import (
    MAX_LIMIT,
    Incident,
    IncidentsReport,
    TenantIncidents,
    new_incidents,
    remember,
    summarize,
)
from collector.petra_usage import UsageReport, shared_tenants

if TYPE_CHECKING:
    from collector.state_file import SavedIncidents, SavedOrg

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
class IncidentsState:
    """An org's `/v1/incidents` side; changed only through `OrgState.record_incidents_*`."""

    health: Health = Health.PENDING
    incidents: tuple[Incident, ...] = ()  # the last good answer (nothing personal in it)
    tenants: tuple[TenantIncidents, ...] | None = None  # what is exported; None: nothing
    truncated: bool = False  # the last answer was full: counts are lower bounds
    notes: tuple[str, ...] = ()  # what the last answer's parse skipped
    seen: dict[str, float] = field(default_factory=dict)  # incident key -> creation time
    last_poll_at: float | None = None
    last_success_at: float | None = None
    poll_duration: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_failures: int = 0
    next_poll_at: float | None = None
    rate_limited_until: float | None = None
    requests_by_code: dict[str, int] = field(default_factory=lambda: {"200": 0})

    @property
    def up(self) -> bool:
        return self.health is Health.OK


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
    # The routes whose last answer was a 401: the key is rejected until each succeeds.
    auth_rejected_routes: set[str] = field(default_factory=set)
    auth_warned_monotonic: float = 0.0
    next_poll_at: float | None = None
    rate_limited_until: float | None = None
    # code="200" exists from the start, so rate() and increase() see an org's first success.
    requests_by_code: dict[str, int] = field(default_factory=lambda: {"200": 0})
    auth_failures_total: int = 0
    rate_limited_total: int = 0
    restored: bool = False  # served from the state file; cleared by the first poll outcome
    incidents: IncidentsState | None = None  # None while incidents are not polled
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
        self,
        saved: SavedOrg,
        *,
        wall_now: float,
        monotonic_now: float,
        counters: bool,
        incidents_start: float | None = None,
    ) -> None:
        """Take over what the state file kept of this org (same name and key fingerprint).

        Counters are taken only from a file written at a clean stop: after a crash the
        file may lag what Prometheus scraped, and a counter that goes back reads as a
        reset, which `increase()` would count as a burst of requests.
        """
        self.health = saved.health
        report = saved.report
        if report is not None:
            report = report._replace(tenants=shared_tenants(report.tenants))
        self.report = report
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
        self.auth_rejected_routes = set(saved.auth_rejected_routes)
        if self.incidents is None:
            self.auth_rejected_routes.discard("incidents")  # no longer polled: says nothing
        if saved.incidents is not None and self.incidents is not None:
            self._restore_incidents(saved.incidents, counters=counters, start=incidents_start)
        if saved.auth_warned_at is not None:
            self.auth_warned_monotonic = monotonic_now - (wall_now - saved.auth_warned_at)
        if counters and saved.requests_by_code is not None:
            self.requests_by_code = {"200": 0, **saved.requests_by_code}
            self.auth_failures_total = saved.auth_failures_total
            self.rate_limited_total = saved.rate_limited_total
        self.restored = True
        self.version += 1

    def _restore_incidents(
        self, saved: SavedIncidents, *, counters: bool, start: float | None
    ) -> None:
        side = self._incidents()
        side.health = saved.health
        side.last_poll_at = saved.last_poll_at
        side.last_success_at = saved.last_success_at
        side.next_poll_at = saved.next_poll_at
        side.poll_duration = saved.poll_duration
        side.consecutive_failures = saved.consecutive_failures
        side.last_error = saved.last_error
        side.last_error_at = saved.last_error_at
        side.rate_limited_until = saved.rate_limited_until
        side.truncated = saved.truncated
        side.notes = saved.notes
        side.incidents = saved.incidents
        side.seen = dict(saved.seen)
        if saved.last_success_at is not None:
            # Counted in today's window: it may have moved on while the process was down.
            side.tenants = summarize(saved.incidents, -math.inf if start is None else start)
        if counters:
            side.requests_by_code = {"200": 0, **saved.requests_by_code}

    def count_request(self, code: str) -> None:
        """One more answer (or failure) with this `code` label."""
        self.requests_by_code[code] = self.requests_by_code.get(code, 0) + 1
        self.version += 1

    def record_success(self, report: UsageReport, now: float, duration: float) -> AuthEvent:
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
        self.rate_limited_until = None
        self.restored = False
        self.version += 1
        return self._key_accepted("usage")

    def _key_accepted(self, route: str) -> AuthEvent:
        """A success on `route`: the key is good again once no route is answered 401."""
        self.auth_rejected_routes.discard(route)
        if not self.auth_failing or self.auth_rejected_routes:
            return AuthEvent.NONE
        self.auth_failing = False
        self.auth_failing_since = None
        self.auth_failed_fingerprint = None
        return AuthEvent.RECOVERED

    def record_auth_failure(
        self, message: str, now: float, duration: float, monotonic_now: float
    ) -> AuthEvent:
        """A 401. Says which log event is due: loud once, then at most hourly."""
        self._record_failure(Health.AUTH_FAILED, message, now, duration)
        return self._key_rejected("usage", now, monotonic_now)

    def _key_rejected(self, route: str, now: float, monotonic_now: float) -> AuthEvent:
        """A 401 on `route`: the key's health, and which log event is due."""
        self.auth_rejected_routes.add(route)
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

    # -- /v1/incidents ----------------------------------------------------------------

    def set_incidents_polled(self, polled: bool) -> None:
        """Start (with nothing known yet) or stop polling incidents; stopping drops it all."""
        if polled and self.incidents is None:
            self.incidents = IncidentsState()
            self.version += 1
        elif not polled and self.incidents is not None:
            self.incidents = None
            self._key_accepted("incidents")  # a 401 there says no more about the key
            self.version += 1

    def set_incidents_next_poll(self, at: float) -> None:
        side = self._incidents()
        side.next_poll_at = at  # shown on the page only: no version bump for /metrics

    def count_incidents_request(self, code: str) -> None:
        side = self._incidents()
        side.requests_by_code[code] = side.requests_by_code.get(code, 0) + 1

    def record_incidents_success(
        self, report: IncidentsReport, now: float, duration: float, start: float
    ) -> tuple[AuthEvent, list[Incident]]:
        """A good answer for the window from `start`. Returns the auth event due (a success
        clears a rejected key) and the incidents not seen before, newest first."""
        side = self._incidents()
        fresh = new_incidents(report.incidents, side.seen, start)
        side.seen = remember(side.seen, report.incidents, now=now, start=start)
        side.incidents = report.incidents
        tenants = summarize(report.incidents, start)
        if tenants != side.tenants:
            side.tenants = tenants  # else the same tuple stays, as readers cached it
        side.truncated = report.received >= MAX_LIMIT
        side.notes = report.notes
        side.health = Health.OK
        side.last_poll_at = side.last_success_at = now
        side.poll_duration = duration
        side.consecutive_failures = 0
        side.rate_limited_until = None
        event = self._key_accepted("incidents")
        self.version += 1
        return event, fresh

    def record_incidents_auth_failure(
        self, message: str, now: float, duration: float, monotonic_now: float
    ) -> AuthEvent:
        """A 401 on /v1/incidents: the key is rejected, as after a 401 on /v1/usage."""
        self._incidents_failure(Health.AUTH_FAILED, message, now, duration)
        return self._key_rejected("incidents", now, monotonic_now)

    def record_incidents_rate_limited(
        self, message: str, now: float, duration: float, until: float
    ) -> None:
        side = self._incidents_failure(Health.RATE_LIMITED, message, now, duration)
        side.rate_limited_until = until
        self.rate_limited_total += 1

    def record_incidents_error(
        self, health: Health, message: str, now: float, duration: float | None
    ) -> None:
        self._incidents_failure(health, message, now, duration)

    def expire_incidents(self, now: float, start: float, max_staleness: float) -> None:
        """While polls fail, the window still moves: incidents that left it stop being
        counted, and everything goes once the last success is `max_staleness` old."""
        side = self.incidents
        if side is None or side.tenants is None:
            return
        if side.last_success_at is None or now - side.last_success_at > max_staleness:
            side.incidents, side.tenants, side.truncated = (), None, False
            self.version += 1
            return
        tenants = summarize(side.incidents, start)
        if tenants != side.tenants:
            side.tenants = tenants
            self.version += 1

    def _incidents(self) -> IncidentsState:
        if self.incidents is None:
            raise RuntimeError(f"incidents are not polled for {self.name}")
        return self.incidents

    def _incidents_failure(
        self, health: Health, message: str, now: float, duration: float | None
    ) -> IncidentsState:
        # As on /v1/usage, the last good counts stay (see expire_incidents for how long).
        side = self._incidents()
        side.health = health
        side.last_poll_at = now
        if duration is not None:
            side.poll_duration = duration
        side.last_error = message
        side.last_error_at = now
        side.consecutive_failures += 1
        self.version += 1
        return side
