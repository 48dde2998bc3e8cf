"""The state file's `incidents` section: round trip, the window on restore, refused shapes."""

from __future__ import annotations

import dataclasses
import math

import orjson
import pytest

from collector.apikey import ApiKey
from collector.petra_incidents import SECONDS_PER_DAY, Incident, IncidentsReport, window_start
from collector.routes import incidents_side
from collector.state import OrgState
from collector.state_file import decode_state, encode_document, encode_org
from collector.state_records import Health, StateFileError
from tests.outcomes import expire_incidents, incidents_of, poll_incidents, succeed_incidents

T0 = 1_795_671_116.0
M0 = 10_000.0
KEY = ApiKey("petra_statefile_incidents_test_key_0123456789")
START = window_start(T0, 30)


def incident(key: str, tenant: str, status: str, age: float) -> Incident:
    return Incident(key, tenant, status, T0 - age, f"https://app.example/{key}")


def polled() -> OrgState:
    state = OrgState("acme", KEY.fingerprint, "env $KEY", 300.0)
    poll_incidents(state, polled=True)
    state.count_request("incidents", "200")
    answer = (
        incident("a", "t1", "IN_PROGRESS", 60),
        incident("b", "t2", "REMEDIATED", 29 * SECONDS_PER_DAY),
        Incident("c", "t2", "UNKNOWN", None, None),
    )
    succeed_incidents(state, IncidentsReport(answer, 500, ("a note",)), T0, 0.2, START)
    state.count_request("incidents", "503")
    state.record_error("incidents", Health.ERROR, "server error (503)", T0 + 300, 0.1)
    state.schedule("incidents", T0 + 310)
    return state


def document(state: OrgState) -> bytes:
    part = encode_org(state, wall_now=T0 + 400, monotonic_now=M0)
    return b"".join(encode_document([part], written_at=T0 + 400, clean_stop=True))


def restored(data: bytes, *, polled_now: bool = True, start: float = START) -> OrgState:
    fresh = OrgState("acme", KEY.fingerprint, "env $KEY", 300.0)
    poll_incidents(fresh, polled=polled_now)
    saved = decode_state(data).orgs["acme"]
    fresh.restore(saved, wall_now=T0 + 500, monotonic_now=M0, counters=True)
    expire_incidents(fresh, T0 + 500, start, math.inf)
    return fresh


def test_round_trip_keeps_the_incidents_side() -> None:
    """Counts, the seen incidents, the route's health, times and counters come back."""
    state = polled()
    back = restored(document(state))
    assert incidents_side(back) is not None
    assert incidents_side(state) is not None
    assert dataclasses.asdict(incidents_of(back)) == dataclasses.asdict(incidents_of(state))


def test_no_user_data_and_no_more_than_an_incident_holds() -> None:
    record = orjson.loads(document(polled()))["orgs"]["acme"]["incidents"]
    assert set(record) == {
        "health",
        "poll",
        "truncated",
        "notes",
        "incidents",
        "seen",
        "requests_by_code",
    }
    assert record["incidents"][0] == ["a", "t1", "IN_PROGRESS", T0 - 60, "https://app.example/a"]


def test_the_window_moves_while_the_process_is_down() -> None:
    """An incident that left the window during the downtime is not counted after it."""
    later = T0 + 2 * SECONDS_PER_DAY
    back = restored(document(polled()), start=window_start(later, 30))
    tenants = incidents_of(back).tenants
    assert tenants is not None
    assert [(t.tenant_id, t.by_status) for t in tenants] == [
        ("t1", (("IN_PROGRESS", 1),)),
        ("t2", (("UNKNOWN", 1),)),
    ]


def test_incidents_turned_off_meanwhile_are_not_restored() -> None:
    back = restored(document(polled()), polled_now=False)
    assert incidents_side(back) is None


def test_a_key_rejected_on_the_incidents_route_stays_rejected() -> None:
    state = OrgState("acme", KEY.fingerprint, "env $KEY", 300.0)
    poll_incidents(state, polled=True)
    state.record_auth_failure("incidents", "key rejected (401)", T0, 0.1, M0)
    back = restored(document(state))
    assert back.auth_failing
    assert back.auth_rejected_routes == {"incidents"}
    assert restored(document(state), polled_now=False).auth_rejected_routes == set()


def _edited(change: dict[str, object]) -> bytes:
    data = orjson.loads(document(polled()))
    data["orgs"]["acme"]["incidents"].update(change)
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"health": "fine"}, "orgs.acme.incidents.health: is not a known health"),
        ({"truncated": 1}, "orgs.acme.incidents.truncated: must be true or false"),
        ({"notes": [1]}, "orgs.acme.incidents.notes: must be a list of strings"),
        ({"incidents": {}}, "orgs.acme.incidents.incidents: must be a list"),
        ({"incidents": [["a", "t1"]]}, "incidents[0]: must be a list of 5 fields"),
        ({"incidents": [["a", 1, "OPEN", None, None]]}, "must be strings"),
        ({"incidents": [["a", "t", "OPEN", "today", None]]}, "created_at must be a number"),
        ({"incidents": [["a", "t", "OPEN", None, 3]]}, "url must be a string or null"),
        ({"seen": {"a": "now"}}, "orgs.acme.incidents.seen.a: must be a number"),
        ({"seen": []}, "orgs.acme.incidents.seen: must be an object"),
        ({"requests_by_code": {"200": -1}}, "requests_by_code.200: must be a whole number"),
        ({"poll": {"last_poll_at": -5}}, "poll.last_poll_at: must not be negative"),
    ],
)
def test_a_broken_incidents_section_is_refused_by_path(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(StateFileError, match=message.replace("[", r"\[").replace(".", r"\.")):
        decode_state(_edited(change))


def test_rejected_routes_must_be_routes() -> None:
    state = OrgState("acme", KEY.fingerprint, "env $KEY", 300.0)
    state.record_auth_failure("usage", "401", T0, 0.1, M0)
    data = orjson.loads(document(state))
    data["orgs"]["acme"]["auth"]["rejected_routes"] = ["billing"]
    with pytest.raises(StateFileError, match="rejected_routes: must be a list of routes"):
        decode_state(orjson.dumps(data))
