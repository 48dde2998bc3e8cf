"""A gzip member joined from separately deflated pieces is valid gzip of their text."""

from __future__ import annotations

import gzip
import random
import zlib
from collections.abc import Callable

import pytest

from collector import gzipstream
from collector.gzipstream import (
    GzipMember,
    crc32_combine,
    crc32_shift,
    deflate,
    inflate,
    kept_shift,
    python_crc32_combine,
)

TEXTS = [b"", b"a", b"# HELP x y\n", bytes(range(256)) * 40, b"\n" * 70_000]


def _stream_decompress(member: bytes) -> bytes:
    """Decompress as a scraper does, one stream: the CRC and length are checked at the end."""
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    text = stream.decompress(member)
    assert stream.eof
    assert not stream.unused_data
    return text


# The one in use (ISA-L's when installed) and the Python one, the fallback without it.
COMBINES = pytest.mark.parametrize(
    "combine", [crc32_combine, python_crc32_combine], ids=["in-use", "python"]
)


@COMBINES
@pytest.mark.parametrize("split", [0, 1, 7, 1000, 65_537])
def test_crc32_combine_matches_zlib(combine: Callable[[int, int, int], int], split: int) -> None:
    """Combining the CRCs of two parts gives the CRC of their concatenation."""
    data = bytes(range(256)) * 300
    first, second = data[:split], data[split:]
    combined = combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(data)


@COMBINES
def test_crc32_combine_of_random_parts(combine: Callable[[int, int, int], int]) -> None:
    """Random contents and lengths, including lengths past 2**16 and odd bit patterns."""
    rng = random.Random(9)  # noqa: S311 - reproducible test data, not secrets
    for _ in range(50):
        first = rng.randbytes(rng.randrange(0, 3000))
        second = rng.randbytes(rng.choice([1, 2, 3, 255, 4096, 70_001]))
        combined = combine(zlib.crc32(first), zlib.crc32(second), len(second))
        assert combined == zlib.crc32(first + second)


@pytest.mark.parametrize("text", TEXTS, ids=lambda t: f"{len(t)}-bytes")
def test_a_deflated_piece_inflates_to_its_text(text: bytes) -> None:
    """`deflate` and `inflate` round-trip, and a piece ends on a byte boundary (sync flush)."""
    piece = deflate(text)
    assert inflate(piece) == text
    assert piece.endswith(b"\x00\x00\xff\xff")  # the empty stored block of a sync flush


def test_a_member_of_pieces_is_gzip_of_their_concatenation() -> None:
    """Pieces added as text, as text with a kept deflate, and only compressed, in any mix."""
    member = GzipMember()
    for index, text in enumerate(TEXTS):
        if index % 3 == 0:
            member.add(text)
        elif index % 3 == 1:
            member.add(text, deflate(text))
        else:
            member.add_deflated(deflate(text), zlib.crc32(text), len(text))
    body = b"".join(member.finish())
    assert gzip.decompress(body) == b"".join(TEXTS)
    assert _stream_decompress(body) == b"".join(TEXTS)


def test_an_empty_member_is_valid_gzip() -> None:
    """No pieces at all: still a member that decompresses to nothing."""
    assert _stream_decompress(b"".join(GzipMember().finish())) == b""


def test_a_wrong_crc_is_caught_by_the_reader() -> None:
    """The trailer is really checked: a piece added with a wrong CRC makes the member fail."""
    member = GzipMember()
    member.add_deflated(deflate(b"abc"), zlib.crc32(b"abx"), 3)
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(b"".join(member.finish()))


def test_crc32_combine_with_a_kept_shift_is_the_same() -> None:
    rng = random.Random(7)  # noqa: S311 - test data, not secrets
    for _ in range(20):
        first, second = rng.randbytes(rng.randrange(100)), rng.randbytes(rng.randrange(1, 5000))
        shift = crc32_shift(len(second))
        crcs = zlib.crc32(first), zlib.crc32(second), len(second)
        assert python_crc32_combine(*crcs, shift) == zlib.crc32(first + second)
        assert crc32_combine(*crcs, kept_shift(len(second))) == zlib.crc32(first + second)


def test_a_shift_is_kept_only_where_combining_runs_in_python() -> None:
    """With ISA-L the native combine needs no shift, and none is worked out for nothing."""
    expected = None if gzipstream.CODEC == "isal" else crc32_shift(4096)
    assert kept_shift(4096) == expected
