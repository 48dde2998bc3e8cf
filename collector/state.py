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

Every route of an org has a `RouteState`: its last outcome, schedule and
counters, recorded by one set of methods (`record_success`,
`record_auth_failure`, ...) that take the route's name. `/v1/usage`'s is the
org's own (`OrgState` is a `RouteState`: the fields `petra_up` and the alerts
read), every other route's is in `OrgState.sides`, a subclass that routes.py
defines with what that route keeps of its answers. The key's health is one
thing: a 401 on any route rejects the key until every route that got one
succeeds again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from collector.petra_usage import UsageReport, shared_tenants
from collector.state_records import Health, SavedOrg, SavedRoute

AUTH_STILL_FAILING_EVERY = 3600.0
USAGE = "usage"  # the route whose side is the org's own


class AuthEvent(enum.Enum):
    NONE = enum.auto()
    FAILED = enum.auto()
    STILL_FAILING = enum.auto()
    RECOVERED = enum.auto()


@dataclass(slots=True, kw_only=True)
class RouteState:
    """One route of one org: its last outcome, its schedule and its request counters.

    Changed only through `OrgState`'s methods, which bump the org's `version`."""

    health: Health = Health.PENDING
    last_poll_at: float | None = None
    last_success_at: float | None = None
    poll_duration: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_failures: int = 0
    next_poll_at: float | None = None
    rate_limited_until: float | None = None
    # code="200" exists from the start, so rate() and increase() see a first success.
    requests_by_code: dict[str, int] = field(default_factory=lambda: {"200": 0})

    @property
    def up(self) -> bool:
        return self.health is Health.OK

    @property
    def pending(self) -> bool:
        """No poll outcome yet, and none restored: neither up nor failing."""
        return self.health is Health.PENDING

    def restore_outcome(self, saved: SavedRoute, *, counters: bool) -> None:
        """Take over a saved outcome (called by `OrgState.restore` only)."""
        self.health = saved.health
        self.last_poll_at = saved.last_poll_at
        self.last_success_at = saved.last_success_at
        self.poll_duration = saved.poll_duration
        self.last_error = saved.last_error
        self.last_error_at = saved.last_error_at
        self.consecutive_failures = saved.consecutive_failures
        self.rate_limited_until = saved.rate_limited_until
        self.next_poll_at = saved.next_poll_at
        if counters and saved.requests_by_code is not None:
            self.requests_by_code = {"200": 0, **saved.requests_by_code}

    def restore_data(self, data: object) -> None:
        """Take over what the route kept of its answers (a route's side overrides this)."""


