"""The scheduler's pure decisions (first offset, backoff, next delay) and shard ownership."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from collector.petra_errors import (
    BadResponse,
    Forbidden,
    KeyRejected,
    PetraError,
    RateLimited,
    Unavailable,
)
from collector.scheduler import (
    BACKOFF_BASE_SECONDS,
    RATE_LIMIT_DEFAULT_WAIT_SECONDS,
    _Wake,
    backoff_delay,
    initial_offset,
    next_delay,
)
from collector.sharding import owners_of, owns, shard_of

NAMES = [f"org-{i:04d}" for i in range(1000)]


def constant(value: float) -> Callable[[], float]:
    """An rng that always returns `value`."""
    return lambda: value


# -- initial_offset ----------------------------------------------------------------------------


def test_initial_offset_is_deterministic() -> None:
    """The same name and interval always give the same offset (no per-process hash seed)."""
    assert initial_offset("acme", 300.0) == initial_offset("acme", 300.0)
    # Pinned (sha256-based): a restart, another host or another Python puts acme here too.
    assert initial_offset("acme", 300.0) == pytest.approx(152.54151245092226)


def test_initial_offset_scales_with_the_interval() -> None:
    """The offset is the same fraction of any interval."""
    fraction = initial_offset("globex", 1.0)
    assert initial_offset("globex", 600.0) == pytest.approx(fraction * 600.0)


def test_initial_offset_is_within_the_interval() -> None:
    """Every offset lies in [0, interval)."""
    for interval in (1.0, 60.0, 300.0, 86400.0):
        for name in NAMES:
            assert 0.0 <= initial_offset(name, interval) < interval


def test_initial_offset_spreads_orgs() -> None:
    """1000 orgs over 60 s leave no 6-second bucket empty and none badly crowded."""
    buckets = Counter(int(initial_offset(name, 60.0) // 6) for name in NAMES)
    assert sorted(buckets) == list(range(10))
    assert max(buckets.values()) < 150  # 100 expected per bucket


def test_initial_offset_differs_between_names() -> None:
    """Different names land at different places."""
    offsets = {initial_offset(name, 300.0) for name in NAMES}
    assert len(offsets) == len(NAMES)


# -- backoff_delay ------------------------------------------------------------------------------


def test_backoff_doubles_with_each_failure() -> None:
    """The ceiling starts at the base and doubles per consecutive failure."""
    ceilings = [backoff_delay(n, cap=1e9, rng=constant(1.0)) for n in range(1, 7)]
    assert ceilings == [BACKOFF_BASE_SECONDS * 2**k for k in range(6)]


def test_backoff_jitter_stays_within_half_and_full_ceiling() -> None:
    """rng 0 gives ceiling/2, rng near 1 gives nearly the ceiling, rng 0.5 three quarters."""
    ceiling = BACKOFF_BASE_SECONDS * 4  # third failure
    assert backoff_delay(3, cap=1e9, rng=constant(0.0)) == ceiling / 2
    assert backoff_delay(3, cap=1e9, rng=constant(0.5)) == ceiling * 0.75
    assert ceiling / 2 <= backoff_delay(3, cap=1e9, rng=constant(0.999999)) <= ceiling


def test_backoff_is_capped() -> None:
    """However many failures, the delay never exceeds the cap (the org's interval)."""
    for failures in (8, 10, 31, 100, 10_000):
        for rng in (0.0, 0.5, 0.999999):
            delay = backoff_delay(failures, cap=300.0, rng=constant(rng))
            assert 150.0 <= delay <= 300.0


def test_backoff_treats_zero_failures_like_one() -> None:
    """A failure count of 0 (or below) does not shrink the delay under the base."""
    assert backoff_delay(0, cap=1e9, rng=constant(1.0)) == BACKOFF_BASE_SECONDS
    assert backoff_delay(-3, cap=1e9, rng=constant(1.0)) == BACKOFF_BASE_SECONDS


def test_backoff_with_a_small_cap() -> None:
    """A cap below the base bounds even the first delay."""
    assert backoff_delay(1, cap=2.0, rng=constant(1.0)) == 2.0


# -- next_delay ---------------------------------------------------------------------------------


def delay_after(error: PetraError | None, failures: int = 1, rng: float = 1.0) -> float:
    """next_delay with a 300 s interval and a 900 s auth-failure interval."""
    return next_delay(
        error,
        interval=300.0,
        auth_failure_interval=900.0,
        failures=failures,
        rng=constant(rng),
    )


def test_success_waits_one_interval() -> None:
    """After a success the next poll is one interval later, whatever the failure count."""
    assert delay_after(None) == 300.0
    assert delay_after(None, failures=7) == 300.0


def test_key_rejected_waits_the_auth_failure_interval() -> None:
    """A 401 re-checks at the slow auth-failure pace, not with backoff."""
    assert delay_after(KeyRejected("invalid key")) == 900.0
    assert delay_after(KeyRejected(None), failures=50) == 900.0


@pytest.mark.parametrize("retry_after", [0.0, 0.5, 17.0, 3600.0])
def test_rate_limited_with_retry_after_waits_exactly_that(retry_after: float) -> None:
    """A first 429 that says how long to wait is obeyed to the letter, even past the interval;
    later ones in a row never wait less than it says."""
    assert delay_after(RateLimited(retry_after)) == retry_after
    assert delay_after(RateLimited(retry_after), failures=9, rng=0.0) >= retry_after


def test_rate_limited_without_retry_after_waits_the_default_window() -> None:
    """A 429 with no wait given waits Petra's one-minute window plus up to 10 % jitter."""
    wait = RATE_LIMIT_DEFAULT_WAIT_SECONDS
    assert delay_after(RateLimited(None), rng=0.0) == wait
    assert delay_after(RateLimited(None), rng=0.5) == pytest.approx(wait * 1.05)


def test_429_after_429_backs_off_from_a_minute_up_to_the_interval() -> None:
    """Repeated 429s (another program shares the key) double the wait up to the interval."""
    waits = [delay_after(RateLimited(None), failures=n, rng=1.0) for n in range(1, 7)]
    assert waits == [66.0, 120.0, 240.0, 300.0, 300.0, 300.0]
    assert delay_after(RateLimited(0.0), failures=2, rng=0.0) == 60.0  # "0" is not a licence


@pytest.mark.parametrize(
    "error",
    [
        Unavailable("server error (503)", status=503),
        Unavailable("timeout"),
        BadResponse("unexpected status 404", status=404),
        BadResponse("not JSON", status=200),
        Forbidden("refused (403)", status=403),
    ],
    ids=["5xx", "timeout", "404", "bad-body", "403"],
)
def test_other_errors_back_off_capped_at_the_interval(error: PetraError) -> None:
    """Transient and unusable answers back off exponentially, never beyond the interval."""
    assert delay_after(error, failures=1) == BACKOFF_BASE_SECONDS
    assert delay_after(error, failures=2) == BACKOFF_BASE_SECONDS * 2
    assert delay_after(error, failures=2, rng=0.0) == BACKOFF_BASE_SECONDS
    assert delay_after(error, failures=30) == 300.0
    assert delay_after(error, failures=30, rng=0.0) == 150.0


# -- sharding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_every_org_belongs_to_exactly_one_shard(count: int) -> None:
    """Across N shards each org is owned by exactly one, and the load is roughly even."""
    owners = {name: [i for i in range(count) if owns(i, count, name)] for name in NAMES}
    assert all(len(found) == 1 for found in owners.values())
    assert all(found == [shard_of(name, count)] for name, found in owners.items())
    sizes = Counter(shard_of(name, count) for name in NAMES)
    assert sorted(sizes) == list(range(count))
    expected = len(NAMES) / count
    assert all(0.7 * expected <= size <= 1.3 * expected for size in sizes.values())


@pytest.mark.parametrize("count", [1, 2, 4, 9])
def test_growing_by_one_shard_moves_only_a_fraction(count: int) -> None:
    """From N to N+1 shards about 1/(N+1) of orgs move, and only to the new shard."""
    moved = [name for name in NAMES if shard_of(name, count) != shard_of(name, count + 1)]
    assert all(shard_of(name, count + 1) == count for name in moved)
    share = len(moved) / len(NAMES)
    assert 0.5 / (count + 1) <= share <= 1.5 / (count + 1)


@pytest.mark.parametrize(("count", "copies"), [(2, 2), (3, 2), (5, 2), (6, 3)])
def test_copies_spread_evenly_and_survive_a_lost_shard(count: int, copies: int) -> None:
    """With copies, each shard carries about copies/N of the orgs, and any copies-1 lost shards
    leave every org with an owner."""
    load = Counter(index for name in NAMES for index in owners_of(name, count, copies))
    expected = len(NAMES) * copies / count
    assert all(0.8 * expected <= load[index] <= 1.2 * expected for index in range(count))
    for lost in range(count):
        assert all(set(owners_of(name, count, copies)) - {lost} for name in NAMES)


@pytest.mark.parametrize(("count", "copies"), [(2, 2), (3, 2), (8, 2), (6, 3)])
def test_growing_by_one_shard_with_copies_moves_only_a_fraction(count: int, copies: int) -> None:
    """From N to N+1 shards with copies, about copies/(N+1) of the orgs hand one of their
    owners to the new shard; no other owner changes."""
    moved = [
        name
        for name in NAMES
        if owners_of(name, count, copies) != owners_of(name, count + 1, copies)
    ]
    assert all(count in owners_of(name, count + 1, copies) for name in moved)
    share = len(moved) / len(NAMES)
    expected = copies / (count + 1)
    assert 0.7 * expected <= share <= 1.3 * expected


def test_shard_of_is_deterministic() -> None:
    """The owner depends only on the name and the count."""
    assert [shard_of(name, 5) for name in NAMES] == [shard_of(name, 5) for name in NAMES]


def test_shard_count_must_be_positive() -> None:
    """A shard count below 1 is refused."""
    with pytest.raises(ValueError, match="at least 1"):
        shard_of("acme", 0)
    with pytest.raises(ValueError, match="copies must be at least 1"):
        owners_of("acme", 3, 0)


async def test_a_wake_set_before_or_during_the_wait_ends_it_and_clear_rearms_it() -> None:
    """The loops' early wake-up behaves as asyncio.Event does for its one waiter."""
    wake = _Wake()
    wake.set()
    await asyncio.wait_for(wake.wait(), 1)  # already set: returns at once
    wake.clear()
    assert not wake.is_set()
    waiting = asyncio.ensure_future(wake.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    wake.set()
    wake.set()  # twice: no error, one wake-up
    await asyncio.wait_for(waiting, 1)
    wake.clear()
    cancelled = asyncio.ensure_future(wake.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    wake.set()  # after a cancelled wait: nothing to wake, no error
    assert wake.is_set()
