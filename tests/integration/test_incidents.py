"""Incidents end to end: the real daemon polls the simulator's /v1/incidents over loopback."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from collector.petra_simulator import (
    RateLimitFault,
    Route,
    SimulatedOrg,
    Simulator,
    StatusFault,
    sim_key,
)
from tests.integration.harness import Running, Samples, running_daemon, value
from tests.leaks import state_file_texts
from tests.waiting import eventually

INCIDENTS_ON = "incidents:\n  enabled: true\n  interval_seconds: 1\n  lookback_days: 30\n"


def org(name: str, incidents: int = 5, **fields: Any) -> SimulatedOrg:
    return SimulatedOrg(name, sim_key(name), tenant_count=4, incident_count=incidents, **fields)


def expected_counts(sim: Simulator, name: str) -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = Counter()
    for incident in sim.incidents(name):
        counts[incident["tenant"]["petraTenantId"], incident["remediationStatus"]] += 1
    return dict(counts)


def exported_counts(samples: Samples, name: str) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for (metric, labels), sample in samples.items():
        shown = dict(labels)
        if metric == "petra_tenant_incidents" and shown["org"] == name:
            found[shown["tenant_id"], shown["remediation_status"]] = sample
    return found


async def usage_polls(run: Running, name: str, count: int) -> None:
    """Until the simulator has received `count` more usage requests of org `name`: time
    enough, as the daemon counts it, for any other request it would have sent."""
    wanted = run.simulator.request_count(name) + count
    await eventually(
        lambda: _asked_at_least(run.simulator, name, wanted), f"{count} usage polls of {name}"
    )


async def incidents_polls(run: Running, name: str, count: int) -> None:
    """Until the simulator has received `count` more incidents requests of org `name`."""
    wanted = run.simulator.request_count(name, "incidents") + count
    await eventually(
        lambda: _asked_at_least(run.simulator, name, wanted, "incidents"),
        f"{count} incidents polls of {name}",
    )


async def _asked_at_least(sim: Simulator, name: str, count: int, route: Route = "usage") -> bool:
    return sim.request_count(name, route) >= count


async def incident_count_is(run: Running, name: str, wanted: dict[tuple[str, str], int]) -> bool:
    return exported_counts(await run.metrics(), name) == wanted


async def test_incident_series_match_what_the_simulator_holds(tmp_path: Path) -> None:
    """Counts per tenant and status, newest creation time, up, truncated 0, route counter."""
    acme = org("acme", incidents=8)
    async with running_daemon(tmp_path, [acme], extra_config=INCIDENTS_ON) as run:
        samples = await run.wait_metric("petra_incidents_up", 1, org="acme")
        wanted = expected_counts(run.simulator, "acme")
        assert exported_counts(samples, "acme") == wanted
        newest: dict[str, float] = {}
        for incident in run.simulator.incidents("acme"):
            tenant = incident["tenant"]["petraTenantId"]
            created = datetime.fromisoformat(incident["createdAt"]).timestamp()
            newest[tenant] = max(newest.get(tenant, 0.0), created)
        for tenant, created in newest.items():
            exported = value(
                samples,
                "petra_tenant_last_incident_timestamp_seconds",
                org="acme",
                tenant_id=tenant,
            )
            assert exported == created
        assert value(samples, "petra_incidents_truncated", org="acme") == 0
        success = value(samples, "petra_incidents_last_success_timestamp_seconds", org="acme")
        assert success is not None
        assert (
            value(samples, "petra_api_requests_total", org="acme", code="200", route="incidents")
            or 0
        ) >= 1
        status, text = await run.get("/api/v1/status")
        assert status == 200
        [row] = json.loads(text)["orgs"]
        by_status: Counter[str] = Counter()
        for (_tenant, status_name), count in wanted.items():
            by_status[status_name] += count
        assert row["incidents"]["by_status"] == dict(sorted(by_status.items()))
        assert row["incidents"]["total"] == 8
        assert row["incidents"]["not_remediated"] == 8 - by_status["REMEDIATED"]
        assert row["incidents"]["state"] == "ok"
        status, text = await run.get("/api/v1/orgs/acme")
        per_tenant = {t["tenant_id"]: t["by_status"] for t in json.loads(text)["incident_tenants"]}
        assert {(t, s): n for t, counts in per_tenant.items() for s, n in counts.items()} == wanted
        detected = run.events("incident_detected", org="acme")
        assert len(detected) == 8
        assert {line["level"] for line in detected} == {"warning"}
        ids = {i["id"] for i in run.simulator.incidents("acme")}
        for line in detected:
            assert set(line) >= {"tenant_id", "remediation_status", "created_at", "url"}
            assert line["url"].rsplit("/", 1)[1] in ids
            assert line["key_fingerprint"].startswith("sha256:")


async def test_new_and_remediated_incidents_show_in_the_next_polls(tmp_path: Path) -> None:
    """A new incident is counted and logged once; remediating it moves it to REMEDIATED.
    When the next polls come is proven on virtual time, in test_scheduler_incidents."""
    async with running_daemon(
        tmp_path, [org("acme", incidents=0)], extra_config=INCIDENTS_ON
    ) as run:
        await run.wait_metric("petra_incidents_up", 1, org="acme")
        assert exported_counts(await run.metrics(), "acme") == {}
        incident_id = run.simulator.add_incident("acme", status="IN_PROGRESS")
        tenant = run.simulator.incidents("acme")[0]["tenant"]["petraTenantId"]
        await run.wait_for(
            lambda: incident_count_is(run, "acme", {(tenant, "IN_PROGRESS"): 1}),
            what="the new incident",
        )
        [detected] = run.events("incident_detected", org="acme")
        assert detected["tenant_id"] == tenant
        assert detected["remediation_status"] == "IN_PROGRESS"
        assert detected["url"].endswith(incident_id)
        run.simulator.set_incident_status("acme", incident_id, "REMEDIATED")
        await run.wait_for(
            lambda: incident_count_is(run, "acme", {(tenant, "REMEDIATED"): 1}),
            what="the remediation",
        )
        await incidents_polls(run, "acme", 2)
        assert len(run.events("incident_detected", org="acme")) == 1


async def test_failing_incidents_route_leaves_usage_alone(tmp_path: Path) -> None:
    """A 503 and then a long 429 on /v1/incidents: usage keeps polling and stays up."""
    async with running_daemon(tmp_path, [org("acme")], extra_config=INCIDENTS_ON) as run:
        await run.wait_metric("petra_incidents_up", 1, org="acme")
        kept = exported_counts(await run.metrics(), "acme")
        run.simulator.set_fault("acme", StatusFault(503, "incidents down"), "incidents")
        samples = await run.wait_metric("petra_incidents_up", 0, org="acme")
        assert value(samples, "petra_up", org="acme") == 1
        assert exported_counts(samples, "acme") == kept  # the last good counts stay
        failed = run.events("poll_failed", org="acme", route="incidents")
        assert failed
        assert failed[-1]["status"] == 503
        run.simulator.set_fault("acme", RateLimitFault(600), "incidents")
        await run.wait_for(
            lambda: _has_event(run, "rate_limited", org="acme", route="incidents"),
            what="a 429 on incidents",
        )
        incidents_before = run.simulator.request_count("acme", "incidents")
        await usage_polls(run, "acme", 2)  # usage is not held
        assert run.simulator.request_count("acme", "incidents") == incidents_before  # waits
        samples = await run.metrics()
        assert value(samples, "petra_up", org="acme") == 1
        assert value(samples, "petra_rate_limited_total", org="acme") == 1


async def test_a_401_on_incidents_is_a_rejected_key(tmp_path: Path) -> None:
    """The key's health is one thing: a 401 on /v1/incidents sets petra_auth_failure."""
    async with running_daemon(tmp_path, [org("acme")], extra_config=INCIDENTS_ON) as run:
        await run.wait_metric("petra_incidents_up", 1, org="acme")
        run.simulator.set_fault("acme", StatusFault(401, "Invalid API key"), "incidents")
        await run.wait_metric("petra_auth_failure", 1, org="acme")
        [failed] = run.events("auth_failed", org="acme")
        assert failed["route"] == "incidents"
        run.simulator.set_fault("acme", None, "incidents")


