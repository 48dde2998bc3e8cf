"""`/v1/incidents` parsing, the window's edges, and remembering seen incidents."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import orjson
import pytest

from collector.petra_incidents import (
    MAX_STATUS_CHARS,
    SECONDS_PER_DAY,
    STATUS_UNKNOWN,
    Incident,
    IncidentsFormatError,
    TenantIncidents,
    in_window,
    new_incidents,
    parse_incidents,
    parse_incidents_body,
    remember,
    start_date_param,
    summarize,
    window_start,
)
from collector.petra_usage import parse_usage

CREATED = datetime(2025, 2, 6, 3, 55, 6, 50000, tzinfo=UTC).timestamp()
URL = "https://app.petrasecurity.com/tenant/ZZk90t/incidents/48f3708e"
USER = {
    "id": "2e8c0000-0000-4000-8000-000000000000",
    "userPrincipalName": "askywalker@acmecorp.com",
    "mail": "askywalker@acmecorp.com",
    "displayName": "Anakin Skywalker",
    "accountEnabled": True,
    "lastPasswordChangeDateTime": None,
}
FULL_INCIDENT: dict[str, object] = {
    "id": "48f3708e-45c1-4902-9e3b-26165bf3d76a",
    "url": URL,
    "createdAt": "2025-02-06T03:55:06.050Z",
    "occurredAt": "2025-02-04T22:14:12.000Z",
    "remediationStatus": "REMEDIATED",
    "isLive": False,
    "dwellTimeMinutes": 1918.650583333333,
    "tenant": {
        "petraTenantId": "ZZk90t",
        "name": "Acme Corp.",
        "microsoftTenantId": "a1b2c3d4-5e6f-7890-abcd-ef1234567890",
    },
    "user": USER,
}


def body(*incidents: dict[str, object]) -> dict[str, object]:
    return {"incidents": [copy.deepcopy(i) for i in incidents]}


def with_fields(**fields: object) -> dict[str, object]:
    incident = copy.deepcopy(FULL_INCIDENT)
    incident.update(fields)
    return incident


def without(name: str) -> dict[str, object]:
    incident = copy.deepcopy(FULL_INCIDENT)
    del incident[name]
    return incident


def incident(key: str, tenant: str, status: str, created: float | None) -> Incident:
    return Incident(key, tenant, status, created, None)


# -- parsing ---------------------------------------------------------------------------


def test_full_incident_keeps_only_what_is_exported_or_logged() -> None:
    """Id, tenant id, status, creation time and url: nothing of the user or tenant name."""
    report = parse_incidents(body(FULL_INCIDENT))
    assert report.incidents == (
        Incident("48f3708e-45c1-4902-9e3b-26165bf3d76a", "ZZk90t", "REMEDIATED", CREATED, URL),
    )
    assert report.received == 1
    assert report.notes == ()


def test_no_user_field_survives_parsing() -> None:
    """Not one value of `user` (nor the tenant's name) is anywhere in the parsed report."""
    report = parse_incidents_body(orjson.dumps(body(FULL_INCIDENT)))
    text = repr(report)
    for value in (*[v for v in USER.values() if isinstance(v, str)], "Acme Corp."):
        assert value not in text
    assert "askywalker" not in text


def test_body_must_be_json() -> None:
    with pytest.raises(IncidentsFormatError, match="not valid JSON"):
        parse_incidents_body(b'{"incidents": [')


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a JSON object, got a list"),
        (None, "expected a JSON object, got null"),
        ("incidents", "got a string"),
        ({}, "no 'incidents' list"),
        ({"incidents": None}, "no 'incidents' list"),
        ({"incidents": {"a": 1}}, "'incidents' is an object, not a list"),
        ({"incidents": "none"}, "'incidents' is a string"),
        ({"incidents": 3}, "'incidents' is a number"),
        ({"incidents": True}, "'incidents' is a boolean"),
    ],
)
def test_wrong_overall_shape_is_rejected(data: object, message: str) -> None:
    """Only the overall shape can reject an answer: the caller keeps the last good counts."""
    with pytest.raises(IncidentsFormatError, match=message):
        parse_incidents(data)


def test_empty_list_is_an_org_without_incidents() -> None:
    report = parse_incidents({"incidents": []})
    assert report.incidents == ()
    assert report.received == 0


