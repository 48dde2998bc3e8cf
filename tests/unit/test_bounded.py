"""The one rule of the bounded caches: keep while there is room, then stop growing."""

from __future__ import annotations

from collector.bounded import Table, keep


def test_a_full_table_makes_values_without_keeping_them() -> None:
    table: Table[int, float] = Table(float, 2)
    assert table[1] == 1.0
    assert table[2] == 2.0
    assert table[3] == 3.0
    assert sorted(table) == [1, 2]
    assert table[3] is not table[3]  # made each time, never kept
    assert table[1] is table[1]  # kept: the same object each time


def test_keep_stops_at_the_limit_and_drops_nothing() -> None:
    kept: dict[str, int] = {}
    for number, key in enumerate("abc"):
        keep(kept, key, number, 2)
    assert kept == {"a": 0, "b": 1}
