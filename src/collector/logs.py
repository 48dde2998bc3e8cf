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
    """A processor that replaces any known key in string values with [redacted]."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()

    def set_secrets(self, secrets: Collection[str]) -> None:
        self._secrets = tuple(sorted(set(secrets), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def __call__(self, _logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        if self._secrets:
            for field, value in event.items():
                if isinstance(value, str):
                    event[field] = self.scrub(value)
                elif isinstance(value, list | tuple):
                    event[field] = [self.scrub(v) if isinstance(v, str) else v for v in value]
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
        tail: list[Processor] = [REDACTOR, renderer]
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
