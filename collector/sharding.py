"""Which instance owns which org when organizations are sharded across replicas.

Rendezvous (highest-random-weight) hashing: every org goes to exactly one
shard, the answer depends only on the org's name and the shard count, and
growing from N to N+1 shards moves only about 1/(N+1) of the orgs.
"""

from __future__ import annotations

import hashlib


def shard_of(name: str, count: int) -> int:
    """The index (0..count-1) of the shard that owns the org `name`."""
    if count < 1:
        raise ValueError("shard count must be at least 1")
    best_index, best_score = 0, b""
    for index in range(count):
        score = hashlib.sha256(f"{index}\x00{name}".encode()).digest()
        if score > best_score:
            best_index, best_score = index, score
    return best_index


def owns(index: int, count: int, name: str) -> bool:
    return shard_of(name, count) == index
