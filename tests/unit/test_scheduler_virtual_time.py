"""The scheduler itself, run on a virtual clock against a scripted fetcher.

Each test runs minutes or hours of polling in a few milliseconds (see
tests/virtualtime.py): the loop's clock jumps from timer to timer, and the
scheduler reads all of its monotonic time from that loop. Times below are
loop seconds from the start; an org's first poll falls at
`initial_offset(name, interval)` (acme 30.51 s, globex 21.51 s, initech
18.01 s, hooli 47.58 s, wonka 25.06 s of a 60 s interval).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from collector import key_watch
from collector.apikey import ApiKey
from collector.config import OrgConfig, PollingSettings
from collector.keys import KeySource
from collector.petra_billing import BillingReport
from collector.petra_errors import KeyRejected, PetraError, RateLimited, Unavailable
from collector.petra_incidents import IncidentsReport
from collector.petra_usage import UsageReport
from collector.routes import Sections
from collector.scheduler import Scheduler, initial_offset
from collector.state_records import Health
from tests.virtualtime import run_virtual

WALL_AT_START = 1_795_671_116.0
REPORT = UsageReport("2026-11-26", None, "Acme MSP", 0.0, ())
NO_INCIDENTS = IncidentsReport((), 0)
ACME_FIRST = initial_offset("acme", 60.0)  # 30.51 s
KEY_A, KEY_B, KEY_C = "petra_test_key_aaaa", "petra_test_key_bbbb", "petra_test_key_cccc"
# Fast enough that neither global limit decides a test unless it means to.
ROOMY = PollingSettings(
    interval_seconds=60.0,
    max_requests_per_second=1000.0,
    requests_per_minute_per_key=600.0,
    shutdown_grace_seconds=5.0,
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One scripted answer: how long it takes, and the error it raises (or a report)."""

    latency: float = 0.1
    error: PetraError | None = None


@dataclass(slots=True)
class Call:
    key: str
    started: float
    finished: float | None = None  # None: still on the wire, or cancelled


@dataclass
class ScriptedFetcher:
    """Answers each key's requests from its script, then with `default`; records every call."""

    scripts: dict[str, list[Outcome]] = field(default_factory=dict)
    default: dict[str, Outcome] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    most_in_flight: Counter[str] = field(default_factory=Counter)
    most_in_flight_overall: int = 0
    incident_scripts: dict[str, list[Outcome]] = field(default_factory=dict)
    incident_calls: list[tuple[str, float, str]] = field(default_factory=list)
    incidents_report: IncidentsReport = NO_INCIDENTS
    usage_report: UsageReport = REPORT
    billing_scripts: dict[str, list[Outcome]] = field(default_factory=dict)
    billing_calls: list[tuple[str, float, str]] = field(default_factory=list)

    async def fetch_usage(self, key: ApiKey, previous: UsageReport | None = None) -> UsageReport:
        del previous  # every answer is scripted anew
        value = key.reveal()
        loop = asyncio.get_running_loop()
        script = self.scripts.get(value, [])
        outcome = script.pop(0) if script else self.default.get(value, Outcome())
        call = Call(value, loop.time())
        self.calls.append(call)
        self.in_flight[value] += 1
        self.most_in_flight[value] = max(self.most_in_flight[value], self.in_flight[value])
        self.most_in_flight_overall = max(self.most_in_flight_overall, self.in_flight.total())
        try:
            await asyncio.sleep(outcome.latency)
        finally:
            self.in_flight[value] -= 1
        call.finished = loop.time()
        if outcome.error is not None:
            raise outcome.error
        return self.usage_report

    async def fetch_incidents(
        self, key: ApiKey, *, start_date: str, limit: int = 500, tenant_id: str | None = None
    ) -> IncidentsReport:
        """Each key's incidents requests answered from `incident_scripts`, then at once
        with `incidents_report`; recorded in `incident_calls` (key, start, startDate)."""
        del limit, tenant_id  # the scheduler always asks for the whole org, 500 at most
        value = key.reveal()
        script = self.incident_scripts.get(value, [])
        outcome = script.pop(0) if script else Outcome()
        self.incident_calls.append((value, asyncio.get_running_loop().time(), start_date))
        await asyncio.sleep(outcome.latency)
        if outcome.error is not None:
            raise outcome.error
        return self.incidents_report

    async def fetch_billing(self, key: ApiKey, *, tenant_id: str) -> BillingReport:
        """Each key's billing requests answered from `billing_scripts`, then at once with
        figures of the tenant asked about; recorded in `billing_calls` (key, start, tenant)."""
        value = key.reveal()
        script = self.billing_scripts.get(value, [])
        outcome = script.pop(0) if script else Outcome()
        self.billing_calls.append((value, asyncio.get_running_loop().time(), tenant_id))
        await asyncio.sleep(outcome.latency)
        if outcome.error is not None:
            raise outcome.error
        return BillingReport(tenant_id, 10.0, 9.5, WALL_AT_START)

    def billing_starts(self, key: str) -> list[float]:
        """When each billing request with `key` was sent, in order."""
        return [started for value, started, _ in self.billing_calls if value == key]

    def incident_starts(self, key: str) -> list[float]:
        """When each incidents request with `key` was sent, in order."""
        return [started for value, started, _ in self.incident_calls if value == key]

    def starts(self, key: str) -> list[float]:
        """When each request with `key` was sent, in order."""
        return [call.started for call in self.calls if call.key == key]


