"""The Petra client: Retry-After parsing, key scrubbing, and status -> exception mapping.

The client is run against tiny aiohttp servers on 127.0.0.1 (and once against
the simulator), so every answer a real API could give is produced by a real
HTTP exchange.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict
from yarl import URL

from collector.apikey import ApiKey
from collector.petra_client import (
    MAX_RETRY_AFTER_SECONDS,
    MESSAGE_CHARS,
    REDACTED,
    PetraClient,
    api_message,
    env_proxy,
    parse_retry_after,
    scrub,
)
from collector.petra_errors import (
    BadResponse,
    Forbidden,
    KeyRejected,
    PetraError,
    RateLimited,
    Unavailable,
)
from collector.petra_incidents import IncidentsReport
from collector.petra_simulator import (
    RateLimitFault,
    ResetFault,
    SimulatedOrg,
    Simulator,
    start_simulator,
)
from collector.petra_usage import UsageReport
from tests.leaks import assert_no_key_material
from tests.processes import free_port
from tests.webtls import basic_auth

KEY_TEXT = "petra_live_Hq7Wm2Xc9Rt4Lp1Zs8Nd6Vb3Kf0Gj5Ya"
KEY = ApiKey(KEY_TEXT)
WALL = 1_795_671_116.0  # 2026-11-26T05:31:56Z
USER_AGENT = "petra-collector-tests/1.0"
CAP = 4096

START_DATE = "2026-10-27T05:31:56.000Z"
INCIDENTS: dict[str, object] = {
    "incidents": [
        {
            "id": "48f3708e",
            "createdAt": "2026-11-25T03:55:06.050Z",
            "remediationStatus": "REMEDIATED",
            "tenant": {"petraTenantId": "ZZk90t"},
            "user": {"mail": "askywalker@acmecorp.com"},
        }
    ]
}
REPORT: dict[str, object] = {
    "asOf": "2026-11-26",
    "reportGeneratedAt": "2026-11-26T05:31:56Z",
    "organizationName": "Acme MSP",
    "totalTenants": 1,
    "tenants": [{"petraTenantId": "ZZk90t", "totalLicensedUsers": 120}],
}


def assert_error_hides_key(error: BaseException) -> None:
    """Neither str, repr, args nor `message` of an error shows the key."""
    assert_no_key_material([KEY_TEXT], str(error))
    assert_no_key_material([KEY_TEXT], repr(error))
    assert_no_key_material([KEY_TEXT], repr(error.args))
    if isinstance(error, PetraError):
        assert_no_key_material([KEY_TEXT], error.message)
    if isinstance(error, KeyRejected) and error.api_message is not None:
        assert_no_key_material([KEY_TEXT], error.api_message)


# -- parse_retry_after -------------------------------------------------------------------------


def http_date(epoch: float) -> str:
    """An IMF-fixdate as servers send it."""
    return email.utils.formatdate(epoch, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After-public-api": "7", "Retry-After": "30"}, 7.0),
        ({"Retry-After": "30"}, 30.0),
        ({"Retry-After-public-api": "12"}, 12.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": " 4 "}, 4.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": http_date(WALL + 120)}, 120.0),
        ({"Retry-After": "Thu, 26 Nov 2026 06:33:56 +0100"}, 120.0),
        ({"Retry-After": http_date(WALL - 500)}, 0.0),
        ({"Retry-After": "-5"}, 0.0),
        ({"Retry-After": "999999"}, MAX_RETRY_AFTER_SECONDS),
        ({"Retry-After": http_date(WALL + 86400 * 30)}, MAX_RETRY_AFTER_SECONDS),
        ({"Retry-After": "1e308"}, MAX_RETRY_AFTER_SECONDS),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({}, None),
        ({"Retry-After-public-api": "later", "Retry-After": "9"}, 9.0),
        ({"Retry-After-public-api": "NaN", "Retry-After": "9"}, 9.0),
    ],
    ids=[
        "petra-header-wins",
        "standard-seconds",
        "petra-seconds",
        "fractional",
        "padded",
        "zero",
        "http-date",
        "http-date-with-offset",
        "http-date-in-the-past",
        "negative",
        "huge-seconds",
        "far-http-date",
        "enormous-number",
        "garbage",
        "empty",
        "nan",
        "inf",
        "no-header",
        "unreadable-petra-header-falls-back",
        "nan-petra-header-falls-back",
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    """Petra's header wins; seconds or HTTP-dates; clamped to [0, max]; garbage is None."""
    assert parse_retry_after(headers, WALL) == expected


