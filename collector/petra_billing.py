"""`/v1/billable-users` JSON -> `BillingReport`. Pure and tolerant.

Personal data stops here: the answer's `users` (people's names, mails and
principal names) is never read, nor are the tenant's names; what leaves this
module is the tenant id asked about, `totalBillableUsers`,
`projectedBillableUnitsThisMonth` (newer than the rest of the answer, so
often absent: then None, and no sample) and `reportGeneratedAt`.

Petra's schema marks no field as required. Only an answer that is not a JSON
object, or one about another tenant than the one asked about, is rejected
whole (`BillingFormatError`), so a broken answer never replaces good figures.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from collector.petra_usage import iso_datetime, json_number, json_text, json_type


class BillingFormatError(ValueError):
    """The body is not JSON, or not the shape of a billable-users answer."""


class BillingReport(NamedTuple):
    """One tenant's billing figures, with nothing personal in them."""

    tenant_id: str
    billable_users: float | None  # totalBillableUsers
    projected_units: float | None  # projectedBillableUnitsThisMonth; None: not in the answer
    report_generated_at: float | None


def parse_billing_body(body: bytes, tenant_id: str) -> BillingReport:
    """The answer to a request about `tenant_id` (raises BillingFormatError)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BillingFormatError(f"body is not valid JSON: {error}") from None
    return parse_billing(data, tenant_id)


def parse_billing(data: object, tenant_id: str) -> BillingReport:
    if not isinstance(data, dict):
        raise BillingFormatError(f"expected a JSON object, got {json_type(data)}")
    answered = json_text(data.get("tenantId"))
    if answered is not None and answered != tenant_id:
        raise BillingFormatError("the answer is about another tenant than the one asked about")
    return BillingReport(
        tenant_id=tenant_id,
        billable_users=json_number(data.get("totalBillableUsers")),
        projected_units=json_number(data.get("projectedBillableUnitsThisMonth")),
        report_generated_at=iso_datetime(data.get("reportGeneratedAt")),
    )
