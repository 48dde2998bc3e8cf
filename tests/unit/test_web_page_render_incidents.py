"""Incidents on the status page: the column of each org, and per tenant in its detail."""

from __future__ import annotations

from collector.petra_incidents import Incident, IncidentsReport, window_start
from collector.petra_usage import TenantUsage, UsageReport
from collector.state import OrgState
from collector.state_records import Health
from collector.web_page import incidents_cell, render_detail_row, render_status_page
from collector.web_status import org_detail, org_status, status_document
from tests.outcomes import poll_incidents, succeed, succeed_incidents

T0 = 1_795_671_116.0
START = window_start(T0, 30)
XSS = "<script>alert(1)</script>"


def state_with(*incidents: Incident, polled: bool = True, received: int | None = None) -> OrgState:
    state = OrgState("acme", "sha256:aaaaaaaaaaaa", "file /k", 300.0)
    tenant = TenantUsage(
        "t1", None, "Northwind Dental", None, None, None, 5.0, 5.0, 1.0, None, None
    )
    succeed(state, UsageReport("2026-11-26", T0, "Acme", 1.0, (tenant,)), T0, 0.1)
    poll_incidents(state, polled=polled)
    if incidents or received is not None:
        count = len(incidents) if received is None else received
        succeed_incidents(state, IncidentsReport(incidents, count), T0, 0.1, START)
    return state


def incident(key: str, tenant: str, status: str) -> Incident:
    return Incident(key, tenant, status, T0 - 60, f"https://app.example/{key}")


def test_column_counts_what_is_not_remediated() -> None:
    state = state_with(
        incident("a", "t1", "IN_PROGRESS"),
        incident("b", "t1", "REMEDIATED"),
        incident("c", "t9", "UNKNOWN"),
    )
    cell = incidents_cell(org_status(state, T0, 3600)["incidents"])
    assert cell.text == "2 not remediated"
    assert cell.small == "3 in the window"
    assert cell.cls == "incidents-open"


def test_column_when_off_pending_remediated_failing_and_full() -> None:
    assert incidents_cell(org_status(state_with(polled=False), T0, 3600)["incidents"]).small == (
        "not polled"
    )
    pending = incidents_cell(org_status(state_with(), T0, 3600)["incidents"])
    assert (pending.text, pending.small) == ("", "PENDING")
    done = state_with(incident("a", "t1", "REMEDIATED"))
    assert incidents_cell(org_status(done, T0, 3600)["incidents"]).text == "all remediated"
    done.record_error("incidents", Health.ERROR, "server error (503)", T0 + 1, 0.1)
    failing = incidents_cell(org_status(done, T0, 3600)["incidents"])
    assert failing.small == "1 in the window, ERROR"
    full = state_with(incident("a", "t1", "REMEDIATED"), received=500)
    assert "at least" in incidents_cell(org_status(full, T0, 3600)["incidents"]).small
    assert incidents_cell(org_status(state_with(received=0), T0, 3600)["incidents"]).text == "none"


def test_detail_lists_tenants_with_incidents_and_escapes_statuses() -> None:
    """A tenant absent from usage is listed by id; a status from the API is escaped."""
    state = state_with(incident("a", "t1", XSS), incident("b", "t9", "REMEDIATED"))
    html = render_detail_row(org_detail(state, T0, 3600))
    assert "Incidents of 2 tenants" in html
    assert "Northwind Dental" in html
    assert "(not in the usage report)" in html
    assert XSS not in html
    assert "&lt;script&gt;" in html
    assert "https://app.example" not in html  # no url on the page


def test_page_has_the_incidents_column() -> None:
    state = state_with(incident("a", "t1", "IN_PROGRESS"))
    document = status_document([state], T0, 3600, shard=None, version="test")
    html = render_status_page(document)
    assert "<th scope=col>Incidents</th>" in html
    assert "1 not remediated" in html
    assert "https://app.example" not in html
