"""What a good `/v1/usage` answer leaves in the org's state (`USAGE_ROUTE.take`)."""

from __future__ import annotations

import orjson

from collector.config import PollingSettings
from collector.petra_usage import UsageReport, parse_usage_body
from collector.routes import USAGE_ROUTE, Asking, Sections
from collector.state import USAGE, OrgState

T0 = 1_795_671_116.0
TENANTS = [{"petraTenantId": "ZZk90t", "totalLicensedUsers": 120}, {"petraTenantId": "Qx7"}]


def body(generated: str = "2026-11-26T05:31:56Z", tenants: object = TENANTS) -> bytes:
    return orjson.dumps({"reportGeneratedAt": generated, "tenants": tenants})


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, object]]] = []

    def info(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))


def take(state: OrgState, report: UsageReport, log: Log) -> bool:
    """The route's `take` after a good answer, as the scheduler calls it."""
    state.record_success(USAGE, T0, 0.1)
    return USAGE_ROUTE.take(state, report, Asking(T0, Sections(PollingSettings())), log)


def test_the_report_the_org_holds_changes_nothing() -> None:
    """The same body again is the very report the org holds: taking it leaves the state
    as the poll's outcome left it (no version bump, so /metrics and the state file
    have nothing new to look at), wakes no per-tenant route and logs nothing."""
    state, log = OrgState("acme", "sha256:aaaaaaaaaaaa", "env $K", 300.0), Log()
    first = parse_usage_body(body(tenants=[*TENANTS, 7]))  # one note: logged once
    assert take(state, first, log)
    assert [event for event, _ in log.lines] == ["usage_anomalies"]
    state.record_success(USAGE, T0 + 300, 0.1)
    version = state.version
    same = parse_usage_body(body(tenants=[*TENANTS, 7]), state.report)
    assert same is state.report
    assert not USAGE_ROUTE.take(state, same, Asking(T0 + 300, Sections(PollingSettings())), log)
    assert state.report is first
    assert state.version == version
    assert len(log.lines) == 1


def test_a_new_report_with_the_same_tenants_keeps_them() -> None:
    """A new head (another day's report) is taken, its tenants the held tuple; changed
    tenant ids wake the per-tenant routes."""
    state, log = OrgState("acme", "sha256:aaaaaaaaaaaa", "env $K", 300.0), Log()
    first = parse_usage_body(body())
    take(state, first, log)
    version = state.version
    later = parse_usage_body(body("2026-11-27T05:31:56Z"), state.report)
    assert not take(state, later, log)
    assert state.report is later
    assert state.report.tenants is first.tenants
    assert state.version > version
    assert take(state, parse_usage_body(body(tenants=TENANTS[:1]), state.report), log)
    assert [tenant.tenant_id for tenant in state.report.tenants] == ["ZZk90t"]
    assert log.lines == []
