"""Property tests of the state file reader: any bytes, any JSON, any state round trip."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.petra_usage import TenantUsage, UsageReport
from collector.state import OrgState
from collector.state_file import decode_state, encode_document, encode_org
from collector.state_records import Health, SavedState, StateFileError
from collector.state_store import load_state
from tests.outcomes import saved_report, succeed

T0 = 1_795_671_116.0

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=6,
)


def read(data: bytes) -> SavedState | None:
    """The reader's contract: a state, or StateFileError. Anything else fails the test."""
    try:
        return decode_state(data)
    except StateFileError:
        return None


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_state_or_a_reason(data: bytes) -> None:
    read(data)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json_gives_a_state_or_a_reason(value: object) -> None:
    read(orjson.dumps(value))


def valid_document() -> dict[str, Any]:
    state = OrgState("acme", "sha256:aaaaaaaaaaaa", "env $K", 300.0)
    tenant = TenantUsage("t1", "m", "T", "EDR", "billable", False, 1.0, 2.0, 0.5, T0, None)
    succeed(state, UsageReport("2026-11-26", T0, "Acme", 1.0, (tenant,)), T0, 0.1)
    state.record_auth_failure("usage", "401", T0 + 1, 0.1, 5.0)
    parts = [encode_org(state, wall_now=T0 + 2, monotonic_now=6.0)]
    document: dict[str, Any] = orjson.loads(
        b"".join(encode_document(parts, written_at=T0 + 2, clean_stop=True))
    )
    return document


PATHS = [
    ("version",),
    ("written_at",),
    ("clean_stop",),
    ("tenant_fields",),
    ("orgs",),
    ("orgs", "acme"),
    ("orgs", "acme", "key_fingerprint"),
    ("orgs", "acme", "health"),
    ("orgs", "acme", "poll"),
    ("orgs", "acme", "poll", "last_success_at"),
    ("orgs", "acme", "poll", "consecutive_failures"),
    ("orgs", "acme", "auth"),
    ("orgs", "acme", "auth", "failing_since"),
    ("orgs", "acme", "counters"),
    ("orgs", "acme", "counters", "requests_by_code"),
    ("orgs", "acme", "report"),
    ("orgs", "acme", "report", "tenants"),
    ("orgs", "acme", "report", "tenants", 0),
    ("orgs", "acme", "report", "tenants", 0, 0),
    ("orgs", "acme", "report", "tenants", 0, 5),
    ("orgs", "acme", "report", "tenants", 0, 6),
    ("orgs", "acme", "report", "notes"),
]


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(PATHS), json_values)
def test_any_value_anywhere_in_a_valid_file_gives_a_state_or_a_reason(
    path: tuple[str | int, ...], replacement: object
) -> None:
    """The valid document with one part replaced by any JSON value."""
    document = valid_document()
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = replacement
    saved = read(orjson.dumps(document))
    if saved is not None:
        assert set(saved.orgs) <= {"acme"} | (
            set(replacement) if path == ("orgs",) and isinstance(replacement, dict) else set()
        )


texts = st.none() | st.text(string.printable, max_size=12)
numbers = st.none() | st.floats(allow_nan=False, allow_infinity=False)
tenants = st.builds(
    TenantUsage,
    st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=12),
    texts,
    texts,
    texts,
    texts,
    st.none() | st.booleans(),
    numbers,
    numbers,
    numbers,
    numbers,
    numbers,
)
times = st.floats(0, 4e9)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(tenants, max_size=6),
    st.tuples(times, st.integers(0, 10**6)),
    st.tuples(st.sampled_from(list(Health)), st.booleans()),
    st.dictionaries(st.sampled_from(["200", "401", "429", "503", "error"]), st.integers(0, 10**9)),
)
def test_every_state_round_trips(
    tenant_list: list[TenantUsage],
    timing: tuple[float, int],
    outcome: tuple[Health, bool],
    requests: dict[str, int],
) -> None:
    (moment, failures), (health, rejected) = timing, outcome
    state = OrgState("org-1", "sha256:aaaaaaaaaaaa", "env $K", 300.0)
    succeed(state, UsageReport(None, moment, None, None, tuple(tenant_list)), moment, 0.1)
    if rejected:
        state.record_auth_failure("usage", "401", moment + 1, 0.2, 100.0)
    state.health = health
    state.consecutive_failures = failures
    state.requests_by_code = requests
    parts = [encode_org(state, wall_now=moment + 2, monotonic_now=101.0)]
    saved = decode_state(b"".join(encode_document(parts, written_at=moment + 2, clean_stop=True)))
    back = saved.orgs["org-1"]
    back_report = saved_report(back)
    assert back_report is not None
    assert back_report.tenants == tuple(tenant_list)
    assert (back.usage.health, back.usage.consecutive_failures, back.auth_failing) == (
        health,
        failures,
        rejected,
    )
    assert back.usage.requests_by_code == requests


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=500))
def test_loading_any_file_never_raises(tmp_path: Path, data: bytes) -> None:
    """The daemon's start-up path: any file is used, or set aside with a reason."""
    path = tmp_path / "state.json"
    path.write_bytes(data)
    result = load_state(path, T0)
    assert (result.state is None) == (result.problem is not None)
    for aside in tmp_path.iterdir():
        aside.unlink()