@dataclass(slots=True)
class OrgState(RouteState):
    """An org: its key's health, and its routes' sides. Being a `RouteState` itself, it
    is `/v1/usage`'s side (with the kept usage `report`); other routes' are in `sides`."""

    name: str
    key_fingerprint: str
    key_source: str
    interval_seconds: float
    report: UsageReport | None = None
    auth_failing: bool = False
    auth_failing_since: float | None = None
    auth_failed_fingerprint: str | None = None
    # The routes whose last answer was a 401: the key is rejected until each succeeds.
    auth_rejected_routes: set[str] = field(default_factory=set)
    auth_warned_monotonic: float = 0.0
    auth_failures_total: int = 0
    rate_limited_total: int = 0
    restored: bool = False  # served from the state file; cleared by the first usage outcome
    sides: dict[str, RouteState] = field(default_factory=dict)  # polled routes but usage
    version: int = 0  # bumped on every change; lets readers cache what they derive

    def side(self, route: str) -> RouteState:
        """The side of `route` (the org itself for usage). KeyError: not polled."""
        return self if route == USAGE else self.sides[route]

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

    def start_route(self, route: str, side: RouteState) -> None:
        """`route` is polled from now on, with nothing known yet (`side` is new)."""
        if route not in self.sides:
            self.sides[route] = side
            self.version += 1

    def stop_route(self, route: str) -> None:
        """`route` is no longer polled: what it kept goes, and a 401 there says no more
        about the key."""
        if self.sides.pop(route, None) is not None:
            self._key_accepted(route)
            self.version += 1

    def schedule(self, route: str, next_poll_at: float) -> None:
        """When the route's next request is due, as far as its loop knows."""
        self.side(route).next_poll_at = next_poll_at
        self.version += 1

    def change_side(self, route: str, change: Callable[[RouteState], bool]) -> None:
        """Let the route's own code change what its side keeps of its answers; `change`
        says whether it changed anything readers see."""
        if change(self.side(route)):
            self.version += 1

    def restore(
        self, saved: SavedOrg, *, wall_now: float, monotonic_now: float, counters: bool
    ) -> None:
        """Take over what the state file kept of this org (same name and key fingerprint),
        for the routes polled now.

        Counters are taken only from a file written at a clean stop: after a crash the
        file may lag what Prometheus scraped, and a counter that goes back reads as a
        reset, which `increase()` would count as a burst of requests.
        """
        for route, record in saved.routes.items():
            side = self.sides.get(route) if route != USAGE else self
            if side is None:
                continue
            side.restore_outcome(record, counters=counters)
            side.restore_data(record.data)
        self.auth_failing = saved.auth_failing
        self.auth_failing_since = saved.auth_failing_since
        self.auth_failed_fingerprint = saved.auth_failed_fingerprint
        # A route no longer polled says nothing about the key.
        self.auth_rejected_routes = {
            route for route in saved.auth_rejected_routes if route == USAGE or route in self.sides
        }
        if saved.auth_warned_at is not None:
            self.auth_warned_monotonic = monotonic_now - (wall_now - saved.auth_warned_at)
        if counters and saved.usage.requests_by_code is not None:
            self.auth_failures_total = saved.auth_failures_total
            self.rate_limited_total = saved.rate_limited_total
        self.restored = True
        self.version += 1

    def restore_data(self, data: object) -> None:
        """The kept usage report, its tenants shared with other orgs' equal ones."""
        if isinstance(data, UsageReport):
            self.report = data._replace(tenants=shared_tenants(data.tenants))

    def count_request(self, route: str, code: str) -> None:
        """One more answer (or failure) on `route` with this `code` label."""
        counts = self.side(route).requests_by_code
        counts[code] = counts.get(code, 0) + 1
        self.version += 1

    def take_report(self, report: UsageReport) -> None:
        """A good usage answer: the report kept and exported."""
        kept = self.report
        if (
            kept is not None
            and report.tenants is not kept.tenants
            and report.tenants == kept.tenants
        ):
            # Nothing changed but the answer was read anew: keep the old tuple, so only
            # one copy lives and readers that cache what they derive from it (the
            # /metrics cache) see the very same object. (Usually the parse kept it.)
            report = report._replace(tenants=kept.tenants)
        self.report = report
        self.version += 1

    def record_success(self, route: str, now: float, duration: float) -> AuthEvent:
        """A good answer on `route`. Returns the auth event due (a success clears a
        rejected key once no route is answered 401)."""
        side = self.side(route)
        side.health = Health.OK
        side.last_poll_at = side.last_success_at = now
        side.poll_duration = duration
        side.consecutive_failures = 0
        side.rate_limited_until = None
        if side is self:
            self.restored = False
        self.version += 1
        return self._key_accepted(route)

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
        self, route: str, message: str, now: float, duration: float, monotonic_now: float
    ) -> AuthEvent:
        """A 401 on `route`: the key is rejected. Says which log event is due: loud once,
        then at most hourly."""
        self._record_failure(route, Health.AUTH_FAILED, message, now, duration)
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

    def record_rate_limited(
        self, route: str, message: str, now: float, duration: float, until: float
    ) -> None:
        side = self._record_failure(route, Health.RATE_LIMITED, message, now, duration)
        self.rate_limited_total += 1
        side.rate_limited_until = until

    def record_error(
        self, route: str, health: Health, message: str, now: float, duration: float | None
    ) -> None:
        self._record_failure(route, health, message, now, duration)

    def _record_failure(
        self, route: str, health: Health, message: str, now: float, duration: float | None
    ) -> RouteState:
        # `auth_failing` is deliberately left alone: a 429 or a timeout while
        # re-checking a rejected key says nothing about the key, so the alert holds.
        # The route's last good values stay (the reader decides when they are stale).
        side = self.side(route)
        side.health = health
        side.last_poll_at = now
        if duration is not None:
            side.poll_duration = duration
        side.last_error = message
        side.last_error_at = now
        side.consecutive_failures += 1
        if side is self:
            self.restored = False
        self.version += 1
        return side

    def is_stale(self, now: float, max_staleness: float) -> bool:
        """True when the kept report is too old to export."""
        return self.last_success_at is None or now - self.last_success_at > max_staleness