def test_parse_retry_after_header_names_are_case_insensitive() -> None:
    """With aiohttp's case-insensitive headers, lower-case header names are found."""
    headers = CIMultiDict({"retry-after-public-api": "3", "retry-after": "30"})
    assert parse_retry_after(headers, WALL) == 3.0


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """Run the test in a local time zone five hours east of UTC."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", "XYZ-05")
    time.tzset()
    yield
    mp.undo()
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
@pytest.mark.parametrize(
    "value",
    [
        "Thu, 26 Nov 2026 05:33:56 GMT",  # IMF-fixdate
        "Thursday, 26-Nov-26 05:33:56 GMT",  # RFC 850, obsolete but must be accepted
        "Thu Nov 26 05:33:56 2026",  # asctime, obsolete, no zone: it is GMT
        "Thu, 26 Nov 2026 05:33:56 -0000",  # "-0000": GMT with unknown local zone
    ],
    ids=["imf-fixdate", "rfc850", "asctime", "minus-zero"],
)
def test_http_dates_are_gmt_whatever_the_local_zone(value: str) -> None:
    """Every HTTP-date form is read as GMT, not as the host's local time."""
    assert parse_retry_after({"Retry-After": value}, WALL) == 120.0


# -- scrub and api_message ---------------------------------------------------------------------


def test_scrub_removes_every_copy_of_the_key() -> None:
    """scrub replaces the key wherever it occurs, collapses whitespace and shortens."""
    text = f"key {KEY_TEXT} is\n\tdeleted; you sent Bearer {KEY_TEXT}"
    assert scrub(text, KEY) == f"key {REDACTED} is deleted; you sent Bearer {REDACTED}"
    assert len(scrub("x" * 1000, KEY)) == MESSAGE_CHARS


def test_scrub_cannot_leak_a_key_cut_at_the_length_limit() -> None:
    """The key is removed before shortening, so no prefix of it survives the cut."""
    text = "e" * (MESSAGE_CHARS - 10) + KEY_TEXT
    cleaned = scrub(text, KEY)
    assert_no_key_material([KEY_TEXT], cleaned)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"message": "Invalid API key"}', "Invalid API key"),
        (b'{"error": "Unauthorized"}', "Unauthorized"),
        (b'{"detail": "Key was deleted"}', "Key was deleted"),
        (b'{"error": {"code": 401, "message": "nested"}}', "nested"),
        (b'{"message": "", "error": "fallback"}', "fallback"),
        (b'{"message": 401}', None),
        (b'{"status": 401}', None),
        (b"[]", None),
        (b"", None),
        (b"Unauthorized", "Unauthorized"),
        (b"  plain   text\nbody ", "plain text body"),
        (b"<html><body>401</body></html>", None),
        (b"\xff\xfe bytes", "\ufffd\ufffd bytes"),
    ],
    ids=[
        "message",
        "error",
        "detail",
        "nested-error",
        "empty-message",
        "message-not-text",
        "no-message-field",
        "json-list",
        "empty-body",
        "plain-text",
        "whitespace",
        "html",
        "not-utf8",
    ],
)
def test_api_message(body: bytes, expected: str | None) -> None:
    """The human message is taken from JSON message/error/detail or plain text, never HTML."""
    assert api_message(body, KEY) == expected


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps({"message": f"API key {KEY_TEXT} was deleted"}),
        orjson.dumps({"error": {"message": f"Bearer {KEY_TEXT}"}}),
        orjson.dumps({"detail": KEY_TEXT}),
        f"bad key {KEY_TEXT}".encode(),
    ],
    ids=["message", "nested", "detail-is-the-key", "plain-text"],
)
def test_api_message_removes_the_key(body: bytes) -> None:
    """An error body that echoes the key comes back with the key redacted."""
    message = api_message(body, KEY)
    assert message is not None
    assert REDACTED in message
    assert_no_key_material([KEY_TEXT], message)


