"""Per-org status as typed plain data: one source for the JSON API, the page and `check`.

The documents are TypedDicts, so they are what `/api/v1/status` and
`/api/v1/orgs/NAME` serialize, field for field, and mypy checks every reader.
`HEALTH_LABELS` is the one table of the words people read for a health state;
its identifiers (the `Health` values) are what the JSON, the page's markup and
`check --output json` carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final, TypedDict

from collector.petra_incidents import REMEDIATED
from collector.petra_usage import TenantUsage
from collector.routes import IncidentsSide, billing_figures, billing_side, incidents_side
from collector.state import OrgState, RouteState
from collector.state_records import Health

# Failing orgs first: what an operator opened the page for.
HEALTH_ORDER: Final[Mapping[Health, int]] = {
    Health.AUTH_FAILED: 0,
    Health.FORBIDDEN: 2,
    Health.ERROR: 3,
    Health.RATE_LIMITED: 4,
    Health.PENDING: 5,
    Health.OK: 6,
}

# What the page, `check` and the docs say for each state.
HEALTH_LABELS: Final[Mapping[Health, str]] = {
    Health.OK: "OK",
    Health.AUTH_FAILED: "KEY REJECTED",
    Health.FORBIDDEN: "FORBIDDEN",
    Health.ERROR: "ERROR",
    Health.RATE_LIMITED: "RATE LIMITED",
    Health.PENDING: "PENDING",
}

# Not failing: polled fine, not polled yet, or waiting out the API's own limit.
NOT_FAILING: Final = frozenset({Health.OK, Health.PENDING, Health.RATE_LIMITED})


def is_failing(health: Health) -> bool:
    return health not in NOT_FAILING


class RouteOutcomeStatus(TypedDict):
    """A route's last outcome and schedule, the same for every route but usage (whose
    fields are the org's own)."""

    last_success: str | None
    last_poll: str | None
    last_error: str | None
    last_error_at: str | None
    consecutive_failures: int
    next_poll: str | None
    rate_limited_until: str | None
    requests: dict[str, int]


class OrgStatus(RouteOutcomeStatus):
    """One org's row of `/api/v1/status`."""

    org: str
    state: Health
    up: bool
    restored: bool  # served from the state file since the start, until its first poll
    auth_failure: bool
    auth_failing_since: str | None
    stale: bool
    organization_name: str | None
    tenants: int | None
    licensed_users: float | None
    billable_users: float | None
    interval_seconds: float
    key_fingerprint: str
    key_source: str
    incidents: IncidentsStatus | None  # None while incidents are not polled
    billing: BillingStatus | None  # None while billing is not polled


class IncidentsStatus(RouteOutcomeStatus):
    """An org's `/v1/incidents` side: counts of the window and the route's health.
    Nothing about an incident's user, id or url."""

    state: Health
    up: bool
    total: int | None  # None until the first success (or after the counts expired)
    not_remediated: int | None
    by_status: dict[str, int]
    tenants_with_incidents: int | None
    truncated: bool  # the counts are lower bounds


class BillingStatus(RouteOutcomeStatus):
    """An org's `/v1/billable-users` side: its tenants' figures summed, how many are
    stale, and the route's health. Nothing about a user."""

    state: Health
    up: bool
    projected_units: float | None  # summed over the tenants that have them; None: none has
    billable_users_listed: float | None
    tenants_with_figures: int
    tenants_stale: int


class TenantBillingStatus(TypedDict):
    """One tenant's billing figures, in `/api/v1/orgs/NAME`."""

    tenant_id: str
    projected_units: float | None
    billable_users_listed: float | None
    report_generated_at: str | None
    asked_at: str


class TenantIncidentsStatus(TypedDict):
    """One tenant's incidents of the window, in `/api/v1/orgs/NAME`."""

    tenant_id: str
    by_status: dict[str, int]
    not_remediated: int
    last_incident_at: str | None


