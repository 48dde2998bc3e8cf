"""The billable-users route: which tenant is asked next, what the side keeps and drops,
its state-file section, and what /metrics and the page show of it."""

from __future__ import annotations

import math

import orjson
import pytest

from collector.metrics import PetraCollector
from collector.petra_billing import BillingReport
from collector.petra_usage import TenantUsage, UsageReport
from collector.routes import BILLING, BillingFigures, billing_side, pick_tenant, tenant_ids
from collector.state import USAGE, OrgState, RouteState
from collector.state_file import decode_state, encode_document, encode_org
from collector.state_records import Health, StateFileError
from collector.web_page import billing_cell
from collector.web_status import billing_status
from tests.outcomes import poll_every_route, succeed

T0 = 1_795_671_116.0
M0 = 10_000.0
DAY = 86400.0


def usage(*tenants: str) -> UsageReport:
    rows = tuple(
        TenantUsage(t, None, None, None, None, None, 1.0, 1.0, 1.0, None, None) for t in tenants
    )
    return UsageReport("2026-11-26", T0, "Acme MSP", float(len(rows)), rows)


def org_with(*tenants: str) -> OrgState:
    state = poll_every_route(OrgState("acme", "sha256:aaaaaaaaaaaa", "env $K", 300.0))
    succeed(state, usage(*tenants), T0, 0.1)
    return state


def answer(state: OrgState, tenant: str, at: float, units: float | None = 10.5) -> None:
    """A good answer about `tenant` at `at`, kept as the route keeps it."""

    def keep(side: RouteState) -> bool:
        found = billing_side(state)
        assert found is side
        found.attempted[tenant] = at
        found.figures[tenant] = BillingFigures(BillingReport(tenant, 12.0, units, at), at)
        found.expire(tenant_ids(state.report), at, DAY)
        return True

    state.record_success(BILLING, at, 0.1)
    state.change_side(BILLING, keep)


def test_never_asked_tenants_come_first_then_the_oldest_attempt() -> None:
    """A new tenant is asked at once; then the one asked longest ago, when it is due."""
    tenants = ("a", "b", "c")
    assert pick_tenant(tenants, {"a": T0, "c": T0 - 10}, now=T0, interval=DAY, spacing=120) == (
        "b",
        0.0,
    )
    attempted = {"a": T0, "b": T0 - 20, "c": T0 - 10}
    tenant, wait = pick_tenant(tenants, attempted, now=T0, interval=DAY, spacing=120)
    # Due a full round (3 x 120 s) before its figure is a day old.
    assert (tenant, wait) == (None, DAY - 360 - 20)
    later = T0 - 20 + DAY - 360
    assert pick_tenant(tenants, attempted, now=later, interval=DAY, spacing=120) == ("b", 0.0)


def test_a_short_budget_asks_as_fast_as_it_allows() -> None:
    """More tenants than the interval allows: every tenant is due at once, oldest first."""
    tenants = tuple(f"t{i}" for i in range(10))
    attempted = dict.fromkeys(tenants, T0)
    assert pick_tenant(tenants, attempted, now=T0, interval=600, spacing=120) == ("t0", 0.0)


def test_no_tenant_waits_the_interval() -> None:
    assert pick_tenant((), {}, now=T0, interval=DAY, spacing=120) == (None, DAY)


def test_a_tenant_leaving_the_report_leaves_the_series_at_once() -> None:
    """/metrics shows only the usage report's tenants; the side forgets the rest on expire."""
    state = org_with("a", "b")
    answer(state, "a", T0)
    answer(state, "b", T0)
    names = {s.labels["tenant_id"] for s in _samples(state, "petra_tenant_billable_users_listed")}
    assert names == {"a", "b"}
    succeed(state, usage("b"), T0 + 1, 0.1)
    names = {s.labels["tenant_id"] for s in _samples(state, "petra_tenant_billable_users_listed")}
    assert names == {"b"}