# -- PetraClient against a local server --------------------------------------------------------

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Upstream:
    """A stand-in for Petra: answers with `answer`, records every request it sees."""

    answer: Answer
    requests: list[web.Request] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        return await self.answer(request)


def reply(
    status: int, body: bytes | dict[str, object] = b"", headers: dict[str, str] | None = None
) -> Answer:
    """An answer with a fixed status, body (a dict is sent as JSON) and headers."""
    raw = orjson.dumps(body) if isinstance(body, dict) else body

    async def answer(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=raw, headers=headers)

    return answer


async def stream_without_length(request: web.Request) -> web.StreamResponse:
    """A 200 whose body is sent chunked, so no Content-Length announces its size."""
    response = web.StreamResponse(status=200)
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(10):
        await response.write(b" " * 1024)
    await response.write_eof()
    return response


async def gzip_bomb(_request: web.Request) -> web.StreamResponse:
    """A small gzip body with an honest Content-Length that unpacks far past the cap."""
    body = gzip.compress(b"{" + b" " * (CAP * 50) + b"}")
    assert len(body) < CAP
    return web.Response(status=200, body=body, headers={"Content-Encoding": "gzip"})


async def hang(_request: web.Request) -> web.StreamResponse:
    """Never answer (the server cancels this when the client gives up or it shuts down)."""
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")  # pragma: no cover


