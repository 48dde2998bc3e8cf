"""`/v1/usage` parsing: tolerant of missing fields, strict about the overall shape."""

from __future__ import annotations

import hashlib
import zlib
from datetime import UTC, datetime

import orjson
import pytest

from collector.petra_usage import (
    TenantUsage,
    UsageFormatError,
    UsageReport,
    parse_usage,
    parse_usage_body,
)

GENERATED = datetime(2026, 11, 26, 5, 31, 56, tzinfo=UTC).timestamp()
JAN_2 = datetime(2025, 1, 2, tzinfo=UTC).timestamp()
FEB_1 = datetime(2025, 2, 1, tzinfo=UTC).timestamp()

FULL_TENANT: dict[str, object] = {
    "petraTenantId": "ZZk90t",
    "microsoftTenantId": "a1b2c3d4-5e6f-7890-abcd-ef1234567890",
    "onboardingDate": "2025-01-02",
    "displayName": "Customer One",
    "service": "Monitoring",
    "isPaused": False,
    "firstBillableDate": "2025-02-01",
    "billableStatus": "Trial",
    "totalLicensedUsers": 120,
    "billableUsersThisMonth": 118,
    "proratingPercentageThisMonth": 100,
}

FULL_BODY: dict[str, object] = {
    "asOf": "2026-11-26",
    "reportGeneratedAt": "2026-11-26T05:31:56Z",
    "organizationName": "Acme MSP",
    "totalTenants": 2,
    "tenants": [
        FULL_TENANT,
        {
            "petraTenantId": "Qx7",
            "microsoftTenantId": None,
            "onboardingDate": "2025-02-01",
            "displayName": "Customer Two",
            "service": "Response",
            "isPaused": True,
            "firstBillableDate": None,
            "billableStatus": "Billable",
            "totalLicensedUsers": 0,
            "billableUsersThisMonth": 0,
            "proratingPercentageThisMonth": 37.5,
        },
    ],
}


def tenant(**fields: object) -> TenantUsage:
    """Parse a report holding one tenant with the given fields and return that tenant."""
    report = parse_usage({"tenants": [fields]})
    assert len(report.tenants) == 1, report.notes
    return report.tenants[0]


def test_full_body_parses_every_field() -> None:
    """The documented example body parses into exactly the expected report."""
    report = parse_usage_body(orjson.dumps(FULL_BODY))

    assert len(report.digest) == 64  # SHA-256 of the tail from "tenants" on, of tail + head
    assert report._replace(digest=b"") == UsageReport(
        as_of="2026-11-26",
        report_generated_at=GENERATED,
        organization_name="Acme MSP",
        total_tenants=2.0,
        tenants=(
            TenantUsage(
                tenant_id="ZZk90t",
                microsoft_tenant_id="a1b2c3d4-5e6f-7890-abcd-ef1234567890",
                display_name="Customer One",
                service="Monitoring",
                billable_status="Trial",
                is_paused=False,
                licensed_users=120.0,
                billable_users=118.0,
                prorating_ratio=1.0,
                onboarding_timestamp=JAN_2,
                first_billable_timestamp=FEB_1,
            ),
            TenantUsage(
                tenant_id="Qx7",
                microsoft_tenant_id=None,
                display_name="Customer Two",
                service="Response",
                billable_status="Billable",
                is_paused=True,
                licensed_users=0.0,
                billable_users=0.0,
                prorating_ratio=0.375,
                onboarding_timestamp=FEB_1,
                first_billable_timestamp=None,
            ),
        ),
        notes=(),
    )


def test_missing_fields_are_none_not_zero() -> None:
    """A tenant with only an id, and a report with only tenants, have None everywhere else."""
    report = parse_usage({"tenants": [{"petraTenantId": "t1"}]})

    assert report == UsageReport(
        as_of=None,
        report_generated_at=None,
        organization_name=None,
        total_tenants=None,
        tenants=(TenantUsage("t1", *([None] * 10)),),
        notes=(),
    )


