"""The one assertion every leak test makes: no key, nor any 8-character slice of one.

Use it for anything a key could reach: log lines, pages, metrics, error
messages and reprs, the config's warnings, a state file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from collector.state_journal import read_journal

SLICE = 8


def key_slices(key: str) -> set[str]:
    return {key[i : i + SLICE] for i in range(len(key) - SLICE + 1)}


def assert_no_key_material(keys: Iterable[str], *texts: str) -> None:
    """Fail, naming the slice but never the whole key, if any text holds key material."""
    for key in keys:
        for text in texts:
            for piece in key_slices(key):
                if piece in text:
                    where = text.index(piece)
                    context = text[max(0, where - 40) : where].replace("\n", " ")
                    raise AssertionError(f"key material found after: ...{context!r}")


def state_file_texts(path: Path) -> tuple[str, str]:
    """What a state file holds, for `assert_no_key_material`: its bytes as they are on
    disk, and its records as a reader rebuilds them (deltas inflated)."""
    data = path.read_bytes()
    records = read_journal(data).records.values()
    return data.decode("latin-1"), b"\n".join(records).decode()
