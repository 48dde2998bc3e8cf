"""The incidents loops of the scheduler, on a virtual clock against a scripted fetcher.

Each org's `/v1/incidents` loop has its own schedule and its own budget per
key: these tests run hours of polling in milliseconds (see
tests/unit/test_scheduler_virtual_time.py for the clock and the fetcher).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import pytest

from collector.apikey import ApiKey
from collector.config import BillingSettings, IncidentsSettings, OrgConfig, PollingSettings
from collector.petra_billing import BillingReport
from collector.petra_errors import KeyRejected, RateLimited, Unavailable
from collector.petra_incidents import IncidentsReport
from collector.petra_usage import TenantUsage, UsageReport
from collector.routes import ROUTES, Route, Sections, incidents_side
from collector.scheduler import Scheduler, initial_offset
from collector.state_records import Health
from tests.outcomes import incidents_of
from tests.unit.test_scheduler_virtual_time import (
    KEY_A,
    KEY_B,
    ROOMY,
    WALL_AT_START,
    Outcome,
    ScriptedFetcher,
    org,
    run_for,
)
from tests.virtualtime import run_virtual

ON = IncidentsSettings(enabled=True, interval_seconds=60.0, lookback_days=30.0)
ACME_INCIDENTS_FIRST = initial_offset("acme/incidents", 60.0)


# Billing every 10 minutes per tenant, one request a minute per key.
FAST_BILLING = BillingSettings(
    enabled=True, interval_seconds=600.0, requests_per_minute_per_key=1.0
)
TENANTS = tuple(
    TenantUsage(tenant_id, None, None, None, None, None, 1.0, 1.0, 1.0, None, None)
    for tenant_id in ("t1", "t2", "t3")
)
WITH_TENANTS = UsageReport("2026-11-26", None, "Acme MSP", 3.0, TENANTS)


def scheduler_of(
    fetcher: ScriptedFetcher,
    orgs: Sequence[OrgConfig],
    incidents: IncidentsSettings = ON,
    polling: PollingSettings = ROOMY,
    billing: BillingSettings | None = None,
) -> Scheduler:
    def wall() -> float:
        return WALL_AT_START + asyncio.get_running_loop().time()

    sections = Sections(polling, incidents, billing or BillingSettings())
    scheduler = Scheduler(fetcher, sections, wall_clock=wall, rng=lambda: 0.5)
    scheduler.apply(orgs, sections)
    return scheduler


def test_incidents_are_polled_on_their_own_schedule() -> None:
    """First at the org's own offset for the route, then every incidents interval, with a
    startDate `lookback_days` back."""
    fetcher = ScriptedFetcher()
    scheduler = scheduler_of(fetcher, [org("acme", KEY_A)])
    run_virtual(run_for(scheduler, 200.0))
    starts = fetcher.incident_starts(KEY_A)
    assert starts[0] == ACME_INCIDENTS_FIRST
    assert [round(b - a, 6) for a, b in pairwise(starts)] == [60.0] * (len(starts) - 1)
    first_start_date = fetcher.incident_calls[0][2]
    assert first_start_date.startswith("2026-10-27T")  # 30 days before 2026-11-26
    state = scheduler.state("acme")
    assert state is not None
    assert incidents_side(state) is not None
    assert incidents_of(state).health is Health.OK
    assert incidents_of(state).requests_by_code["200"] == len(starts)


def test_quiet_successful_polls_build_no_log_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll that logs nothing builds nothing for a log line: the route's fields are
    made only when a line is written."""
    built: list[str] = []
    original = Route.log_fields

    def counting(route: Route) -> dict[str, object]:
        built.append(route.name)
        return original(route)

    monkeypatch.setattr(Route, "log_fields", counting)
    fetcher = ScriptedFetcher()
    scheduler = scheduler_of(fetcher, [org("acme", KEY_A)])
    run_virtual(run_for(scheduler, 200.0))
    assert len(fetcher.incident_starts(KEY_A)) > 1
    assert built == []


def test_off_means_no_incidents_request() -> None:
    fetcher = ScriptedFetcher()
    scheduler = scheduler_of(fetcher, [org("acme", KEY_A)], incidents=IncidentsSettings())
    run_virtual(run_for(scheduler, 600.0))
    assert fetcher.incident_calls == []
    assert fetcher.starts(KEY_A)
    state = scheduler.state("acme")
    assert state is not None
    assert incidents_side(state) is None


