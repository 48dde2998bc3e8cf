"""Hypothesis strategies for outside input: JSON values of every shape, and keys."""

from __future__ import annotations

import os
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

from hypothesis import strategies as st

# Strings that parsers are known to get wrong: numbers in disguise, NaN and
# infinity spelt out, dates at the edges of what datetime can hold.
AWKWARD_TEXT: Final = (
    "",
    " ",
    "NaN",
    "nan",
    "-nan",
    "Infinity",
    "-Infinity",
    "inf",
    "1e999",
    "-1e999",
    "1e-999",
    "0x10",
    "1_000",
    " 42 ",
    "4" * 5000,
    "٣",  # an Arabic-Indic digit: str.isdigit() says yes
    "0001-01-01",
    "9999-12-31",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59.999999-23:59",
    "2026-02-30",
    "2026-06-01T12:00:00Z",
    "\x00",
    "\ud800",
    "true",
    "null",
)
AWKWARD_NUMBERS: Final = (
    10**400,
    -(10**400),
    2**63,
    -(2**63) - 1,
    float("nan"),
    float("inf"),
    float("-inf"),
    -0.0,
    5e-324,
    1.7976931348623157e308,
)


def examples(count: int) -> int:
    """`count`, times PETRA_PROPERTY_SCALE (1 unless set)."""
    return count * int(os.environ.get("PETRA_PROPERTY_SCALE", "1"))


def huge_integers() -> st.SearchStrategy[int]:
    """Integers too long for str() under Python's default digit limit (4300). Built,
    because Hypothesis prints its strategies and cannot print such a number."""
    return st.builds(pow, st.just(10), st.integers(4301, 6000))


def offsets() -> st.SearchStrategy[timezone]:
    return st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))


def date_texts() -> st.SearchStrategy[str]:
    """ISO 8601 dates and datetimes, naive and with offsets, over datetime's whole range."""
    moments = st.datetimes(timezones=st.none() | st.just(UTC) | offsets())
    return st.dates().map(lambda day: day.isoformat()) | moments.map(datetime.isoformat)


def scalars() -> st.SearchStrategy[object]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.sampled_from(AWKWARD_NUMBERS),
        st.text(max_size=12),
        st.sampled_from(AWKWARD_TEXT),
        date_texts(),
    )


def json_values(keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[object]:
    """Any value JSON (or YAML's JSON subset) can carry, nested, with mapping keys from `keys`."""
    names = st.text(max_size=8) if keys is None else keys | st.text(max_size=8)
    return st.recursive(
        scalars(),
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(names, children, max_size=4)
        ),
        max_leaves=10,
    )


KEY_ALPHABET: Final = string.ascii_uppercase + string.digits


def api_keys() -> st.SearchStrategy[str]:
    """Petra-shaped keys. Upper case and digits only, so no 8-character slice of one
    can occur by chance in the lower-case text of a message."""
    return st.text(KEY_ALPHABET, min_size=24, max_size=40).map(lambda tail: "petra_" + tail)
