"""The API key type: the one place a key's value lives.

Everything else sees `fingerprint`, a short hash that tells keys apart in
logs and on the status page without revealing any part of the key.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

FINGERPRINT_PREFIX: Final = "sha256:"
_ALLOWED = re.compile(r"[\x21-\x7e]+")


class InvalidKeyError(ValueError):
    """A key value that cannot be sent in an HTTP header."""


class ApiKey:
    """A Petra API key that never shows its value in repr, str or pickles."""

    __slots__ = ("_value", "fingerprint")

    def __init__(self, value: str) -> None:
        if not value:
            raise InvalidKeyError("the key is empty")
        if not _ALLOWED.fullmatch(value):
            # The message must not echo the value: it may be a real key with a typo.
            raise InvalidKeyError("the key contains spaces or non-printable characters")
        self._value = value
        self.fingerprint = fingerprint(value)

    def reveal(self) -> str:
        """The key itself; only the HTTP client and the redaction filter call this."""
        return self._value

    def __repr__(self) -> str:
        return f"ApiKey({self.fingerprint})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("API keys cannot be pickled")


def fingerprint(value: str) -> str:
    """A short, stable, one-way identifier of a key, safe to log and display."""
    return FINGERPRINT_PREFIX + hashlib.sha256(value.encode()).hexdigest()[:12]