def org(name: str, key: str, interval: float = 60.0) -> OrgConfig:
    """An org whose key is inline in the config (no file for the watcher to look at)."""
    api_key = ApiKey(key)
    return OrgConfig(name, KeySource("inline", inline=api_key), interval, api_key)


def new_scheduler(
    fetcher: ScriptedFetcher,
    orgs: Sequence[OrgConfig],
    polling: PollingSettings = ROOMY,
    rng: Callable[[], float] = lambda: 0.5,
) -> Scheduler:
    """A scheduler of `orgs`, its wall clock tied to the loop's (`WALL_AT_START` at 0 s)."""

    def wall() -> float:
        return WALL_AT_START + asyncio.get_running_loop().time()

    scheduler = Scheduler(fetcher, Sections(polling), wall_clock=wall, rng=rng)
    scheduler.apply(orgs, Sections(polling))
    return scheduler


async def run_for(
    scheduler: Scheduler,
    seconds: float,
    midway: tuple[float, Callable[[], None]] | None = None,
) -> float:
    """Run the scheduler, stop it after `seconds`; returns the loop time when `run()` ended.

    `midway` is (when, what): something done to the running scheduler at that time."""
    loop = asyncio.get_running_loop()
    running = asyncio.create_task(scheduler.run())
    if midway is not None:
        when, action = midway
        await asyncio.sleep(when)
        action()
        await asyncio.sleep(seconds - when)
    else:
        await asyncio.sleep(seconds)
    scheduler.stop()
    await running
    return loop.time()


def gaps(times: Sequence[float]) -> list[float]:
    """Seconds between consecutive times, rounded past float noise."""
    return [round(later - earlier, 6) for earlier, later in pairwise(times)]


def test_one_request_in_flight_per_key() -> None:
    """Three orgs on one key, each answer taking 20 s: their requests queue, never overlap,
    and none starves; an org with its own key is on the wire at the same time."""
    fetcher = ScriptedFetcher(default={KEY_A: Outcome(latency=20.0)})
    orgs = [org("acme", KEY_A), org("globex", KEY_A), org("initech", KEY_A), org("hooli", KEY_B)]
    scheduler = new_scheduler(fetcher, orgs)

    run_virtual(run_for(scheduler, 600.0))

    assert fetcher.most_in_flight[KEY_A] == 1
    on_key_a = [call for call in fetcher.calls if call.key == KEY_A]
    for earlier, later in pairwise(on_key_a):
        assert earlier.finished is not None
        assert later.started >= earlier.finished
    # The key is busy all the time: 20 s a request, from the first at 18 s.
    assert len(on_key_a) == 30
    assert fetcher.most_in_flight_overall == 2  # the check above could have seen overlap
    for name in ("acme", "globex", "initech"):
        state = scheduler.state(name)
        assert state is not None
        assert state.requests_by_code["200"] >= 9


