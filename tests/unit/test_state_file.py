"""The state file format: round trip, every refused shape, no key material."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from collector.apikey import ApiKey
from collector.petra_usage import TenantUsage, UsageReport
from collector.state import OrgState
from collector.state_file import (
    FORMAT,
    VERSION,
    decode_state,
    encode_document,
    encode_org,
    set_aside,
)
from collector.state_records import Health, SavedOrg, StateFileError
from tests.leaks import assert_no_key_material
from tests.outcomes import saved_report, succeed

T0 = 1_795_671_116.0
M0 = 10_000.0
KEY = ApiKey("petra_statefile_unit_test_key_0123456789")


def tenant(number: int) -> TenantUsage:
    return TenantUsage(
        f"t{number}",
        f"ms-{number}",
        f'Tenant "{number}" \\ é',
        "EDR",
        "billable",
        number % 2 == 0,
        10.0 + number,
        0.1 + 0.2,  # a float that must round-trip exactly
        None,
        1_700_000_000.0,
        None,
    )


def report() -> UsageReport:
    return UsageReport(
        "2026-11-26", T0 - 60, "Acme MSP", 3.0, (tenant(1), tenant(2)), ("tenants[2] skipped",)
    )


def polled_state(name: str = "acme") -> OrgState:
    state = OrgState(name, KEY.fingerprint, "file /keys/acme", 300.0)
    state.count_request("usage", "200")
    succeed(state, report(), T0, 0.25)
    state.count_request("usage", "503")
    state.record_error("usage", Health.ERROR, "Petra answered 503", T0 + 300, 0.5)
    state.next_poll_at = T0 + 310
    return state


def rejected_state(name: str = "globex") -> OrgState:
    state = OrgState(name, KEY.fingerprint, "env $KEY", 300.0)
    state.count_request("usage", "401")
    state.record_auth_failure("usage", "key rejected (401)", T0, 0.1, M0 - 100)
    state.next_poll_at = T0 + 900
    return state


def document(*states: OrgState, clean_stop: bool = True) -> bytes:
    parts = [encode_org(s, wall_now=T0 + 400, monotonic_now=M0) for s in states]
    return b"".join(encode_document(parts, written_at=T0 + 400, clean_stop=clean_stop))


def restored(state: OrgState, data: bytes) -> OrgState:
    saved = decode_state(data)
    fresh = OrgState(state.name, state.key_fingerprint, state.key_source, 300.0)
    fresh.restore(saved.orgs[state.name], wall_now=T0 + 500, monotonic_now=M0 + 100, counters=True)
    return fresh


def comparable(state: OrgState) -> dict[str, object]:
    fields = dataclasses.asdict(state)
    for ignored in ("version", "restored", "auth_warned_monotonic"):
        fields.pop(ignored)
    return fields


def test_round_trip_keeps_every_field() -> None:
    """What is written is what is read back: report, health, times, streak, counters."""
    for state in (polled_state(), rejected_state()):
        back = restored(state, document(state))
        assert comparable(back) == comparable(state)
        assert back.report == state.report
        assert back.restored


def test_round_trip_keeps_the_auth_warning_pace() -> None:
    """An hour of silence after `auth_failed` is counted across the restart, not restarted."""
    state = rejected_state()  # warned 100 s of monotonic time before M0
    back = restored(state, document(state))
    # Restored 100 s of wall time after the write: warned 200 s ago on the new clock.
    assert back.auth_warned_monotonic == pytest.approx(M0 + 100 - 200)
    assert back.auth_failing
    assert back.auth_failed_fingerprint == KEY.fingerprint


def test_counters_are_taken_only_after_a_clean_stop() -> None:
    """After a crash the counters start at 0: a counter that went back would read as a reset."""
    state = polled_state()
    saved = decode_state(document(state, clean_stop=False))
    assert not saved.clean_stop
    fresh = OrgState("acme", KEY.fingerprint, "file /keys/acme", 300.0)
    fresh.restore(saved.orgs["acme"], wall_now=T0, monotonic_now=M0, counters=saved.clean_stop)
    assert fresh.requests_by_code == {"200": 0}
    assert fresh.last_success_at == T0


def test_a_pending_org_round_trips_as_pending() -> None:
    """An org never polled keeps only its schedule: still pending after the restart."""
    state = OrgState("new", KEY.fingerprint, "file /keys/new", 300.0)
    state.next_poll_at = T0 + 42
    back = restored(state, document(state))
    assert back.pending
    assert back.next_poll_at == T0 + 42
    assert back.report is None


def test_the_file_holds_no_key_material() -> None:
    """Only fingerprints: no key, nor any 8-character slice of one."""
    text = document(polled_state(), rejected_state()).decode()
    assert KEY.fingerprint in text
    assert_no_key_material([KEY.reveal()], text)


def test_the_document_is_the_documented_shape() -> None:
    """Top-level fields, and sections that are there only when they have something."""
    data = orjson.loads(document(polled_state(), rejected_state()))
    assert data["format"] == FORMAT
    assert data["version"] == VERSION
    assert data["tenant_fields"][0] == "tenant_id"
    assert set(data["orgs"]["acme"]) == {"key_fingerprint", "health", "poll", "counters", "report"}
    assert set(data["orgs"]["globex"]) == {"key_fingerprint", "health", "poll", "counters", "auth"}


def test_unknown_sections_are_ignored() -> None:
    """A section added later (without a new version) does not make the file unreadable."""
    data = orjson.loads(document(polled_state()))
    data["orgs"]["acme"]["failed_attacks"] = {"seen": ["attack-1"]}
    data["something_new"] = 1
    assert decode_state(orjson.dumps(data)).orgs["acme"].usage.health is Health.ERROR


def _edited(path: str, value: object) -> bytes:
    """The document with one value replaced (`None` as the value removes the key)."""
    data = orjson.loads(document(polled_state()))
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    elif value is None:
        del target[last]
    else:
        target[last] = value
    return orjson.dumps(data)


REPORT = "orgs.acme.report"
CORRUPT: list[tuple[str, bytes, str]] = [
    ("empty", b"", "is empty"),
    ("whitespace", b" \n", "is empty"),
    ("truncated", document(polled_state())[:-40], "is not valid JSON"),
    ("binary", b"\x00\xff\xfe", "is not valid JSON"),
    ("a list", b"[]", "is not a JSON object"),
    ("foreign object", b'{"hello": "world"}', "is not a petra-collector state file"),
    ("no version", _edited("version", None), "has no version number"),
    ("text version", _edited("version", "1"), "has no version number"),
    ("newer version", _edited("version", 2), "has version 2; this petra-collector reads version 1"),
    ("no written_at", _edited("written_at", None), "written_at: is missing"),
    ("negative written_at", _edited("written_at", -1), "written_at: must not be negative"),
    ("clean_stop not bool", _edited("clean_stop", "yes"), "clean_stop: must be true or false"),
    ("other tenant fields", _edited("tenant_fields", ["a"]), "tenant_fields: not the tenant"),
    ("orgs a list", _edited("orgs", []), "orgs: must be an object"),
    ("bad org name", _edited("orgs.a b", {}), "orgs: an org name that is not a valid name"),
    ("org a number", _edited("orgs.acme", 3), "orgs.acme: must be an object"),
    ("no fingerprint", _edited("orgs.acme.key_fingerprint", None), "key_fingerprint: is missing"),
    ("unknown health", _edited("orgs.acme.health", "great"), "orgs.acme.health: is not a known"),
    ("poll a list", _edited("orgs.acme.poll", []), "orgs.acme.poll: must be an object"),
    ("time a string", _edited("orgs.acme.poll.last_poll_at", "now"), "last_poll_at: must be a"),
    ("time a bool", _edited("orgs.acme.poll.last_poll_at", True), "last_poll_at: must be a"),
    ("streak negative", _edited("orgs.acme.poll.consecutive_failures", -1), "whole number"),
    ("streak fraction", _edited("orgs.acme.poll.consecutive_failures", 1.5), "whole number"),
    ("error a number", _edited("orgs.acme.poll.last_error", 5), "last_error: must be a string"),
    ("auth no since", _edited("orgs.acme.auth", {}), "orgs.acme.auth.failing_since: is missing"),
    ("counter text", _edited("orgs.acme.counters.auth_failures_total", "1"), "whole number"),
    ("code count", _edited("orgs.acme.counters.requests_by_code.200", -3), "whole number"),
    ("code empty", _edited("orgs.acme.counters.requests_by_code.", 1), "not a status"),
    ("tenants missing", _edited(f"{REPORT}.tenants", None), "tenants: must be a list"),
    ("tenant an object", _edited(f"{REPORT}.tenants.0", {}), "tenants[0]: must be a list of 11"),
    ("tenant short", _edited(f"{REPORT}.tenants.0", ["t1"]), "tenants[0]: must be a list of 11"),
    ("tenant no id", _edited(f"{REPORT}.tenants.0.0", ""), "tenants[0]: has no tenant id"),
    ("tenant text", _edited(f"{REPORT}.tenants.1.2", 7), "display_name must be a string"),
    ("tenant paused", _edited(f"{REPORT}.tenants.0.5", 1), "is_paused must be true, false"),
    ("tenant number", _edited(f"{REPORT}.tenants.0.6", "10"), "licensed_users must be a number"),
    ("notes", _edited(f"{REPORT}.notes", [1]), "notes: must be a list of strings"),
    ("report number", _edited(f"{REPORT}.total_tenants", "3"), "total_tenants: must be a number"),
]


@pytest.mark.parametrize(("data", "problem"), [c[1:] for c in CORRUPT], ids=[c[0] for c in CORRUPT])
def test_every_corrupt_shape_is_refused_with_its_reason(data: bytes, problem: str) -> None:
    """Anything but exactly the format is refused as a whole, saying what and where."""
    with pytest.raises(StateFileError) as refused:
        decode_state(data)
    assert problem in str(refused.value)


def test_infinite_numbers_are_refused() -> None:
    """A time of infinity is no time (orjson refuses it as it parses)."""
    data = document(polled_state()).replace(b'"last_poll_at":', b'"last_poll_at":1e999,"x":', 1)
    with pytest.raises(StateFileError, match="is not valid JSON"):
        decode_state(data)


def test_whole_numbers_are_read_as_floats() -> None:
    """A hand-edited `10` where `10.0` was written is the same value, as a float."""
    saved = decode_state(_edited(f"{REPORT}.tenants.0.6", 10))
    report = saved_report(saved.orgs["acme"])
    assert report is not None
    assert type(report.tenants[0].licensed_users) is float


def test_set_aside_keeps_every_copy(tmp_path: Path) -> None:
    """Two bad files in the same second do not overwrite each other."""
    path = tmp_path / "state.json"
    first_name = path.name + ".corrupt-20251130T162516Z"
    path.write_text("one")
    first = set_aside(path, 1_764_519_916.0)
    path.write_text("two")
    second = set_aside(path, 1_764_519_916.0)
    assert first.name == first_name
    assert second.name == first_name + "-2"
    assert (first.read_text(), second.read_text()) == ("one", "two")
    assert not path.exists()


def test_saved_org_defaults_are_a_pending_org() -> None:
    saved = SavedOrg(KEY.fingerprint)
    assert saved.usage.health is Health.PENDING
    assert not saved.auth_failing
