"""Request pacing arithmetic, driven by plain float clocks."""

from __future__ import annotations

import pytest

from collector.ratelimit import KeyBudget, Pacer, RouteBudgets
from tests.fakeclock import FakeClock


def test_pacer_spaces_requests_evenly() -> None:
    """With burst 1, requests asked for at the same moment start 1/rate apart."""
    pacer = Pacer(rate_per_second=4.0)
    assert pacer.spacing == 0.25
    assert [pacer.reserve(100.0) for _ in range(5)] == [100.0, 100.25, 100.5, 100.75, 101.0]


def test_pacer_never_hands_out_a_time_in_the_past() -> None:
    """A slot starts no earlier than `now`, even when the pacer has been idle for long."""
    pacer = Pacer(rate_per_second=1.0)
    assert pacer.reserve(0.0) == 0.0
    assert pacer.reserve(50.0) == 50.0
    assert pacer.reserve(50.2) == 51.0
    assert pacer.reserve(51.5) == 52.0


def test_pacer_idle_time_does_not_build_up_credit() -> None:
    """After a long pause, burst 1 still means one request at once and the rest spaced."""
    pacer = Pacer(rate_per_second=2.0)
    pacer.reserve(0.0)
    assert [pacer.reserve(1000.0) for _ in range(3)] == [1000.0, 1000.5, 1001.0]


def test_pacer_burst_then_spacing() -> None:
    """With burst 3, three requests go at once, the next ones 1/rate apart."""
    pacer = Pacer(rate_per_second=1.0, burst=3)
    assert [pacer.reserve(10.0) for _ in range(6)] == [10.0, 10.0, 10.0, 11.0, 12.0, 13.0]


def test_pacer_burst_refills_over_time() -> None:
    """A burst allowance used up comes back at the pacer's rate."""
    pacer = Pacer(rate_per_second=1.0, burst=2)
    assert [pacer.reserve(0.0) for _ in range(2)] == [0.0, 0.0]
    assert pacer.reserve(1.0) == 1.0  # one slot refilled
    assert pacer.reserve(1.0) == 2.0  # but not two
    assert [pacer.reserve(10.0) for _ in range(3)] == [10.0, 10.0, 11.0]


def test_pacer_rate_over_a_long_run() -> None:
    """Requests reserved as soon as each is granted average exactly the configured rate."""
    pacer = Pacer(rate_per_second=20.0)
    now = 0.0
    for _ in range(1000):
        now = pacer.reserve(now)
    assert now == pytest.approx(999 / 20.0)


