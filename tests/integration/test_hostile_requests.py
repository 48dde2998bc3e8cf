"""Requests as a hostile client on the network sends them, to the real daemon over loopback:
none gets a 500, none fills the log, every answer carries the promised headers and no
version banner, and the probe exemption follows the route the router matched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from collector.petra_simulator import SimulatedOrg, sim_key
from tests.integration.harness import Running, parse_metrics, running_daemon, value
from tests.webtls import basic_auth, bcrypt_hash, write_web_config

ACME = SimulatedOrg("acme", sim_key("acme"), "Acme MSP", tenant_count=2)
PASSWORD = "scrape-me-please"
RIGHT = basic_auth("prometheus", PASSWORD)
HSTS = "max-age=31536000"
BAD_REQUESTS = 300
# What aiohttp's parser refuses, each with bytes an answer must not echo.
MALFORMED = (
    b"GET /\x00evil HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Evil\x01: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: evil\r\n\r\n",
    b"EVIL\x7f / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"evil" * 5000 + b"\r\n\r\n",
)


def web_config(tmp_path: Path) -> Path:
    return write_web_config(
        tmp_path / "web.yaml",
        users={"prometheus": bcrypt_hash(PASSWORD)},
        headers={"Strict-Transport-Security": HSTS},
    )


async def exchange(run: Running, request: bytes) -> bytes:
    """Sends raw bytes and reads until the daemon closes the connection."""
    port = run.daemon.bound_port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


def head(reply: bytes) -> tuple[int, dict[str, str]]:
    """Status and headers (lower-cased names) of a raw answer."""
    header_block = reply.partition(b"\r\n\r\n")[0].decode("latin-1")
    status_line, *lines = header_block.split("\r\n")
    headers = {}
    for line in lines:
        name, _, field = line.partition(":")
        headers[name.strip().lower()] = field.strip()
    return int(status_line.split()[1]), headers


async def counter(run: Running, name: str, **labels: str) -> float | None:
    async with run.http.get(run.url + "/metrics", headers=RIGHT) as response:
        assert response.status == 200
        return value(parse_metrics(await response.text()), name, **labels)


async def test_non_ascii_basic_credentials_are_a_counted_401(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, [ACME], web_config=web_config(tmp_path)) as run:
        for credentials in (b"Basic \xc3\xa9", b"Basic \xff\xfe", "Basic é=".encode()):
            reply = await exchange(
                run,
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: "
                + credentials
                + b"\r\nConnection: close\r\n\r\n",
            )
            status, headers = head(reply)
            assert status == 401, reply[:200]
            assert headers["www-authenticate"].startswith("Basic realm=")
        failures = "petra_collector_http_auth_failures_total"
        assert await counter(run, failures, reason="no_credentials") == 3
        assert "Traceback" not in run.log_stream.getvalue()


async def test_odd_refresh_values_get_the_page(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, [ACME]) as run:
        for refresh in ("%C2%B2", "%D9%A3", "9" * 5000, "0" * 5000 + "7", "-1", "1e3"):
            status, page = await run.get(f"/?refresh={refresh}")
            assert status == 200, refresh
            assert "<html" in page


async def test_gzip_follows_the_accept_encoding_weights(tmp_path: Path) -> None:
    cases = {
        "gzip": True,
        "GZIP": True,
        "x-gzip": True,
        "deflate, gzip;q=0.5": True,
        "*": True,
        "gzip;q=0": False,
        "gzip; q=0.000": False,
        "notgzip": False,
        "gzipx, br": False,
        "*, gzip;q=0": False,
        "identity": False,
        "": False,
    }
    async with running_daemon(tmp_path, [ACME]) as run:
        await run.wait_metric("petra_up", 1, org="acme")
        for accept, gzipped in cases.items():
            async with run.http.get(
                run.url + "/metrics", headers={"Accept-Encoding": accept}, auto_decompress=False
            ) as response:
                body = await response.read()
            assert response.status == 200
            assert (response.headers.get("Content-Encoding") == "gzip") is gzipped, accept
            assert body.startswith(b"\x1f\x8b") is gzipped, accept


async def test_the_probe_exemption_is_the_matched_route(tmp_path: Path) -> None:
    """`/-%2Fhealthy` decodes to a probe path, but the router matches no route for it;
    `/%68ealthz` is the probe's route as the router reads it, so it is exempt."""
    async with running_daemon(tmp_path, [ACME], web_config=web_config(tmp_path)) as run:
        for path in (b"/-%2Fhealthy", b"/-%2fready", b"/healthz/", b"//healthz"):
            reply = await exchange(
                run, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert head(reply)[0] == 401, path
        for path in (b"/healthz", b"/-/ready", b"/healthz?x=1", b"/%68ealthz"):
            reply = await exchange(
                run, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert head(reply)[0] == 200, path


async def test_answers_name_the_product_only(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, [ACME], web_config=web_config(tmp_path)) as run:
        for request, status in (
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 401),
            (b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 401),
            (MALFORMED[0], 400),
        ):
            answered, headers = head(await exchange(run, request))
            assert answered == status
            assert headers["server"] == "petra-collector", request


async def test_malformed_requests_get_a_brief_400_with_every_header_and_a_quiet_log(
    tmp_path: Path,
) -> None:
    async with running_daemon(tmp_path, [ACME], web_config=web_config(tmp_path)) as run:
        before = len(run.log_stream.getvalue().splitlines())
        for number in range(BAD_REQUESTS):
            reply = await exchange(run, MALFORMED[number % len(MALFORMED)])
            status, headers = head(reply)
            assert status == 400, reply[:200]
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["strict-transport-security"] == HSTS
            assert b"evil" not in reply.lower()
        assert await counter(run, "petra_collector_http_error_answers_total", code="400") == (
            BAD_REQUESTS
        )
        written = run.log_stream.getvalue().splitlines()[before:]
        assert "Traceback" not in "\n".join(written)
        assert "Error handling request" not in "\n".join(written)
        (summary,) = run.events("http_error_answers")
        assert summary["level"] == "warning"
        assert summary["answers"] == {"400": 1}
        assert len(written) <= 3, written  # the summary, and a poll's lines at most


async def test_an_authorized_client_still_gets_everything(tmp_path: Path) -> None:
    """The lock holds without getting in the way: right credentials, gzip, keep-alive."""
    async with running_daemon(
        tmp_path, [ACME], web_config=web_config(tmp_path), http_headers=RIGHT
    ) as run:
        await run.wait_metric("petra_up", 1, org="acme")
        opened: list[object] = []

        async def on_opened(*_: object) -> None:
            opened.append(None)

        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(on_opened)
        async with aiohttp.ClientSession(headers=RIGHT, trace_configs=[trace]) as http:
            for _ in range(3):
                headers = {"Accept-Encoding": "gzip"}
                async with http.get(run.url + "/metrics", headers=headers) as response:
                    assert response.status == 200
                    assert response.headers["Server"] == "petra-collector"
                    assert response.headers["Content-Encoding"] == "gzip"
                    assert b"petra_up" in await response.read()
        assert len(opened) == 1  # one kept-alive connection for the three


async def test_a_kept_alive_connection_outlives_the_header_deadline(tmp_path: Path) -> None:
    """The header deadline is for a request's header; between answers, keep-alive lasts."""
    extra = "server:\n  header_timeout_seconds: 0.5\n"
    async with running_daemon(tmp_path, [ACME], extra_config=extra) as run:
        port = run.daemon.bound_port
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(2):
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                await writer.drain()
                answer = await asyncio.wait_for(reader.readuntil(b"ok\n"), timeout=10)
                assert answer.startswith(b"HTTP/1.1 200"), answer
                await asyncio.sleep(1.5)  # three header deadlines, idle between answers
        finally:
            writer.close()
        samples = await counter(
            run, "petra_collector_http_connections_closed_total", reason="header_timeout"
        )
        assert samples == 0


async def test_at_the_cap_the_longest_idle_connection_makes_room(tmp_path: Path) -> None:
    extra = "server:\n  max_connections: 3\n"
    async with running_daemon(tmp_path, [ACME], extra_config=extra) as run:
        port = run.daemon.bound_port
        assert port is not None
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        own = run.daemon.exposition.own

        async def at_the_cap() -> bool:
            # Read in-process: a scrape would open a fourth connection, over the cap.
            return own.get_sample_value("petra_collector_http_connections") == 3

        await run.wait_for(at_the_cap, what="three connections accepted")
        try:
            request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            assert head(await exchange(run, request))[0] == 200
            oldest = await asyncio.wait_for(held[0][0].read(), timeout=10)
            assert oldest == b""  # closed to make room, without an answer
            for reader, _writer in held[1:]:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(reader.read(), timeout=0.2)
        finally:
            for _reader, writer in held:
                writer.close()
        evicted = await counter(
            run, "petra_collector_http_connections_closed_total", reason="evicted"
        )
        assert evicted is not None
        assert evicted >= 1
        assert await counter(run, "petra_collector_http_connections_limit") == 3
