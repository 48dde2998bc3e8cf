"""`/v1/billable-users` answers into `BillingReport`: tolerant, and nothing personal kept."""

from __future__ import annotations

import orjson
import pytest

from collector.petra_billing import BillingFormatError, BillingReport, parse_billing_body

ANSWER = {
    "tenantId": "ZZk90t",
    "tenantDisplayName": "Customer One",
    "microsoftTenantId": "a1b2c3d4-5e6f-7890-abcd-ef1234567890",
    "reportGeneratedAt": "2026-11-26T05:31:56Z",
    "totalBillableUsers": 118,
    "projectedBillableUnitsThisMonth": 112.4,
    "users": [
        {
            "id": "2e8c",
            "displayName": "Anakin Skywalker",
            "userPrincipalName": "askywalker@acmecorp.com",
            "mail": "askywalker@acmecorp.com",
        }
    ],
}


def test_the_documented_answer_gives_the_figures_and_nothing_personal() -> None:
    """The published example: figures as floats, the time as epoch seconds, no user."""
    report = parse_billing_body(orjson.dumps(ANSWER), "ZZk90t")
    assert report == BillingReport("ZZk90t", 118.0, 112.4, 1795671116.0)
    assert "Skywalker" not in repr(report)
    assert "askywalker" not in repr(report)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"projectedBillableUnitsThisMonth": None},
            BillingReport("ZZk90t", 118.0, None, 1795671116.0),
        ),
        ({"totalBillableUsers": "118"}, BillingReport("ZZk90t", 118.0, 112.4, 1795671116.0)),
        ({"totalBillableUsers": True}, BillingReport("ZZk90t", None, 112.4, 1795671116.0)),
        ({"reportGeneratedAt": "yesterday"}, BillingReport("ZZk90t", 118.0, 112.4, None)),
        ({"tenantId": None}, BillingReport("ZZk90t", 118.0, 112.4, 1795671116.0)),
        ({"users": "not a list"}, BillingReport("ZZk90t", 118.0, 112.4, 1795671116.0)),
    ],
    ids=["no-projection", "quoted-number", "bool-count", "bad-time", "no-tenant-id", "odd-users"],
)
def test_odd_fields_become_none_not_errors(
    change: dict[str, object], expected: BillingReport
) -> None:
    """Every field may be absent, null or odd: that field has no value, the rest stays."""
    answer = {**ANSWER, **change}
    if change.get("projectedBillableUnitsThisMonth", 0) is None:
        del answer["projectedBillableUnitsThisMonth"]
    assert parse_billing_body(orjson.dumps(answer), "ZZk90t") == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got a list"),
        (orjson.dumps({**ANSWER, "tenantId": "other"}), "another tenant"),
    ],
    ids=["not-json", "array", "other-tenant"],
)
def test_unusable_answers_are_refused_whole(body: bytes, message: str) -> None:
    """An answer that is not an object, or is about another tenant, replaces no figures."""
    with pytest.raises(BillingFormatError, match=message):
        parse_billing_body(body, "ZZk90t")
