"""Billable users end to end: the real daemon asks the simulator's /v1/billable-users
over loopback, one tenant at a time, inside the route's per-key budget."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from collector.petra_simulator import (
    BILLING_USER_MARK,
    RateLimitFault,
    SimulatedOrg,
    Simulator,
    billing_answer,
    sim_key,
)
from tests.integration.harness import Running, Samples, running_daemon, value

# One request a second per key on the route: a round of 3 tenants takes 3 s.
SPACING = 1.0
# Loopback and the event loop may deliver two requests a little closer than they were
# sent; a bug that ignores the budget sends them milliseconds apart.
ARRIVAL_SLACK = 0.15


def billing_on(interval: float = 3.0, per_minute: float = 60 / SPACING) -> str:
    return (
        "billing:\n  enabled: true\n"
        f"  interval_seconds: {interval}\n  requests_per_minute_per_key: {per_minute}\n"
    )


def org(name: str, tenants: int = 3, **fields: Any) -> SimulatedOrg:
    return SimulatedOrg(
        name, sim_key(name), tenant_count=tenants, billing_requests_per_minute=600, **fields
    )


def tenants_of(sim: Simulator, name: str) -> list[dict[str, Any]]:
    report = sim.last_body(name)
    assert report is not None
    # The simulator's own report: its tenants are a list of objects.
    tenants: list[dict[str, Any]] = list(report["tenants"])  # type: ignore[call-overload]
    return tenants


def billing_series(samples: Samples, metric: str, name: str) -> dict[str, float]:
    return {
        dict(labels)["tenant_id"]: sample
        for (found, labels), sample in samples.items()
        if found == metric and dict(labels)["org"] == name
    }


async def asked_at_least(run: Running, name: str, count: int) -> bool:
    return len(run.simulator.billing_asked(name)) >= count


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in pairwise(times)]


async def test_figures_match_what_the_simulator_answers(tmp_path: Path) -> None:
    """Per tenant the projected units (none for the tenant without them), the billable
    users and the report time; per org up, last success, stale 0 and the route's counter;
    the status JSON sums them."""
    acme = org("acme")
    async with running_daemon(tmp_path, [acme], extra_config=billing_on()) as run:
        await run.wait_for(lambda: asked_at_least(run, "acme", 3), what="every tenant asked")
        samples = await run.wait_metric("petra_billing_tenants_stale", 0, org="acme")
        tenants = tenants_of(run.simulator, "acme")
        projected = billing_series(samples, "petra_tenant_projected_billable_units", "acme")
        listed = billing_series(samples, "petra_tenant_billable_users_listed", "acme")
        generated = billing_series(
            samples, "petra_tenant_billing_report_generated_timestamp_seconds", "acme"
        )
        expected_projected: dict[str, float] = {}
        for tenant in tenants:
            answer = billing_answer(tenant, tenants, 0.0)
            tenant_id = tenant["petraTenantId"]
            assert listed[tenant_id] == answer["totalBillableUsers"]
            assert generated[tenant_id] > 0
            if "projectedBillableUnitsThisMonth" in answer:
                units = answer["projectedBillableUnitsThisMonth"]
                assert isinstance(units, float)
                expected_projected[tenant_id] = units
        assert projected == expected_projected
        assert len(projected) == len(tenants) - 1  # one tenant has no projected units
        assert value(samples, "petra_billing_up", org="acme") == 1
        assert value(samples, "petra_billing_last_success_timestamp_seconds", org="acme")
        requests = value(
            samples, "petra_api_requests_total", org="acme", code="200", route="billable_users"
        )
        assert (requests or 0) >= 3
        status, text = await run.get("/api/v1/status")
        assert status == 200
        [row] = json.loads(text)["orgs"]
        assert row["billing"]["projected_units"] == pytest.approx(sum(expected_projected.values()))
        assert row["billing"]["tenants_stale"] == 0
        assert row["billing"]["state"] == "ok"
        status, text = await run.get("/api/v1/orgs/acme")
        per_tenant = {t["tenant_id"]: t for t in json.loads(text)["billing_tenants"]}
        assert set(per_tenant) == {t["petraTenantId"] for t in tenants}


async def test_requests_keep_the_budget_through_429s_reloads_and_a_shared_key(
    tmp_path: Path,
) -> None:
    """Two orgs share acme's key: over several rounds, through a 429 and a reload, no two
    requests with that key on the route are closer than 60 / requests_per_minute_per_key,
    and every tenant keeps being asked."""
    acme = org("acme")
    async with running_daemon(
        tmp_path, [acme], extra_keys={"acme-copy": acme.key}, extra_config=billing_on()
    ) as run:
        sim = run.simulator
        await run.wait_for(lambda: asked_at_least(run, "acme", 3), what="a first round")
        sim.set_fault("acme", RateLimitFault(retry_after_seconds=2), "billable_users")
        await asyncio.sleep(1.5)
        sim.set_fault("acme", None, "billable_users")
        run.config_path.write_text(run.config_path.read_text() + "\n")
        status, _text = await run.post("/-/reload")
        assert status == 200
        asked = len(sim.billing_asked("acme"))
        await run.wait_for(
            lambda: asked_at_least(run, "acme", asked + 6), within=20, what="two more rounds"
        )
        times = sim.request_times("acme", "billable_users")
        assert min(gaps(times)) >= SPACING - ARRIVAL_SLACK, gaps(times)
        tenants = {t["petraTenantId"] for t in tenants_of(sim, "acme")}
        assert set(sim.billing_asked("acme")[-6:]) == tenants  # the rounds went on
        assert run.events("rate_limited", org="acme", route="billable_users") or run.events(
            "rate_limited", org="acme-copy", route="billable_users"
        )


async def test_a_tenant_that_leaves_the_usage_report_leaves_the_billing_series(
    tmp_path: Path,
) -> None:
    """Its series go with the usage answer that no longer lists it; the others stay."""
    acme = org("acme")
    async with running_daemon(tmp_path, [acme], extra_config=billing_on()) as run:
        await run.wait_for(lambda: asked_at_least(run, "acme", 3), what="every tenant asked")
        await run.wait_metric("petra_billing_tenants_stale", 0, org="acme")
        tenants = tenants_of(run.simulator, "acme")
        gone = tenants[0]["petraTenantId"]
        run.simulator.set_tenants("acme", tenants[1:])

        async def gone_from_metrics() -> bool:
            samples = await run.metrics()
            return gone not in billing_series(samples, "petra_tenant_billable_users_listed", "acme")

        await run.wait_for(gone_from_metrics, what="the tenant's series to leave")
        samples = await run.metrics()
        listed = billing_series(samples, "petra_tenant_billable_users_listed", "acme")
        assert set(listed) == {t["petraTenantId"] for t in tenants[1:]}


async def test_a_restart_continues_the_round_where_it_stopped(tmp_path: Path) -> None:
    """Stopped after two of three tenants: the restart serves their figures at once, asks
    the third first, and not before the budget allows after the last request."""
    acme = org("acme")
    sim = Simulator([acme])
    state_path = tmp_path / "state.json"
    slow = 2.0  # seconds between requests: time to stop between the second and the third
    config = billing_on(interval=3600, per_minute=60 / slow)
    config += f"state:\n  path: {json.dumps(str(state_path))}\n  write_delay_seconds: 0.05\n"
    async with running_daemon(tmp_path, [acme], simulator=sim, extra_config=config) as first:
        await first.wait_for(lambda: asked_at_least(first, "acme", 2), what="two tenants")
    before = sim.billing_asked("acme")
    assert len(before) == 2
    stopped = sim.request_times("acme", "billable_users")[-1]
    async with running_daemon(tmp_path, [acme], simulator=sim, extra_config=config) as second:
        served = billing_series(
            await second.metrics(), "petra_tenant_billable_users_listed", "acme"
        )
        assert set(served) == set(before)  # from the state file, before any request
        await second.wait_for(lambda: asked_at_least(second, "acme", 3), what="the third")
        await asyncio.sleep(slow + 0.5)  # time for a fourth request, if one were due
    tenants = {t["petraTenantId"] for t in tenants_of(sim, "acme")}
    after = sim.billing_asked("acme")
    assert after[2:] == sorted(tenants - set(before))  # the third, and no one again
    assert sim.request_times("acme", "billable_users")[2] - stopped >= slow - ARRIVAL_SLACK


async def test_billing_is_off_by_default(tmp_path: Path) -> None:
    """Without `billing:`, /v1/billable-users is never asked and no billing series exist."""
    async with running_daemon(tmp_path, [org("acme")]) as run:
        await run.wait_for(lambda: _usage_polls_at_least(run, 3), what="three usage polls")
        samples = await run.metrics()
        assert run.simulator.request_count("acme", "billable_users") == 0
        assert not [key for key in samples if "billing" in key[0] or "projected" in key[0]]


async def _usage_polls_at_least(run: Running, count: int) -> bool:
    return run.simulator.request_count("acme") >= count


async def test_no_billable_user_leaves_the_answer(tmp_path: Path) -> None:
    """No part of any billable user (names, principal names, mails, ids) shows in
    /metrics, the pages, the JSON, the logs or the state file."""
    orgs = [org("acme", tenants=4), org("globex", tenants=4)]
    state = f"state:\n  path: {json.dumps(str(tmp_path / 'state.json'))}\n"
    state += "  write_delay_seconds: 0.05\n"
    async with running_daemon(tmp_path, orgs, extra_config=billing_on(8) + state) as run:
        for name in ("acme", "globex"):
            await run.wait_for(partial(asked_at_least, run, name, 4), what="every tenant")
            await run.wait_metric("petra_billing_tenants_stale", 0, org=name)
        secrets: set[str] = {BILLING_USER_MARK}
        for name in ("acme", "globex"):
            tenants = tenants_of(run.simulator, name)
            for tenant in tenants:
                users = billing_answer(tenant, tenants, 0.0)["users"]
                assert isinstance(users, list)
                for user in users:
                    secrets.update(v for v in user.values() if isinstance(v, str))
        assert len(secrets) > 20
        outputs = await run.everything_shown(
            ("acme", "globex"), tmp_path / "state.json", "billable_users"
        )
        for text in outputs:
            leaked = sorted(secret for secret in secrets if secret in text)
            assert not leaked, f"user data {leaked[:3]} leaked"