@pytest.mark.parametrize(
    ("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)], ids=["zero-rate", "negative", "no-burst"]
)
def test_pacer_rejects_nonsense(rate: float, burst: int) -> None:
    """A pacer with no rate or no burst cannot be built."""
    with pytest.raises(ValueError, match="rate must be positive"):
        Pacer(rate, burst)


def test_key_budget_spaces_requests_per_minute() -> None:
    """5 requests per minute means one every 12 seconds."""
    budget = KeyBudget(requests_per_minute=5.0)
    assert [budget.reserve(0.0) for _ in range(3)] == [0.0, 12.0, 24.0]


def test_key_budget_blocks_after_a_429() -> None:
    """After block(until), nothing is handed out before `until`."""
    budget = KeyBudget(requests_per_minute=6.0)
    assert budget.reserve(0.0) == 0.0
    budget.block(until=100.0)
    assert budget.reserve(20.0) == 100.0
    assert budget.reserve(20.0) == 110.0  # spacing continues after the block


def test_key_budget_block_is_never_shortened() -> None:
    """A later, shorter block does not cut an earlier, longer one short."""
    budget = KeyBudget(requests_per_minute=60.0)
    budget.block(until=300.0)
    budget.block(until=120.0)
    assert budget.blocked_until == 300.0
    assert budget.reserve(0.0) == 300.0


def test_key_budget_block_in_the_past_changes_nothing() -> None:
    """A block that has already expired does not delay anything."""
    budget = KeyBudget(requests_per_minute=60.0)
    budget.block(until=5.0)
    assert budget.reserve(10.0) == 10.0
    assert budget.reserve(10.5) == 11.0


def test_key_budget_rejects_a_zero_budget() -> None:
    """A key budget of 0 per minute is refused (the config never produces one)."""
    with pytest.raises(ValueError, match="rate must be positive"):
        KeyBudget(0.0)


def test_each_route_of_a_key_has_its_own_budget() -> None:
    """Usage and incidents of one key are spaced independently, each at the full rate."""
    budgets: RouteBudgets[str] = RouteBudgets({"usage": 5.0, "incidents": 5.0})
    clock = FakeClock()
    usage = [budgets.budget("key-a", "usage").reserve(clock.now) for _ in range(2)]
    incidents = [budgets.budget("key-a", "incidents").reserve(clock.now) for _ in range(2)]
    assert usage == [1000.0, 1012.0]
    assert incidents == [1000.0, 1012.0]
    assert budgets.budget("key-a", "usage") is budgets.budget("key-a", "usage")
    assert len(budgets) == 2


def test_a_429_on_one_route_never_delays_the_other() -> None:
    """A block on incidents leaves usage free, and the other way round; other keys too."""
    budgets: RouteBudgets[str] = RouteBudgets({"usage": 6.0, "incidents": 6.0})
    clock = FakeClock()
    budgets.budget("key-a", "incidents").block(until=clock.now + 600)
    assert budgets.budget("key-a", "usage").reserve(clock.now) == clock.now
    assert budgets.budget("key-b", "incidents").reserve(clock.now) == clock.now
    assert budgets.budget("key-a", "incidents").reserve(clock.advance(30)) == 1600.0
    budgets.budget("key-a", "usage").block(until=clock.now + 60)
    assert budgets.budget("key-a", "incidents").reserve(clock.advance(600)) == clock.now


def test_set_rate_reaches_every_route_and_keeps_waits() -> None:
    budgets: RouteBudgets[str] = RouteBudgets({"usage": 6.0, "incidents": 6.0})
    clock = FakeClock()
    budgets.budget("key-a", "usage").reserve(clock.now)
    budgets.budget("key-a", "incidents").block(until=clock.now + 100)
    budgets.set_rates({"usage": 2.0, "incidents": 2.0})
    usage = budgets.budget("key-a", "usage")
    assert usage.reserve(clock.now) == clock.now + 30  # the new spacing after the last send
    assert usage.reserve(clock.now) == clock.now + 60  # then 30 s apart
    assert budgets.budget("key-a", "incidents").reserve(clock.now) == clock.now + 100
    assert budgets.budget("key-new", "usage").requests_per_minute == 2.0


def test_keep_only_forgets_keys_no_longer_used() -> None:
    budgets: RouteBudgets[str] = RouteBudgets({"usage": 6.0, "incidents": 6.0})
    for key in ("key-a", "key-b"):
        for route in ("usage", "incidents"):
            budgets.budget(key, route).block(until=5000.0)
    budgets.keep_only(["key-b"])
    assert len(budgets) == 2
    assert budgets.budget("key-b", "usage").blocked_until == 5000.0
    assert budgets.budget("key-a", "usage").blocked_until == float("-inf")


def test_each_route_has_its_own_rate_below_one_a_minute_too() -> None:
    """Routes of one key keep their own rates: half a request a minute is two minutes apart."""
    budgets: RouteBudgets[str] = RouteBudgets({"usage": 6.0, "slow": 0.5})
    slow = [budgets.budget("key-a", "slow").reserve(0.0) for _ in range(3)]
    assert slow == [0.0, 120.0, 240.0]
    assert budgets.budget("key-a", "usage").reserve(0.0) == 0.0
    budgets.set_rates({"usage": 6.0, "slow": 1.0})
    assert budgets.budget("key-a", "slow").reserve(0.0) == 300.0  # a minute after the last
    assert budgets.budget("key-a", "slow").reserve(0.0) == 360.0


def test_a_pacer_refuses_a_new_rate_of_zero() -> None:
    """A reload never sets a zero rate (the config refuses one); the pacer refuses it too."""
    pacer = Pacer(rate_per_second=1.0)
    with pytest.raises(ValueError, match="rate must be positive"):
        pacer.set_rate(0.0)
    assert pacer.rate_per_second == 1.0
