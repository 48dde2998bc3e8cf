"""One gzip member assembled from separately deflated pieces (no I/O).

Each piece is raw deflate ended with a sync flush, so pieces concatenate into
one valid deflate stream; a piece that did not change is reused as it is, and
the member's CRC-32 is combined from the pieces' CRCs (`crc32_combine`) rather
than recomputed over text that is only kept compressed.

Deflate is ISA-L's (`isal`, a dependency where it ships a wheel) when installed: at level 1 it is
about four times quicker than zlib's and no bigger, and the first scrape of a large
fleet compresses a hundred megabytes or more. Without it, the stdlib's zlib.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

__all__ = [
    "CODEC",
    "HEADER",
    "LEVEL",
    "GzipMember",
    "crc32",  # ISA-L's when installed: the same numbers as zlib's, faster
    "crc32_combine",
    "crc32_shift",
    "deflate",
    "inflate",
    "kept_shift",
    "python_crc32_combine",
]

try:
    from isal.isal_zlib import Z_SYNC_FLUSH, compressobj, crc32, decompressobj
    from isal.isal_zlib import crc32_combine as _native_combine

    CODEC: Final = "isal"  # which deflate this process uses
except ImportError:  # no isal wheel for this platform (pyproject.toml): the stdlib's zlib
    # The same calls; mypy sees stdlib types where it saw ISA-L's.
    from zlib import Z_SYNC_FLUSH, compressobj, crc32, decompressobj  # type: ignore[assignment]

    CODEC = "zlib"  # type: ignore[misc]  # the other branch of the one assignment
    _native_combine = None  # type: ignore[assignment]  # the stdlib has no crc32_combine

LEVEL: Final = 1  # level 1 is several times cheaper than 9 and close in size
# Member header: magic, deflate, no flags, no mtime, "fastest" (level 1), unknown OS.
HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
_RAW: Final = -zlib.MAX_WBITS  # raw deflate: no zlib or gzip framing of its own
_END: Final = zlib.compressobj(LEVEL, zlib.DEFLATED, _RAW).flush()  # an empty final block


def deflate(text: bytes) -> bytes:
    """Raw deflate of `text` alone, ending on a byte boundary without a final block."""
    compressor = compressobj(LEVEL, zlib.DEFLATED, _RAW)
    return compressor.compress(text) + compressor.flush(Z_SYNC_FLUSH)


def inflate(deflated: bytes) -> bytes:
    """The text of a piece made by `deflate`."""
    return decompressobj(_RAW).decompress(deflated)


class GzipMember:
    """Collects pieces in order; `finish()` gives the member's bytes, in parts."""

    __slots__ = ("_crc", "_parts", "_size")

    def __init__(self) -> None:
        self._parts = [HEADER]
        self._crc = 0
        self._size = 0

    def add(self, text: bytes, deflated: bytes | None = None) -> None:
        """Append `text`; `deflated` is its `deflate()` when the caller kept one."""
        self._parts.append(deflate(text) if deflated is None else deflated)
        self._crc = crc32(text, self._crc)
        self._size += len(text)

    def add_deflated(self, deflated: bytes, crc: int, size: int, shift: int | None = None) -> None:
        """Append a piece known only compressed, from its text's CRC-32 and length
        (and its `kept_shift(size)`, when the caller kept it)."""
        self._parts.append(deflated)
        self._crc = crc32_combine(self._crc, crc, size, shift)
        self._size += size

    def finish(self) -> list[bytes]:
        """The member: header, the pieces, the final block and the CRC/length trailer."""
        trailer = struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)
        return [*self._parts, _END, trailer]


# CRC-32 of a concatenation from the parts' CRCs: ISA-L's crc32_combine when installed
# (about half a microsecond), else zlib's algorithm in Python, which Python's zlib module
# does not offer: multiplication by x^(8 * len2) modulo the CRC polynomial.
_CRC_POLY: Final = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1


def _powers() -> tuple[int, ...]:
    powers, p = [], 1 << 30  # x^1
    for _ in range(32):
        powers.append(p)
        p = _multmodp(p, p)
    return tuple(powers)


_X2N: Final = _powers()  # x^(2^n) modulo the polynomial


def crc32_shift(length: int) -> int:
    """x^(8 * length) modulo the CRC polynomial: what `python_crc32_combine` multiplies
    by for a second part of `length` bytes."""
    p, k, n = 1 << 31, 3, length  # x^0; k = 3: lengths count bytes, x^(8n) = x^(2^3 n)
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return p


def kept_shift(length: int) -> int | None:
    """What to keep beside a part of `length` bytes that is combined again and again:
    its `crc32_shift` when combining runs in Python (one multiplication instead of one
    per bit of the length), nothing when ISA-L combines."""
    return crc32_shift(length) if _native_combine is None else None


def python_crc32_combine(crc1: int, crc2: int, len2: int, shift: int | None = None) -> int:
    """The CRC-32 of A + B, from crc1 = crc32(A), crc2 = crc32(B) and len2 = len(B);
    `shift` is `crc32_shift(len2)` when the caller has it."""
    if len2 <= 0:
        return crc1
    return _multmodp(crc32_shift(len2) if shift is None else shift, crc1) ^ crc2


def crc32_combine(crc1: int, crc2: int, len2: int, shift: int | None = None) -> int:
    """`python_crc32_combine`, by ISA-L when installed (which needs no `shift`)."""
    if _native_combine is None or len2 <= 0:
        return python_crc32_combine(crc1, crc2, len2, shift)
    return _native_combine(crc1, crc2, len2)