async def drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the connection without any HTTP answer."""
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(0.5)
    return web.Response()


@dataclass
class Rig:
    """A running upstream, a second server a redirect could point to, and a client."""

    upstream: Upstream
    elsewhere: Upstream
    elsewhere_url: str
    session: aiohttp.ClientSession
    base_url: str

    def client(self, *, timeout: float = 5.0, base_url: str | None = None) -> PetraClient:
        return PetraClient(
            self.session,
            base_url=base_url or self.base_url,
            user_agent=USER_AGENT,
            timeout_seconds=timeout,
            max_response_bytes=CAP,
            wall_clock=lambda: WALL,
        )

    async def fetch(self, answer: Answer, *, timeout_seconds: float = 5.0) -> UsageReport:
        self.upstream.answer = answer
        return await self.client(timeout=timeout_seconds).fetch_usage(KEY)

    async def fetch_incidents(
        self, answer: Answer, tenant_id: str | None = None
    ) -> IncidentsReport:
        self.upstream.answer = answer
        return await self.client().fetch_incidents(KEY, start_date=START_DATE, tenant_id=tenant_id)


async def serve(upstream: Upstream) -> TestServer:
    """Serve `upstream` for any path on 127.0.0.1."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """Two local servers and a client session; all closed afterwards."""
    upstream = Upstream(reply(200, REPORT))
    elsewhere = Upstream(reply(200, REPORT))
    main_server = await serve(upstream)
    other_server = await serve(elsewhere)
    session = aiohttp.ClientSession()
    try:
        yield Rig(
            upstream=upstream,
            elsewhere=elsewhere,
            elsewhere_url=str(other_server.make_url("/v1/usage")),
            session=session,
            base_url=str(main_server.make_url("/")),
        )
    finally:
        await session.close()
        await main_server.close()
        await other_server.close()


async def test_200_gives_a_usage_report(rig: Rig) -> None:
    """A 200 with a report body returns the parsed UsageReport."""
    report = await rig.fetch(reply(200, REPORT))
    assert report.organization_name == "Acme MSP"
    assert [t.tenant_id for t in report.tenants] == ["ZZk90t"]
    assert report.tenants[0].licensed_users == 120.0


async def test_request_carries_auth_user_agent_and_accept(rig: Rig) -> None:
    """One GET to /v1/usage with the bearer key, the User-Agent and Accept: JSON."""
    await rig.fetch(reply(200, REPORT))

    [request] = rig.upstream.requests
    assert request.method == "GET"
    assert request.path == "/v1/usage"
    assert request.headers["Authorization"] == f"Bearer {KEY_TEXT}"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["Accept"] == "application/json"


async def test_base_url_with_a_path_prefix(rig: Rig) -> None:
    """A base_url with a path (a proxy prefix) puts /v1/usage under it."""
    await rig.client(base_url=rig.base_url + "petra/").fetch_usage(KEY)
    assert rig.upstream.requests[0].path == "/petra/v1/usage"


async def test_200_gives_an_incidents_report(rig: Rig) -> None:
    report = await rig.fetch_incidents(reply(200, INCIDENTS))
    assert [(i.key, i.tenant_id, i.remediation_status) for i in report.incidents] == [
        ("48f3708e", "ZZk90t", "REMEDIATED")
    ]
    assert "askywalker" not in repr(report)


async def test_incidents_request_carries_the_window_and_limit(rig: Rig) -> None:
    """GET /v1/incidents with startDate and limit=500 (the most one answer carries), the
    same headers as /v1/usage, and tenantId only when asked for one tenant."""
    await rig.fetch_incidents(reply(200, INCIDENTS))
    await rig.fetch_incidents(reply(200, INCIDENTS), tenant_id="ZZk90t")
    first, second = rig.upstream.requests
    assert first.path == "/v1/incidents"
    assert dict(first.query) == {"startDate": START_DATE, "limit": "500"}
    assert dict(second.query) == {"startDate": START_DATE, "limit": "500", "tenantId": "ZZk90t"}
    assert first.headers["Authorization"] == f"Bearer {KEY_TEXT}"
    assert first.headers["User-Agent"] == USER_AGENT


@dataclass(frozen=True)
class Expected:
    """What a failed poll must raise."""

    kind: type[PetraError]
    code: str
    message: str  # a substring of the exception's message


STATUS_CASES = [
    pytest.param(
        reply(401, {"message": "Invalid API key"}),
        Expected(KeyRejected, "401", "key rejected (401): Invalid API key"),
        id="401",
    ),
    pytest.param(
        reply(401, {"message": f"API key {KEY_TEXT} has been deleted"}),
        Expected(KeyRejected, "401", f"key rejected (401): API key {REDACTED} has been deleted"),
        id="401-echoing-the-key",
    ),
    pytest.param(
        reply(401),
        Expected(KeyRejected, "401", "key rejected (401)"),
        id="401-empty-body",
    ),
    pytest.param(
        reply(403, {"message": "Forbidden"}),
        Expected(Forbidden, "403", "refused (403): Forbidden; this is not a bad key"),
        id="403",
    ),
    pytest.param(
        reply(404, {"message": "Not found"}),
        Expected(BadResponse, "404", "unexpected status 404: Not found"),
        id="404",
    ),
    pytest.param(
        reply(400, f"bad request for {KEY_TEXT}".encode()),
        Expected(BadResponse, "400", f"unexpected status 400: bad request for {REDACTED}"),
        id="400-echoing-the-key",
    ),
    pytest.param(
        reply(429, {"message": "Too many"}, {"Retry-After-public-api": "17"}),
        Expected(RateLimited, "429", "rate limited (429), retry after 17 s"),
        id="429-petra-header",
    ),
    pytest.param(
        reply(429, headers={"Retry-After": http_date(WALL + 90)}),
        Expected(RateLimited, "429", "rate limited (429), retry after 90 s"),
        id="429-http-date",
    ),
    pytest.param(
        reply(429),
        Expected(RateLimited, "429", "rate limited (429), no wait given"),
        id="429-no-wait",
    ),
    *[
        pytest.param(
            reply(status, b"<html>upstream trouble</html>"),
            Expected(Unavailable, str(status), f"server error ({status})"),
            id=str(status),
        )
        for status in (500, 502, 503, 504)
    ],
    pytest.param(
        reply(503, {"message": "maintenance"}),
        Expected(Unavailable, "503", "server error (503): maintenance"),
        id="503-with-message",
    ),
    pytest.param(
        reply(200, b'{"tenants": ['),
        Expected(BadResponse, "200", "unusable report: body is not valid JSON"),
        id="200-invalid-json",
    ),
    pytest.param(
        reply(200, b"<html>captive portal</html>"),
        Expected(BadResponse, "200", "unusable report: body is not valid JSON"),
        id="200-html",
    ),
    pytest.param(
        reply(200, b"[]"),
        Expected(BadResponse, "200", "unusable report: expected a JSON object, got a list"),
        id="200-wrong-shape",
    ),
    pytest.param(
        reply(200, b"{" + b" " * (CAP + 10) + b"}"),
        Expected(BadResponse, "200", f"answer of {CAP + 12} bytes is over the {CAP} byte cap"),
        id="200-over-cap-with-content-length",
    ),
    pytest.param(
        stream_without_length,
        Expected(BadResponse, "200", f"answer is over the {CAP} byte cap"),
        id="200-over-cap-chunked",
    ),
    pytest.param(
        gzip_bomb,
        Expected(BadResponse, "200", f"answer is over the {CAP} byte cap"),
        id="200-over-cap-once-decompressed",
    ),
    pytest.param(
        drop_connection,
        Expected(Unavailable, "error", "the server closed the connection without answering"),
        id="connection-dropped",
    ),
]


@pytest.mark.parametrize(("answer", "expected"), STATUS_CASES)
async def test_status_to_exception(rig: Rig, answer: Answer, expected: Expected) -> None:
    """Each kind of answer raises its PetraError subclass with the right code and message."""
    with pytest.raises(PetraError) as caught:
        await rig.fetch(answer)

    error = caught.value
    assert type(error) is expected.kind
    assert error.code == expected.code
    assert expected.message in error.message, error.message
    assert str(error) == error.message
    assert_error_hides_key(error)


@pytest.mark.parametrize(("answer", "expected"), STATUS_CASES)
async def test_incidents_status_to_exception(rig: Rig, answer: Answer, expected: Expected) -> None:
    """/v1/incidents shares the request path: the same answer raises the same error."""
    with pytest.raises(PetraError) as caught:
        await rig.fetch_incidents(answer)

    error = caught.value
    assert type(error) is expected.kind
    assert error.code == expected.code
    wanted = expected.message.replace("unusable report", "unusable incidents answer")
    assert wanted in error.message, error.message
    assert_error_hides_key(error)


async def test_401_keeps_the_api_message(rig: Rig) -> None:
    """KeyRejected carries the API's own explanation, scrubbed, for the auth_failed log."""
    with pytest.raises(KeyRejected) as caught:
        await rig.fetch(reply(401, {"error": {"message": f"key {KEY_TEXT} deleted"}}))
    assert caught.value.api_message == f"key {REDACTED} deleted"
    assert caught.value.status == 401


