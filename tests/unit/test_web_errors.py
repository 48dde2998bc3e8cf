"""The HTTP layer's own error answers: brief, with every header, counted, logged rarely."""

from __future__ import annotations

import structlog
from prometheus_client import CollectorRegistry, generate_latest

from collector.open_files import connection_cap
from collector.web_errors import LOG_EVERY_SECONDS, ErrorAnswers, describe

HEADERS = {"X-Content-Type-Options": "nosniff", "Server": "petra-collector"}


def test_answers_are_brief_counted_and_logged_once_a_minute() -> None:
    now = [1000.0]
    registry = CollectorRegistry()
    with structlog.testing.capture_logs() as logs:
        errors = ErrorAnswers(
            registry, structlog.get_logger(), lambda: HEADERS, clock=lambda: now[0]
        )
        for _ in range(50):
            answer = errors.answer(400, ValueError("GET /\x00secret-bytes"))
        assert answer.status == 400
        assert answer.text == "400 Bad Request\n"
        assert dict(answer.headers).items() >= HEADERS.items()
        now[0] += LOG_EVERY_SECONDS
        errors.answer(500, None)
    assert [line["answers"] for line in logs] == [{"400": 1}, {"400": 49, "500": 1}]
    assert all(line["log_level"] == "warning" for line in logs)
    assert "secret-bytes" not in repr(logs)
    exposed = generate_latest(registry).decode()
    assert 'petra_collector_http_error_answers_total{code="400"} 50.0' in exposed
    assert 'petra_collector_http_error_answers_total{code="500"} 1.0' in exposed


def test_an_error_is_described_by_type_and_place_never_its_message() -> None:
    try:
        raise ValueError("Authorization: Basic c2VjcmV0")  # noqa: TRY301 - raised for its traceback
    except ValueError as error:
        described = describe(error)
    assert described is not None
    assert described.startswith("ValueError at test_web_errors.py:")
    assert "c2VjcmV0" not in described
    assert describe(KeyError("x")) == "KeyError"
    assert describe(None) is None


def test_the_connection_cap_leaves_half_the_file_limit() -> None:
    assert connection_cap(512, 1024) == 512
    assert connection_cap(512, 256) == 128
    assert connection_cap(512, 1) == 1
    assert connection_cap(100, 65536) == 100
