"""Waiting for something the code under test does, instead of sleeping a fixed time.

A test waits for the event it needs (a metric, a log line, a request count), checked every
`every` seconds, and never for a fixed time that a busy machine may outrun. The deadline
only bounds a hang: make it generous, since the suite runs beside other work (pytest-xdist
workers, other processes) and a check that is merely slow must not fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

HANG_SECONDS = 30.0  # the default bound: long past anything a working test waits for


class WaitTimeoutError(AssertionError):
    """The awaited thing did not happen before the deadline."""


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    what: str,
    *,
    within: float = HANG_SECONDS,
    every: float = 0.05,
    ignore: tuple[type[Exception], ...] = (),
    details: Callable[[], str] = lambda: "",
) -> T:
    """The first truthy result of `check`, tried every `every` seconds; fails naming `what`
    (and `details()`, such as a log's tail) after `within` seconds. Exceptions of the types
    in `ignore` (a server not listening yet) count as a falsy result."""
    deadline = time.monotonic() + within
    while True:
        try:
            result = await check()
        except ignore:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            message = f"timed out after {within:g} s waiting for {what}"
            extra = details()
            raise WaitTimeoutError(f"{message}\n{extra}" if extra else message)
        await asyncio.sleep(every)
