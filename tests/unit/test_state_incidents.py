"""The incidents side of an org's state: counts, seen incidents, expiry, and the key's health."""

from __future__ import annotations

from collector.petra_incidents import (
    MAX_LIMIT,
    SECONDS_PER_DAY,
    Incident,
    IncidentsReport,
    TenantIncidents,
    window_start,
)
from collector.petra_usage import UsageReport
from collector.routes import incidents_side
from collector.state import AuthEvent, OrgState
from collector.state_records import Health
from tests.outcomes import (
    expire_incidents,
    incidents_of,
    poll_incidents,
    succeed,
    succeed_incidents,
)

T0 = 1_795_671_116.0
M0 = 10_000.0
START = window_start(T0, 30)


def new_state(*, incidents: bool = True) -> OrgState:
    state = OrgState("acme", "sha256:aaaaaaaaaaaa", "file /k", 300.0)
    poll_incidents(state, polled=incidents)
    return state


def answer(*incidents: Incident, received: int | None = None) -> IncidentsReport:
    return IncidentsReport(tuple(incidents), len(incidents) if received is None else received)


def incident(key: str, tenant: str = "t1", status: str = "OPEN", age: float = 60.0) -> Incident:
    return Incident(key, tenant, status, T0 - age, f"https://app.example/{key}")


def polled(state: OrgState) -> bool:
    return incidents_side(state) is not None


def usage() -> UsageReport:
    return UsageReport("2026-11-26", T0, "Acme", 0.0, ())


def test_incidents_are_absent_until_polled_and_dropped_when_turned_off() -> None:
    state = new_state(incidents=False)
    assert incidents_side(state) is None
    version = state.version
    poll_incidents(state, polled=True)
    assert incidents_of(state).health is Health.PENDING
    assert state.version > version
    poll_incidents(state, polled=False)
    assert not polled(state)


def test_success_counts_by_tenant_and_returns_the_new_incidents() -> None:
    state = new_state()
    first = answer(incident("a"), incident("b", "t2", "REMEDIATED"))
    event, fresh = succeed_incidents(state, first, T0, 0.2, START)
    assert event is AuthEvent.NONE
    assert [i.key for i in fresh] == ["a", "b"]
    side = incidents_side(state)
    assert side is not None
    assert side.up
    assert side.tenants == (
        TenantIncidents("t1", (("OPEN", 1),), T0 - 60),
        TenantIncidents("t2", (("REMEDIATED", 1),), T0 - 60),
    )
    assert not side.truncated
    second = answer(incident("c", age=5), incident("a", status="REMEDIATED"), incident("b", "t2"))
    _event, fresh = succeed_incidents(state, second, T0 + 300, 0.2, START + 300)
    assert [i.key for i in fresh] == ["c"]  # a changed status, but is not new


def test_unchanged_counts_keep_the_same_tuple() -> None:
    """Readers that cache what they derive see the very same object when nothing changed."""
    state = new_state()
    succeed_incidents(state, answer(incident("a")), T0, 0.1, START)
    side = incidents_side(state)
    assert side is not None
    before = side.tenants
    succeed_incidents(state, answer(incident("a")), T0 + 1, 0.1, START + 1)
    assert side.tenants is before


def test_a_full_answer_is_truncated() -> None:
    state = new_state()
    many = [incident(str(i)) for i in range(MAX_LIMIT)]
    succeed_incidents(state, answer(*many), T0, 0.1, START)
    assert incidents_side(state) is not None
    assert incidents_of(state).truncated
    succeed_incidents(state, answer(*many[:-1]), T0 + 1, 0.1, START + 1)
    assert not incidents_of(state).truncated


def test_failures_keep_the_counts_and_never_touch_usage() -> None:
    state = new_state()
    succeed(state, usage(), T0, 0.1)
    succeed_incidents(state, answer(incident("a")), T0, 0.1, START)
    state.record_error("incidents", Health.ERROR, "server error (503)", T0 + 300, 0.1)
    state.record_rate_limited("incidents", "rate limited", T0 + 600, 0.1, T0 + 660)
    side = incidents_side(state)
    assert side is not None
    assert side.health is Health.RATE_LIMITED
    assert side.consecutive_failures == 2
    assert side.rate_limited_until == T0 + 660
    assert side.tenants is not None
    assert state.rate_limited_total == 1  # 429s of the key, whatever the route
    assert state.health is Health.OK
    assert state.consecutive_failures == 0


def test_window_moves_while_polls_fail() -> None:
    """An incident that leaves the window stops being counted; the tenant's series go."""
    state = new_state()
    succeed_incidents(
        state,
        answer(incident("old", "t1", age=29 * SECONDS_PER_DAY), incident("new", "t2")),
        T0,
        0.1,
        START,
    )
    later = T0 + 2 * SECONDS_PER_DAY
    state.record_error("incidents", Health.ERROR, "down", later, None)
    expire_incidents(state, later, window_start(later, 30), max_staleness=10 * SECONDS_PER_DAY)
    assert incidents_side(state) is not None
    assert incidents_of(state).tenants == (TenantIncidents("t2", (("OPEN", 1),), T0 - 60),)


def test_everything_goes_after_max_staleness() -> None:
    state = new_state()
    succeed_incidents(state, answer(incident("a")), T0, 0.1, START)
    version = state.version
    expire_incidents(state, T0 + 3600, START + 3600, max_staleness=3600)
    assert incidents_of(state).tenants is not None
    assert state.version == version  # nothing changed, nothing re-rendered
    expire_incidents(state, T0 + 3601, START + 3601, max_staleness=3600)
    assert incidents_of(state).tenants is None
    assert state.version > version


def test_a_401_on_incidents_rejects_the_key_until_that_route_succeeds() -> None:
    """The key's health is one thing: a usage success does not clear an incidents 401."""
    state = new_state()
    event = state.record_auth_failure("incidents", "key rejected (401)", T0, 0.1, M0)
    assert event is AuthEvent.FAILED
    assert state.auth_failing
    assert state.auth_failures_total == 1
    assert succeed(state, usage(), T0 + 1, 0.1) is AuthEvent.NONE
    assert state.auth_failing  # no flapping between the routes
    assert state.record_auth_failure("incidents", "again", T0 + 2, 0.1, M0 + 2) is AuthEvent.NONE
    event, _fresh = succeed_incidents(state, answer(), T0 + 3, 0.1, START)
    assert event is AuthEvent.RECOVERED
    assert not state.auth_failing


def test_a_401_on_both_routes_needs_both_to_succeed() -> None:
    state = new_state()
    assert state.record_auth_failure("usage", "401", T0, 0.1, M0) is AuthEvent.FAILED
    assert state.record_auth_failure("incidents", "401", T0, 0.1, M0) is AuthEvent.NONE
    succeed_incidents(state, answer(), T0 + 1, 0.1, START)
    assert state.auth_failing
    assert succeed(state, usage(), T0 + 2, 0.1) is AuthEvent.RECOVERED


def test_turning_incidents_off_forgets_their_401() -> None:
    state = new_state()
    state.record_auth_failure("incidents", "401", T0, 0.1, M0)
    succeed(state, usage(), T0 + 1, 0.1)
    poll_incidents(state, polled=False)
    assert not state.auth_failing
