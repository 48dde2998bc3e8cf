"""The Petra API simulator: answers, rate window, faults, control API, helpers."""

from __future__ import annotations

import asyncio
import email.utils
import re
import stat
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from collector.petra_simulator import (
    BadBodyFault,
    DuplicateTenantsFault,
    Fault,
    HangFault,
    LatencyFault,
    OversizeFault,
    RateLimitFault,
    RedirectFault,
    ResetFault,
    SimulatedOrg,
    Simulator,
    StatusFault,
    TrickleFault,
    bench_orgs,
    fault_from_json,
    fault_to_json,
    run_simulator,
    sim_key,
    start_simulator,
    write_bench_config,
)
from tests.fakeclock import FakeClock
from tests.leaks import assert_no_key_material
from tests.simulated import Serve

WALL = 1_795_671_116.0  # 2026-11-26T05:31:56Z
TENANT_FIELDS = {
    "petraTenantId",
    "microsoftTenantId",
    "onboardingDate",
    "displayName",
    "service",
    "isPaused",
    "firstBillableDate",
    "billableStatus",
    "totalLicensedUsers",
    "billableUsersThisMonth",
    "proratingPercentageThisMonth",
}
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def acme(tenant_count: int = 3, requests_per_minute: int = 10) -> SimulatedOrg:
    return SimulatedOrg("acme", "petra_test_acme", "", tenant_count, requests_per_minute)


def globex() -> SimulatedOrg:
    return SimulatedOrg("globex", "petra_test_globex", "Globex Corp", tenant_count=2)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def sim_of(*orgs: SimulatedOrg, drift: bool = False, clock: float = 0.0) -> Simulator:
    return Simulator(orgs, drift=drift, clock=FakeClock(clock), wall_clock=lambda: WALL)


async def get_usage(
    session: aiohttp.ClientSession, key: str = "petra_test_acme", **kwargs: Any
) -> tuple[int, bytes, aiohttp.ClientResponse]:
    async with session.get("/v1/usage", headers=bearer(key), **kwargs) as response:
        return response.status, await response.read(), response


# -- Normal answers


async def test_report_has_the_documented_shape(serve: Serve) -> None:
    """A known key gets a 200 report with exactly the fields and formats petra-api.md shows."""
    session = await serve(sim_of(acme()))
    status, body, response = await get_usage(session)
    assert status == 200
    assert response.content_type == "application/json"
    report = orjson.loads(body)
    assert list(report) == [
        "asOf",
        "reportGeneratedAt",
        "organizationName",
        "totalTenants",
        "tenants",
    ]
    assert report["asOf"] == "2026-11-26"
    assert report["reportGeneratedAt"] == "2026-11-26T05:31:56Z"
    assert report["organizationName"] == "Acme MSP"
    assert report["totalTenants"] == len(report["tenants"]) == 3
    for tenant in report["tenants"]:
        assert set(tenant) == TENANT_FIELDS
        assert re.fullmatch(r"[A-Za-z0-9]{6}", tenant["petraTenantId"])
        uuid.UUID(tenant["microsoftTenantId"])
        assert ISO_DATE.fullmatch(tenant["onboardingDate"])
        assert ISO_DATE.fullmatch(tenant["firstBillableDate"])
        assert isinstance(tenant["isPaused"], bool)
        assert 0 <= tenant["billableUsersThisMonth"] <= tenant["totalLicensedUsers"]
        assert 0 <= tenant["proratingPercentageThisMonth"] <= 100


async def test_reports_are_deterministic_and_varied(serve: Serve) -> None:
    """The same org name gets the same tenants from any simulator; labels take several values."""
    first = await serve(sim_of(acme(tenant_count=40)))
    second = await serve(sim_of(acme(tenant_count=40), globex()))
    one = orjson.loads((await get_usage(first))[1])
    two = orjson.loads((await get_usage(second))[1])
    other = orjson.loads((await get_usage(second, "petra_test_globex"))[1])
    assert one == two
    assert other["tenants"][0] != one["tenants"][0]
    assert {t["service"] for t in one["tenants"]} == {"Monitoring", "Monitoring + Response"}
    assert {t["billableStatus"] for t in one["tenants"]} == {"Trial", "Billable", "Free"}
    assert len({t["petraTenantId"] for t in one["tenants"]}) == 40


