"""The one rule of every bounded cache here: keep what was made while there is room, then
stop growing, and make what is missing each time it is asked for.

Each holds the result of a pure function of its key (a text's kept copy, a date's
epoch seconds, the verdict on a user's password), so nothing kept goes stale and
nothing has to be dropped. Polling reads the same fleet in the same order every
cycle: a cache that evicts (least recently used first, or emptied when full) keeps
nothing of a cycle longer than its bound, as the value it needs next is always one it
has just dropped; one that stops growing keeps serving the first `limit` values, and a
hit is the dictionary's own lookup, in C.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


def keep(kept: dict[_Key, _Value], key: _Key, value: _Value, limit: int) -> None:
    """Keep `value` under `key` while `kept` has fewer than `limit` entries.

    When it is full, nothing more is kept. A function on a plain dict, not a method:
    `kept[key]` on an exact dict takes the interpreter's fast path, which a subclass
    loses (the parse looks dates up inline).
    """
    if len(kept) < limit:
        kept[key] = value


class Table(dict[_Key, _Value], Generic[_Key, _Value]):
    """`table[key]`: the value made of `key`, made the first time and kept while there
    is room (beyond, made every time)."""

    __slots__ = ("_limit", "_make")

    def __init__(self, make: Callable[[_Key], _Value], limit: int) -> None:
        super().__init__()
        self._make = make
        self._limit = limit

    def __missing__(self, key: _Key) -> _Value:
        value = self._make(key)  # may raise (an int too large for a float): kept nothing
        keep(self, key, value, self._limit)
        return value
