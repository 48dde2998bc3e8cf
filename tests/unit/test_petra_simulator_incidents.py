"""The simulator's `/v1/incidents`: shape, ordering, query, budget, faults, changes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from collector.config import IncidentsSettings, load_config
from collector.petra_incidents import parse_incidents
from collector.petra_simulator import (
    BadBodyFault,
    DuplicateTenantsFault,
    RateLimitFault,
    SimulatedOrg,
    Simulator,
    StatusFault,
    bench_orgs,
    write_bench_config,
)
from tests.fakeclock import FakeClock
from tests.simulated import Serve

WALL = 1_795_671_116.0  # 2026-11-26T05:31:56Z
DAY = 86400.0
KEY = "petra_test_acme"
INCIDENT_FIELDS = {
    "id",
    "url",
    "createdAt",
    "occurredAt",
    "remediationStatus",
    "isLive",
    "dwellTimeMinutes",
    "tenant",
    "user",
}
USER_FIELDS = {
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "accountEnabled",
    "lastPasswordChangeDateTime",
}


def acme(**fields: Any) -> SimulatedOrg:
    return SimulatedOrg("acme", KEY, "", **fields)


def sim_of(*orgs: SimulatedOrg, wall: FakeClock | None = None, **options: Any) -> Simulator:
    return Simulator(orgs, clock=FakeClock(0.0), wall_clock=wall or (lambda: WALL), **options)


async def get(
    session: aiohttp.ClientSession, key: str = KEY, path: str = "/v1/incidents", **params: str
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}", "User-Agent": "test"}
    async with session.get(path, headers=headers, params=params) as response:
        body = await response.read()
        return response.status, orjson.loads(body) if body else None


def created(incident: dict[str, Any]) -> float:
    return datetime.fromisoformat(incident["createdAt"]).timestamp()


async def test_incidents_have_the_documented_shape(serve: Serve) -> None:
    """Every field petra-api.md shows, a made-up user, and tenants of the org's usage."""
    session = await serve(sim_of(acme(incident_count=5)))
    status, body = await get(session, limit="500")
    assert status == 200
    assert list(body) == ["incidents"]
    _, usage = await get(session, path="/v1/usage")
    tenant_ids = {t["petraTenantId"] for t in usage["tenants"]}
    assert len(body["incidents"]) == 5
    for incident in body["incidents"]:
        assert set(incident) == INCIDENT_FIELDS
        assert set(incident["user"]) == USER_FIELDS
        assert "@" in incident["user"]["mail"]
        assert incident["tenant"]["petraTenantId"] in tenant_ids
        assert incident["url"].endswith("/incidents/" + incident["id"])
        assert incident["createdAt"].endswith("Z")
        assert WALL - 21 * DAY <= created(incident) <= WALL
    assert len(parse_incidents(body).incidents) == 5


async def test_newest_first_and_limit(serve: Serve) -> None:
    """Ordered by createdAt, newest first; `limit` cuts the oldest; default 100."""
    session = await serve(sim_of(acme(incident_count=120)))
    _, body = await get(session, limit="500")
    times = [created(i) for i in body["incidents"]]
    assert times == sorted(times, reverse=True)
    assert len(times) == 120
    _, first = await get(session, limit="7")
    assert first["incidents"] == body["incidents"][:7]
    _, default = await get(session)
    assert len(default["incidents"]) == 100


@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten", "1.5", ""])
async def test_limit_outside_1_to_500_is_400(serve: Serve, limit: str) -> None:
    session = await serve(sim_of(acme()))
    status, body = await get(session, limit=limit)
    assert status == 400
    assert "limit" in body["message"]


async def test_start_date_as_date_or_date_time(serve: Serve) -> None:
    """Only incidents created on or after startDate, given as a date or a date-time."""
    sim = sim_of(acme(incident_count=0))
    session = await serve(sim)
    edge = datetime(2026, 11, 20, 0, 0, tzinfo=UTC).timestamp()
    for at in (edge - 0.001, edge, edge + 3600.5):
        sim.add_incident("acme", created_at=at)
    _, by_date = await get(session, startDate="2026-11-20")
    assert [created(i) for i in by_date["incidents"]] == [edge + 3600.5, edge]
    _, by_time = await get(session, startDate="2026-11-20T01:00:00.500Z")
    assert [created(i) for i in by_time["incidents"]] == [edge + 3600.5]
    _, offset = await get(session, startDate="2026-11-20T02:00:00.500+01:00")
    assert [created(i) for i in offset["incidents"]] == [edge + 3600.5]


