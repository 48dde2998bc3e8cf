"""HTTP basic auth against bcrypt hashes, without letting a flood of guesses stall the daemon.

A bcrypt check costs tens of milliseconds of CPU by design. Run on the event
loop, a burst of wrong passwords would stop polling and scraping for
everyone; so checks run on a thread of their own, at most `MAX_PENDING` at a
time (one running, the rest waiting), and a request beyond that is refused at
once without a check. A right answer is remembered, as exporter-toolkit
does, so Prometheus pays for bcrypt once and not on every scrape; the memory
holds an HMAC of (user, hash, password) under a key made at start-up, never
the password. An unknown user costs a check against a hash of the same cost,
so timing does not tell which users exist.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import bcrypt

from collector.bounded import keep

BCRYPT_HASH: Final = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
MAX_PENDING: Final = 4  # checks running or waiting; more are refused without a check
REMEMBERED_PAIRS: Final = 256  # good (user, password) pairs kept: one a user, the first 256
BCRYPT_MAX_PASSWORD_BYTES: Final = 72
CHECK_THREADS: Final = 1  # one core for bcrypt at most: the other stays with the event loop


class Verdict(enum.Enum):
    """The outcome of one request's credentials; the failures are the metric's `reason`."""

    OK = "ok"
    NO_CREDENTIALS = "no_credentials"
    INVALID = "invalid_credentials"
    OVERLOADED = "overloaded"


FAILURES: Final = tuple(v for v in Verdict if v is not Verdict.OK)


def bcrypt_cost(hashed: str) -> int | None:
    """The cost of a bcrypt hash, or None when the text is not one."""
    match = BCRYPT_HASH.fullmatch(hashed)
    return int(match.group(1)) if match else None


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` header, or None."""
    if header is None:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class BasicAuth:
    """Checks credentials against `users` (name -> bcrypt hash)."""

    __slots__ = ("_decoy", "_executor", "_hmac_key", "_pending", "_remembered", "_users")

    def __init__(self, users: Mapping[str, str], executor: ThreadPoolExecutor) -> None:
        self._users = {name: hashed.encode() for name, hashed in users.items()}
        self._executor = executor
        self._pending = 0
        self._hmac_key = secrets.token_bytes(32)
        self._remembered: dict[bytes, None] = {}
        costs = [bcrypt_cost(hashed) or 10 for hashed in users.values()]
        # Unknown users are checked against this, at the users' highest cost.
        self._decoy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(max(costs, default=10)))

    @property
    def users(self) -> dict[str, str]:
        """user -> bcrypt hash."""
        return {user: hashed.decode() for user, hashed in self._users.items()}

    def _pair_id(self, user: str, hashed: bytes, password: str) -> bytes:
        message = b"\0".join((user.encode(), hashed, password.encode()))
        return hmac.new(self._hmac_key, message, hashlib.sha256).digest()

    async def check(self, header: str | None) -> Verdict:
        """The verdict on one request's `Authorization` header."""
        credentials = parse_basic(header)
        if credentials is None:
            return Verdict.NO_CREDENTIALS
        user, password = credentials
        known = self._users.get(user)
        hashed = self._decoy if known is None else known
        pair = self._pair_id(user, hashed, password)
        if known is not None and pair in self._remembered:
            return Verdict.OK
        if self._pending >= MAX_PENDING:
            return Verdict.OVERLOADED
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            matches = await loop.run_in_executor(
                self._executor, _matches, password.encode(), hashed
            )
        finally:
            self._pending -= 1
        if not matches or known is None:
            return Verdict.INVALID
        keep(self._remembered, pair, None, REMEMBERED_PAIRS)
        return Verdict.OK


def _matches(password: bytes, hashed: bytes) -> bool:
    """bcrypt's verdict; a password over bcrypt's 72 bytes is wrong (as in Go) but costs the
    same check, on its first 72 bytes, so its length is not told by the timing either."""
    right = bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD_BYTES], hashed)
    return right and len(password) <= BCRYPT_MAX_PASSWORD_BYTES


def new_check_executor() -> ThreadPoolExecutor:
    """The thread bcrypt runs on: not the loop's default one, which DNS lookups share."""
    return ThreadPoolExecutor(max_workers=CHECK_THREADS, thread_name_prefix="basic-auth")