async def test_429_gives_retry_after(rig: Rig) -> None:
    """RateLimited.retry_after is the header's wait, or None when the API gave none."""
    with pytest.raises(RateLimited) as caught:
        await rig.fetch(reply(429, headers={"Retry-After-public-api": "2.5", "Retry-After": "60"}))
    assert caught.value.retry_after == 2.5

    with pytest.raises(RateLimited) as caught:
        await rig.fetch(reply(429))
    assert caught.value.retry_after is None


async def test_body_exactly_at_the_cap_is_accepted(rig: Rig) -> None:
    """The size cap is inclusive: a report of exactly max_response_bytes is read."""
    body = orjson.dumps(REPORT)
    padded = body[:-1] + b" " * (CAP - len(body)) + b"}"
    assert len(padded) == CAP
    report = await rig.fetch(reply(200, padded))
    assert report.organization_name == "Acme MSP"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_not_followed(rig: Rig, status: int) -> None:
    """A redirect is a BadResponse, and the redirect target never sees a request (nor the key)."""
    location = rig.elsewhere_url

    async def redirect(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    with pytest.raises(BadResponse) as caught:
        await rig.fetch(redirect)

    assert caught.value.code == str(status)
    assert f"redirected ({status}) to 127.0.0.1; not followed" in caught.value.message
    assert len(rig.upstream.requests) == 1
    assert rig.elsewhere.requests == []
    assert_error_hides_key(caught.value)


async def test_timeout_is_unavailable(rig: Rig) -> None:
    """A server that never answers within timeout_seconds gives Unavailable, code "error"."""
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        await rig.fetch(hang, timeout_seconds=0.2)
    assert time.monotonic() - started < 10.0  # the handler hangs for an hour
    assert caught.value.code == "error"
    assert caught.value.status is None
    assert caught.value.message == "no complete answer within 0.2 s"


async def test_connection_refused_is_unavailable(rig: Rig) -> None:
    """Nothing listening gives Unavailable with code "error", naming the host."""
    client = rig.client(base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Unavailable) as caught:
        await client.fetch_usage(KEY)
    assert caught.value.code == "error"
    assert caught.value.message.startswith("cannot connect to 127.0.0.1: ")
    assert_error_hides_key(caught.value)


# -- the proxy from the environment ------------------------------------------------------------

PETRA = "https://api.petra.example/v1/usage"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Sets proxy variables (NAME=value) on an environment cleared of every other one."""
    for name in [name for name in os.environ if name.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)

    def set_variables(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_variables


@pytest.mark.parametrize(
    ("variables", "url", "expected"),
    [
        ({}, PETRA, None),
        ({"HTTPS_PROXY": "http://proxy:3128"}, PETRA, "http://proxy:3128"),
        ({"https_proxy": "http://a:3128", "HTTPS_PROXY": "http://b:3128"}, PETRA, "http://a:3128"),
        ({"HTTPS_PROXY": "proxy:3128"}, PETRA, "http://proxy:3128"),
        ({"HTTPS_PROXY": "http://u:p@proxy:3128"}, PETRA, "http://u:p@proxy:3128"),
        ({"HTTP_PROXY": "http://proxy:3128"}, PETRA, None),  # http's proxy, not https's
        ({"HTTP_PROXY": "http://proxy:3128"}, "http://petra.lan/v1", "http://proxy:3128"),
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "api.petra.example"}, PETRA, None),
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": ".petra.example"}, PETRA, None),
        ({"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "*"}, PETRA, None),
        (
            {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "other.example"},
            PETRA,
            "http://proxy:3128",
        ),
    ],
)
def test_env_proxy(
    environment: Callable[..., None], variables: dict[str, str], url: str, expected: str | None
) -> None:
    environment(**variables)
    assert env_proxy(url) == expected


async def test_requests_go_through_the_proxy_the_environment_names(
    rig: Rig, environment: Callable[..., None]
) -> None:
    """HTTP_PROXY (with credentials) takes the request, which names Petra's URL; the
    credentials go to the proxy only. With NO_PROXY naming Petra's host, it goes direct."""
    proxy = rig.elsewhere_url.removesuffix("/v1/usage").replace("http://", "http://u:p@")
    environment(HTTP_PROXY=proxy)

    def client() -> PetraClient:
        return PetraClient(
            rig.session,
            base_url=rig.base_url,
            user_agent=USER_AGENT,
            timeout_seconds=5.0,
            max_response_bytes=CAP,
            proxy_from_env=True,
        )

    await client().fetch_usage(KEY)
    [proxied] = rig.elsewhere.requests
    assert proxied.url == URL(rig.base_url + "v1/usage")
    assert proxied.headers["Proxy-Authorization"] == basic_auth("u", "p")["Authorization"]
    assert not rig.upstream.requests

    environment(NO_PROXY="127.0.0.1")
    await client().fetch_usage(KEY)
    [direct] = rig.upstream.requests
    assert "Proxy-Authorization" not in direct.headers
    assert len(rig.elsewhere.requests) == 1


# -- PetraClient against the simulator ---------------------------------------------------------


def simulator_client(session: aiohttp.ClientSession, port: int) -> PetraClient:
    return PetraClient(
        session,
        base_url=f"http://127.0.0.1:{port}",
        user_agent=USER_AGENT,
        timeout_seconds=5.0,
        max_response_bytes=1 << 20,
        wall_clock=lambda: WALL,
    )


async def test_client_and_simulator_agree() -> None:
    """Against the simulator: a report, 401 for an unknown key, 429 with its wait, a reset."""
    sim = Simulator(
        [SimulatedOrg("acme", KEY_TEXT, "Acme MSP", tenant_count=4)], wall_clock=lambda: WALL
    )
    runner, port = await start_simulator(sim)
    try:
        async with aiohttp.ClientSession() as session:
            client = simulator_client(session, port)
            report = await client.fetch_usage(KEY)
            assert report.organization_name == "Acme MSP"
            assert len(report.tenants) == 4

            with pytest.raises(KeyRejected) as rejected:
                await client.fetch_usage(ApiKey("petra_live_unknown_key_0000"))
            assert rejected.value.api_message

            sim.set_fault("acme", RateLimitFault(retry_after_seconds=42, style="http-date"))
            with pytest.raises(RateLimited) as limited:
                await client.fetch_usage(KEY)
            assert limited.value.retry_after == 42.0

            sim.set_fault("acme", ResetFault())
            with pytest.raises(Unavailable) as reset:
                await client.fetch_usage(KEY)
            assert reset.value.code == "error"

            incidents = await client.fetch_incidents(KEY, start_date="2026-10-27")
            assert len(incidents.incidents) == 3
            with pytest.raises(BadResponse) as refused:
                await client.fetch_incidents(KEY, start_date="2026-10-27", limit=501)
            assert refused.value.code == "400"
            for error in (rejected.value, limited.value, reset.value):
                assert_error_hides_key(error)
    finally:
        await runner.cleanup()


async def test_unchanged_tenants_are_taken_from_the_previous_report() -> None:
    """The very body `previous` was read from is `previous`; an answer whose tenants are
    the ones `previous` was read from keeps `previous`'s tenant tuple (not read again);
    changed tenants, or no previous report, are read."""
    sim = Simulator(
        [SimulatedOrg("acme", KEY_TEXT, "Acme MSP", tenant_count=3)], wall_clock=lambda: WALL
    )
    runner, port = await start_simulator(sim)
    try:
        async with aiohttp.ClientSession() as session:
            client = simulator_client(session, port)
            first = await client.fetch_usage(KEY)
            assert len(first.digest) == 64  # two SHA-256
            # The same body again: the same report, not parsed.
            assert await client.fetch_usage(KEY, first) is first
            # As if read from another head (another reportGeneratedAt): its tenants kept.
            other_head = first._replace(digest=first.digest[:32] + bytes(32))
            reread = await client.fetch_usage(KEY, other_head)
            assert reread is not other_head
            assert reread == first
            assert reread.tenants is first.tenants
            again = await client.fetch_usage(KEY)  # no previous: read anew, equal
            assert again == first
            assert again.tenants is not first.tenants
            other = first._replace(digest=b"\0" * 64)  # a report from other tenants
            assert (await client.fetch_usage(KEY, other)).tenants is not first.tenants
            sim.set_tenants("acme", [{"petraTenantId": "only", "totalLicensedUsers": 5}])
            changed = await client.fetch_usage(KEY, first)
            assert changed.digest != first.digest
            assert [t.tenant_id for t in changed.tenants] == ["only"]
            restored = first._replace(digest=b"")  # read back from the state file
            assert (await client.fetch_usage(KEY, restored)).tenants is not first.tenants
    finally:
        await runner.cleanup()