def test_a_429_pauses_every_org_on_that_key_until_the_wait_is_over() -> None:
    """globex's 429 (wait 150 s) silences acme, which shares its key, for the whole wait;
    acme's queued poll goes out the moment it ends; hooli, on another key, polls on."""
    fetcher = ScriptedFetcher(scripts={KEY_A: [Outcome(error=RateLimited(150.0))]})
    orgs = [org("acme", KEY_A), org("globex", KEY_A), org("hooli", KEY_B)]
    scheduler = new_scheduler(fetcher, orgs)
    shown_during_the_wait: list[float | None] = []

    def look() -> None:
        globex = scheduler.state("globex")
        assert globex is not None
        shown_during_the_wait.append(globex.rate_limited_until)

    run_virtual(run_for(scheduler, 300.0, midway=(100.0, look)))

    first_poll = initial_offset("globex", 60.0)  # answered with the 429 at +0.1 s
    wait_over = first_poll + 0.1 + 150.0
    on_key_a = fetcher.starts(KEY_A)
    assert on_key_a[0] == pytest.approx(first_poll)
    assert on_key_a[1] == pytest.approx(wait_over)  # acme, due at 30.5 s, held until now
    assert all(not first_poll < start < wait_over - 1e-6 for start in on_key_a[1:])
    assert any(first_poll < start < wait_over for start in fetcher.starts(KEY_B))
    globex = scheduler.state("globex")
    assert globex is not None
    assert globex.rate_limited_total == 1
    assert shown_during_the_wait == [pytest.approx(WALL_AT_START + wait_over, abs=1e-5)]


def test_apply_keeps_unchanged_orgs_schedules_and_state() -> None:
    """A reload at 100 s that adds wonka and doubles globex's interval leaves acme's polls
    exactly where they were, keeps its state object, and moves globex only from its next
    poll on (a reload never re-polls the fleet at once)."""
    orgs = [org("acme", KEY_A), org("globex", KEY_B)]
    reloaded = [orgs[0], org("globex", KEY_B, interval=120.0), org("wonka", KEY_C)]

    unchanged = ScriptedFetcher()
    run_virtual(run_for(new_scheduler(unchanged, orgs), 400.0))

    fetcher = ScriptedFetcher()
    scheduler = new_scheduler(fetcher, orgs)
    acme_before = scheduler.state("acme")

    def reload() -> None:
        scheduler.apply(reloaded, Sections(ROOMY))

    run_virtual(run_for(scheduler, 400.0, midway=(100.0, reload)))

    assert fetcher.starts(KEY_A) == unchanged.starts(KEY_A)
    assert scheduler.state("acme") is acme_before
    assert acme_before is not None
    assert acme_before.requests_by_code["200"] == len(fetcher.starts(KEY_A))
    assert gaps(fetcher.starts(KEY_B)) == [60.0, 60.0, 120.0, 120.0]
    assert fetcher.starts(KEY_C)[0] == pytest.approx(100.0 + initial_offset("wonka", 60.0))