def test_a_429_on_incidents_never_delays_usage() -> None:
    """Incidents wait out a 10-minute 429 while usage of the same key goes on every minute."""
    fetcher = ScriptedFetcher(incident_scripts={KEY_A: [Outcome(error=RateLimited(600.0))]})
    scheduler = scheduler_of(fetcher, [org("acme", KEY_A)])
    run_virtual(run_for(scheduler, 900.0))
    incidents = fetcher.incident_starts(KEY_A)
    assert incidents[1] - incidents[0] >= 600.0
    usage = fetcher.starts(KEY_A)
    assert max(b - a for a, b in pairwise(usage)) <= 60.0 + 1e-6
    assert len(usage) >= 14


def test_a_429_on_usage_never_delays_incidents() -> None:
    fetcher = ScriptedFetcher(scripts={KEY_A: [Outcome(error=RateLimited(600.0))]})
    scheduler = scheduler_of(fetcher, [org("acme", KEY_A)])
    run_virtual(run_for(scheduler, 900.0))
    usage = fetcher.starts(KEY_A)
    assert usage[1] - usage[0] >= 600.0
    incidents = fetcher.incident_starts(KEY_A)
    assert incidents[0] == ACME_INCIDENTS_FIRST  # 15 s after the 429, not 600 s
    assert max(b - a for a, b in pairwise(incidents)) <= 60.0 + 1e-6
    assert len(incidents) == 15


def test_routes_of_one_key_each_keep_their_own_budget() -> None:
    """Two orgs sharing a key at 2 requests a minute: each route is spaced 30 s apart on
    its own, so both routes together send 4 a minute, never 2 of one route at once."""
    polling = PollingSettings(
        interval_seconds=60.0,
        max_requests_per_second=1000.0,
        requests_per_minute_per_key=2.0,
    )
    fetcher = ScriptedFetcher()
    orgs = [org("acme", KEY_A), org("globex", KEY_A)]
    scheduler = scheduler_of(fetcher, orgs, polling=polling)
    run_virtual(run_for(scheduler, 600.0))
    for starts in (fetcher.starts(KEY_A), fetcher.incident_starts(KEY_A)):
        assert min(b - a for a, b in pairwise(starts)) >= 30.0 - 1e-6
        assert len(starts) >= 18


def test_a_401_on_incidents_rejects_the_key_and_usage_rechecks_soon() -> None:
    """The key's health is one thing: usage is woken to see for itself, then both routes
    re-check at the slow pace."""
    rejected = Outcome(error=KeyRejected("Invalid API key"))
    fetcher = ScriptedFetcher(
        incident_scripts={KEY_B: [rejected] * 100},
        scripts={KEY_B: [Outcome()] + [rejected] * 100},
    )
    polling = PollingSettings(
        interval_seconds=60.0,
        max_requests_per_second=1000.0,
        requests_per_minute_per_key=600.0,
        auth_failure_interval_seconds=900.0,
    )
    scheduler = scheduler_of(fetcher, [org("acme", KEY_B)], polling=polling)
    run_virtual(run_for(scheduler, 1000.0))
    state = scheduler.state("acme")
    assert state is not None
    assert state.auth_failing
    first_incidents = fetcher.incident_starts(KEY_B)[0]
    woken = [t for t in fetcher.starts(KEY_B) if first_incidents < t < first_incidents + 1.0]
    assert woken, "usage was not woken by the incidents 401"
    assert state.health is Health.AUTH_FAILED
    incidents = fetcher.incident_starts(KEY_B)
    assert [round(b - a) for a, b in pairwise(incidents)] == [900]


def test_incidents_failures_keep_usage_up() -> None:
    fetcher = ScriptedFetcher(
        incident_scripts={KEY_A: [Outcome(error=Unavailable("down", status=503))] * 50}
    )
    scheduler = scheduler_of(fetcher, [org("acme", KEY_A)])
    run_virtual(run_for(scheduler, 600.0))
    state = scheduler.state("acme")
    assert state is not None
    assert state.up
    assert incidents_side(state) is not None
    assert incidents_of(state).health is Health.ERROR
    assert incidents_of(state).requests_by_code.get("503", 0) >= 2