async def test_as_of_is_echoed(serve: Serve) -> None:
    """A valid asOf query comes back as the report's asOf."""
    session = await serve(sim_of(acme()))
    _, body, _ = await get_usage(session, params={"asOf": "2025-01-31"})
    assert orjson.loads(body)["asOf"] == "2025-01-31"


@pytest.mark.parametrize("as_of", ["2025-13-01", "yesterday", "2025-1-1", ""])
async def test_malformed_as_of_is_400(serve: Serve, as_of: str) -> None:
    """A malformed asOf gets 400 with a JSON message."""
    session = await serve(sim_of(acme()))
    status, body, _ = await get_usage(session, params={"asOf": as_of})
    assert status == 400
    assert "asOf" in orjson.loads(body)["message"]


async def test_the_report_is_made_once_per_as_of_date(serve: Serve) -> None:
    """The report is made once per asOf date (issue 21 describes Petra's as made once
    a day), so answers are byte for byte the same while the date and the tenants are:
    reportGeneratedAt is when the simulator first answered the org for that asOf.
    Another asOf gets its own; a new day a new one; changed tenants change the body,
    not when that day's report was made."""
    wall = FakeClock(WALL)
    sim = Simulator([acme()], clock=FakeClock(0.0), wall_clock=wall)
    session = await serve(sim)

    async def report(**params: str) -> dict[str, Any]:
        return dict(orjson.loads((await get_usage(session, params=params))[1]))

    first = (await get_usage(session))[1]
    wall.now += 3600.0
    assert (await get_usage(session))[1] == first
    assert (await report(asOf="2026-11-20"))["reportGeneratedAt"] == "2026-11-26T06:31:56Z"
    assert (await get_usage(session))[1] == first
    sim.set_tenants("acme", [{"petraTenantId": "AAAAAA"}])
    changed = await report()
    assert changed["tenants"] == [{"petraTenantId": "AAAAAA"}]
    assert changed["reportGeneratedAt"] == "2026-11-26T05:31:56Z"
    wall.now += 86400.0
    next_day = await report()
    assert (next_day["asOf"], next_day["reportGeneratedAt"]) == (
        "2026-11-27",
        "2026-11-27T06:31:56Z",
    )


async def test_only_the_last_as_of_dates_are_remembered(serve: Serve) -> None:
    """A client asking many asOf dates (or a simulator running for months) keeps a few
    dates' reportGeneratedAt per org, the oldest forgotten first: today's answer stays
    the same while other dates come and go, and a forgotten date's report is made anew."""
    wall = FakeClock(WALL)
    sim = Simulator([acme(requests_per_minute=1000)], clock=FakeClock(0.0), wall_clock=wall)
    session = await serve(sim)

    async def generated(**params: str) -> str:
        return str(orjson.loads((await get_usage(session, params=params))[1])["reportGeneratedAt"])

    today = await generated()
    first_day = await generated(asOf="2026-01-01")
    for day in range(2, 30):
        wall.now += 1.0
        await generated(asOf=f"2026-01-{day:02d}")
        assert await generated() == today
    assert await generated(asOf="2026-01-01") != first_day


async def test_drift_moves_billable_users_a_little(serve: Serve) -> None:
    """With drift on, billable users change by at most 2 per report and stay within licences."""
    sim = sim_of(acme(tenant_count=20), drift=True)
    session = await serve(sim)
    before = orjson.loads((await get_usage(session))[1])["tenants"]
    after = orjson.loads((await get_usage(session))[1])["tenants"]
    moves = [
        a["billableUsersThisMonth"] - b["billableUsersThisMonth"]
        for a, b in zip(after, before, strict=True)
    ]
    assert any(moves)
    assert all(abs(move) <= 2 for move in moves)
    assert all(0 <= t["billableUsersThisMonth"] <= t["totalLicensedUsers"] for t in after)


