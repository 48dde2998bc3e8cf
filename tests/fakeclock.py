"""A clock that only moves when the test says so, for code that takes a `clock` callable."""

from __future__ import annotations


class FakeClock:
    """Reads `now`; call it (as `clock()`) or read `.now`; move it with `advance` or by
    setting `now`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Moves the clock on by `seconds`; returns the new time."""
        self.now += seconds
        return self.now
