"""Why a poll produced no report.

The scheduler branches on these classes, never on message strings::

    PetraError                 .code is the `code` label of petra_api_requests_total
    ├── KeyRejected            401: key invalid, missing or deleted
    ├── Forbidden              403: refused (missing User-Agent, permissions)
    ├── RateLimited            429: .retry_after seconds, or None when not said
    ├── Unavailable            5xx, timeout, connection refused or reset
    └── BadResponse            any other status (3xx included: a redirect is
                               never followed, so the key stays with base_url),
                               a body over the size cap, not JSON, wrong shape

"""

from __future__ import annotations


class PetraError(Exception):
    """A poll that did not produce a report."""

    code: str = "error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        if status is not None:
            self.code = str(status)


class KeyRejected(PetraError):
    """401: the key is invalid, missing or deleted."""

    def __init__(self, api_message: str | None) -> None:
        super().__init__(
            "key rejected (401)" + (f": {api_message}" if api_message else ""), status=401
        )
        self.api_message = api_message


class Forbidden(PetraError):
    """403: refused for a reason other than the key (a client bug or permissions)."""


class RateLimited(PetraError):
    """429: the per-key budget is used up; `retry_after` is None when the API gave no wait."""

    def __init__(self, retry_after: float | None) -> None:
        wait = "no wait given" if retry_after is None else f"retry after {retry_after:g} s"
        super().__init__(f"rate limited (429), {wait}", status=429)
        self.retry_after = retry_after


class Unavailable(PetraError):
    """Transient: a 5xx, a timeout, or a connection that failed or broke."""


class BadResponse(PetraError):
    """An answer we cannot use: unexpected status, redirect, too large, not a report."""
