"""A burst of wrong passwords must not slow polling or scraping for everyone else.

The daemon runs as its own process (`python -m collector run`, TLS and basic
auth at bcrypt cost 10) with one org polled every 2 s by the simulator in this
process; 300 wrong-password requests arrive over about 4 s while a scrape with
the right password is timed every 0.25 s (bench/authflood.py measures the
same, longer).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.authflood import POLL_INTERVAL_SECONDS, collector, run_flood
from collector.petra_simulator import SimulatedOrg, Simulator, sim_key
from tests.simulated import running_simulator

pytestmark = pytest.mark.slow

ORG = SimulatedOrg("acme", sim_key("acme"), "Acme MSP", tenant_count=3)
WRONG = 300
# Generous for a shared 2-core machine: a stalled event loop would miss these by seconds.
LATE_POLL_SECONDS = 0.75
SLOW_SCRAPE_SECONDS = 1.0


async def test_polls_stay_on_time_and_good_scrapes_answer_during_a_flood(tmp_path: Path) -> None:
    simulator = Simulator([ORG])
    async with (
        running_simulator(simulator) as simulator_url,
        collector(tmp_path, simulator_url, [ORG], tls=True, cost=10) as running,
    ):
        result = await run_flood(
            running,
            simulator,
            ORG.name,
            wrong=WRONG,
            concurrency=50,
            per_second=75,
            quiet_seconds=2.5,
        )
    assert result.statuses == {401: WRONG}
    assert sum(result.refused.values()) == WRONG
    assert result.refused["invalid_credentials"] >= 1  # some were really checked
    assert len(result.flood_gaps) >= 2, result
    for gap in result.flood_gaps:
        assert abs(gap - POLL_INTERVAL_SECONDS) < LATE_POLL_SECONDS, result.flood_gaps
    assert result.flood_scrapes, "no good scrape during the flood"
    assert max(result.flood_scrapes) < SLOW_SCRAPE_SECONDS, result.flood_scrapes