async def test_a_full_answer_is_reported_as_truncated(tmp_path: Path) -> None:
    """600 incidents in the window, 500 per answer: truncated 1, and 500 counted."""
    async with running_daemon(
        tmp_path, [org("busy", incidents=600)], extra_config=INCIDENTS_ON
    ) as run:
        samples = await run.wait_metric("petra_incidents_truncated", 1, org="busy")
        assert sum(exported_counts(samples, "busy").values()) == 500
        await incidents_polls(run, "busy", 2)
        [line] = run.events("incidents_truncated", org="busy")
        assert line["received"] == 500


async def test_tenant_absent_from_usage_still_gets_its_series(tmp_path: Path) -> None:
    async with running_daemon(
        tmp_path, [org("acme", incidents=0)], extra_config=INCIDENTS_ON
    ) as run:
        run.simulator.add_incident("acme", tenant_id="Gone42", status="IN_PROGRESS")
        samples = await run.wait_metric(
            "petra_tenant_incidents",
            1,
            org="acme",
            tenant_id="Gone42",
            remediation_status="IN_PROGRESS",
        )
        assert value(samples, "petra_tenant_info", org="acme", tenant_id="Gone42") is None


async def test_no_user_field_leaves_the_answer(tmp_path: Path) -> None:
    """No value of any simulated incident's `user` shows in /metrics, the pages, the JSON,
    the logs or the state file."""
    orgs = [org("acme", incidents=20), org("globex", incidents=20)]
    state = f"state:\n  path: {json.dumps(str(tmp_path / 'state.json'))}\n"
    state += "  write_delay_seconds: 0.05\n"
    async with running_daemon(tmp_path, orgs, extra_config=INCIDENTS_ON + state) as run:
        for name in ("acme", "globex"):
            await run.wait_metric("petra_incidents_up", 1, org=name)
        secrets: set[str] = set()
        for name in ("acme", "globex"):
            for incident in run.simulator.incidents(name):
                user = incident["user"]
                secrets.update(v for v in user.values() if isinstance(v, str))
        assert len(secrets) > 60
        outputs = await run.everything_shown(
            ("acme", "globex"), tmp_path / "state.json", "incidents"
        )
        assert any("Incidents of" in page for page in outputs)  # the detail was rendered
        for text in outputs:
            leaked = sorted(secret for secret in secrets if secret in text)
            assert not leaked, f"user data {leaked[:3]} leaked"
        assert run.events("incident_detected")  # the log was looked at, and has incidents