class TenantStatus(TypedDict):
    """One tenant of `/api/v1/orgs/NAME`, as last reported: the fields of
    `petra_usage.TenantUsage` (a tuple there, a JSON object here; a test holds them equal)."""

    tenant_id: str
    microsoft_tenant_id: str | None
    display_name: str | None
    service: str | None
    billable_status: str | None
    is_paused: bool | None
    licensed_users: float | None
    billable_users: float | None
    prorating_ratio: float | None
    onboarding_timestamp: float | None
    first_billable_timestamp: float | None


class OrgDetail(OrgStatus):
    """`/api/v1/orgs/NAME`: an org's row with its tenants."""

    as_of: str | None
    report_generated_at: str | None
    tenant_list: list[TenantStatus]
    report_notes: list[str]
    incident_tenants: list[TenantIncidentsStatus]
    billing_tenants: list[TenantBillingStatus]


class Summary(TypedDict):
    orgs: int
    ok: int
    failing: int
    auth_failing: int
    rate_limited: int
    stale: int
    pending: int
    restored: int


class StatusDocument(TypedDict):
    """`/api/v1/status`: every org of this instance, failing first."""

    version: str
    generated_at: str
    shard: str | None
    summary: Summary
    orgs: list[OrgStatus]


def iso_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def iso(moment: float | None) -> str | None:
    return None if moment is None else iso_time(moment)


def org_status(state: OrgState, now: float, max_staleness: float) -> OrgStatus:
    report = state.report
    tenants = report.tenants if report is not None else ()
    return {
        "org": state.name,
        "state": state.health,
        "up": state.up,
        "restored": state.restored,
        "auth_failure": state.auth_failing,
        "auth_failing_since": iso(state.auth_failing_since),
        # Usage kept from a success too long ago (and so gone from /metrics); an org
        # that never succeeded has no usage, so nothing of it is stale.
        "stale": state.last_success_at is not None and state.is_stale(now, max_staleness),
        "organization_name": report.organization_name if report is not None else None,
        "tenants": len(tenants) if report is not None else None,
        "licensed_users": _total(t.licensed_users for t in tenants) if report else None,
        "billable_users": _total(t.billable_users for t in tenants) if report else None,
        **_outcome(state),  # usage's outcome is the org's own
        "interval_seconds": state.interval_seconds,
        "key_fingerprint": state.key_fingerprint,
        "key_source": state.key_source,
        "incidents": incidents_status(incidents_side(state)),
        "billing": billing_status(state),
    }


def _outcome(side: RouteState) -> RouteOutcomeStatus:
    return {
        "last_success": iso(side.last_success_at),
        "last_poll": iso(side.last_poll_at),
        "last_error": side.last_error,
        "last_error_at": iso(side.last_error_at),
        "consecutive_failures": side.consecutive_failures,
        "next_poll": iso(side.next_poll_at),
        "rate_limited_until": iso(side.rate_limited_until),
        "requests": dict(sorted(side.requests_by_code.items())),
    }


def billing_status(state: OrgState) -> BillingStatus | None:
    side = billing_side(state)
    if side is None:
        return None
    figures = [kept.report for kept in billing_figures(state)]
    projected = [f.projected_units for f in figures if f.projected_units is not None]
    listed = [f.billable_users for f in figures if f.billable_users is not None]
    return {
        "state": side.health,
        "up": side.up,
        "projected_units": round(sum(projected), 6) if projected else None,
        "billable_users_listed": round(sum(listed), 6) if listed else None,
        "tenants_with_figures": len(figures),
        "tenants_stale": side.stale,
        **_outcome(side),
    }


def _billing_tenant_list(state: OrgState) -> list[TenantBillingStatus]:
    return [
        {
            "tenant_id": kept.report.tenant_id,
            "projected_units": kept.report.projected_units,
            "billable_users_listed": kept.report.billable_users,
            "report_generated_at": iso(kept.report.report_generated_at),
            "asked_at": iso(kept.asked_at) or "",
        }
        for kept in billing_figures(state)
    ]