def test_figures_older_than_twice_the_interval_go_and_stale_counts() -> None:
    state = org_with("a", "b")
    answer(state, "a", T0)
    side = billing_side(state)
    assert side is not None
    assert side.stale == 1  # b has no figures yet
    assert side.expire(("a", "b"), T0 + DAY + 1, DAY)
    assert side.stale == 2
    assert "a" in side.figures
    assert side.expire(("a", "b"), T0 + 2 * DAY + 1, DAY)
    assert side.figures == {}


def test_no_projected_units_means_no_sample() -> None:
    state = org_with("a", "b")
    answer(state, "a", T0)
    answer(state, "b", T0, units=None)
    projected = _samples(state, "petra_tenant_projected_billable_units")
    assert {s.labels["tenant_id"]: s.value for s in projected} == {"a": 10.5}
    status = billing_status(state)
    assert status is not None
    assert status["projected_units"] == 10.5
    assert status["tenants_with_figures"] == 2
    assert billing_cell(status).text == "10.5"


def test_the_section_round_trips_and_holds_no_more_than_the_figures() -> None:
    state = org_with("a", "b")
    answer(state, "a", T0)
    data = _document(state)
    section = orjson.loads(data)["orgs"]["acme"][BILLING]
    assert set(section) == {"health", "poll", "attempted", "figures", "requests_by_code"}
    back = poll_every_route(OrgState("acme", "sha256:aaaaaaaaaaaa", "env $K", 300.0))
    back.restore(decode_state(data).orgs["acme"], wall_now=T0, monotonic_now=M0, counters=True)
    restored, original = billing_side(back), billing_side(state)
    assert restored is not None
    assert original is not None
    assert restored.figures == original.figures
    assert restored.attempted == original.attempted


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update(figures="x"), "figures: must be a list"),
        (lambda s: s.update(figures=[["a", 1.0]]), "must be a list of 5 fields"),
        (lambda s: s.update(figures=[["", 1.0, 1.0, 1.0, 1.0]]), "has no tenant id"),
        (lambda s: s.update(figures=[["a", "1", 1.0, 1.0, 1.0]]), "must be numbers or null"),
        (lambda s: s.update(figures=[["a", 1.0, 1.0, 1.0, None]]), "must be numbers or null"),
        (lambda s: s.update(attempted={"a": "now"}), "attempted.a: must be a number"),
    ],
    ids=["figures", "short", "no-tenant", "text", "no-time", "attempted"],
)
def test_a_broken_section_is_refused_by_path(edit: object, message: str) -> None:
    state = org_with("a")
    answer(state, "a", T0)
    document = orjson.loads(_document(state))
    assert callable(edit)
    edit(document["orgs"]["acme"][BILLING])
    with pytest.raises(StateFileError, match=message):
        decode_state(orjson.dumps(document))


def test_the_section_is_absent_while_billing_is_off() -> None:
    state = OrgState("acme", "sha256:aaaaaaaaaaaa", "env $K", 300.0)
    succeed(state, usage("a"), T0, 0.1)
    assert BILLING not in orjson.loads(_document(state))["orgs"]["acme"]
    assert state.side(USAGE) is state


def _document(state: OrgState) -> bytes:
    part = encode_org(state, wall_now=T0, monotonic_now=M0)
    return b"".join(encode_document([part], written_at=T0, clean_stop=True))


class _Sample:
    def __init__(self, labels: dict[str, str], value: float) -> None:
        self.labels, self.value = labels, value


def _samples(state: OrgState, name: str) -> list[_Sample]:
    collector = PetraCollector(lambda: [state], lambda: math.inf, wall_clock=lambda: T0)
    return [
        _Sample(dict(sample.labels), sample.value)
        for family in collector.collect()
        for sample in family.samples
        if sample.name == name
    ]


def test_no_route_is_up_or_down_before_its_first_outcome() -> None:
    """After a start or a reload, a route not asked yet has no `_up` sample: an alert on
    `== 0` must not fire for it. Its first outcome gives one."""
    state = org_with("a")
    assert [s.value for s in _samples(state, "petra_up")] == [1.0]
    assert _samples(state, "petra_incidents_up") == []
    assert _samples(state, "petra_billing_up") == []
    state.record_error(BILLING, Health.ERROR, "server error (503)", T0, None)
    assert [s.value for s in _samples(state, "petra_billing_up")] == [0.0]
