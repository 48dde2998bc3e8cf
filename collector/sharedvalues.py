"""One copy of the values that recur across tenants, for the reports that live on.

A report is parsed into new objects every poll: each tenant's `service` and
`billable_status` (a handful of distinct texts across a whole fleet) and its
counts and ratios (small numbers, the same few hundred everywhere) would be new
strings and floats, 24-70 bytes each, in every kept report. petra_usage.py takes them
from the tables here as it reads a tenant (a dictionary lookup a field, in C), so
the fleet holds each such value once: about 40 MB less at 20,000 orgs x 10
tenants, for no second pass over a report whose tenants changed. Dates are
shared by petra_usage.py's own table of parsed dates. `shared_number`/`shared_text`
do the same for values that came another way (the state file's, whose counts
are floats already: they share a table of their own, a few hundred values).

Each table stops growing at its bound, after which values are made as they
come (bounded.py's rule). Zero is never shared among floats that came as floats
(0.0 and -0.0 are one key but two values), nor NaN; a whole number from JSON is
never -0.0.
"""

from __future__ import annotations

import math
from typing import Final, TypeVar

from collector.bounded import Table

_Value = TypeVar("_Value")

TEXTS_KEPT: Final = 4096
NUMBERS_KEPT: Final = 65536


def _itself(value: _Value) -> _Value:
    return value


def _percent(whole: int) -> float:
    return float(whole) / 100.0


# A non-empty text, as it came. Keyed by the text: the first copy seen is the one kept.
TEXTS: Final[Table[str, str]] = Table(_itself, TEXTS_KEPT)
# A whole number from JSON (a count) as the float that is kept, and a whole percentage
# as its ratio. Keyed by the int; float() may raise OverflowError, as it would inline.
FLOATS_OF_INTS: Final[Table[int, float]] = Table(float, NUMBERS_KEPT)
RATIOS_OF_INTS: Final[Table[int, float]] = Table(_percent, NUMBERS_KEPT)
# Floats that came as floats (the state file's), for `shared_number`.
NUMBERS: Final[Table[float, float]] = Table(_itself, NUMBERS_KEPT)


def shared_text(value: str | None) -> str | None:
    """The kept copy of a text from elsewhere (None and "" as they are)."""
    return TEXTS[value] if value else value


def shared_number(value: float | None) -> float | None:
    """The kept copy of a float from elsewhere (None, 0.0, -0.0 and NaN as they are)."""
    return value if not value or math.isnan(value) else NUMBERS[value]