@pytest.mark.parametrize("start", ["yesterday", "2026-13-01", "2026-11-20T25:00:00Z", "20261120"])
async def test_unreadable_start_date_is_400(serve: Serve, start: str) -> None:
    session = await serve(sim_of(acme()))
    status, body = await get(session, startDate=start)
    assert status == 400
    assert "startDate" in body["message"]


async def test_tenant_id_of_either_kind(serve: Serve) -> None:
    """A Petra or a Microsoft tenant id selects the same tenant; another org's is 404."""
    sim = sim_of(acme(incident_count=30))
    session = await serve(sim)
    _, usage = await get(session, path="/v1/usage")
    tenant = usage["tenants"][0]
    _, by_petra = await get(session, tenantId=tenant["petraTenantId"], limit="500")
    _, by_microsoft = await get(session, tenantId=tenant["microsoftTenantId"], limit="500")
    assert by_petra == by_microsoft
    assert by_petra["incidents"]
    assert {i["tenant"]["petraTenantId"] for i in by_petra["incidents"]} == {
        tenant["petraTenantId"]
    }
    status, body = await get(session, tenantId="nope")
    assert status == 404
    assert "not found" in body["message"]


async def test_incidents_have_their_own_budget(serve: Serve) -> None:
    """Using up /v1/usage's budget leaves /v1/incidents' intact, and the other way round."""
    sim = sim_of(acme(requests_per_minute=2, incidents_requests_per_minute=3))
    session = await serve(sim)
    assert [(await get(session, path="/v1/usage"))[0] for _ in range(3)] == [200, 200, 429]
    assert [(await get(session))[0] for _ in range(4)] == [200, 200, 200, 429]
    assert sim.request_count("acme") == 3
    assert sim.request_count("acme", "incidents") == 4
    assert len(sim.request_times("acme", "incidents")) == 4


async def test_unknown_key_is_401_and_counted_nowhere(serve: Serve) -> None:
    sim = sim_of(acme())
    session = await serve(sim)
    status, body = await get(session, key="petra_unknown_0000000000000000")
    assert status == 401
    assert body["message"] == "Invalid API key"
    assert sim.request_count("acme", "incidents") == 0


async def test_faults_are_per_route(serve: Serve) -> None:
    """A fault on /v1/incidents leaves /v1/usage alone, for one org or every org."""
    sim = sim_of(acme())
    session = await serve(sim)
    sim.set_fault("acme", StatusFault(503, "incidents down"), "incidents")
    assert (await get(session))[0] == 503
    assert (await get(session, path="/v1/usage"))[0] == 200
    sim.set_fault("acme", None, "incidents")
    sim.set_fault(None, RateLimitFault(7), "incidents")
    assert (await get(session))[0] == 429
    assert (await get(session, path="/v1/usage"))[0] == 200
    sim.set_fault(None, None, "incidents")
    assert (await get(session))[0] == 200


async def test_bad_body_and_duplicate_faults_bend_the_incidents_list(serve: Serve) -> None:
    sim = sim_of(acme(incident_count=2))
    session = await serve(sim)
    sim.set_fault("acme", BadBodyFault("no-tenants"), "incidents")
    assert (await get(session))[1] == {}
    sim.set_fault("acme", BadBodyFault("list"), "incidents")
    assert isinstance((await get(session))[1], list)
    sim.set_fault("acme", BadBodyFault("nulls"), "incidents")
    nulls = (await get(session))[1]
    assert all(value is None for i in nulls["incidents"] for value in i.values())
    sim.set_fault("acme", DuplicateTenantsFault(), "incidents")
    twice = (await get(session))[1]["incidents"]
    assert len(twice) == 3
    assert twice[0] == twice[2]


