"""`check --probe` against the simulator: each kind of answer is told apart and timed."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from collector.check import ProbeResult, Style, describe_config, probe, render_check
from collector.cli import orgjson_text
from collector.config import Settings, load_config
from collector.petra_simulator import (
    RateLimitFault,
    SimulatedOrg,
    Simulator,
    StatusFault,
    sim_key,
)
from collector.state_records import Health
from tests.integration.harness import write_config
from tests.simulated import running_simulator

NAMES = ("fine", "forbidden", "limited", "down")
REVOKED_KEY = "petra_revoked_probe_0123456789abcdef"


async def probe_simulator(
    tmp_path: Path, simulator: Simulator, keys: dict[str, str], extra: str = ""
) -> tuple[Path, Settings, dict[str, ProbeResult]]:
    """`check --probe` on a config of `keys` against `simulator`: the config's path, its
    settings, and each org's result."""
    async with running_simulator(simulator) as simulator_url:
        config = write_config(tmp_path, simulator_url, keys, extra=extra)
        settings = load_config(config).settings
        return config, settings, {r.org: r for r in await probe(settings)}


def rendered(
    config: Path, settings: Settings, results: dict[str, ProbeResult], style: Style
) -> str:
    """What `check --probe` prints for these results."""
    return render_check(
        str(config), None, describe_config(settings), list(results.values()), style=style
    )


async def test_probe_tells_every_answer_apart(tmp_path: Path) -> None:
    """OK with tenants, key rejected, forbidden, rate-limited with the wait, unreachable."""
    orgs = [SimulatedOrg(name, sim_key(name), tenant_count=2) for name in NAMES]
    simulator = Simulator(orgs)
    simulator.set_fault("forbidden", StatusFault(403, "Forbidden"))
    simulator.set_fault("limited", RateLimitFault(42))
    simulator.set_fault("down", StatusFault(503, "maintenance"))
    keys = {org.name: org.key for org in orgs} | {"revoked": REVOKED_KEY}
    config, settings, results = await probe_simulator(tmp_path, simulator, keys)
    outcomes = {name: (r.ok, r.outcome) for name, r in results.items()}
    assert outcomes == {
        "fine": (True, "ok"),
        "forbidden": (False, "forbidden"),
        "limited": (False, "rate_limited"),
        "down": (False, "error"),
        "revoked": (False, "auth_failed"),
    }
    assert results["fine"].tenants == 2
    assert results["limited"].retry_after == 42
    assert all(0 <= r.seconds < 5 for r in results.values())
    text = rendered(config, settings, results, "table")
    for answer in (
        "OK, 2 tenants",
        "FORBIDDEN",
        "RATE LIMITED, retry in 42 s",
        "ERROR",
        "KEY REJECTED",
    ):
        assert answer in text
    assert text.endswith(
        "4 of 5 probe(s) failed: forbidden (FORBIDDEN), limited (RATE LIMITED), "
        "down (ERROR), revoked (KEY REJECTED)\n"
    )


async def test_probe_asks_incidents_too_when_enabled(tmp_path: Path) -> None:
    """With incidents on, each org is probed on both routes, and fails if either does."""
    orgs = [
        SimulatedOrg("fine", sim_key("fine"), tenant_count=2, incident_count=3),
        SimulatedOrg("busy", sim_key("busy"), tenant_count=2, incident_count=501),
        SimulatedOrg("halfway", sim_key("halfway"), tenant_count=2),
    ]
    simulator = Simulator(orgs)
    simulator.set_fault("halfway", StatusFault(503, "incidents down"), "incidents")
    keys = {org.name: org.key for org in orgs}
    extra = "incidents: {enabled: true}\n"
    config, settings, results = await probe_simulator(tmp_path, simulator, keys, extra)
    asked = {org.name: simulator.request_count(org.name, "incidents") for org in orgs}
    assert asked == {"fine": 1, "busy": 1, "halfway": 1}
    assert results["fine"].ok
    assert results["fine"].incidents is not None
    assert results["fine"].incidents.incidents == 3
    assert results["busy"].ok
    assert results["busy"].incidents is not None
    assert results["busy"].incidents.truncated
    assert not results["halfway"].ok
    assert results["halfway"].outcome is Health.OK  # usage answered
    text = rendered(config, settings, results, "table")
    assert "OK, 3 incidents" in text
    assert "OK, at least 500 incidents" in text
    assert "incidents: server error (503): incidents down" in text
    assert text.endswith("1 of 3 probe(s) failed: halfway (ERROR)\n")
    tsv = rendered(config, settings, results, "tsv")
    assert tsv.splitlines()[0].endswith("\tincidents_outcome\tincidents_answer")
    probes = json.loads(orgjson_text([asdict(r) for r in results.values()]))
    by_org = {p["org"]: p for p in probes}
    assert by_org["busy"]["incidents"]["truncated"] is True
    assert by_org["halfway"]["incidents"]["outcome"] == "error"


async def test_probe_leaves_incidents_alone_when_off(tmp_path: Path) -> None:
    org = SimulatedOrg("fine", sim_key("fine"), tenant_count=2)
    simulator = Simulator([org])
    async with running_simulator(simulator) as simulator_url:
        config = write_config(tmp_path, simulator_url, {"fine": org.key})
        [result] = await probe(load_config(config).settings)
    assert result.incidents is None
    assert simulator.request_count("fine", "incidents") == 0
    assert result.billing is None
    assert simulator.request_count("fine", "billable_users") == 0


async def test_probe_asks_billing_for_one_tenant_when_enabled(tmp_path: Path) -> None:
    """With billing on, each org's first tenant is asked on /v1/billable-users, once; an
    org whose billing route fails fails its probe."""
    orgs = [
        SimulatedOrg("fine", sim_key("fine"), tenant_count=2),
        SimulatedOrg("halfway", sim_key("halfway"), tenant_count=2),
    ]
    simulator = Simulator(orgs)
    simulator.set_fault("halfway", StatusFault(503, "billing down"), "billable_users")
    keys = {org.name: org.key for org in orgs}
    extra = "billing: {enabled: true}\n"
    config, settings, results = await probe_simulator(tmp_path, simulator, keys, extra)
    asked = {org.name: simulator.request_count(org.name, "billable_users") for org in orgs}
    first = simulator.billing_asked("fine")
    tenants = simulator.last_body("fine")
    assert asked == {"fine": 1, "halfway": 1}
    assert tenants is not None
    # The simulator's own report: a list of tenant objects under "tenants".
    first_tenant = tenants["tenants"][0]  # type: ignore[index]
    assert first == [first_tenant["petraTenantId"]]
    fine = results["fine"].billing
    assert fine is not None
    assert fine.ok
    assert fine.tenant_id == first_tenant["petraTenantId"]
    assert fine.billable_users == first_tenant["billableUsersThisMonth"]
    assert not results["halfway"].ok
    assert results["halfway"].outcome is Health.OK  # usage answered
    text = rendered(config, settings, results, "table")
    assert "billing: server error (503): billing down" in text
    assert text.endswith("1 of 2 probe(s) failed: halfway (ERROR)\n")
    tsv = rendered(config, settings, results, "tsv")
    assert tsv.splitlines()[0].endswith("\tbilling_outcome\tbilling_answer")