async def test_incidents_are_off_by_default(tmp_path: Path) -> None:
    """Without `incidents:`, /v1/incidents is never asked and no incident series exist."""
    async with running_daemon(tmp_path, [org("acme")]) as run:
        await run.wait_for(lambda: _usage_polls_at_least(run, 3), what="three usage polls")
        samples = await run.metrics()
        assert run.simulator.request_count("acme", "incidents") == 0
        assert not [key for key in samples if "incident" in key[0]]
        assert value(samples, "petra_api_requests_total", org="acme", code="200", route="usage")


async def _usage_polls_at_least(run: Running, count: int) -> bool:
    return run.simulator.request_count("acme") >= count


async def _has_event(run: Running, event: str, **fields: object) -> bool:
    return bool(run.events(event, **fields))


async def test_reload_turns_incidents_on_and_off(tmp_path: Path) -> None:
    """A reload starts the incidents loops, and another stops them and drops their series."""
    async with running_daemon(tmp_path, [org("acme")]) as run:
        await run.wait_metric("petra_up", 1, org="acme")
        original = run.config_path.read_text()
        run.config_path.write_text(original + INCIDENTS_ON)
        status, _text = await run.post("/-/reload")
        assert status == 200
        await run.wait_metric("petra_incidents_up", 1, org="acme")
        run.config_path.write_text(original)
        status, _text = await run.post("/-/reload")
        assert status == 200
        samples = await run.wait_metric("petra_incidents_up", None, org="acme")
        assert not [key for key in samples if "incident" in key[0]]
        asked = run.simulator.request_count("acme", "incidents")
        await usage_polls(run, "acme", 2)
        assert run.simulator.request_count("acme", "incidents") == asked


async def test_seen_incidents_travel_in_the_state_file(tmp_path: Path) -> None:
    """After a restart with a state file, no incident is announced again, the counts are
    served at once, and a new incident is still announced; the file holds no user data."""
    acme = org("acme", incidents=6)
    sim = Simulator([acme])
    state_path = tmp_path / "state.json"
    config = INCIDENTS_ON + f"state:\n  path: {json.dumps(str(state_path))}\n"
    config += "  write_delay_seconds: 0.05\n"
    async with running_daemon(tmp_path, [acme], simulator=sim, extra_config=config) as first:
        await first.wait_metric("petra_incidents_up", 1, org="acme")
        counts = exported_counts(await first.metrics(), "acme")
        assert len(first.events("incident_detected", org="acme")) == 6
    saved = await asyncio.to_thread(state_file_texts, state_path)
    for incident in sim.incidents("acme"):
        for field_value in incident["user"].values():
            if isinstance(field_value, str):
                assert all(field_value not in text for text in saved)
    async with running_daemon(tmp_path, [acme], simulator=sim, extra_config=config) as second:
        restored = await second.metrics()
        assert exported_counts(restored, "acme") == counts  # served before any poll
        asked = sim.request_count("acme", "incidents")
        await second.wait_for(
            lambda: _asked_at_least(sim, "acme", asked + 2, "incidents"), what="two incidents polls"
        )
        await second.wait_metric("petra_incidents_up", 1, org="acme")
        assert second.events("incident_detected", org="acme") == []
        sim.add_incident("acme", status="IN_PROGRESS")
        await second.wait_for(
            lambda: _has_event(second, "incident_detected", org="acme"), what="the new one"
        )
        assert len(second.events("incident_detected", org="acme")) == 1
