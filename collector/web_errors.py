"""Answers the HTTP layer makes itself (an unparsable request, a handler that failed):
brief, with the headers every answer carries, counted, and logged at most once a minute.

aiohttp's own version logs each one at error level with a traceback and echoes the
offending bytes in the body: anyone who can reach the port could fill the log.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Final

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from collector.labelled_counter import LabelledCounter

LOG_EVERY_SECONDS: Final = 60.0
SHOWN_FROM_START: Final = (400, 500)  # at 0 before the first, so rate() sees the first


class ErrorAnswers:
    """Makes the error answers, counts them by status, and logs a summary now and then."""

    def __init__(
        self,
        registry: CollectorRegistry,
        logger: structlog.typing.FilteringBoundLogger,
        headers: Callable[[], dict[str, str]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._headers = headers
        self._clock = clock
        self._counts = LabelledCounter(
            registry,
            "petra_collector_http_error_answers",
            "Requests answered with an error before or instead of a handler's answer, by "
            "status: 400 (a request the HTTP parser refused), 500 (a handler failed).",
            "code",
            (str(status) for status in SHOWN_FROM_START),
        )
        self._unlogged: Counter[int] = Counter()
        self._logged_at = float("-inf")

    def answer(self, status: int, error: BaseException | None) -> web.Response:
        """The answer to a request that failed with `status` (the connection is closed)."""
        self._counts.count(str(status))
        self._unlogged[status] += 1
        now = self._clock()
        if now - self._logged_at >= LOG_EVERY_SECONDS:
            self._logged_at = now
            self._log.warning(
                "http_error_answers",
                answers={str(code): count for code, count in sorted(self._unlogged.items())},
                last_error=describe(error),
                note=f"logged at most once every {LOG_EVERY_SECONDS:g} s; all are counted "
                "in petra_collector_http_error_answers_total",
            )
            self._unlogged.clear()
        phrase = HTTPStatus(status).phrase
        response = web.Response(status=status, text=f"{status} {phrase}\n")
        response.headers.update(self._headers())
        response.force_close()
        return response


def describe(error: BaseException | None) -> str | None:
    """The error's type and where it was raised, never its message (it may hold the
    request's bytes)."""
    if error is None:
        return None
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return type(error).__name__
    last = frames[-1]
    return f"{type(error).__name__} at {Path(last.filename).name}:{last.lineno}"
