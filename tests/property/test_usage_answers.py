"""Any `/v1/usage` answer, however broken, is a report or a UsageFormatError.

Never another exception (a crash of the poll), and every value that reaches a
metric is a finite number or absent.
"""

from __future__ import annotations

import json
import math
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.petra_usage import (
    TENANT_KEYS,
    UsageFormatError,
    UsageReport,
    parse_usage,
    parse_usage_body,
    tenant_usage,
)
from tests.property.strategies import api_keys, examples, huge_integers, json_values, scalars

REPORT_FIELDS: Final = ("asOf", "reportGeneratedAt", "organizationName", "totalTenants")
ALL_FIELDS: Final = st.sampled_from(TENANT_KEYS + REPORT_FIELDS + ("tenants",))

values = json_values(ALL_FIELDS)
# A field's value: any scalar, or a small list or object of them (cheaper to
# generate than full nesting, which `values` covers in the other tests).
field_values = (
    scalars()
    | st.lists(scalars(), max_size=2)
    | st.dictionaries(st.text(max_size=4), scalars(), max_size=2)
)
tenants = st.fixed_dictionaries({}, optional=dict.fromkeys(TENANT_KEYS, field_values)) | scalars()
# Ids that are usable, so most generated reports get past the id check.
tenant_ids = st.text(min_size=1, max_size=8) | st.integers(0, 50)
usable_tenants = st.fixed_dictionaries(
    {"petraTenantId": tenant_ids}, optional=dict.fromkeys(TENANT_KEYS[1:], field_values)
)
reports = st.fixed_dictionaries(
    {},
    optional={
        "tenants": st.lists(usable_tenants | tenants, max_size=4) | field_values,
        **dict.fromkeys(REPORT_FIELDS, field_values),
    },
)


def check_report(report: UsageReport) -> None:
    """What the metrics and the page rely on."""
    for number in (report.report_generated_at, report.total_tenants):
        assert number is None or (isinstance(number, float) and math.isfinite(number))
    assert report.as_of is None or (isinstance(report.as_of, str) and report.as_of)
    assert report.organization_name is None or isinstance(report.organization_name, str)
    ids = [tenant.tenant_id for tenant in report.tenants]
    assert len(ids) == len(set(ids)), "a tenant id twice would be a duplicate series"
    for tenant in report.tenants:
        assert isinstance(tenant.tenant_id, str)
        assert tenant.tenant_id
        for number in (
            tenant.licensed_users,
            tenant.billable_users,
            tenant.prorating_ratio,
            tenant.onboarding_timestamp,
            tenant.first_billable_timestamp,
        ):
            assert number is None or (isinstance(number, float) and math.isfinite(number))
        assert tenant.is_paused is None or isinstance(tenant.is_paused, bool)
        for text in (
            tenant.microsoft_tenant_id,
            tenant.display_name,
            tenant.service,
            tenant.billable_status,
        ):
            assert text is None or isinstance(text, str)
    assert all(isinstance(note, str) for note in report.notes)


@settings(max_examples=examples(300))
@given(reports)
def test_report_shaped_answers(data: dict[str, object]) -> None:
    """Objects with the report's fields holding anything: a checked report or a format error."""
    try:
        report = parse_usage(data)
    except UsageFormatError:
        return
    check_report(report)


@settings(max_examples=examples(100))
@given(st.sampled_from(TENANT_KEYS[1:]), huge_integers() | st.integers(10**308, 10**400))
def test_huge_integers_in_any_field(field: str, number: int) -> None:
    """Integers no float can hold, or too long to print, are no sample, not a crash.

    Only a caller handing Python values can send them (orjson reads big numbers
    as floats), such as a reader of saved reports.
    """
    report = parse_usage({"tenants": [{"petraTenantId": "t1", field: number}]})
    check_report(report)
    report = parse_usage({"tenants": [{"petraTenantId": number}, {"petraTenantId": "t1"}]})
    check_report(report)
    check_report(parse_usage({"totalTenants": number, "reportGeneratedAt": number, "tenants": []}))


@settings(max_examples=examples(200))
@given(values)
def test_any_json_value(data: object) -> None:
    """A list, a string, a number, null: rejected as a whole or read, never a crash."""
    try:
        report = parse_usage(data)
    except UsageFormatError:
        return
    check_report(report)


@settings(max_examples=examples(200))
@given(values | reports)
def test_any_body_as_sent(data: object) -> None:
    """The same values as the bytes of an answer, with NaN, Infinity and huge integers
    written as Python's json writes them (which orjson refuses)."""
    body = json.dumps(data).encode()
    try:
        report = parse_usage_body(body)
    except UsageFormatError:
        return
    check_report(report)


@settings(max_examples=examples(600))
@given(st.binary(max_size=200))
def test_any_bytes(body: bytes) -> None:
    """Bytes that are not JSON at all, or barely: a format error or a report."""
    try:
        report = parse_usage_body(body)
    except UsageFormatError:
        return
    check_report(report)


@settings(max_examples=examples(200))
@given(st.data(), api_keys())
def test_format_errors_do_not_echo_values(data: st.DataObject, key: str) -> None:
    """A rejected answer is described by the types it holds, never by its values."""
    answer = data.draw(
        st.sampled_from(
            [
                key,
                [key],
                {"tenants": key},
                {"tenants": {key: key}},
                {"tenants": [key, [key]]},
                {"tenants": [{"displayName": key}]},
                {"tenant": [key]},
            ]
        )
        | st.builds(lambda filler: [filler, key], scalars())
    )
    with pytest.raises(UsageFormatError) as error:
        parse_usage(answer)
    assert key not in str(error.value)


@settings(max_examples=examples(300))
@given(st.lists(usable_tenants, min_size=1, max_size=4))
def test_inline_tenant_reading_equals_the_general_helpers(raw: list[dict[str, object]]) -> None:
    """parse_usage reads the types Petra sends inline; every tenant must come out exactly
    as the general helpers read it (`tenant_usage`), whatever each field holds."""
    report = parse_usage({"tenants": raw})
    kept = {tenant.tenant_id: tenant for tenant in report.tenants}
    for item in raw:
        tenant_id = str(item["petraTenantId"])
        if tenant_id in kept:  # the first tenant with an id is the one kept
            want = tenant_usage(tenant_id, tuple(map(item.get, TENANT_KEYS)))
            # repr: equal for NaN-free values as ==, and it tells -0.0 from 0.0
            assert repr(kept.pop(tenant_id)) == repr(want)