def incidents_status(side: IncidentsSide | None) -> IncidentsStatus | None:
    if side is None:
        return None
    tenants = side.tenants or ()
    by_status: dict[str, int] = {}
    for tenant in tenants:
        for status, count in tenant.by_status:
            by_status[status] = by_status.get(status, 0) + count
    known = side.tenants is not None
    return {
        "state": side.health,
        "up": side.up,
        "total": sum(by_status.values()) if known else None,
        "not_remediated": (
            sum(n for status, n in by_status.items() if status != REMEDIATED) if known else None
        ),
        "by_status": dict(sorted(by_status.items())),
        "tenants_with_incidents": len(tenants) if known else None,
        "truncated": side.truncated,
        **_outcome(side),
    }


def org_detail(state: OrgState, now: float, max_staleness: float) -> OrgDetail:
    """The status of one org with its tenants, as last reported."""
    report = state.report
    return {
        **org_status(state, now, max_staleness),
        "as_of": report.as_of if report is not None else None,
        "report_generated_at": iso(report.report_generated_at) if report else None,
        "tenant_list": [_tenant(t) for t in report.tenants] if report else [],
        "report_notes": list(report.notes) if report else [],
        "incident_tenants": _incident_tenants(incidents_side(state)),
        "billing_tenants": _billing_tenant_list(state),
    }


def _incident_tenants(side: IncidentsSide | None) -> list[TenantIncidentsStatus]:
    if side is None or side.tenants is None:
        return []
    return [
        {
            "tenant_id": tenant.tenant_id,
            "by_status": dict(tenant.by_status),
            "not_remediated": sum(n for status, n in tenant.by_status if status != REMEDIATED),
            "last_incident_at": iso(tenant.last_created_at),
        }
        for tenant in side.tenants
    ]


def _tenant(tenant: TenantUsage) -> TenantStatus:
    return {
        "tenant_id": tenant.tenant_id,
        "microsoft_tenant_id": tenant.microsoft_tenant_id,
        "display_name": tenant.display_name,
        "service": tenant.service,
        "billable_status": tenant.billable_status,
        "is_paused": tenant.is_paused,
        "licensed_users": tenant.licensed_users,
        "billable_users": tenant.billable_users,
        "prorating_ratio": tenant.prorating_ratio,
        "onboarding_timestamp": tenant.onboarding_timestamp,
        "first_billable_timestamp": tenant.first_billable_timestamp,
    }


def _total(values: Iterable[float | None]) -> float | None:
    numbers = [v for v in values if v is not None]
    return sum(numbers) if numbers else None


def summarize(rows: list[OrgStatus]) -> Summary:
    return {
        "orgs": len(rows),
        "ok": sum(1 for r in rows if r["state"] is Health.OK and not r["stale"]),
        "failing": sum(1 for r in rows if is_failing(r["state"])),
        "auth_failing": sum(1 for r in rows if r["auth_failure"]),
        "rate_limited": sum(1 for r in rows if r["state"] is Health.RATE_LIMITED),
        "stale": sum(1 for r in rows if r["stale"]),
        "pending": sum(1 for r in rows if r["state"] is Health.PENDING),
        "restored": sum(1 for r in rows if r["restored"]),
    }


def status_document(
    states: list[OrgState], now: float, max_staleness: float, *, shard: str | None, version: str
) -> StatusDocument:
    rows = [org_status(s, now, max_staleness) for s in states]
    rows.sort(key=lambda r: (HEALTH_ORDER.get(r["state"], len(HEALTH_ORDER)), r["org"]))
    return {
        "version": version,
        "generated_at": iso_time(now),
        "shard": shard,
        "summary": summarize(rows),
        "orgs": rows,
    }
