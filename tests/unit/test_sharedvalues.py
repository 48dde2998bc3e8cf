"""sharedvalues: a kept report holds one copy of each recurring value, equal to what came."""

from __future__ import annotations

import math

from collector.sharedvalues import shared_tenants
from collector.state import OrgState
from collector.usage import TenantUsage, UsageReport, parse_usage_body


def _body(service: str, users: int) -> bytes:
    return (
        b'{"tenants": [{"petraTenantId": "t1", "service": "%s", "billableStatus": "Billable",'
        b' "totalLicensedUsers": %d, "proratingPercentageThisMonth": 50}]}'
        % (service.encode(), users)
    )


def test_orgs_with_the_same_values_share_one_copy() -> None:
    """Two orgs' reports, parsed apart (so their strings and floats are distinct
    objects), hold the same objects once kept; the values are unchanged."""
    first, second = OrgState("a", "fp", "file", 60), OrgState("b", "fp", "file", 60)
    first_report = parse_usage_body(_body("Monitoring + Response", 1234))
    second_report = parse_usage_body(_body("Monitoring + Response", 1234))
    assert first_report.tenants[0].service is not second_report.tenants[0].service
    first.record_success(first_report, 1.0, 0.1)
    second.record_success(second_report, 1.0, 0.1)
    assert first.report is not None
    assert second.report is not None
    mine, theirs = first.report.tenants[0], second.report.tenants[0]
    assert mine == first_report.tenants[0]
    assert mine.service is theirs.service
    assert mine.billable_status is theirs.billable_status
    assert mine.licensed_users is theirs.licensed_users
    assert mine.prorating_ratio is theirs.prorating_ratio


def test_zero_nan_and_none_stay_as_they_are() -> None:
    """-0.0 is not turned into 0.0 (one key, two values), NaN and None pass through."""
    tenant = TenantUsage("t", None, None, None, None, None, -0.0, math.nan, None, 0.0, None)
    (kept,) = shared_tenants((tenant,))
    assert kept.licensed_users is not None
    assert math.copysign(1.0, kept.licensed_users) == -1.0
    assert kept.billable_users is not None
    assert math.isnan(kept.billable_users)
    assert kept.prorating_ratio is None
    assert kept.service is None


def test_an_unchanged_report_keeps_the_kept_tuple() -> None:
    """The rebuild happens when tenants change, not on every poll."""
    state = OrgState("a", "fp", "file", 60)
    state.record_success(parse_usage_body(_body("X", 1)), 1.0, 0.1)
    assert state.report is not None
    kept = state.report.tenants
    state.record_success(parse_usage_body(_body("X", 1)), 2.0, 0.1)
    assert state.report.tenants is kept
    state.record_success(UsageReport(None, None, None, None, ()), 3.0, 0.1)
    assert state.report.tenants == ()
