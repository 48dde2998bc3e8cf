"""Which instances own which org when organizations are sharded across replicas.

Rendezvous (highest-random-weight) hashing: every shard gets a score per org
from the org's name and the shard's index alone, and the org belongs to the
`copies` shards with the highest scores. So the answer depends only on the
name, the shard count and the copies, the owners are distinct shards, and
growing from N to N+1 shards moves an org only where the new shard enters its
top `copies` (about copies/(N+1) of the orgs lose one owner to the new shard).
"""

from __future__ import annotations

import hashlib


def owners_of(name: str, count: int, copies: int = 1) -> tuple[int, ...]:
    """The indexes (0..count-1) of the shards that own `name`, best score first.

    `copies` above `count` means every shard: there are no more owners to give.
    """
    if count < 1:
        raise ValueError("shard count must be at least 1")
    if copies < 1:
        raise ValueError("copies must be at least 1")
    ranked = sorted(range(count), key=lambda index: _score(index, name), reverse=True)
    return tuple(ranked[:copies])


def shard_of(name: str, count: int) -> int:
    """The index of the one shard that owns `name` when there is one copy."""
    return owners_of(name, count)[0]


def owns(index: int, count: int, name: str, copies: int = 1) -> bool:
    return index in owners_of(name, count, copies)


def _score(index: int, name: str) -> bytes:
    return hashlib.sha256(f"{index}\x00{name}".encode()).digest()
