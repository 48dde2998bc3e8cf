"""An asyncio event loop whose clock is virtual: time passes only when nothing is ready.

When every task waits for a timer, the loop jumps straight to the earliest
one instead of sleeping, so an hour of polling runs in milliseconds, and
`loop.time()` (which asyncio's `sleep`, `call_later` and `wait(timeout=)`
all use) reads exactly the scheduled moments. Sockets still work, polled
without waiting. A loop where nothing is ready and no timer is due would
wait forever: it raises `DeadlockError` instead of hanging the test.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import TypeVar

T = TypeVar("T")


class DeadlockError(RuntimeError):
    """Nothing can ever run again: no ready callback, no timer, no I/O."""


class _VirtualSelector(selectors.DefaultSelector):
    """Polls for I/O without waiting, and turns each wait into a jump of the clock."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise DeadlockError("every task waits, and no timer will ever wake one")
        self._loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time, starting at `start`."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def run_virtual(main: Coroutine[object, object, T]) -> T:
    """Run `main` to completion on a fresh virtual-time loop."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)