def test_null_fields_are_none_not_zero() -> None:
    """Every field explicitly null gives None, never 0 or False."""
    nulls = dict.fromkeys(FULL_TENANT, None) | {"petraTenantId": "t1"}
    body = dict.fromkeys(FULL_BODY, None) | {"tenants": [nulls]}

    report = parse_usage(body)

    assert report.tenants == (TenantUsage("t1", *([None] * 10)),)
    assert (report.as_of, report.report_generated_at) == (None, None)
    assert (report.organization_name, report.total_tenants) == (None, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("118", 118.0),
        ("118.5", 118.5),
        (" 7 ", 7.0),
        ("1e3", 1000.0),
        (118, 118.0),
        (118.25, 118.25),
        (0, 0.0),
        ("", None),
        ("many", None),
        ("NaN", None),
        ("inf", None),
        ("1e999", None),
        (True, None),
        (False, None),
        ([1], None),
        ({"value": 1}, None),
    ],
    ids=repr,
)
def test_numbers_accept_numeric_strings_only(value: object, expected: float | None) -> None:
    """Numbers may come quoted; anything that is not a finite number is None."""
    assert tenant(petraTenantId="t", totalLicensedUsers=value).licensed_users == expected
    assert parse_usage({"tenants": [], "totalTenants": value}).total_tenants == expected


@pytest.mark.parametrize("value", [-0.0, "-0", "-0.0", -0], ids=repr)
def test_negative_zero_is_read_as_zero(value: object) -> None:
    """A -0.0 (or "-0") in any number field comes back as 0.0: no metric means the sign."""
    parsed = tenant(
        petraTenantId="t",
        totalLicensedUsers=value,
        billableUsersThisMonth=value,
        proratingPercentageThisMonth=value,
    )
    for number in (parsed.licensed_users, parsed.billable_users, parsed.prorating_ratio):
        assert repr(number) == "0.0"
    total = parse_usage({"tenants": [], "totalTenants": value}).total_tenants
    assert repr(total) == "0.0"
    assert repr(parse_usage_body(b'{"tenants": [], "totalTenants": -0.0}').total_tenants) == "0.0"


def test_numbers_as_strings_in_a_whole_report() -> None:
    """A gateway that quotes every number still yields the same numbers."""
    quoted = {k: str(v) if isinstance(v, int | float) else v for k, v in FULL_TENANT.items()}
    quoted["isPaused"] = "false"
    body = {**FULL_BODY, "totalTenants": "1", "tenants": [quoted]}

    report = parse_usage(body)

    assert report.total_tenants == 1.0
    assert report.tenants[0] == parse_usage(FULL_BODY).tenants[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("true", True),
        ("false", False),
        ("yes", None),
        (2, None),
        (None, None),
    ],
    ids=repr,
)
def test_is_paused(value: object, expected: bool | None) -> None:
    """isPaused accepts booleans, 0/1 and "true"/"false"; anything else is unknown."""
    assert tenant(petraTenantId="t", isPaused=value).is_paused is expected


def test_prorating_percentage_becomes_a_ratio() -> None:
    """proratingPercentageThisMonth is divided by 100; absent stays None."""
    assert tenant(petraTenantId="t", proratingPercentageThisMonth=100).prorating_ratio == 1.0
    assert tenant(petraTenantId="t", proratingPercentageThisMonth=50).prorating_ratio == 0.5
    assert tenant(petraTenantId="t", proratingPercentageThisMonth="25").prorating_ratio == 0.25
    assert tenant(petraTenantId="t", proratingPercentageThisMonth=0).prorating_ratio == 0.0
    assert tenant(petraTenantId="t").prorating_ratio is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-02", JAN_2),
        ("2025-01-02T00:00:00Z", JAN_2),
        ("2025-01-02T01:00:00+01:00", JAN_2),
        ("2025-01-02T00:00:00", JAN_2),  # no zone: UTC, as the docs say
        ("1970-01-01", 0.0),
        ("02/01/2025", None),
        ("2025-13-01", None),
        ("", None),
        (20250102, None),
        (None, None),
    ],
    ids=repr,
)
def test_dates_become_epoch_seconds(value: object, expected: float | None) -> None:
    """ISO dates (midnight UTC) and date-times become epoch seconds; other values None."""
    assert tenant(petraTenantId="t", onboardingDate=value).onboarding_timestamp == expected
    assert tenant(petraTenantId="t", firstBillableDate=value).first_billable_timestamp == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-26T05:31:56Z", GENERATED),
        ("2026-11-26T05:31:56+00:00", GENERATED),
        ("2026-11-26T06:31:56+01:00", GENERATED),
        ("2026-11-26T05:31:56", GENERATED),
        ("2026-11-26T05:31:56.250Z", GENERATED + 0.25),
        ("yesterday", None),
        (1795671116, None),
    ],
    ids=repr,
)
def test_report_generated_at(value: object, expected: float | None) -> None:
    """reportGeneratedAt is an ISO date-time in UTC; offsets are honoured."""
    assert parse_usage({"tenants": [], "reportGeneratedAt": value}).report_generated_at == expected