async def test_drift_can_be_kept_to_some_orgs(serve: Serve) -> None:
    """With `drifting`, only those orgs' answers move; the others say the same each time."""
    sim = Simulator(
        [acme(), globex()],
        drift=True,
        drifting={"globex"},
        clock=FakeClock(0.0),
        wall_clock=lambda: WALL,
    )
    session = await serve(sim)

    async def tenants(key: str) -> list[dict[str, object]]:
        return list(orjson.loads((await get_usage(session, key))[1])["tenants"])

    steady = [await tenants("petra_test_acme") for _ in range(4)]
    moving = [await tenants("petra_test_globex") for _ in range(4)]
    assert all(answer == steady[0] for answer in steady)
    assert any(answer != moving[0] for answer in moving)


async def test_set_tenants_serves_exactly_those(serve: Serve) -> None:
    """set_tenants replaces the generated tenants, and totalTenants follows."""
    sim = sim_of(acme())
    sim.set_tenants("acme", [{"petraTenantId": "AAAAAA", "totalLicensedUsers": "odd"}])
    session = await serve(sim)
    report = orjson.loads((await get_usage(session))[1])
    assert report["tenants"] == [{"petraTenantId": "AAAAAA", "totalLicensedUsers": "odd"}]
    assert report["totalTenants"] == 1


# -- Refusals


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Missing or malformed Authorization header"),
        ({"Authorization": "Token petra_test_acme"}, "Missing or malformed Authorization header"),
        ({"Authorization": "Bearer "}, "Missing or malformed Authorization header"),
        (bearer("petra_nobody"), "Invalid API key"),
    ],
)
async def test_missing_or_unknown_key_is_401(
    serve: Serve, headers: dict[str, str], message: str
) -> None:
    """A missing, malformed or unknown key gets 401 with a JSON message."""
    session = await serve(sim_of(acme()))
    async with session.get("/v1/usage", headers=headers) as response:
        assert response.status == 401
        assert orjson.loads(await response.read()) == {"message": message}


async def test_deleted_replaced_and_removed_keys_are_401(serve: Serve) -> None:
    """A deleted or replaced key gets 401 at once; the new key serves the same org."""
    sim = sim_of(acme(), globex())
    session = await serve(sim)
    before = orjson.loads((await get_usage(session))[1])
    sim.replace_key("acme", "petra_test_acme_2")
    assert (await get_usage(session))[0] == 401
    status, body, _ = await get_usage(session, "petra_test_acme_2")
    assert status == 200
    assert orjson.loads(body)["tenants"] == before["tenants"]
    sim.delete_key("acme")
    assert (await get_usage(session, "petra_test_acme_2"))[0] == 401
    sim.remove_org("globex")
    assert (await get_usage(session, "petra_test_globex"))[0] == 401


async def test_missing_user_agent_is_403_before_the_key(serve: Serve) -> None:
    """Without User-Agent a request gets 403, even with a valid key."""
    session = await serve(sim_of(acme()))
    async with session.get(
        "/v1/usage", headers=bearer("petra_test_acme"), skip_auto_headers=["User-Agent"]
    ) as response:
        assert response.status == 403
        assert orjson.loads(await response.read()) == {"message": "Forbidden: User-Agent required"}


async def test_unknown_path_is_404_json(serve: Serve) -> None:
    """An unknown path gets 404 with a JSON message."""
    session = await serve(sim_of(acme()))
    async with session.get("/v1/nothing", headers=bearer("petra_test_acme")) as response:
        assert response.status == 404
        assert "message" in orjson.loads(await response.read())


# -- Rate window


