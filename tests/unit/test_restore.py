"""Restoring orgs from the state file: who is restored, their schedule, what /metrics shows."""

from __future__ import annotations

import pytest

from collector.apikey import ApiKey
from collector.config import OrgConfig, PollingSettings
from collector.keys import KeySource
from collector.metrics import PetraCollector
from collector.petra_billing import BillingReport
from collector.petra_incidents import IncidentsReport
from collector.petra_usage import TenantUsage, UsageReport
from collector.routes import Sections
from collector.scheduler import Scheduler, initial_offset, resume_delay
from collector.state import OrgState
from collector.state_records import Health, SavedOrg
from tests.outcomes import saved_org, succeed
from tests.unit.test_scheduler_virtual_time import (
    KEY_A,
    KEY_B,
    WALL_AT_START,
    ScriptedFetcher,
    new_scheduler,
    run_for,
)
from tests.unit.test_scheduler_virtual_time import org as virtual_org
from tests.virtualtime import run_virtual

NOW = 1_795_671_116.0
ACME_KEY = ApiKey("petra_restore_test_acme_key_0123456789")
GLOBEX_KEY = ApiKey("petra_restore_test_globex_key_012345678")
REPORT = UsageReport(
    "2026-11-26",
    NOW - 100,
    "Acme MSP",
    1.0,
    (TenantUsage("t1", None, "T", "EDR", None, False, 10.0, 9.0, 1.0, None, None),),
)


# -- resume_delay ---------------------------------------------------------------------------


def test_a_future_due_time_is_kept() -> None:
    """The saved schedule goes on: the org waits exactly as long as it had left."""
    assert resume_delay("acme", NOW + 120, NOW, interval=300, longest_wait=900) == 120


def test_overdue_orgs_are_spread_like_first_polls() -> None:
    """Due while the collector was down: not all at once, but at each org's first-poll offset."""
    for name in ("acme", "globex", "initech"):
        expected = initial_offset(name, 300)
        assert resume_delay(name, NOW - 5, NOW, interval=300, longest_wait=900) == expected
    delays = {
        resume_delay(f"org-{i}", NOW - 1, NOW, interval=300, longest_wait=900) for i in range(50)
    }
    assert len(delays) == 50
    assert max(delays) - min(delays) > 200


def test_a_due_time_beyond_any_wait_is_capped() -> None:
    """A clock set back must not silence an org for days."""
    assert resume_delay("acme", NOW + 86_400, NOW, interval=300, longest_wait=900) == 900


def test_no_saved_due_time_is_a_first_poll() -> None:
    assert resume_delay("acme", None, NOW, interval=300, longest_wait=900) == initial_offset(
        "acme", 300
    )


# -- Scheduler.restore ----------------------------------------------------------------------


class NeverFetch:
    async def fetch_usage(self, key: ApiKey, previous: UsageReport | None = None) -> UsageReport:
        del previous
        raise AssertionError(f"no poll in this test, not even with {key}")

    async def fetch_incidents(
        self, key: ApiKey, *, start_date: str, limit: int = 500, tenant_id: str | None = None
    ) -> IncidentsReport:
        del start_date, limit, tenant_id
        raise AssertionError(f"no poll in this test, not even with {key}")

    async def fetch_billing(self, key: ApiKey, *, tenant_id: str) -> BillingReport:
        del tenant_id
        raise AssertionError(f"no poll in this test, not even with {key}")


def org(name: str, key: ApiKey) -> OrgConfig:
    return OrgConfig(name, KeySource("env", f"KEY_{name.upper()}"), 300.0, key)


def scheduler_with(*orgs: OrgConfig) -> Scheduler:
    scheduler = Scheduler(NeverFetch(), Sections(PollingSettings()))
    scheduler.apply(orgs, Sections(PollingSettings()))
    return scheduler


def saved_ok(key: ApiKey) -> SavedOrg:
    return saved_org(
        key.fingerprint,
        Health.OK,
        last_poll_at=NOW - 100,
        last_success_at=NOW - 100,
        next_poll_at=NOW + 200,
        poll_duration=0.2,
        requests_by_code={"200": 7},
        report=REPORT,
    )