def test_text_fields() -> None:
    """Text fields keep strings, turn integers into text, and drop empty or other values."""
    parsed = tenant(petraTenantId=12345, displayName="", service=7, billableStatus=["Trial"])
    assert parsed.tenant_id == "12345"
    assert parsed.display_name is None
    assert parsed.service == "7"
    assert parsed.billable_status is None


def test_non_dict_tenants_and_tenants_without_id_are_skipped_with_notes() -> None:
    """Tenants that cannot be labelled are skipped, each with a note naming its index."""
    body = {
        "tenants": [
            "ZZk90t",
            None,
            {"displayName": "no id"},
            {"petraTenantId": None},
            {"petraTenantId": ""},
            {"petraTenantId": True},
            [1, 2],
            {"petraTenantId": "ok"},
        ]
    }
    report = parse_usage(body)

    assert [t.tenant_id for t in report.tenants] == ["ok"]
    assert report.notes == (
        "tenants[0] is a string, skipped",
        "tenants[1] is null, skipped",
        "tenants[2] has no petraTenantId, skipped",
        "tenants[3] has no petraTenantId, skipped",
        "tenants[4] has no petraTenantId, skipped",
        "tenants[5] has no petraTenantId, skipped",
        "tenants[6] is a list, skipped",
    )


def test_duplicate_tenant_ids_keep_the_first() -> None:
    """A repeated petraTenantId keeps the first tenant and notes the repeat."""
    body = {
        "tenants": [
            {"petraTenantId": "a", "displayName": "first"},
            {"petraTenantId": "b"},
            {"petraTenantId": "a", "displayName": "second"},
        ]
    }
    report = parse_usage(body)

    assert [(t.tenant_id, t.display_name) for t in report.tenants] == [("a", "first"), ("b", None)]
    assert report.notes == ("tenants[2] repeats petraTenantId 'a', skipped",)


def test_empty_tenant_list_is_a_valid_report() -> None:
    """An org with no tenants is a report with no tenants, not an error."""
    report = parse_usage_body(b'{"tenants": [], "totalTenants": 0}')
    assert report.tenants == ()
    assert report.total_tenants == 0.0


def test_unknown_fields_are_ignored() -> None:
    """Fields the collector does not know about do not disturb parsing."""
    body = {**FULL_BODY, "nextPage": "x", "tenants": [{**FULL_TENANT, "newField": [1]}]}
    assert parse_usage(body).tenants == parse_usage(FULL_BODY).tenants[:1]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "expected a JSON object, got a list"),
        (b'[{"tenants": []}]', "expected a JSON object, got a list"),
        (b"null", "expected a JSON object, got null"),
        (b'"report"', "expected a JSON object, got a string"),
        (b"42", "expected a JSON object, got a number"),
        (b"{}", "the answer has no 'tenants' list"),
        (b'{"tenants": null}', "the answer has no 'tenants' list"),
        (b'{"tenants": {"a": {}}}', "'tenants' is an object, not a list"),
        (b'{"tenants": "none"}', "'tenants' is a string, not a list"),
        (b'{"tenants": [', "body is not valid JSON"),
        (b"", "body is not valid JSON"),
        (b"<html>502 Bad Gateway</html>", "body is not valid JSON"),
        (b'{"tenants": []}\xff', "body is not valid JSON"),
    ],
    ids=[
        "list",
        "list-of-report",
        "null",
        "string",
        "number",
        "no-tenants",
        "null-tenants",
        "tenants-object",
        "tenants-string",
        "truncated",
        "empty",
        "html",
        "trailing-garbage",
    ],
)
def test_wrong_shapes_raise_usage_format_error(body: bytes, message: str) -> None:
    """A body that is not JSON, or not an object with a tenants list, is rejected whole."""
    with pytest.raises(UsageFormatError, match="^" + message.replace("[", r"\[")):
        parse_usage_body(body)


