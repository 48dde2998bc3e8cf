"""sharedvalues: a kept report holds one copy of each recurring value, equal to what came."""

from __future__ import annotations

import math

import pytest

from collector import sharedvalues
from collector.petra_usage import TenantUsage, UsageReport, parse_usage_body, shared_tenants
from collector.sharedvalues import FLOATS_OF_INTS, shared_number, shared_text
from collector.state import OrgState
from tests.outcomes import succeed


def _body(service: str, users: int) -> bytes:
    return (
        b'{"tenants": [{"petraTenantId": "t1", "service": "%s", "billableStatus": "Billable",'
        b' "totalLicensedUsers": %d, "proratingPercentageThisMonth": 50}]}'
        % (service.encode(), users)
    )


def test_orgs_with_the_same_values_share_one_copy() -> None:
    """Two orgs' answers, each parsed from its own bytes (so orjson made distinct
    strings and ints), hold the same objects; the values are what came."""
    first = parse_usage_body(_body("Monitoring + Response", 1234)).tenants[0]
    second = parse_usage_body(_body("Monitoring + Response", 1234)).tenants[0]
    assert first == second
    assert first.service == "Monitoring + Response"
    assert first.licensed_users == 1234.0
    assert first.prorating_ratio == 0.5
    assert first.service is second.service
    assert first.billable_status is second.billable_status
    assert first.licensed_users is second.licensed_users
    assert first.prorating_ratio is second.prorating_ratio
    # The copies are the tables' (the lookups here find them; a parse that skipped the
    # tables would hold orjson's own objects, and these would be this file's constants).
    assert first.service is sharedvalues.TEXTS["Monitoring + Response"]
    assert first.licensed_users is FLOATS_OF_INTS[1234]
    assert first.prorating_ratio is sharedvalues.RATIOS_OF_INTS[50]


def test_restored_tenants_share_one_copy() -> None:
    """Tenants from the state file (made another way) share their recurring values."""

    def restored(tenant_id: str) -> TenantUsage:
        service = b"Response".decode()  # a new string object each time
        return TenantUsage(
            tenant_id, None, None, service, None, None, 4321.5 + 0.0, None, 0.5, None, None
        )

    first, second = restored("t1"), restored("t2")
    assert first.service is not second.service
    kept_first, kept_second = shared_tenants((first, second))
    assert (kept_first, kept_second) == (first, second)
    assert kept_first.service is kept_second.service
    assert kept_first.licensed_users is kept_second.licensed_users


def test_zero_nan_and_none_stay_as_they_are() -> None:
    """-0.0 is not turned into 0.0 (one key, two values), NaN and None pass through."""
    tenant = TenantUsage("t", None, None, None, "", None, -0.0, math.nan, None, 0.0, None)
    (kept,) = shared_tenants((tenant,))
    assert kept.licensed_users is not None
    assert math.copysign(1.0, kept.licensed_users) == -1.0
    assert kept.billable_users is not None
    assert math.isnan(kept.billable_users)
    assert kept.prorating_ratio is None
    assert kept.service is None
    assert kept.billable_status == ""
    assert shared_number(None) is None
    assert shared_text(None) is None


def test_an_int_too_large_for_a_float_is_kept_nowhere() -> None:
    """float() raises for it, as it would inline; the table holds nothing for it."""
    with pytest.raises(OverflowError):
        FLOATS_OF_INTS[10**400]
    assert 10**400 not in FLOATS_OF_INTS


def test_an_unchanged_report_keeps_the_kept_tuple() -> None:
    """An answer with the same tenants keeps the kept report's tuple."""
    state = OrgState("a", "fp", "file", 60)
    succeed(state, parse_usage_body(_body("X", 1)), 1.0, 0.1)
    assert state.report is not None
    kept = state.report.tenants
    succeed(state, parse_usage_body(_body("X", 1)), 2.0, 0.1)
    assert state.report.tenants is kept
    succeed(state, UsageReport(None, None, None, None, ()), 3.0, 0.1)
    assert state.report.tenants == ()