async def test_added_and_remediated_incidents_show_at_once(serve: Serve) -> None:
    sim = sim_of(acme(incident_count=0))
    session = await serve(sim)
    incident_id = sim.add_incident("acme", status="IN_PROGRESS")
    _, body = await get(session)
    assert [(i["id"], i["remediationStatus"]) for i in body["incidents"]] == [
        (incident_id, "IN_PROGRESS")
    ]
    sim.set_incident_status("acme", incident_id, "REMEDIATED")
    _, body = await get(session)
    assert body["incidents"][0]["remediationStatus"] == "REMEDIATED"


async def test_incident_for_a_tenant_absent_from_usage(serve: Serve) -> None:
    sim = sim_of(acme(incident_count=0))
    session = await serve(sim)
    sim.add_incident("acme", tenant_id="Gone42")
    _, body = await get(session)
    assert body["incidents"][0]["tenant"]["petraTenantId"] == "Gone42"


async def test_incidents_change_over_time(serve: Serve) -> None:
    """With incident_every_seconds, each step remediates the oldest open one and adds one."""
    wall = FakeClock(WALL)
    sim = sim_of(acme(incident_count=0), wall=wall, incident_every_seconds=60.0)
    session = await serve(sim)
    first_id = sim.add_incident("acme", status="IN_PROGRESS", created_at=WALL - 100)
    _, body = await get(session)
    assert len(body["incidents"]) == 1
    wall.now += 61
    _, body = await get(session)
    statuses = {i["id"]: i["remediationStatus"] for i in body["incidents"]}
    assert statuses.pop(first_id) == "REMEDIATED"
    assert list(statuses.values()) == ["IN_PROGRESS"]
    assert created(body["incidents"][0]) == pytest.approx(WALL + 60, abs=0.001)


async def test_control_api_adds_and_remediates(serve: Serve) -> None:
    sim = sim_of(acme(incident_count=0))
    session = await serve(sim)
    async with session.post("/_sim/orgs/acme/incidents", json={"remediationStatus": "OPEN"}) as r:
        assert r.status == 200
        incident_id = (await r.json())["id"]
    assert sim.incidents("acme")[0]["remediationStatus"] == "OPEN"
    async with session.post(f"/_sim/orgs/acme/incidents/{incident_id}/remediate") as r:
        assert r.status == 200
    assert sim.incidents("acme")[0]["remediationStatus"] == "REMEDIATED"
    async with session.post("/_sim/orgs/acme/incidents/nope/remediate") as r:
        assert r.status == 404
    async with session.post("/_sim/orgs/acme/fault?route=incidents", json={"kind": "reset"}) as r:
        assert (await r.json())["route"] == "incidents"
    async with session.post("/_sim/orgs/acme/fault?route=billing", json={"kind": "reset"}) as r:
        assert r.status == 400
    async with session.get("/_sim/orgs") as r:
        org = (await r.json())["orgs"][0]
        assert org["incidentsFault"] == {"kind": "reset"}
        assert org["fault"] is None


async def test_last_body_stays_the_usage_report(serve: Serve) -> None:
    """Incidents answers never replace what last_body() shows: the last usage report."""
    sim = sim_of(acme())
    session = await serve(sim)
    await get(session, path="/v1/usage")
    await get(session)
    sim.set_fault("acme", DuplicateTenantsFault(), "incidents")
    await get(session)
    body = sim.last_body("acme")
    assert body is not None
    assert "tenants" in body


def test_bench_config_turns_incidents_on_when_asked(tmp_path: Path) -> None:
    """write_bench_config's incidents section is one the config parser accepts."""
    orgs = bench_orgs(2, 1, incidents=4)
    assert {org.incident_count for org in orgs} == {4}
    path = write_bench_config(
        orgs, tmp_path, "http://127.0.0.1:1", 60, incidents_interval_seconds=60
    )
    assert load_config(path).settings.incidents == IncidentsSettings(True, 60.0, 30.0)
    plain = write_bench_config(orgs, tmp_path / "plain", "http://127.0.0.1:1", 60)
    assert not load_config(plain).settings.incidents.enabled
