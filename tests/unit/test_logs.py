"""Log set-up: JSON lines with the contract's first fields, and keys scrubbed from them."""

from __future__ import annotations

import io
import json

import structlog

from collector.logs import REDACTED, KeyRedactor, configure_logging
from tests.leaks import assert_no_key_material

KEYS = [f"petra_{i:04d}_secretvalue_abcdef" for i in range(2000)]


def test_every_known_key_is_scrubbed_wherever_it_sits() -> None:
    """A key alone, inside other text, twice, or in a list is replaced; other text stays."""
    redactor = KeyRedactor()
    redactor.set_secrets([*KEYS, "tiny"])
    event = {
        "event": "x",
        "a": KEYS[1234],
        "b": f"Bearer {KEYS[7]}, again {KEYS[7]}.",
        "c": [f"key={KEYS[1999]}", 3],
        "d": "a tiny key",
        "e": "petra_0000_secretvalue_abcde",  # one character short of a key: not a key
    }
    scrubbed = redactor(None, "info", dict(event))
    assert scrubbed["a"] == REDACTED
    assert scrubbed["b"] == f"Bearer {REDACTED}, again {REDACTED}."
    assert scrubbed["c"] == [f"key={REDACTED}", 3]
    assert scrubbed["d"] == f"a {REDACTED} key"
    assert scrubbed["e"] == event["e"]


def test_a_longer_key_is_scrubbed_whole_even_when_a_shorter_one_is_its_prefix() -> None:
    """Overlapping keys leave no tail of the longer one behind."""
    redactor = KeyRedactor()
    redactor.set_secrets(["petra_abcdefgh", "petra_abcdefgh_longer"])
    assert redactor.scrub("x petra_abcdefgh_longer y") == f"x {REDACTED} y"


def test_json_lines_start_with_timestamp_level_event() -> None:
    """Each line is one JSON object whose first fields are timestamp, level and event."""
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    structlog.get_logger().warning("rate_limited", org="acme", retry_after_seconds=3)
    line = json.loads(stream.getvalue())
    assert list(line)[:3] == ["timestamp", "level", "event"]
    assert line["timestamp"].endswith("Z")
    assert line["level"] == "warning"
    assert line["org"] == "acme"


def test_no_key_survives_in_tracebacks_nested_values_or_objects_in_either_format() -> None:
    """Console and JSON lines scrub keys from tracebacks, dicts and objects turned to text."""
    from collector.logs import REDACTOR  # noqa: PLC0415 - the process-wide filter under test

    key = "petra_consoleleak0123456789abcdef"
    REDACTOR.set_secrets([key])  # tests/conftest.py forgets it after the test
    for fmt in ("console", "json"):
        stream = io.StringIO()
        configure_logging(fmt, "info", stream=stream)
        log = structlog.get_logger()
        try:
            raise ValueError(f"boom with {key}")  # noqa: TRY301 - a real traceback to log
        except ValueError:
            log.exception("poll_crashed", detail={"header": f"Bearer {key}"})
        log.error("odd", value=ValueError(key))
        text = stream.getvalue()
        assert "boom with" in text
        assert_no_key_material([key], text)