def test_a_list_of_nothing_usable_is_rejected() -> None:
    """A non-empty answer of which nothing can be read is broken, not an org without incidents."""
    with pytest.raises(IncidentsFormatError, match="none of the 2 incidents is usable"):
        parse_incidents({"incidents": [1, {"id": "x"}]})


@pytest.mark.parametrize("item", [None, 3, "incident", [], True])
def test_entry_that_is_not_an_object_is_skipped(item: object) -> None:
    report = parse_incidents({"incidents": [item, FULL_INCIDENT]})
    assert len(report.incidents) == 1
    assert report.received == 2
    assert report.notes[0].startswith("incidents[0] is ")


@pytest.mark.parametrize(
    "tenant",
    [
        None,
        "ZZk90t",
        [],
        {},
        {"petraTenantId": None},
        {"petraTenantId": ""},
        {"petraTenantId": True},
        {"petraTenantId": 1.5},
        {"petraTenantId": {"id": "x"}},
        {"microsoftTenantId": "a1b2c3d4-5e6f-7890-abcd-ef1234567890"},
    ],
)
def test_incident_without_a_usable_tenant_id_is_skipped(tenant: object) -> None:
    """No petraTenantId, no label: the incident cannot be attributed and is noted."""
    report = parse_incidents(body(with_fields(tenant=tenant, id="other"), FULL_INCIDENT))
    assert [i.key for i in report.incidents] == [FULL_INCIDENT["id"]]
    assert report.notes == ("incidents[0] has no tenant.petraTenantId, skipped",)


def test_missing_tenant_is_skipped() -> None:
    report = parse_incidents(body(without("tenant"), with_fields(id="second")))
    assert [i.key for i in report.incidents] == ["second"]


@pytest.mark.parametrize("tenant_id", [" ZZk90t ", "  ", 42])
def test_a_tenant_id_is_read_as_usage_reads_it(tenant_id: object) -> None:
    """As Petra spells it, blanks and all: one tenant, one `tenant_id` label in the
    incident series and the usage series alike."""
    incidents = parse_incidents(body(with_fields(tenant={"petraTenantId": tenant_id})))
    usage = parse_usage({"tenants": [{"petraTenantId": tenant_id}]})
    assert incidents.incidents[0].tenant_id == usage.tenants[0].tenant_id


def test_numeric_tenant_id_becomes_text() -> None:
    report = parse_incidents(body(with_fields(tenant={"petraTenantId": 42})))
    assert report.incidents[0].tenant_id == "42"


def test_a_tenant_id_of_more_digits_than_python_prints_is_skipped_not_a_crash() -> None:
    """str() refuses integers past sys.get_int_max_str_digits; that is no tenant id."""
    huge = 10**5000
    bad = with_fields(tenant={"petraTenantId": huge}, id="other")
    report = parse_incidents({"incidents": [bad, FULL_INCIDENT]})
    assert [i.key for i in report.incidents] == [FULL_INCIDENT["id"]]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("REMEDIATED", "REMEDIATED"),
        ("IN_PROGRESS", "IN_PROGRESS"),  # unknown to the docs: kept as spelled
        ("remediated", "remediated"),  # not REMEDIATED: counts as not remediated
        (" OPEN ", "OPEN"),
        (None, STATUS_UNKNOWN),
        ("", STATUS_UNKNOWN),
        (3, STATUS_UNKNOWN),
        (True, STATUS_UNKNOWN),
        ({"status": "REMEDIATED"}, STATUS_UNKNOWN),
        ("X" * (MAX_STATUS_CHARS + 1), STATUS_UNKNOWN),
        ("OPEN\nNOW", STATUS_UNKNOWN),
    ],
)
def test_status_is_kept_as_spelled_or_unknown(status: object, expected: str) -> None:
    """Any string status is a label value as the API spells it; anything else is UNKNOWN."""
    report = parse_incidents(body(with_fields(remediationStatus=status)))
    assert report.incidents[0].remediation_status == expected