async def test_rate_window_slides_and_429_costs_nothing(serve: Serve) -> None:
    """Past the per-minute budget a key gets 429 with the whole seconds until a slot frees."""
    clock = FakeClock(1000.0)
    sim = Simulator([acme(requests_per_minute=3)], clock=clock, wall_clock=lambda: WALL)
    session = await serve(sim)
    for now in (1000.0, 1010.0, 1020.0):
        clock.now = now
        assert (await get_usage(session))[0] == 200
    clock.now = 1030.0
    status, body, response = await get_usage(session)
    assert status == 429
    assert response.headers["Retry-After-public-api"] == "30"
    assert orjson.loads(body) == {"message": "Rate limit exceeded"}
    clock.now = 1059.5
    assert (await get_usage(session))[2].headers["Retry-After-public-api"] == "1"
    clock.now = 1060.0  # the slot used at 1000 frees; the 429s took none
    assert (await get_usage(session))[0] == 200
    assert (await get_usage(session))[2].headers["Retry-After-public-api"] == "10"
    clock.now = 1070.0
    assert (await get_usage(session))[0] == 200


async def test_request_count_times_and_last_body(serve: Serve) -> None:
    """Requests with the org's keys are counted whatever the answer; last_body is the last 200."""
    clock = FakeClock(5.0)
    sim = Simulator([acme(requests_per_minute=1)], clock=clock, wall_clock=lambda: WALL)
    session = await serve(sim)
    assert sim.last_body("acme") is None
    _, body, _ = await get_usage(session)
    clock.now = 6.0
    assert (await get_usage(session))[0] == 429
    sim.delete_key("acme")
    clock.now = 7.0
    assert (await get_usage(session))[0] == 401
    await get_usage(session, "petra_nobody")
    assert sim.request_count("acme") == 3
    assert sim.request_times("acme") == [5.0, 6.0, 7.0]
    assert sim.last_body("acme") == orjson.loads(body)


# -- Faults


async def test_status_fault_answers_status_message_and_headers(serve: Serve) -> None:
    """A StatusFault answers its status, JSON message and extra headers; no message, no body."""
    sim = sim_of(acme())
    session = await serve(sim)
    sim.set_fault("acme", StatusFault(503, "Service Unavailable", {"X-Extra": "yes"}))
    status, body, response = await get_usage(session)
    assert (status, orjson.loads(body)) == (503, {"message": "Service Unavailable"})
    assert response.headers["X-Extra"] == "yes"
    sim.set_fault("acme", StatusFault(500))
    status, body, _ = await get_usage(session)
    assert (status, body) == (500, b"")


@pytest.mark.parametrize(
    ("fault", "header", "value"),
    [
        (RateLimitFault(7), "Retry-After-public-api", "7"),
        (RateLimitFault(7, "seconds"), "Retry-After", "7"),
        (
            RateLimitFault(7, "http-date"),
            "Retry-After",
            email.utils.formatdate(WALL + 7, usegmt=True),
        ),
        (RateLimitFault(None), None, None),
    ],
)
async def test_rate_limit_fault_wait_headers(
    serve: Serve, fault: RateLimitFault, header: str | None, value: str | None
) -> None:
    """A RateLimitFault answers 429 with the wait in the header its style names, or none."""
    sim = sim_of(acme())
    sim.set_fault("acme", fault)
    session = await serve(sim)
    status, _, response = await get_usage(session)
    assert status == 429
    waits = {
        h: response.headers[h]
        for h in ("Retry-After", "Retry-After-public-api")
        if h in response.headers
    }
    assert waits == ({} if header is None else {header: value})


async def test_hang_blocks_only_its_own_request(serve: Serve) -> None:
    """A hung request never answers, while other orgs are still served."""
    sim = sim_of(acme(), globex())
    sim.set_fault("acme", HangFault())
    session = await serve(sim)
    hung = asyncio.create_task(get_usage(session, timeout=aiohttp.ClientTimeout(total=0.3)))
    await asyncio.sleep(0.05)
    assert (await get_usage(session, "petra_test_globex"))[0] == 200
    assert not hung.done()
    with pytest.raises(asyncio.TimeoutError):
        await hung


