"""Rendezvous hashing with copies, for any org names, shard counts and copies."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.sharding import owners_of, owns
from tests.property.strategies import examples

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=30)
COUNTS = st.integers(min_value=1, max_value=12)
COPIES = st.integers(min_value=1, max_value=4)


@settings(max_examples=examples(300))
@given(name=NAMES, count=COUNTS, copies=COPIES)
def test_owners_are_distinct_shards_as_many_as_copies(name: str, count: int, copies: int) -> None:
    """`copies` different shards own each org (all of them when there are fewer)."""
    owners = owners_of(name, count, copies)
    assert len(owners) == min(copies, count)
    assert len(set(owners)) == len(owners)
    assert all(0 <= index < count for index in owners)
    assert [index for index in range(count) if owns(index, count, name, copies)] == sorted(owners)


@settings(max_examples=examples(300))
@given(name=NAMES, count=COUNTS, copies=COPIES)
def test_more_copies_keep_the_owners_of_fewer(name: str, count: int, copies: int) -> None:
    """The first owners stay when copies grow: one copy's owner is every setting's first."""
    assert owners_of(name, count, copies + 1)[:copies] == owners_of(name, count, copies)


@settings(max_examples=examples(300))
@given(name=NAMES, count=COUNTS, copies=COPIES)
def test_a_new_shard_takes_orgs_only_for_itself(name: str, count: int, copies: int) -> None:
    """From N to N+1 shards an org keeps its owners, or trades one of them for the new shard."""
    before = set(owners_of(name, count, copies))
    after = set(owners_of(name, count + 1, copies))
    assert after - before <= {count}
    assert len(before - after) <= 1
