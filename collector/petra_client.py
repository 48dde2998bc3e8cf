"""The Petra API client: one `aiohttp.ClientSession` for every org and route.

`fetch_usage`, `fetch_incidents` and `fetch_billing` share one request path,
so every route gets the same treatment of statuses, size caps, redirects and timeouts.
Every answer that is not a usable report raises one of the exception types
in `collector.petra_errors`.

Messages are for people and never contain the key: the key is only ever
placed in the Authorization header, and text the API sends back is
scrubbed of it before it is kept.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Final, TypeVar
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import orjson

from collector.apikey import ApiKey
from collector.config import ApiSettings
from collector.petra_billing import BillingFormatError, BillingReport, parse_billing_body
from collector.petra_errors import (
    BadResponse,
    Forbidden,
    KeyRejected,
    PetraError,
    RateLimited,
    Unavailable,
)
from collector.petra_incidents import (
    MAX_LIMIT,
    IncidentsFormatError,
    IncidentsReport,
    parse_incidents_body,
)
from collector.petra_usage import UsageFormatError, UsageReport, parse_usage_body

USAGE_PATH: Final = "/v1/usage"
INCIDENTS_PATH: Final = "/v1/incidents"
BILLING_PATH: Final = "/v1/billable-users"
RETRY_AFTER_HEADERS: Final = ("Retry-After-public-api", "Retry-After")
MAX_RETRY_AFTER_SECONDS: Final = 3600.0
ERROR_BODY_BYTES: Final = 16 * 1024
MESSAGE_CHARS: Final = 200
REDACTED: Final = "[redacted]"
_KEY_LIKE: Final = re.compile(r"petra_[A-Za-z0-9_]{4,}\S*")
_PIECE: Final = 8
_KEY_CHARACTERS: Final = re.compile(rf"[A-Za-z0-9_]{{{_PIECE},}}")


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait, from Petra's own header or a standard Retry-After.

    Accepts whole or fractional seconds and HTTP-dates; `now` is the wall
    clock (epoch seconds) that an HTTP-date is measured against. Waits are
    clamped to [0, MAX_RETRY_AFTER_SECONDS] so a wild value cannot silence
    an org for days.
    """
    for name in RETRY_AFTER_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        seconds = _retry_after_seconds(value.strip(), now)
        if seconds is not None:
            return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
    return None


def _retry_after_seconds(value: str, now: float) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        # asctime dates and "-0000" carry no zone; every HTTP-date is GMT, never local time.
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() - now


def scrub(text: str, key: ApiKey) -> str:
    """Remove the key, and anything shaped like a Petra key or a piece of this one,
    from text the API sent back, and keep it short."""
    secret = key.reveal()
    cleaned = text.replace(secret, REDACTED)
    cleaned = _KEY_LIKE.sub(REDACTED, cleaned)

    def piece_of_secret(match: re.Match[str]) -> str:
        # Any 8 characters of the key inside a run of key characters, whatever is
        # glued around it (`key=...`, `(...)`, a prefix the API adds).
        token = match.group()
        windows = (token[i : i + _PIECE] for i in range(len(token) - _PIECE + 1))
        return REDACTED if any(window in secret for window in windows) else token

    cleaned = _KEY_CHARACTERS.sub(piece_of_secret, cleaned)
    return " ".join(cleaned.split())[:MESSAGE_CHARS]


def api_message(body: bytes, key: ApiKey) -> str | None:
    """The human message in an error body (`message`, `error` or `detail`), scrubbed."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return scrub(text, key) or None if text and not text.startswith("<") else None
    if isinstance(data, dict):
        for field in ("message", "error", "detail"):
            value = data.get(field)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value.strip():
                return scrub(value, key)
    return None


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for `url`: `HTTPS_PROXY` for an https URL
    (`HTTP_PROXY` for http; lower case first), unless `NO_PROXY` exempts its host.
    Credentials in the proxy's URL (`http://user:password@proxy:3128`) are sent to
    the proxy (Proxy-Authorization), never to Petra; a proxy named without a scheme
    (`proxy:3128`) is an http one, as curl reads it."""
    parts = urlsplit(url)
    proxy = getproxies().get(parts.scheme)
    if not proxy or proxy_bypass(parts.hostname or ""):
        return None
    return proxy if "://" in proxy else "http://" + proxy


Report = TypeVar("Report")


