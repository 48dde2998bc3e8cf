"""Structured logging: one JSON object per line on stdout, or console rendering.

Every line carries `timestamp` (UTC ISO 8601), `level` and `event` first.
Library logs (aiohttp, asyncio) go through the same renderer. As a last
line of defence, every string in every event is scrubbed of the API keys
currently in use, even though no code path is meant to put one there.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection, MutableMapping
from typing import Any, Final, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED: Final = "[redacted]"
FIRST_FIELDS: Final = ("timestamp", "level", "event")


class KeyRedactor:
    """A processor that replaces any known key in string values with [redacted].

    With thousands of keys, testing each one against each string would cost
    milliseconds per line just when a Petra outage makes every org log at
    once; instead keys are indexed by their first PREFIX characters, and a
    text is scanned once for those, so a line costs the same with 10 or
    10,000 keys.
    """

    PREFIX: Final = 8

    def __init__(self) -> None:
        self._by_prefix: dict[str, tuple[str, ...]] = {}
        self._short: tuple[str, ...] = ()

    def set_secrets(self, secrets: Collection[str]) -> None:
        by_prefix: dict[str, list[str]] = {}
        for secret in sorted(set(secrets), key=len, reverse=True):
            if len(secret) >= self.PREFIX:
                by_prefix.setdefault(secret[: self.PREFIX], []).append(secret)
        self._by_prefix = {prefix: tuple(keys) for prefix, keys in by_prefix.items()}
        self._short = tuple(s for s in secrets if len(s) < self.PREFIX)

    def scrub(self, text: str) -> str:
        width = self.PREFIX
        candidates = {
            text[i : i + width]
            for i in range(len(text) - width + 1)
            if text[i : i + width] in self._by_prefix
        }
        for prefix in candidates:
            for secret in self._by_prefix[prefix]:
                text = text.replace(secret, REDACTED)
        for secret in self._short:
            text = text.replace(secret, REDACTED)
        return text

    def scrub_value(self, value: object) -> object:
        """Strings scrubbed, containers walked, anything else turned into scrubbed text
        (an exception or object would otherwise become text after this filter)."""
        if isinstance(value, str):
            return self.scrub(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict):
            return {k: self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub_value(v) for v in value]
        return self.scrub(str(value))

    def __call__(self, _logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        if self._by_prefix or self._short:
            for field, value in event.items():
                if field != "exc_info":
                    event[field] = self.scrub_value(value)
        return event


REDACTOR: Final = KeyRedactor()


def _order_fields(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    ordered: MutableMapping[str, Any] = {k: event.pop(k) for k in FIRST_FIELDS if k in event}
    ordered.update(event)
    return dict(ordered)


def _json(event: EventDict, **_kwargs: object) -> str:
    return orjson.dumps(event, default=str).decode()


def configure_logging(
    fmt: str = "json",
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Set up structlog and route the standard library's logging through it."""
    out = stream if stream is not None else sys.stdout
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]
    renderer: Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
        # Tracebacks become text before the redactor reads every field.
        tail: list[Processor] = [structlog.processors.format_exc_info, REDACTOR, renderer]
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json)
        tail = [structlog.processors.format_exc_info, REDACTOR, _order_fields, renderer]
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric_level, logging.INFO))


def get_logger(**bound: object) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger()
    return logger.bind(**bound) if bound else logger