async def test_hang_does_not_hold_up_shutdown() -> None:
    """Stopping the server releases a hung request at once."""
    sim = sim_of(acme())
    sim.set_fault(None, HangFault())
    runner, port = await start_simulator(sim)
    async with aiohttp.ClientSession() as session:
        hung = asyncio.create_task(
            session.get(f"http://127.0.0.1:{port}/v1/usage", headers=bearer("petra_test_acme"))
        )
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await runner.cleanup()
        assert time.monotonic() - started < 5.0  # not the hour the request would hang
        with pytest.raises(aiohttp.ClientConnectionError):
            await hung


async def test_trickle_sends_headers_then_the_body_slowly(serve: Serve) -> None:
    """A TrickleFault sends 200 at once and the report over the given seconds: the body
    ends at least that long after the headers (lower bounds only: a busy machine can
    only make the gaps longer)."""
    sim = sim_of(acme())
    sim.set_fault("acme", TrickleFault(seconds=0.4, chunk_bytes=64))
    session = await serve(sim)
    async with session.get("/v1/usage", headers=bearer("petra_test_acme")) as response:
        headers_at = time.monotonic()
        assert response.status == 200
        report = orjson.loads(await response.read())
    assert time.monotonic() - headers_at >= 0.35
    assert report["totalTenants"] == 3
    # A client that gives up sooner than the trickle ends never gets the whole report.
    with pytest.raises(asyncio.TimeoutError):
        async with session.get(
            "/v1/usage",
            headers=bearer("petra_test_acme"),
            timeout=aiohttp.ClientTimeout(total=0.15),
        ) as response:
            await response.read()


async def test_oversize_fault_sends_a_body_of_that_size(serve: Serve) -> None:
    """An OversizeFault answers 200 with valid JSON of exactly the given size."""
    sim = sim_of(acme())
    sim.set_fault("acme", OversizeFault(3_000_000))
    session = await serve(sim)
    status, body, _ = await get_usage(session)
    assert status == 200
    assert len(body) == 3_000_000
    assert isinstance(orjson.loads(body), dict)


async def test_bad_body_faults(serve: Serve) -> None:
    """Each BadBodyFault shape answers 200 with the broken body it names."""
    sim = sim_of(acme())
    session = await serve(sim)

    async def body_for(shape: str) -> object:
        sim.set_fault("acme", fault_from_json({"kind": "bad-body", "shape": shape}))
        status, body, _ = await get_usage(session)
        assert status == 200
        return orjson.loads(body)

    sim.set_fault("acme", BadBodyFault("invalid-json"))
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads((await get_usage(session))[1])
    assert isinstance(await body_for("list"), list)
    strings = await body_for("strings")
    assert isinstance(strings, dict)
    assert strings["totalTenants"] == "3"
    assert isinstance(strings["tenants"][0]["totalLicensedUsers"], str)
    nulls = await body_for("nulls")
    assert isinstance(nulls, dict)
    assert {k: v for k, v in nulls.items() if k != "tenants"} == dict.fromkeys(
        ["asOf", "reportGeneratedAt", "organizationName", "totalTenants"]
    )
    assert all(v is None for tenant in nulls["tenants"] for v in tenant.values())
    no_tenants = await body_for("no-tenants")
    assert isinstance(no_tenants, dict)
    assert "tenants" not in no_tenants
    assert no_tenants["totalTenants"] == 3


async def test_redirect_fault(serve: Serve) -> None:
    """A RedirectFault answers 302 to the given absolute URL."""
    sim = sim_of(acme())
    sim.set_fault("acme", RedirectFault("http://127.0.0.1:9/v1/usage"))
    session = await serve(sim)
    status, _, response = await get_usage(session, allow_redirects=False)
    assert status == 302
    assert response.headers["Location"] == "http://127.0.0.1:9/v1/usage"