def test_missing_status_is_unknown() -> None:
    report = parse_incidents(body(without("remediationStatus")))
    assert report.incidents[0].remediation_status == STATUS_UNKNOWN


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2025-02-06T03:55:06.050Z", CREATED),
        ("2025-02-06T03:55:06.050+00:00", CREATED),
        ("2025-02-06T04:55:06.050+01:00", CREATED),
        ("2025-02-06T03:55:06.050", CREATED),  # no zone: UTC, as the API means
        ("2025-02-06", datetime(2025, 2, 6, tzinfo=UTC).timestamp()),
    ],
)
def test_created_at_forms(created: str, expected: float) -> None:
    report = parse_incidents(body(with_fields(createdAt=created)))
    assert report.incidents[0].created_at == pytest.approx(expected)


@pytest.mark.parametrize("created", ["yesterday", 1738814106, True, [], {"at": 1}, ""])
def test_unreadable_created_at_is_counted_and_noted(created: object) -> None:
    """The API was asked for this window, so an unreadable createdAt is still counted."""
    report = parse_incidents(body(with_fields(createdAt=created)))
    assert report.incidents[0].created_at is None
    assert report.incidents[0].key == FULL_INCIDENT["id"]
    assert report.notes == (
        "incidents[0] has an unreadable createdAt, counted as inside the window",
    )


def test_missing_created_at_is_counted_without_a_note() -> None:
    report = parse_incidents(body(without("createdAt")))
    assert report.incidents[0].created_at is None
    assert report.notes == ()


@pytest.mark.parametrize("incident_id", [None, "", 3.5, True, ["x"]])
def test_without_an_id_the_incident_is_known_by_tenant_and_creation(incident_id: object) -> None:
    report = parse_incidents(body(with_fields(id=incident_id)))
    assert report.incidents[0].key == f"ZZk90t@{CREATED!r}"


def test_numeric_id_becomes_text() -> None:
    report = parse_incidents(body(with_fields(id=17)))
    assert report.incidents[0].key == "17"


def test_without_id_and_created_at_the_incident_is_skipped() -> None:
    """Nothing to recognise it by on the next poll: it would be announced as new every time."""
    nameless = with_fields(id=None, createdAt=None)
    report = parse_incidents(body(nameless, with_fields(id="kept")))
    assert [i.key for i in report.incidents] == ["kept"]
    assert "neither id nor createdAt" in report.notes[0]


def test_repeated_incident_is_counted_once() -> None:
    report = parse_incidents(body(FULL_INCIDENT, FULL_INCIDENT))
    assert len(report.incidents) == 1
    assert report.received == 2
    assert report.notes == ("incidents[1] repeats an earlier incident, skipped",)


@pytest.mark.parametrize("url", [None, 3, "", "javascript:alert(1)", "app.petra/x", ["https://x"]])
def test_url_that_is_not_a_web_address_is_dropped(url: object) -> None:
    report = parse_incidents(body(with_fields(url=url)))
    assert report.incidents[0].url is None


def test_long_url_is_cut() -> None:
    report = parse_incidents(body(with_fields(url="https://x.example/" + "a" * 2000)))
    url = report.incidents[0].url
    assert url is not None
    assert len(url) == 512


@pytest.mark.parametrize("field", ["occurredAt", "isLive", "dwellTimeMinutes", "user", "url"])
def test_fields_not_needed_may_be_missing(field: str) -> None:
    report = parse_incidents(body(without(field)))
    assert len(report.incidents) == 1
    assert report.notes == ()


def test_user_of_any_shape_is_ignored() -> None:
    for user in (None, "askywalker@acmecorp.com", [USER], 3):
        report = parse_incidents(body(with_fields(user=user)))
        assert len(report.incidents) == 1
        assert "askywalker" not in repr(report)


def test_every_field_null() -> None:
    """An all-null incident cannot be attributed: skipped, and then the answer is unusable."""
    nulls = dict.fromkeys(FULL_INCIDENT)
    with pytest.raises(IncidentsFormatError, match=r"no tenant\.petraTenantId"):
        parse_incidents(body(nulls))


# -- the window ------------------------------------------------------------------------


NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def test_window_start_is_lookback_days_back() -> None:
    assert window_start(NOW, 30) == NOW - 30 * SECONDS_PER_DAY
    assert window_start(NOW, 0.5) == NOW - 43200


