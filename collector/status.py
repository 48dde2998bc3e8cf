"""Per-org status as plain data: one source for the JSON API and the HTML page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from collector.state import Health, OrgState

# Failing orgs first: what an operator opened the page for.
HEALTH_ORDER: Final = {
    Health.AUTH_FAILED: 0,
    Health.FORBIDDEN: 2,
    Health.ERROR: 3,
    Health.RATE_LIMITED: 4,
    Health.PENDING: 5,
    Health.OK: 6,
}


def iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def org_status(state: OrgState, now: float, max_staleness: float) -> dict[str, Any]:
    report = state.report
    tenants = report.tenants if report is not None else ()
    return {
        "org": state.name,
        "state": state.health.value,
        "up": state.up,
        "auth_failure": state.auth_failing,
        "auth_failing_since": iso(state.auth_failing_since),
        # Usage kept from a success too long ago (and so gone from /metrics); an org
        # that never succeeded has no usage, so nothing of it is stale.
        "stale": state.last_success_at is not None and state.is_stale(now, max_staleness),
        "organization_name": report.organization_name if report is not None else None,
        "tenants": len(tenants) if report is not None else None,
        "licensed_users": _total(t.licensed_users for t in tenants) if report else None,
        "billable_users": _total(t.billable_users for t in tenants) if report else None,
        "last_success": iso(state.last_success_at),
        "last_poll": iso(state.last_poll_at),
        "last_error": state.last_error,
        "last_error_at": iso(state.last_error_at),
        "consecutive_failures": state.consecutive_failures,
        "next_poll": iso(state.next_poll_at),
        "rate_limited_until": iso(state.rate_limited_until),
        "interval_seconds": state.interval_seconds,
        "key_fingerprint": state.key_fingerprint,
        "key_source": state.key_source,
        "requests": dict(sorted(state.requests_by_code.items())),
    }


def org_detail(state: OrgState, now: float, max_staleness: float) -> dict[str, Any]:
    """The status of one org with its tenants, as last reported."""
    result = org_status(state, now, max_staleness)
    report = state.report
    result["as_of"] = report.as_of if report is not None else None
    result["report_generated_at"] = iso(report.report_generated_at) if report else None
    result["tenant_list"] = [t._asdict() for t in report.tenants] if report else []
    result["report_notes"] = list(report.notes) if report else []
    return result


def _total(values: Any) -> float | None:
    numbers = [v for v in values if v is not None]
    return sum(numbers) if numbers else None


def summarize(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "orgs": len(rows),
        "ok": sum(1 for r in rows if r["state"] == Health.OK.value and not r["stale"]),
        "failing": sum(
            1
            for r in rows
            if r["state"] not in (Health.OK.value, Health.PENDING.value, Health.RATE_LIMITED.value)
        ),
        "auth_failing": sum(1 for r in rows if r["auth_failure"]),
        "rate_limited": sum(1 for r in rows if r["state"] == Health.RATE_LIMITED.value),
        "stale": sum(1 for r in rows if r["stale"]),
        "pending": sum(1 for r in rows if r["state"] == Health.PENDING.value),
    }


def status_document(
    states: list[OrgState], now: float, max_staleness: float, *, shard: str | None, version: str
) -> dict[str, Any]:
    rows = [org_status(s, now, max_staleness) for s in states]
    rows.sort(key=lambda r: (HEALTH_ORDER.get(Health(r["state"]), len(HEALTH_ORDER)), r["org"]))
    return {
        "version": version,
        "generated_at": iso(now),
        "shard": shard,
        "summary": summarize(rows),
        "orgs": rows,
    }