async def test_duplicate_tenants_fault(serve: Serve) -> None:
    """A DuplicateTenantsFault repeats a petraTenantId, and last_body shows that answer."""
    sim = sim_of(acme())
    sim.set_fault("acme", DuplicateTenantsFault())
    session = await serve(sim)
    report = orjson.loads((await get_usage(session))[1])
    ids = [t["petraTenantId"] for t in report["tenants"]]
    assert len(ids) == report["totalTenants"] == 4
    assert len(set(ids)) == 3
    assert sim.last_body("acme") == report


async def test_reset_fault_drops_the_connection(serve: Serve) -> None:
    """A ResetFault closes the connection without any HTTP answer."""
    sim = sim_of(acme())
    sim.set_fault("acme", ResetFault())
    session = await serve(sim)
    with pytest.raises(aiohttp.ClientConnectionError):
        await get_usage(session)


async def test_latency_delays_but_answers(serve: Serve) -> None:
    """LatencyFault and latency_seconds delay the normal answer."""
    sim = Simulator([acme()], latency_seconds=0.1, clock=FakeClock(0.0), wall_clock=lambda: WALL)
    sim.set_fault("acme", LatencyFault(0.1))
    session = await serve(sim)
    started = time.monotonic()
    assert (await get_usage(session))[0] == 200
    assert time.monotonic() - started >= 0.2


async def test_fault_scope(serve: Serve) -> None:
    """An org's fault needs its key and costs no budget; a fault for every org hits any key."""
    sim = sim_of(acme(requests_per_minute=1), globex())
    session = await serve(sim)
    sim.set_fault("acme", StatusFault(503))
    assert (await get_usage(session))[0] == 503
    assert (await get_usage(session))[0] == 503
    assert (await get_usage(session, "petra_nobody"))[0] == 401
    assert (await get_usage(session, "petra_test_globex"))[0] == 200
    sim.set_fault("acme", None)
    assert (await get_usage(session))[0] == 200
    sim.set_fault(None, StatusFault(502))
    assert (await get_usage(session, "petra_test_globex"))[0] == 502
    assert (await get_usage(session, "petra_nobody"))[0] == 502
    sim.set_fault(None, None)
    assert (await get_usage(session, "petra_test_globex"))[0] == 200


ALL_FAULTS: list[Fault] = [
    StatusFault(503, "down", {"X-A": "b"}),
    RateLimitFault(None, "seconds"),
    HangFault(),
    TrickleFault(1.5, 4),
    OversizeFault(100),
    BadBodyFault("nulls"),
    RedirectFault("https://example.invalid/x", 307),
    DuplicateTenantsFault(),
    ResetFault(),
    LatencyFault(2),
]


@pytest.mark.parametrize("fault", ALL_FAULTS, ids=lambda f: f.kind)
def test_fault_json_round_trip(fault: Fault) -> None:
    """Every Fault survives fault_to_json and fault_from_json unchanged."""
    assert fault_from_json(orjson.loads(orjson.dumps(fault_to_json(fault)))) == fault


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"kind": "nope"},
        {"kind": "status"},
        {"kind": "status", "status": "503"},
        {"kind": "status", "status": True},
        {"kind": "status", "status": 42},
        {"kind": "status", "status": 500, "headers": {"X": 1}},
        {"kind": "hang", "seconds": 1},
        {"kind": "rate-limit", "style": "sometimes"},
        {"kind": "redirect", "location": "/relative"},
    ],
)
def test_fault_from_json_rejects_bad_descriptions(data: object) -> None:
    """A malformed fault description is a ValueError, never a half-built Fault."""
    with pytest.raises(ValueError):  # noqa: PT011 -- the message varies by what is wrong
        fault_from_json(data)


# -- Control API