def test_stop_lets_requests_on_the_wire_finish_within_the_grace_then_cancels() -> None:
    """Stopped at 31 s with a 5 s grace: acme's 3 s request (sent at 30.5 s) is recorded,
    globex's 60 s one is cancelled at 36 s, and nothing new is sent after the stop."""
    fetcher = ScriptedFetcher(
        default={KEY_A: Outcome(latency=3.0), KEY_B: Outcome(latency=60.0)},
    )
    orgs = [org("acme", KEY_A), org("globex", KEY_B), org("initech", KEY_C)]
    scheduler = new_scheduler(fetcher, orgs)

    ended = run_virtual(run_for(scheduler, 31.0))

    assert ended == pytest.approx(31.0 + ROOMY.shutdown_grace_seconds)
    assert max(call.started for call in fetcher.calls) < 31.0
    acme, globex = scheduler.state("acme"), scheduler.state("globex")
    assert acme is not None
    assert globex is not None
    assert acme.health is Health.OK
    assert acme.last_success_at == pytest.approx(WALL_AT_START + ACME_FIRST + 3.0, abs=1e-5)
    assert globex.health is Health.PENDING
    assert globex.requests_by_code == {"200": 0}


def test_first_polls_are_spread_over_the_interval() -> None:
    """Forty orgs started together each send their first request at their own offset in
    the interval, not all at once."""
    names = [f"org-{i:02d}" for i in range(40)]
    fetcher = ScriptedFetcher()
    orgs = [org(name, f"petra_test_key_{name}", interval=300.0) for name in names]
    scheduler = new_scheduler(fetcher, orgs)

    run_virtual(run_for(scheduler, 299.0))

    first = {call.key.removeprefix("petra_test_key_"): call.started for call in fetcher.calls}
    assert sorted(first) == names
    for name in names:
        assert first[name] == pytest.approx(initial_offset(name, 300.0), abs=0.01)
    assert max(first.values()) - min(first.values()) > 250.0


def test_failures_back_off_exponentially_then_the_interval_resumes() -> None:
    """Four transient failures are retried 5, 10, 20 and 40 s apart (jitter at its top),
    and after the success the org polls at its interval again."""
    failure = Outcome(error=Unavailable("HTTP 503", status=503))
    fetcher = ScriptedFetcher(scripts={KEY_A: [failure] * 4})
    scheduler = new_scheduler(fetcher, [org("acme", KEY_A, interval=300.0)], rng=lambda: 1.0)

    run_virtual(run_for(scheduler, 600.0))

    assert gaps(fetcher.starts(KEY_A)) == [5.0, 10.0, 20.0, 40.0, 300.0]
    acme = scheduler.state("acme")
    assert acme is not None
    assert acme.consecutive_failures == 0
    assert acme.requests_by_code == {"200": 2, "503": 4}


def test_a_rejected_key_is_checked_again_at_the_auth_failure_pace() -> None:
    """A 401 key is re-tried every `auth_failure_interval_seconds` (900 s), not every
    interval (60 s) nor faster as failures pile up."""
    fetcher = ScriptedFetcher(default={KEY_A: Outcome(error=KeyRejected(None))})
    scheduler = new_scheduler(fetcher, [org("acme", KEY_A)])

    run_virtual(run_for(scheduler, 3000.0))

    assert gaps(fetcher.starts(KEY_A)) == [900.0, 900.0, 900.0]
    acme = scheduler.state("acme")
    assert acme is not None
    assert acme.auth_failing
    assert acme.auth_failures_total == 4