@dataclass
class CrashingOn(ScriptedFetcher):
    """A bug on one route (`route`), whatever was asked; the other answers as scripted."""

    route: str = "usage"

    async def fetch_usage(self, key: ApiKey, previous: UsageReport | None = None) -> UsageReport:
        if self.route == "usage":
            raise ZeroDivisionError
        return await super().fetch_usage(key, previous)

    async def fetch_incidents(
        self, key: ApiKey, *, start_date: str, limit: int = 500, tenant_id: str | None = None
    ) -> IncidentsReport:
        if self.route == "incidents":
            raise ZeroDivisionError
        return await super().fetch_incidents(
            key, start_date=start_date, limit=limit, tenant_id=tenant_id
        )

    async def fetch_billing(self, key: ApiKey, *, tenant_id: str) -> BillingReport:
        if self.route == "billable_users":
            raise ZeroDivisionError
        return await super().fetch_billing(key, tenant_id=tenant_id)


@pytest.mark.parametrize("route", [route.name for route in ROUTES])
def test_a_bug_on_any_route_is_recorded_and_retried_and_spares_the_others(route: str) -> None:
    """One recorder for every route: the bug is the route's error, retried with backoff,
    and the other routes do not fail (billing, which asks usage's tenants, waits)."""
    fetcher = CrashingOn(route=route, usage_report=WITH_TENANTS)
    scheduler = scheduler_of(fetcher, [org("acme", KEY_A)], billing=FAST_BILLING)
    run_virtual(run_for(scheduler, 300.0))
    state = scheduler.state("acme")
    assert state is not None
    side = state.side(route)
    assert side.last_error == "internal error: ZeroDivisionError"
    assert side.requests_by_code["error"] >= 2
    others = [state.side(other.name) for other in ROUTES if other.name != route]
    assert all(other.consecutive_failures == 0 for other in others)


def test_reload_starts_and_stops_the_incidents_loops() -> None:
    fetcher = ScriptedFetcher()
    orgs = [org("acme", KEY_A)]
    scheduler = scheduler_of(fetcher, orgs, incidents=IncidentsSettings())

    async def scenario() -> None:
        running = asyncio.create_task(scheduler.run())
        await asyncio.sleep(100.0)
        assert fetcher.incident_calls == []
        scheduler.apply(orgs, Sections(ROOMY, ON))
        await asyncio.sleep(200.0)
        asked = len(fetcher.incident_calls)
        assert asked >= 3
        scheduler.apply(orgs, Sections(ROOMY, IncidentsSettings()))
        await asyncio.sleep(300.0)
        assert len(fetcher.incident_calls) == asked
        state = scheduler.state("acme")
        assert state is not None
        assert incidents_side(state) is None
        scheduler.stop()
        await running

    run_virtual(scenario())


def test_stop_lets_an_incidents_request_on_the_wire_finish() -> None:
    """Drain: a request in flight gets the grace period; the other route's wait is cut."""
    fetcher = ScriptedFetcher(incident_scripts={KEY_A: [Outcome(latency=3.0)]})
    scheduler = scheduler_of(fetcher, [org("acme", KEY_A)])
    ended = run_virtual(run_for(scheduler, ACME_INCIDENTS_FIRST + 1.0))
    assert round(ended - ACME_INCIDENTS_FIRST, 6) == 3.0
    state = scheduler.state("acme")
    assert state is not None
    assert incidents_side(state) is not None
    assert incidents_of(state).health is Health.OK


def test_an_org_removed_by_a_reload_stops_asking_for_incidents() -> None:
    """Both of its loops stop: its key is no longer used on any route."""
    fetcher = ScriptedFetcher()
    acme, globex = org("acme", KEY_A), org("globex", KEY_B)
    scheduler = scheduler_of(fetcher, [acme, globex])

    async def scenario() -> None:
        running = asyncio.create_task(scheduler.run())
        await asyncio.sleep(100.0)
        assert fetcher.incident_starts(KEY_A)
        scheduler.apply([globex], Sections(ROOMY, ON))
        asked = len(fetcher.incident_starts(KEY_A))
        await asyncio.sleep(300.0)
        assert len(fetcher.incident_starts(KEY_A)) == asked
        assert len(fetcher.incident_starts(KEY_B)) >= 6
        scheduler.stop()
        await running

    run_virtual(scenario())
