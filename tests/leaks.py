"""The one assertion every leak test makes: no key, nor any 8-character slice of one.

Use it for anything a key could reach: log lines, pages, metrics, error
messages and reprs, the config's warnings, a state file.
"""

from __future__ import annotations

from collections.abc import Iterable

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