async def test_same_name_and_fingerprint_is_restored_others_start_fresh() -> None:
    """acme matches; globex's key changed since the file was written; initech is new."""
    scheduler = scheduler_with(
        org("acme", ACME_KEY), org("globex", GLOBEX_KEY), org("initech", GLOBEX_KEY)
    )
    saved = {"acme": saved_ok(ACME_KEY), "globex": saved_ok(ACME_KEY), "gone": saved_ok(ACME_KEY)}
    assert scheduler.restore(saved, counters=True) == ["acme"]
    acme = scheduler.state("acme")
    assert acme is not None
    assert acme.restored
    assert acme.report == REPORT
    assert acme.last_success_at == NOW - 100
    assert acme.requests_by_code == {"200": 7}
    for name in ("globex", "initech"):
        state = scheduler.state(name)
        assert state is not None
        assert state.pending
        assert not state.restored
        assert state.report is None


async def test_a_restored_rejected_key_stays_rejected() -> None:
    """auth_failing and the fingerprint it failed with survive, so no second auth_failed."""
    scheduler = scheduler_with(org("acme", ACME_KEY))
    saved = saved_org(
        ACME_KEY.fingerprint,
        Health.AUTH_FAILED,
        last_poll_at=NOW - 10,
        consecutive_failures=4,
        auth_failing_since=NOW - 3000,
        auth_failed_fingerprint=ACME_KEY.fingerprint,
        auth_warned_at=NOW - 3000,
    )
    scheduler.restore({"acme": saved}, counters=False)
    state = scheduler.state("acme")
    assert state is not None
    assert state.auth_failing
    assert state.auth_failed_fingerprint == ACME_KEY.fingerprint
    assert state.consecutive_failures == 4
    # The next 401 is the same rejection: no FAILED event, so no `auth_failed` line.
    event = state.record_auth_failure(
        "usage", "key rejected (401)", NOW, 0.1, state.auth_warned_monotonic + 60
    )
    assert event.name == "NONE"


# -- what /metrics shows ----------------------------------------------------------------------


def samples(*states: OrgState) -> dict[tuple[str, str], float]:
    collector = PetraCollector(lambda: list(states), lambda: 3600.0, wall_clock=lambda: NOW)
    return {
        (sample.name, sample.labels.get("org", "")): sample.value
        for family in collector.collect()
        for sample in family.samples
    }


def test_a_pending_org_has_no_up_or_auth_failure_sample() -> None:
    """Pending is not failing: no petra_up 0 before the first outcome; counters are there."""
    pending = OrgState("acme", ACME_KEY.fingerprint, "env $KEY", 300.0)
    shown = samples(pending)
    for name in (
        "petra_up",
        "petra_auth_failure",
        "petra_last_success_timestamp_seconds",
        "petra_last_poll_timestamp_seconds",
    ):
        assert (name, "acme") not in shown, name
    assert shown[("petra_api_requests_total", "acme")] == 0.0


@pytest.mark.parametrize(
    ("record", "up"),
    [
        (lambda s: succeed(s, REPORT, NOW, 0.1), 1.0),
        (lambda s: s.record_error("usage", Health.ERROR, "503", NOW, 0.1), 0.0),
        (lambda s: s.record_auth_failure("usage", "401", NOW, 0.1, 0.0), 0.0),
    ],
)
def test_the_first_outcome_brings_petra_up(record: object, up: float) -> None:
    state = OrgState("acme", ACME_KEY.fingerprint, "env $KEY", 300.0)
    assert callable(record)
    record(state)
    shown = samples(state)
    assert shown[("petra_up", "acme")] == up
    assert ("petra_auth_failure", "acme") in shown


def test_a_restored_org_is_served_as_before() -> None:
    """Restored: the same health, usage and timestamp samples the org had."""
    state = OrgState("acme", ACME_KEY.fingerprint, "env $KEY", 300.0)
    state.restore(saved_ok(ACME_KEY), wall_now=NOW, monotonic_now=0.0, counters=True)
    shown = samples(state)
    assert shown[("petra_up", "acme")] == 1.0
    assert shown[("petra_auth_failure", "acme")] == 0.0
    assert shown[("petra_last_success_timestamp_seconds", "acme")] == NOW - 100
    assert shown[("petra_tenant_licensed_users", "acme")] == 10.0