def test_window_includes_its_first_instant_and_not_the_one_before() -> None:
    """'Created on or after startDate': the edge itself is inside."""
    start = window_start(NOW, 30)
    assert in_window(incident("a", "t", "OPEN", start), start)
    assert not in_window(incident("a", "t", "OPEN", start - 0.001), start)
    assert in_window(incident("a", "t", "OPEN", NOW), start)


def test_undated_incident_is_inside_the_window() -> None:
    assert in_window(incident("a", "t", "OPEN", None), window_start(NOW, 30))


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC), "2026-11-01T12:00:00.000Z"),
        (datetime(2026, 3, 5, 0, 53, 10, 402000, tzinfo=UTC), "2026-03-05T00:53:10.402Z"),
        (datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "2026-12-31T23:59:59.999Z"),
    ],
)
def test_start_date_param_is_an_iso_utc_date_time(moment: datetime, text: str) -> None:
    """The form petra-api.md shows, milliseconds cut (never rounded up past the edge)."""
    assert start_date_param(moment.timestamp()) == text


def test_summarize_counts_by_tenant_and_status_inside_the_window() -> None:
    start = window_start(NOW, 30)
    incidents = [
        incident("1", "t2", "REMEDIATED", NOW - 10),
        incident("2", "t1", "OPEN", NOW - 20),
        incident("3", "t1", "REMEDIATED", NOW - 30),
        incident("4", "t1", "OPEN", start),
        incident("5", "t3", "OPEN", start - 1),  # left the window: t3 has no series
        incident("6", "t2", STATUS_UNKNOWN, None),
    ]
    assert summarize(incidents, start) == (
        TenantIncidents("t1", (("OPEN", 2), ("REMEDIATED", 1)), NOW - 20),
        TenantIncidents("t2", (("REMEDIATED", 1), (STATUS_UNKNOWN, 1)), NOW - 10),
    )


def test_tenant_with_only_undated_incidents_has_no_newest_time() -> None:
    summary = summarize([incident("1", "t", "OPEN", None)], window_start(NOW, 30))
    assert summary == (TenantIncidents("t", (("OPEN", 1),), None),)


def test_summarize_nothing() -> None:
    assert summarize([], NOW) == ()


# -- seen incidents --------------------------------------------------------------------


def test_new_incidents_are_those_not_seen_inside_the_window() -> None:
    start = window_start(NOW, 30)
    answer = [
        incident("new", "t", "OPEN", NOW - 5),
        incident("old", "t", "OPEN", NOW - 50),
        incident("stale", "t", "OPEN", start - 5),
    ]
    assert new_incidents(answer, {"old": NOW - 50}, start) == [answer[0]]


def test_remember_keeps_the_window_and_forgets_what_left_it() -> None:
    start = window_start(NOW, 30)
    seen = {"kept": start, "gone": start - 0.5}
    answer = [incident("a", "t", "OPEN", NOW - 1), incident("undated", "t", "OPEN", None)]
    assert remember(seen, answer, now=NOW, start=start) == {
        "kept": start,
        "a": NOW - 1,
        "undated": NOW,
    }


def test_remember_keeps_what_an_answer_no_longer_lists() -> None:
    """A full answer leaves older incidents out; they must not be announced again later."""
    start = window_start(NOW, 30)
    assert remember({"earlier": NOW - 100}, [], now=NOW, start=start) == {"earlier": NOW - 100}


def test_remember_keeps_the_first_time_an_undated_incident_was_seen() -> None:
    start = window_start(NOW, 30)
    seen = remember(
        {"undated": NOW - 60}, [incident("undated", "t", "OPEN", None)], now=NOW, start=start
    )
    assert seen == {"undated": NOW - 60}


def test_remember_is_bounded_keeping_the_newest() -> None:
    start = window_start(NOW, 30)
    answer = [incident(str(i), "t", "OPEN", NOW - i) for i in range(10)]
    assert remember({}, answer, now=NOW, start=start, kept=3) == {
        "0": NOW,
        "1": NOW - 1,
        "2": NOW - 2,
    }


def test_undated_incidents_are_forgotten_a_window_after_first_seen() -> None:
    later = NOW + 30 * SECONDS_PER_DAY + 1
    assert remember({"undated": NOW}, [], now=later, start=window_start(later, 30)) == {}
