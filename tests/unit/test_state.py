"""Per-org state: auth-failure events, counters, kept reports and staleness.

The rules of a route's outcome (health, times, failure streak, 429 wait,
counters, the key's health, `version`) are one recorder's, so their tests run
on every route (`route`); what a route keeps of its answers is tested beside
its route (tests/unit/test_state_incidents.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from collector.petra_incidents import IncidentsReport
from collector.petra_usage import TenantUsage, UsageReport
from collector.routes import INCIDENTS, ROUTES
from collector.state import AUTH_STILL_FAILING_EVERY, USAGE, AuthEvent, OrgState
from collector.state_records import Health
from tests.outcomes import poll_every_route, succeed, succeed_incidents

T0 = 1_795_671_116.0  # wall clock, epoch seconds
M0 = 10_000.0  # monotonic clock
HOUR = 3600.0


def report(name: str = "Acme MSP") -> UsageReport:
    """A one-tenant report."""
    tenant = TenantUsage("t1", None, None, None, None, None, 10.0, 9.0, 1.0, None, None)
    return UsageReport("2026-11-26", T0, name, 1.0, (tenant,))


def new_state() -> OrgState:
    """A fresh, never-polled org, with every route polled."""
    state = OrgState(
        name="acme",
        key_fingerprint="sha256:aaaaaaaaaaaa",
        key_source="file /run/secrets/acme",
        interval_seconds=300.0,
    )
    return poll_every_route(state)


@pytest.fixture(params=[route.name for route in ROUTES])
def route(request: pytest.FixtureRequest) -> str:
    """Each route in turn: the outcome rules are the same on all of them."""
    name: str = request.param
    return name


def ok(state: OrgState, route: str, now: float, duration: float) -> AuthEvent:
    """A good answer on `route`, recorded as the scheduler records it."""
    if route == USAGE:
        return succeed(state, report(), now, duration)
    if route == INCIDENTS:
        report_ = IncidentsReport((), 0)
        event, _fresh = succeed_incidents(state, report_, now, duration, now - 86400)
        return event
    return state.record_success(route, now, duration)  # what it keeps is its route's test


def test_new_state_is_pending_and_stale() -> None:
    """Before the first poll an org is pending, not up, and has nothing fresh to export."""
    state = new_state()
    assert state.health is Health.PENDING
    assert not state.up
    assert state.is_stale(T0, max_staleness=3600.0)


def test_success_records_the_report() -> None:
    """A success keeps the report, the times and the duration, and is not an auth event."""
    state = new_state()
    assert succeed(state, report(), T0, 0.25) is AuthEvent.NONE
    assert state.health is Health.OK
    assert state.up
    assert state.report == report()
    assert (state.last_poll_at, state.last_success_at, state.poll_duration) == (T0, T0, 0.25)
    assert state.consecutive_failures == 0


def test_first_401_is_failed_once_then_quiet(route: str) -> None:
    """The first 401 says FAILED; further 401s within the hour say nothing."""
    state = new_state()
    side = state.side(route)
    assert state.record_auth_failure(route, "key rejected (401)", T0, 0.1, M0) is AuthEvent.FAILED
    assert side.health is Health.AUTH_FAILED
    assert state.auth_failing
    assert state.auth_failing_since == T0
    for minutes in (15, 30, 45, 59):
        event = state.record_auth_failure(
            route, "key rejected (401)", T0 + minutes * 60, 0.1, M0 + minutes * 60
        )
        assert event is AuthEvent.NONE
    assert state.auth_failures_total == 5
    assert side.consecutive_failures == 5
    assert state.auth_failing_since == T0


def test_still_failing_at_most_hourly() -> None:
    """STILL_FAILING comes once an hour by the monotonic clock, however often it is polled."""
    state = new_state()
    state.record_auth_failure("usage", "401", T0, 0.1, M0)
    events = [
        state.record_auth_failure("usage", "401", T0 + step * 600, 0.1, M0 + step * 600)
        for step in range(1, 19)  # every 10 minutes for 3 hours
    ]
    still = [step for step, event in enumerate(events, start=1) if event is AuthEvent.STILL_FAILING]
    assert still == [6, 12, 18]
    assert AuthEvent.FAILED not in events


def test_still_failing_follows_the_monotonic_clock_not_the_wall_clock() -> None:
    """A wall-clock jump does not trigger STILL_FAILING early; monotonic time does."""
    state = new_state()
    state.record_auth_failure("usage", "401", T0, 0.1, M0)
    assert state.record_auth_failure("usage", "401", T0 + 10 * HOUR, 0.1, M0 + 60) is AuthEvent.NONE
    assert (
        state.record_auth_failure("usage", "401", T0 - HOUR, 0.1, M0 + AUTH_STILL_FAILING_EVERY)
        is AuthEvent.STILL_FAILING
    )


def test_recovery_after_401s(route: str) -> None:
    """The first success after 401s says RECOVERED once and clears the failure."""
    state = new_state()
    side = state.side(route)
    state.record_auth_failure(route, "401", T0, 0.1, M0)
    state.record_auth_failure(route, "401", T0 + 900, 0.1, M0 + 900)

    assert ok(state, route, T0 + 1800, 0.2) is AuthEvent.RECOVERED
    assert not state.auth_failing
    assert state.auth_failing_since is None
    assert side.consecutive_failures == 0
    assert side.health is Health.OK
    assert ok(state, route, T0 + 2100, 0.2) is AuthEvent.NONE
    assert state.auth_failures_total == 2  # a counter: never goes down


def test_failing_again_after_recovery_is_failed_again(route: str) -> None:
    """A key that recovers and then fails again is news again."""
    state = new_state()
    state.record_auth_failure(route, "401", T0, 0.1, M0)
    ok(state, route, T0 + 900, 0.1)
    assert state.record_auth_failure(route, "401", T0 + 1800, 0.1, M0 + 1800) is AuthEvent.FAILED
    assert state.auth_failing_since == T0 + 1800


def test_replaced_key_that_is_also_rejected_is_failed_again() -> None:
    """When the key is replaced and the new one is rejected too, FAILED is said again."""
    state = new_state()
    state.record_auth_failure("usage", "401", T0, 0.1, M0)
    state.key_replaced("sha256:bbbbbbbbbbbb", "file /run/secrets/acme")

    assert state.record_auth_failure("usage", "401", T0 + 60, 0.1, M0 + 60) is AuthEvent.FAILED
    assert state.auth_failed_fingerprint == "sha256:bbbbbbbbbbbb"
    assert state.auth_failing_since == T0  # the org has been failing since the first 401
    assert state.record_auth_failure("usage", "401", T0 + 120, 0.1, M0 + 120) is AuthEvent.NONE


def test_other_failures_do_not_end_an_auth_failure(route: str) -> None:
    """A 429 or timeout while re-checking a rejected key keeps the alert and says nothing new."""
    state = new_state()
    side = state.side(route)
    state.record_auth_failure(route, "401", T0, 0.1, M0)
    state.record_rate_limited(route, "429", T0 + 60, 0.1, until=T0 + 120)
    state.record_error(route, Health.ERROR, "timeout", T0 + 180, None)

    assert state.auth_failing
    assert side.health is Health.ERROR
    assert state.record_auth_failure(route, "401", T0 + 240, 0.1, M0 + 240) is AuthEvent.NONE
    assert side.consecutive_failures == 4


def test_rate_limited_is_counted_with_its_wait(route: str) -> None:
    """A 429 is counted, shows as rate_limited and remembers until when."""
    state = new_state()
    side = state.side(route)
    state.record_rate_limited(route, "rate limited (429)", T0, 0.05, until=T0 + 30)
    assert side.health is Health.RATE_LIMITED
    assert (state.rate_limited_total, side.rate_limited_until) == (1, T0 + 30)
    assert side.last_error == "rate limited (429)"
    assert side.last_error_at == T0
    ok(state, route, T0 + 40, 0.1)
    assert (state.rate_limited_total, side.rate_limited_until) == (1, None)


@pytest.mark.parametrize("health", [Health.ERROR, Health.FORBIDDEN], ids=str)
def test_errors_keep_the_last_good_report(health: Health) -> None:
    """A failed poll changes health and error fields but keeps the last good report."""
    state = new_state()
    succeed(state, report(), T0, 0.1)
    state.record_error("usage", health, "server error (503)", T0 + 300, 2.0)

    assert state.health is health
    assert not state.up
    assert state.report == report()
    assert state.last_success_at == T0
    assert state.last_poll_at == T0 + 300
    assert state.poll_duration == 2.0
    assert state.consecutive_failures == 1


def test_error_without_duration_keeps_the_previous_one(route: str) -> None:
    """An error with no request duration (an internal error before sending) keeps the last."""
    state = new_state()
    side = state.side(route)
    ok(state, route, T0, 0.3)
    state.record_error(route, Health.ERROR, "internal error: ValueError", T0 + 1, None)
    assert side.poll_duration == 0.3


def test_staleness() -> None:
    """The report is fresh up to max_staleness after the last success, stale after."""
    state = new_state()
    succeed(state, report(), T0, 0.1)
    state.record_error("usage", Health.ERROR, "503", T0 + 1000, 0.1)

    assert not state.is_stale(T0, 3600.0)
    assert not state.is_stale(T0 + 3600.0, 3600.0)
    assert state.is_stale(T0 + 3600.5, 3600.0)
    succeed(state, report(), T0 + 4000, 0.1)
    assert not state.is_stale(T0 + 4000, 3600.0)


def test_requests_are_counted_by_code(route: str) -> None:
    """count_request tallies per code label."""
    state = new_state()
    side = state.side(route)
    for code in ("200", "200", "401", "error"):
        state.count_request(route, code)
    assert side.requests_by_code == {"200": 2, "401": 1, "error": 1}


def test_every_change_bumps_the_version(route: str) -> None:
    """Readers can cache on `version`: every method that changes a state increases it."""
    state = new_state()
    changes: list[Callable[[], object]] = [
        lambda: ok(state, route, T0, 0.1),
        lambda: state.record_auth_failure(route, "401", T0, 0.1, M0),
        lambda: state.record_rate_limited(route, "429", T0, 0.1, until=T0 + 5),
        lambda: state.record_error(route, Health.ERROR, "x", T0, None),
        lambda: state.count_request(route, "200"),
        lambda: state.schedule(route, T0 + 300),
        lambda: state.reconfigure(interval_seconds=60.0, key_source="env $ACME_KEY"),
        lambda: state.key_replaced("sha256:bbbbbbbbbbbb", "file /run/secrets/acme"),
    ]
    seen = [state.version]
    for change in changes:
        change()
        seen.append(state.version)
    assert seen == sorted(set(seen))


def test_reconfigure_and_key_replaced_record_what_people_see() -> None:
    """A reload's new interval and key source, and a rotated key's fingerprint, are shown."""
    state = new_state()
    state.reconfigure(interval_seconds=60.0, key_source="env $ACME_KEY")
    assert (state.interval_seconds, state.key_source) == (60.0, "env $ACME_KEY")
    state.key_replaced("sha256:bbbbbbbbbbbb", "file /run/secrets/acme")
    assert state.key_fingerprint == "sha256:bbbbbbbbbbbb"
    assert state.key_source == "file /run/secrets/acme"
    state.schedule("usage", T0 + 300)
    assert state.next_poll_at == T0 + 300