def test_a_401_with_a_key_file_changed_since_is_about_the_old_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polls no longer look at the key file first: when a 401 comes for a key whose file
    has changed since (the watcher had not looked yet), it says nothing of the old key, and
    the new one is tried at once."""
    monkeypatch.setattr(key_watch, "TICK_SECONDS", 10_000.0)  # the sweep sleeps
    monkeypatch.setattr(key_watch, "INotify", None)  # no first look once watches are set
    key_file = tmp_path / "acme"
    key_file.write_text(KEY_A)
    source = KeySource("file", str(key_file))
    fetcher = ScriptedFetcher(default={KEY_A: Outcome(error=KeyRejected(None))})
    scheduler = new_scheduler(fetcher, [OrgConfig("acme", source, 60.0, source.load())])
    key_file.write_text(KEY_B)  # rotated before the first poll, unseen by the watcher

    with capture_logs() as logs:
        run_virtual(run_for(scheduler, 100.0))

    first = initial_offset("acme", 60.0)
    assert fetcher.starts(KEY_A) == [pytest.approx(first)]
    assert fetcher.starts(KEY_B)[0] == pytest.approx(first + 0.1)  # right after the 401
    events = [entry["event"] for entry in logs]
    assert "key_reloaded" in events
    assert "auth_failed" not in events
    acme = scheduler.state("acme")
    assert acme is not None
    assert not acme.auth_failing
    assert acme.auth_failures_total == 0
    assert acme.key_fingerprint == ApiKey(KEY_B).fingerprint


def test_a_rotated_key_file_leaves_no_gate_of_the_old_key_behind(tmp_path: Path) -> None:
    """The watcher swaps the key without a reload: the old key's budget and gate go too
    (else every rotation of a long run left them, per route, until the next reload)."""
    key_file = tmp_path / "acme"
    key_file.write_text(KEY_A)
    source = KeySource("file", str(key_file))
    fetcher = ScriptedFetcher()
    scheduler = new_scheduler(fetcher, [OrgConfig("acme", source, 60.0, source.load())])

    def rotate() -> None:
        key_file.write_text(KEY_B)

    run_virtual(run_for(scheduler, 200.0, midway=(90.0, rotate)))

    assert fetcher.starts(KEY_A)
    assert fetcher.starts(KEY_B)
    gates = scheduler._gates  # noqa: SLF001 - what is kept per key is not shown anywhere
    assert {key.reveal() for key, _route in gates} == {KEY_B}
    assert len(scheduler._budgets) == len(gates)  # noqa: SLF001 - as above


def test_a_new_key_for_a_rejected_org_is_tried_at_once() -> None:
    """A reload that gives a rejected org a new key sends with it right away, not at the
    next 900 s re-check, and the org shows the new key's fingerprint."""
    fetcher = ScriptedFetcher(default={KEY_A: Outcome(error=KeyRejected(None))})
    scheduler = new_scheduler(fetcher, [org("acme", KEY_A)])

    def new_key() -> None:
        scheduler.apply([org("acme", KEY_B)], Sections(ROOMY))

    run_virtual(run_for(scheduler, 200.0, midway=(100.0, new_key)))

    assert fetcher.starts(KEY_B)[0] == pytest.approx(100.0)
    acme = scheduler.state("acme")
    assert acme is not None
    assert acme.key_fingerprint == ApiKey(KEY_B).fingerprint
    assert acme.health is Health.OK


def test_next_poll_time_is_recorded_on_the_wall_clock() -> None:
    """While waiting, an org's `next_poll_at` is the wall-clock time of its next request."""
    fetcher = ScriptedFetcher()
    scheduler = new_scheduler(fetcher, [org("acme", KEY_A)])

    run_virtual(run_for(scheduler, 50.0))

    acme = scheduler.state("acme")
    assert acme is not None
    assert acme.next_poll_at == pytest.approx(WALL_AT_START + ACME_FIRST + 60.0, abs=1e-5)


def test_shared_key_requests_keep_the_per_key_spacing() -> None:
    """Two orgs on one key due 5.4 s apart (wonka, then acme) still leave
    60 / requests_per_minute_per_key (12 s) apart."""
    polling = replace(ROOMY, requests_per_minute_per_key=5.0)
    fetcher = ScriptedFetcher()
    scheduler = new_scheduler(fetcher, [org("acme", KEY_A), org("wonka", KEY_A)], polling)

    run_virtual(run_for(scheduler, 200.0))

    assert min(gaps(fetcher.starts(KEY_A))) == pytest.approx(12.0)
