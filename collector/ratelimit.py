"""Request pacing: pure arithmetic, the clock is always passed in.

`Pacer` spaces events at least `1/rate` seconds apart (a GCRA with a burst
allowance), which keeps a large fleet's request rate flat instead of
bursting. `KeyBudget` adds what one API key needs on top: a pause after a
429 that nothing may cut short. Petra limits each key per route, so
`RouteBudgets` keeps one `KeyBudget` per key and route: a 429 on one route
never delays another.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar


@dataclass(slots=True)
class Pacer:
    """Hands out send times no closer than `1/rate` apart, after an initial burst."""

    rate_per_second: float
    burst: int = 1
    _theoretical_arrival: float = field(default=float("-inf"), init=False)

    def __post_init__(self) -> None:
        if self.rate_per_second <= 0 or self.burst < 1:
            raise ValueError("rate must be positive and burst at least 1")

    @property
    def spacing(self) -> float:
        return 1.0 / self.rate_per_second

    def set_rate(self, rate_per_second: float) -> None:
        """A new rate: the next slot is the new spacing after the last one handed out."""
        if rate_per_second <= 0:
            raise ValueError("rate must be positive and burst at least 1")
        old_spacing = self.spacing
        self.rate_per_second = rate_per_second
        self._theoretical_arrival += self.spacing - old_spacing

    def reserve(self, now: float) -> float:
        """Claim the next slot; returns when it starts (never earlier than `now`)."""
        tolerance = (self.burst - 1) * self.spacing
        start = max(now, self._theoretical_arrival - tolerance)
        self._theoretical_arrival = max(self._theoretical_arrival, now) + self.spacing
        return start


@dataclass(slots=True)
class KeyBudget:
    """One API key's allowance: `requests_per_minute`, and silence after a 429."""

    requests_per_minute: float
    _pacer: Pacer = field(init=False)
    blocked_until: float = field(default=float("-inf"), init=False)

    def __post_init__(self) -> None:
        self._pacer = Pacer(self.requests_per_minute / 60.0)

    def set_rate(self, requests_per_minute: float) -> None:
        """A new budget from a reload, keeping the 429 wait: the next request is the new
        spacing after the last one handed out (never closer, whatever the old rate was)."""
        self.requests_per_minute = requests_per_minute
        self._pacer.set_rate(requests_per_minute / 60.0)

    def reserve(self, now: float) -> float:
        """Claim the key's next send time, which honours any 429 wait."""
        return self._pacer.reserve(max(now, self.blocked_until))

    def block(self, until: float) -> None:
        """After a 429: nothing is sent with this key before `until`."""
        self.blocked_until = max(self.blocked_until, until)


Key = TypeVar("Key", bound=Hashable)


class RouteBudgets(Generic[Key]):
    """A `KeyBudget` per (key, route), made on first use, at each route's rate per minute."""

    __slots__ = ("_budgets", "rates")

    def __init__(self, rates: Mapping[str, float]) -> None:
        self.rates = dict(rates)
        self._budgets: dict[tuple[Key, str], KeyBudget] = {}

    def __len__(self) -> int:
        return len(self._budgets)

    def budget(self, key: Key, route: str) -> KeyBudget:
        found = self._budgets.get((key, route))
        if found is None:
            found = self._budgets[key, route] = KeyBudget(self.rates[route])
        return found

    def set_rates(self, rates: Mapping[str, float]) -> None:
        """New rates per route, each budget keeping its 429 wait and last send time."""
        self.rates = dict(rates)
        for (_key, route), budget in self._budgets.items():
            if budget.requests_per_minute != self.rates[route]:
                budget.set_rate(self.rates[route])

    def keep_only(self, keys: Iterable[Key]) -> None:
        """Forget the budgets of keys no longer in use."""
        wanted = set(keys)
        for pair in [pair for pair in self._budgets if pair[0] not in wanted]:
            del self._budgets[pair]