class PetraClient:
    """Fetches `/v1/usage` and `/v1/incidents` for one key at a time over a shared session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        user_agent: str,
        timeout_seconds: float,
        max_response_bytes: int,
        wall_clock: Callable[[], float] = time.time,
        proxy_from_env: bool = False,
    ) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + USAGE_PATH
        self._incidents_url = base_url.rstrip("/") + INCIDENTS_PATH
        self._billing_url = base_url.rstrip("/") + BILLING_PATH
        # Read once here rather than per request: a session with trust_env=True looks the
        # proxy (and ~/.netrc) up in a thread for every request.
        self._proxy = env_proxy(self._url) if proxy_from_env else None
        self._host = urlsplit(base_url).hostname or ""
        self._user_agent = user_agent
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._timeout_seconds = timeout_seconds
        self._max_bytes = max_response_bytes
        self._wall_clock = wall_clock

    async def fetch_usage(self, key: ApiKey, previous: UsageReport | None = None) -> UsageReport:
        """One poll. Returns the report or raises a PetraError subclass.

        Tenants as `previous`'s (the org's kept report) are taken from it, not read
        again (`parse_usage_body`)."""

        def parse(body: bytes) -> UsageReport:
            return _parse_usage(body, previous)

        return await self._get(self._url, None, key, parse)

    async def fetch_incidents(
        self,
        key: ApiKey,
        *,
        start_date: str,
        limit: int = MAX_LIMIT,
        tenant_id: str | None = None,
    ) -> IncidentsReport:
        """Incidents created on or after `start_date` (ISO 8601), newest first, at most
        `limit`; one tenant's only when `tenant_id` is given. Raises a PetraError subclass."""
        params = {"startDate": start_date, "limit": str(limit)}
        if tenant_id is not None:
            params["tenantId"] = tenant_id
        return await self._get(self._incidents_url, params, key, _parse_incidents)

    async def fetch_billing(self, key: ApiKey, *, tenant_id: str) -> BillingReport:
        """One tenant's billable users and projected units (nothing personal kept).
        Raises a PetraError subclass."""

        def parse(body: bytes) -> BillingReport:
            try:
                return parse_billing_body(body, tenant_id)
            except BillingFormatError as error:
                raise BadResponse(f"unusable billable-users answer: {error}", status=200) from None

        return await self._get(self._billing_url, {"tenantId": tenant_id}, key, parse)

    async def _get(
        self,
        url: str,
        params: Mapping[str, str] | None,
        key: ApiKey,
        parse: Callable[[bytes], Report],
    ) -> Report:
        headers = {
            "Authorization": "Bearer " + key.reveal(),
            "User-Agent": self._user_agent,
            "Accept": "application/json",
        }
        try:
            async with self._session.get(
                url,
                params=params,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
                proxy=self._proxy,
            ) as response:
                if response.status == 200:
                    return parse(await self._read_capped(response))
                await self._raise_for(response, key)
        except PetraError:
            raise
        except TimeoutError:
            raise Unavailable(f"no complete answer within {self._timeout_seconds:g} s") from None
        except aiohttp.ClientConnectorError as error:
            reason = error.os_error.strerror or type(error.os_error).__name__
            raise Unavailable(f"cannot connect to {self._host}: {reason}") from None
        except aiohttp.ServerDisconnectedError:
            raise Unavailable("the server closed the connection without answering") from None
        except aiohttp.ClientPayloadError:
            raise Unavailable("the answer's body was cut short") from None
        except (aiohttp.ClientError, OSError) as error:
            raise Unavailable(f"request failed: {type(error).__name__}") from None
        raise AssertionError("unreachable: every non-200 status raises")  # pragma: no cover

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        length = response.content_length
        if length is not None and length > self._max_bytes:
            raise BadResponse(
                f"answer of {length} bytes is over the {self._max_bytes} byte cap",
                status=response.status,
            )
        if length is not None and "Content-Encoding" not in response.headers:
            return await response.read()
        # Chunked or compressed: Content-Length says nothing about what it unpacks
        # to, so count what is actually read (iter_chunked yields decompressed data).
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.content.iter_chunked(65536):
            total += len(chunk)
            if total > self._max_bytes:
                raise BadResponse(
                    f"answer is over the {self._max_bytes} byte cap", status=response.status
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def _raise_for(self, response: aiohttp.ClientResponse, key: ApiKey) -> None:
        status = response.status
        if 300 <= status < 400:
            target = urlsplit(response.headers.get("Location", "")).hostname or "elsewhere"
            raise BadResponse(
                f"redirected ({status}) to {target}; not followed, so the key is only "
                f"ever sent to {self._host}",
                status=status,
            )
        try:
            body = await asyncio.wait_for(response.content.read(ERROR_BODY_BYTES), 1.0)
        except (TimeoutError, aiohttp.ClientError):
            body = b""
        message = api_message(body, key)
        if status == 401:
            raise KeyRejected(message)
        if status == 403:
            raise Forbidden(
                "refused (403)"
                + (f": {message}" if message else "")
                + "; this is not a bad key but a refused client or a missing permission",
                status=403,
            )
        if status == 429:
            raise RateLimited(parse_retry_after(response.headers, self._wall_clock()))
        suffix = f": {message}" if message else ""
        if status >= 500:
            raise Unavailable(f"server error ({status}){suffix}", status=status)
        raise BadResponse(f"unexpected status {status}{suffix}", status=status)


def _parse_usage(body: bytes, previous: UsageReport | None = None) -> UsageReport:
    try:
        return parse_usage_body(body, previous)
    except UsageFormatError as error:
        raise BadResponse(f"unusable report: {error}", status=200) from None


def _parse_incidents(body: bytes) -> IncidentsReport:
    try:
        return parse_incidents_body(body)
    except IncidentsFormatError as error:
        raise BadResponse(f"unusable incidents answer: {error}", status=200) from None


def new_session() -> aiohttp.ClientSession:
    """The one HTTP session every org's requests share."""
    connector = aiohttp.TCPConnector(
        limit=0,  # the scheduler's `concurrency` semaphore is the limit
        ttl_dns_cache=300,
        keepalive_timeout=30,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        # HTTPS_PROXY / NO_PROXY are honoured by PetraClient(proxy_from_env=True), read
        # once; trust_env=True would look them up in a thread on every request.
        trust_env=False,
        raise_for_status=False,
        auto_decompress=True,
    )


def new_client(session: aiohttp.ClientSession, api: ApiSettings) -> PetraClient:
    """A client for the configured API over the shared session."""
    return PetraClient(
        session,
        base_url=api.base_url,
        user_agent=api.user_agent,
        timeout_seconds=api.timeout_seconds,
        max_response_bytes=api.max_response_bytes,
        proxy_from_env=True,
    )
