"""What the Petra client reads from an answer besides the report: the wait
headers of a 429 and the message of an error body. Any value is a bounded
wait or none, and no message carries the key."""

from __future__ import annotations

import email.utils
import json
import math
from datetime import UTC, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from collector.apikey import ApiKey
from collector.petra_client import (
    MAX_RETRY_AFTER_SECONDS,
    RETRY_AFTER_HEADERS,
    api_message,
    parse_retry_after,
)
from tests.leaks import assert_no_key_material
from tests.property.strategies import AWKWARD_TEXT, api_keys, examples, scalars

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp()

http_dates = st.datetimes(
    min_value=datetime(1, 1, 2),  # noqa: DTZ001 - naive bounds; the zone comes from `timezones`
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001 - as above
    timezones=st.just(UTC),
).map(lambda moment: email.utils.format_datetime(moment, usegmt=True))
header_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(AWKWARD_TEXT),
    st.floats().map(str),
    st.integers().map(str),
    http_dates,
    http_dates.map(lambda text: text.replace("GMT", "-0000")),
    st.datetimes().map(lambda moment: moment.strftime("%a %b %d %H:%M:%S %Y")),  # asctime
)
header_sets = st.dictionaries(
    st.sampled_from([*RETRY_AFTER_HEADERS, "X-Other"]), header_values, max_size=3
)


@settings(max_examples=examples(300))
@given(header_sets, st.floats(0, 2**33))
@example({"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}, NOW)
@example({"Retry-After": "Mon, 01 Jan 0001 00:00:00 +2359"}, NOW)
@example({"Retry-After": "1e400"}, NOW)
@example({"Retry-After-public-api": "nan", "Retry-After": "7"}, NOW)
def test_any_wait_header_is_a_bounded_wait_or_none(headers: dict[str, str], now: float) -> None:
    """Seconds, fractions, HTTP-dates in every form, garbage: within [0, 1 h], or None."""
    wait = parse_retry_after(headers, now)
    if wait is None:
        return
    assert math.isfinite(wait)
    assert 0.0 <= wait <= MAX_RETRY_AFTER_SECONDS


@settings(max_examples=examples(300))
@given(st.floats(0, 3600), st.floats(0, 2**33))
def test_a_wait_in_seconds_is_read_exactly(seconds: float, now: float) -> None:
    """A plain number of seconds is the wait, whatever the clock says."""
    assert parse_retry_after({"Retry-After": repr(seconds)}, now) == seconds


@settings(max_examples=examples(300))
@given(st.integers(0, 3600))
def test_an_http_date_is_measured_from_now(seconds: int) -> None:
    """An HTTP-date `seconds` ahead of the clock is a wait of `seconds`."""
    moment = datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=seconds)
    header = email.utils.format_datetime(moment, usegmt=True)
    assert parse_retry_after({"Retry-After": header}, NOW) == float(seconds)


def pieces(key: str) -> st.SearchStrategy[str]:
    """The key, or a piece of it of 8 characters or more, as an API might echo it."""
    return st.integers(0, len(key) - 8).flatmap(
        lambda start: st.integers(start + 8, len(key)).map(lambda end: key[start:end])
    )


@st.composite
def echoing_bodies(draw: st.DrawFn, key: str) -> bytes:
    """Error bodies that quote the key or pieces of it, as words or behind punctuation."""
    words = st.text(st.characters(codec="ascii", categories=["L", "N", "P", "Zs"]), max_size=8)
    quoted = pieces(key).flatmap(
        lambda piece: st.sampled_from(
            [piece, f"'{piece}'", f"({piece})", f"{piece}.", f"key={piece}", f"...{piece}"]
        )
    )
    message = " ".join(draw(st.lists(quoted | words, min_size=1, max_size=6)))
    shape = draw(st.sampled_from(["message", "error", "detail", "nested", "text"]))
    if shape == "text":
        return message.encode()
    if shape == "nested":
        return json.dumps({"error": {"message": message}}).encode()
    return json.dumps({shape: message, "other": draw(scalars())}).encode()


@settings(max_examples=examples(150))
@given(st.data(), api_keys())
def test_error_messages_never_carry_the_key(data: st.DataObject, key: str) -> None:
    """Whatever an error body quotes of the key, the message kept from it has none of it."""
    body = data.draw(echoing_bodies(key))
    message = api_message(body, ApiKey(key))
    if message is not None:
        assert_no_key_material([key], message)


@settings(max_examples=examples(300))
@given(st.binary(max_size=300), api_keys())
def test_any_error_body(body: bytes, key: str) -> None:
    """Bytes of any kind as an error body: a short message or none, never a crash."""
    message = api_message(body, ApiKey(key))
    assert message is None or len(message) <= 200
