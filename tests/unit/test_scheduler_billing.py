"""The billable-users loops of the scheduler, on a virtual clock against a scripted
fetcher: one tenant per request, inside the route's per-key spacing, oldest first."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from itertools import pairwise

from structlog.testing import capture_logs

from collector.config import BillingSettings, OrgConfig
from collector.petra_errors import RateLimited
from collector.petra_usage import TenantUsage, UsageReport
from collector.routes import billing_side
from collector.scheduler import Scheduler
from tests.unit.test_scheduler_incidents import FAST_BILLING, TENANTS, WITH_TENANTS, scheduler_of
from tests.unit.test_scheduler_virtual_time import (
    KEY_A,
    KEY_B,
    Outcome,
    ScriptedFetcher,
    org,
    run_for,
)
from tests.virtualtime import run_virtual

SPACING = 60.0 / FAST_BILLING.requests_per_minute_per_key


def billing_of(orgs: Sequence[OrgConfig], fetcher: ScriptedFetcher) -> Scheduler:
    return scheduler_of(fetcher, orgs, billing=FAST_BILLING)


def asked(fetcher: ScriptedFetcher, key: str) -> list[str]:
    return [tenant for value, _started, tenant in fetcher.billing_calls if value == key]


def test_requests_with_one_key_keep_the_spacing_over_rounds_and_a_429() -> None:
    """Two orgs share a key: over an hour and a 429, no two billing requests with it are
    closer than 60 / requests_per_minute_per_key, and every tenant is asked again within
    the interval."""
    fetcher = ScriptedFetcher(
        usage_report=WITH_TENANTS,
        billing_scripts={KEY_A: [Outcome(), Outcome(error=RateLimited(90.0))]},
    )
    scheduler = billing_of([org("acme", KEY_A), org("acme-eu", KEY_A)], fetcher)
    run_virtual(run_for(scheduler, 3600.0))
    starts = fetcher.billing_starts(KEY_A)
    assert len(starts) >= 30
    assert min(round(b - a, 6) for a, b in pairwise(starts)) >= SPACING
    assert starts[2] - starts[1] >= 90.0  # the second request was the 429: its wait held
    for name in ("acme", "acme-eu"):
        state = scheduler.state(name)
        assert state is not None
        side = billing_side(state)
        assert side is not None
        assert set(side.figures) == {t.tenant_id for t in TENANTS}
        assert side.stale == 0


def test_oldest_first_and_a_new_tenant_is_asked_soon() -> None:
    """The first round asks each tenant once; a tenant that appears later is asked within
    a spacing or two of the usage answer that lists it, before any other again."""
    fetcher = ScriptedFetcher(usage_report=WITH_TENANTS)
    scheduler = billing_of([org("acme", KEY_A)], fetcher)
    newcomer = TenantUsage("t4", None, None, None, None, None, 1.0, 1.0, 1.0, None, None)

    async def scenario() -> None:
        running = asyncio.create_task(scheduler.run())
        await asyncio.sleep(300.0)
        assert sorted(asked(fetcher, KEY_A)) == ["t1", "t2", "t3"]
        fetcher.usage_report = UsageReport(
            "2026-11-26", None, "Acme MSP", 4.0, (*TENANTS, newcomer)
        )
        await asyncio.sleep(60.0 + 2 * SPACING)  # the next usage poll, then a spacing
        assert asked(fetcher, KEY_A)[3] == "t4"  # before any other tenant again
        scheduler.stop()
        await running

    run_virtual(scenario())


def test_a_short_budget_is_said_once_and_goes_as_fast_as_it_allows() -> None:
    """Three tenants at one a minute cannot all be asked every 100 s: one
    billing_budget_short line, with the round's time, and one request a minute."""
    short = BillingSettings(enabled=True, interval_seconds=100.0, requests_per_minute_per_key=1.0)
    fetcher = ScriptedFetcher(usage_report=WITH_TENANTS)
    scheduler = scheduler_of(fetcher, [org("acme", KEY_B)], billing=short)
    with capture_logs() as logs:
        run_virtual(run_for(scheduler, 1200.0))
    said = [line for line in logs if line["event"] == "billing_budget_short"]
    assert len(said) == 1
    assert said[0]["round_seconds"] == 180.0
    assert said[0]["tenants"] == 3
    assert said[0]["route"] == "billable_users"
    starts = fetcher.billing_starts(KEY_B)
    spacing = 60.0 / short.requests_per_minute_per_key
    assert all(round(b - a, 6) == spacing for a, b in pairwise(starts))
    assert len(starts) >= 18


def test_billing_off_asks_nothing() -> None:
    fetcher = ScriptedFetcher(usage_report=WITH_TENANTS)
    scheduler = scheduler_of(fetcher, [org("acme", KEY_A)])
    run_virtual(run_for(scheduler, 600.0))
    assert fetcher.billing_calls == []