async def test_control_api(serve: Serve) -> None:
    """/_sim/ lists orgs without keys, sets and clears faults, deletes keys, shows bodies."""
    sim = sim_of(acme(), globex())
    session = await serve(sim)
    await get_usage(session)

    async with session.get("/_sim/orgs", skip_auto_headers=["User-Agent"]) as response:
        text = await response.text()
    assert "petra_test" not in text
    listing = orjson.loads(text)
    assert [(o["name"], o["requests"], o["keyActive"]) for o in listing["orgs"]] == [
        ("acme", 1, True),
        ("globex", 0, True),
    ]

    async with session.get("/_sim/orgs/acme/last-body") as response:
        assert orjson.loads(await response.read()) == sim.last_body("acme")
    async with session.get("/_sim/orgs/globex/last-body") as response:
        assert response.status == 404

    async with session.post("/_sim/orgs/acme/fault", json={"kind": "status", "status": 500}):
        pass
    assert (await get_usage(session))[0] == 500
    async with session.delete("/_sim/orgs/acme/fault"):
        pass
    assert (await get_usage(session))[0] == 200

    async with session.post("/_sim/fault", json={"kind": "rate-limit", "retry_after_seconds": 3}):
        pass
    assert (await get_usage(session, "petra_test_globex"))[2].headers[
        "Retry-After-public-api"
    ] == "3"
    async with session.delete("/_sim/fault"):
        pass

    async with session.post("/_sim/orgs/acme/fault", json={"kind": "status"}) as response:
        assert response.status == 400
        assert "status" in orjson.loads(await response.read())["message"]
    async with session.post("/_sim/orgs/nobody/fault", json={"kind": "hang"}) as response:
        assert response.status == 404

    async with session.post("/_sim/orgs/acme/delete-key") as response:
        assert orjson.loads(await response.read()) == {"name": "acme", "keyActive": False}
    assert (await get_usage(session))[0] == 401


# -- Helpers


def test_simulated_org_hides_key_and_derives_name() -> None:
    """repr never shows the key; an empty organization_name is derived from the name."""
    org = SimulatedOrg("blue-harbor_it", "petra_secret_value")
    assert "petra_secret_value" not in repr(org)
    assert org.organization_name == "Blue Harbor It MSP"


def test_bench_orgs_are_deterministic_and_never_limited() -> None:
    """bench_orgs names orgs org-00001..., derives distinct stable keys, and never rate limits."""
    orgs = bench_orgs(3, tenants=5)
    assert [o.name for o in orgs] == ["org-00001", "org-00002", "org-00003"]
    assert [o.key for o in orgs] == [o.key for o in bench_orgs(3, tenants=5)]
    assert orgs[0].key == sim_key("org-00001")
    assert len({o.key for o in orgs}) == 3
    assert all(o.tenant_count == 5 and o.requests_per_minute >= 10**6 for o in orgs)


def test_write_bench_config(tmp_path: Path) -> None:
    """write_bench_config writes 0600 key files and a config.yaml in the collector's shape."""
    orgs = bench_orgs(2, tenants=1)
    path = write_bench_config(
        orgs, tmp_path / "bench", "http://127.0.0.1:8081", 30, polling={"concurrency": 64}
    )
    config = yaml.safe_load(path.read_text())
    assert config["api"] == {"base_url": "http://127.0.0.1:8081"}
    assert config["polling"] == {"interval_seconds": 30, "concurrency": 64}
    assert [o["name"] for o in config["orgs"]] == ["org-00001", "org-00002"]
    for org, entry in zip(orgs, config["orgs"], strict=True):
        key_file = Path(entry["api_key_file"])
        assert key_file.is_absolute()
        assert key_file.read_text() == org.key
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert_no_key_material([org.key for org in orgs], path.read_text())


async def test_run_simulator_serves_until_stopped() -> None:
    """run_simulator reports its port, serves, and returns once stop is set."""
    stop = asyncio.Event()
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_simulator(sim_of(acme()), "127.0.0.1", 0, stop, on_ready=port.set_result)
    )
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{await asyncio.wait_for(port, 5)}/v1/usage"
        async with session.get(url, headers=bearer("petra_test_acme")) as response:
            assert response.status == 200
    stop.set()
    await asyncio.wait_for(task, 5)
