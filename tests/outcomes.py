"""Route outcomes recorded as the scheduler records them, for tests that build states.

The scheduler records a good answer in two steps (the route's outcome, then what
the route keeps of the answer); these do both, for the routes tests build most.
"""

from __future__ import annotations

from typing import Any

from collector.petra_incidents import Incident, IncidentsReport
from collector.petra_usage import UsageReport
from collector.routes import INCIDENTS, ROUTES, IncidentsSide, incidents_side
from collector.state import USAGE, AuthEvent, OrgState, RouteState
from collector.state_records import Health, SavedOrg, SavedRoute


def succeed(state: OrgState, report: UsageReport, now: float, duration: float) -> AuthEvent:
    """A good `/v1/usage` answer."""
    event = state.record_success(USAGE, now, duration)
    state.take_report(report)
    return event


def succeed_incidents(
    state: OrgState, report: IncidentsReport, now: float, duration: float, start: float
) -> tuple[AuthEvent, list[Incident]]:
    """A good `/v1/incidents` answer for the window from `start`: the auth event due and
    the incidents not seen before."""
    event = state.record_success(INCIDENTS, now, duration)
    fresh: list[Incident] = []

    def take(side: RouteState) -> bool:
        assert isinstance(side, IncidentsSide)
        fresh.extend(side.take(report, now, start))
        return True

    state.change_side(INCIDENTS, take)
    return event, fresh


def expire_incidents(state: OrgState, now: float, start: float, max_staleness: float) -> None:
    """The incidents side after a failed poll: the window moves, old counts go."""

    def expire(side: RouteState) -> bool:
        assert isinstance(side, IncidentsSide)
        return side.expire(now, start, max_staleness)

    if incidents_side(state) is not None:
        state.change_side(INCIDENTS, expire)


def poll_every_route(state: OrgState) -> OrgState:
    """Every route polled (with nothing known yet), as with every route enabled."""
    for route in ROUTES:
        if route.new_side is not None:
            state.start_route(route.name, route.new_side())
    return state


def poll_incidents(state: OrgState, *, polled: bool) -> None:
    """Start (with nothing known) or stop polling incidents."""
    if polled:
        state.start_route(INCIDENTS, IncidentsSide())
    else:
        state.stop_route(INCIDENTS)


_ORG_FIELDS = frozenset(
    {
        "auth_failing_since",
        "auth_failed_fingerprint",
        "auth_warned_at",
        "auth_rejected_routes",
        "auth_failures_total",
        "rate_limited_total",
    }
)


def saved_org(
    fingerprint: str,
    health: Health = Health.PENDING,
    *,
    report: UsageReport | None = None,
    **fields: Any,
) -> SavedOrg:
    """A saved org whose usage route has `health`, `report` and the route fields given."""
    org = {name: value for name, value in fields.items() if name in _ORG_FIELDS}
    route = {name: value for name, value in fields.items() if name not in _ORG_FIELDS}
    usage = SavedRoute(health, data=report, **route)
    return SavedOrg(fingerprint, routes={USAGE: usage}, **org)


def saved_report(saved: SavedOrg) -> UsageReport | None:
    """The usage report a saved org kept."""
    report = saved.usage.data
    assert report is None or isinstance(report, UsageReport)
    return report


def incidents_of(state: OrgState) -> IncidentsSide:
    """The org's incidents side, which the test knows is polled."""
    side = incidents_side(state)
    assert side is not None, f"incidents are not polled for {state.name}"
    return side