def test_staleness_counts_from_the_real_last_success() -> None:
    """A file kept over max_staleness_seconds brings back no usage series, only health."""
    state = OrgState("acme", ACME_KEY.fingerprint, "env $KEY", 300.0)
    old = saved_org(ACME_KEY.fingerprint, Health.OK, last_success_at=NOW - 4000, report=REPORT)
    state.restore(old, wall_now=NOW, monotonic_now=0.0, counters=True)
    shown = samples(state)
    assert ("petra_tenant_licensed_users", "acme") not in shown
    assert shown[("petra_last_success_timestamp_seconds", "acme")] == NOW - 4000


# -- the restored schedule, on a virtual clock --------------------------------------------


def restored_run(
    saved: dict[str, SavedOrg], orgs: list[OrgConfig], seconds: float
) -> ScriptedFetcher:
    """Restore `saved` into a scheduler of `orgs` at loop time 0, run it for `seconds`."""
    fetcher = ScriptedFetcher()

    async def main() -> None:
        scheduler = new_scheduler(fetcher, orgs)
        scheduler.restore(saved, counters=True)
        await run_for(scheduler, seconds)

    run_virtual(main())
    return fetcher


def at(seconds: float) -> float:
    """A wall-clock time `seconds` after the virtual loop's start."""
    return WALL_AT_START + seconds


def test_a_restored_org_polls_when_it_was_due() -> None:
    """Due 12 s after the restart: polled at 12 s, then every interval; not at its
    first-poll offset (30.5 s), which would cut the interval short."""
    acme = virtual_org("acme", KEY_A)
    saved = {"acme": saved_org(acme.key_fingerprint, Health.OK, next_poll_at=at(12.0))}
    fetcher = restored_run(saved, [acme], 150.0)
    assert fetcher.starts(KEY_A) == pytest.approx([12.0, 72.0, 132.0])


def test_overdue_orgs_are_spread_not_sent_at_once() -> None:
    """Both were due while the collector was down: each goes at its first-poll offset."""
    orgs = [virtual_org("acme", KEY_A), virtual_org("globex", KEY_B)]
    saved = {o.name: saved_org(o.key_fingerprint, Health.OK, next_poll_at=at(-50.0)) for o in orgs}
    fetcher = restored_run(saved, orgs, 59.0)
    assert fetcher.starts(KEY_A) == pytest.approx([initial_offset("acme", 60.0)])
    assert fetcher.starts(KEY_B) == pytest.approx([initial_offset("globex", 60.0)])


def test_a_restored_429_wait_holds_for_every_org_on_the_key() -> None:
    """globex was told to wait until 40 s; acme, on the same key and due at 5 s, waits too."""
    acme, globex = virtual_org("acme", KEY_A), virtual_org("globex", KEY_A)
    saved = {
        "acme": saved_org(acme.key_fingerprint, Health.OK, next_poll_at=at(5.0)),
        "globex": saved_org(
            globex.key_fingerprint,
            Health.RATE_LIMITED,
            next_poll_at=at(40.0),
            rate_limited_until=at(40.0),
        ),
    }
    fetcher = restored_run(saved, [acme, globex], 45.0)
    assert min(fetcher.starts(KEY_A)) == pytest.approx(40.0)


def test_a_restored_rejected_key_keeps_its_recheck_pace() -> None:
    """Rejected, next re-check due at 100 s: not re-checked at once after the restart."""
    acme = virtual_org("acme", KEY_A)
    saved = {
        "acme": saved_org(
            acme.key_fingerprint,
            Health.AUTH_FAILED,
            next_poll_at=at(100.0),
            auth_failing_since=at(-800.0),
            auth_failed_fingerprint=acme.key_fingerprint,
        )
    }
    fetcher = restored_run(saved, [acme], 101.0)
    assert fetcher.starts(KEY_A) == pytest.approx([100.0])
