"""Global state that one test may change is put back before the next one runs.

structlog's configuration, the root logger's handlers and level, and the
process-wide key redactor are set by `configure_logging` and by the daemon;
without these fixtures, a test would log into the stream of the test
before it, or redact keys only because an earlier test registered them.

Files the tests write are private to their user, as an operator's secrets
should be: with the usual umask (022) every key file a test writes would be
readable by others and draw the collector's warning about it; a test about
that warning sets the mode it needs itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
import structlog

from collector.logs import REDACTOR


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """structlog back to its defaults, with no context variables bound."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture(autouse=True)
def _restore_logging_handlers() -> Iterator[None]:
    """The root logger keeps the handlers and level it had (pytest's own capture)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _reset_key_redactor() -> Iterator[None]:
    """The redactor knows no keys: a test that needs redaction registers its own."""
    REDACTOR.set_secrets([])
    yield
    REDACTOR.set_secrets([])


@pytest.fixture(autouse=True, scope="session")
def _private_files() -> Iterator[None]:
    previous = os.umask(0o077)
    yield
    os.umask(previous)
