"""Freed heap memory handed back to the operating system (glibc's `malloc_trim`).

glibc keeps what the process frees for reuse and gives back to the system only
the top of its heap. A first `/metrics` render makes and drops more than a
hundred megabytes of text in pieces of a few kilobytes each, between objects
that live on, so those pages would stay in the daemon's RSS for good (about
100 MB at 20,000 orgs x 10 tenants). `malloc_trim(0)` releases every free page
of the heap; it takes a few milliseconds even for a heap of several hundred
megabytes, and the daemon calls it after each render and every few seconds
(memory_gc.keep_settled). With another C library (musl, macOS) there is no such
call and `trim()` does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Final


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


_MALLOC_TRIM: Final = _malloc_trim()
AVAILABLE: Final = _MALLOC_TRIM is not None


def trim() -> bool:
    """Give free heap pages back to the system; True when some were."""
    return _MALLOC_TRIM is not None and _MALLOC_TRIM(0) == 1