def test_usage_format_error_is_a_value_error() -> None:
    """UsageFormatError can be caught as ValueError by callers that do not know the type."""
    assert issubclass(UsageFormatError, ValueError)


@pytest.mark.parametrize(
    "tenants",
    [["x"], [None, {"displayName": "no id"}], [{"petraTenantId": ""}, [1]]],
    ids=["one-string", "null-and-no-id", "empty-id-and-list"],
)
def test_a_tenant_list_with_nothing_usable_is_rejected(tenants: list[object]) -> None:
    """A non-empty tenant list without one usable tenant is a broken answer, not zero tenants."""
    with pytest.raises(UsageFormatError, match=rf"^none of the {len(tenants)} tenants is usable"):
        parse_usage({"tenants": tenants})


def test_tenants_as_before_are_taken_from_the_previous_report() -> None:
    """Only the tail from `"tenants"` on decides: a new reportGeneratedAt keeps the
    previous tenants (and their notes), a changed tenant, a `"tenants"` elsewhere or a
    body without the key are read in full."""
    tenants = b'"tenants": [{"petraTenantId": "a", "totalLicensedUsers": 3}, 7]}'
    first = parse_usage_body(b'{"reportGeneratedAt": "2026-11-26T05:31:56Z", ' + tenants)
    assert first.notes == ("tenants[1] is a number, skipped",)
    later = parse_usage_body(
        b'{"reportGeneratedAt": "2026-11-26T05:32:56Z", "totalTenants": 1, ' + tenants, first
    )
    assert later.tenants is first.tenants
    assert later.notes == first.notes
    # Both reports carry a reportGeneratedAt (float | None to mypy).
    assert later.report_generated_at == first.report_generated_at + 60  # type: ignore[operator]
    assert later.total_tenants == 1.0
    changed = parse_usage_body(b'{"tenants": [{"petraTenantId": "b"}]}', first)
    assert [t.tenant_id for t in changed.tenants] == ["b"]
    elsewhere = parse_usage_body(b'{"note": "tenants", ' + tenants, first)
    assert elsewhere.tenants == first.tenants
    assert elsewhere.tenants is not first.tenants  # its tail starts at the string
    with pytest.raises(UsageFormatError, match="no 'tenants' list"):
        parse_usage_body(b'{"reportGeneratedAt": "2026-11-26T05:31:56Z"}', first)
    with pytest.raises(UsageFormatError, match="a list"):
        parse_usage_body(b"[1]", first)


def count_loads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies `parse_usage_body` hands to `orjson.loads` from now on."""
    loaded: list[bytes] = []
    loads = orjson.loads

    def counting(body: bytes) -> object:
        loaded.append(body)
        return loads(body)

    monkeypatch.setattr(orjson, "loads", counting)
    return loaded


def test_the_body_previous_was_read_from_is_previous_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An answer byte for byte the last is the last report, the same object, not parsed:
    what we rely on when Petra answers the same report again."""
    body = orjson.dumps(FULL_BODY)
    first = parse_usage_body(body)
    loaded = count_loads(monkeypatch)
    assert parse_usage_body(body, first) is first
    assert loaded == []
    again = parse_usage_body(body)  # no previous: read anew, equal
    assert again == first
    assert again is not first
    assert loaded == [body]


def test_a_new_head_keeps_the_tenants_and_reads_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """When only what comes before `"tenants"` changed, the body is parsed for the head's
    fields and the tenants (and their notes) are the previous report's, as before."""
    first = parse_usage_body(orjson.dumps(FULL_BODY))
    body = orjson.dumps(
        {**FULL_BODY, "asOf": "2026-11-27", "reportGeneratedAt": "2026-11-27T05:31:56Z"}
    )
    loaded = count_loads(monkeypatch)
    later = parse_usage_body(body, first)
    assert loaded == [body]
    assert later is not first
    assert later.tenants is first.tenants
    assert (later.as_of, later.report_generated_at) == ("2026-11-27", GENERATED + 86400)
    assert later.digest[:32] == first.digest[:32]
    assert later.digest != first.digest
    assert parse_usage_body(body, later) is later  # and it is the one to match next time


def test_a_new_tail_is_read_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed tenant makes a new report with new tenants, read from the body."""
    first = parse_usage_body(orjson.dumps(FULL_BODY))
    moved = {**FULL_TENANT, "billableUsersThisMonth": 119}
    body = orjson.dumps({**FULL_BODY, "tenants": [moved, FULL_BODY["tenants"][1]]})  # type: ignore[index]
    loaded = count_loads(monkeypatch)
    changed = parse_usage_body(body, first)
    assert loaded == [body]
    assert changed.tenants is not first.tenants
    assert changed.tenants[0].billable_users == 119.0
    assert changed.tenants[1] == first.tenants[1]
    assert changed.digest[:32] != first.digest[:32]


# "plumless" and "buckeroo" have the same CRC-32: bodies that differ only by one for the
# other have one length and one checksum, and a CRC-32 with the length would take one
# for the other.
CRC_TWINS = (b"plumless", b"buckeroo")


@pytest.mark.parametrize("field", ["organizationName", "displayName"])
def test_bodies_a_checksum_would_confuse_are_told_apart(field: str) -> None:
    """Two bodies of one length and one CRC-32 (in the head, or in a tenant) give two
    reports: the digests are SHA-256, of the tail and of the tail with the head."""
    one, other = CRC_TWINS
    assert zlib.crc32(one) == zlib.crc32(other)

    def body(name: bytes) -> bytes:
        if field == "organizationName":
            return orjson.dumps({**FULL_BODY, "organizationName": name.decode()})
        return orjson.dumps(
            {**FULL_BODY, "tenants": [{**FULL_TENANT, "displayName": name.decode()}]}
        )

    first_body, second_body = body(one), body(other)
    assert len(first_body) == len(second_body)
    assert zlib.crc32(first_body) == zlib.crc32(second_body)
    first = parse_usage_body(first_body)
    second = parse_usage_body(second_body, first)
    assert second is not first
    if field == "organizationName":
        assert second.organization_name == "buckeroo"
        assert second.tenants is first.tenants  # the tail is the same
    else:
        assert second.tenants[0].display_name == "buckeroo"


def test_a_moved_split_is_a_different_body() -> None:
    """The second digest is of the tail followed by the head, so a body cut elsewhere
    can share it; the first, of the tail alone, tells such bodies apart."""
    head, tail = b'{"a": 1, ', b'"tenants": []}'
    first = parse_usage_body(head + tail)
    # The same bytes, tail then head, cut 4 bytes later: a longer tail, a shorter head.
    other_tail, other_head = tail + head[:4], head[4:]
    assert other_tail + other_head == tail + head
    assert hashlib.sha256(other_tail + other_head).digest() == first.digest[32:]
    with pytest.raises(UsageFormatError, match="not valid JSON"):
        parse_usage_body(other_head + other_tail, first)


def test_a_report_without_digests_is_never_matched() -> None:
    """A report read back from the state file (no digests), or a body without
    `"tenants"` bytes (an escaped key), is never taken for the same body."""
    body = orjson.dumps(FULL_BODY)
    restored = parse_usage_body(body)._replace(digest=b"")
    assert parse_usage_body(body, restored) is not restored
    escaped = b'{"\\u0074enants": []}'
    first = parse_usage_body(escaped)
    assert first.digest == b""
    assert parse_usage_body(escaped, first) is not first
