"""The real daemon locked by a web config: TLS only, basic auth, headers, live re-reading."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import aiohttp
import pytest

from collector.petra_simulator import SimulatedOrg, sim_key
from tests.integration.harness import Running, parse_metrics, running_daemon, value
from tests.leaks import assert_no_key_material
from tests.webtls import TlsFiles, basic_auth, bcrypt_hash, write_web_config

pytestmark = pytest.mark.slow

ACME = SimulatedOrg("acme", sim_key("acme"), "Acme MSP", tenant_count=2)
PASSWORD = "scrape-me-please"
RIGHT = basic_auth("prometheus", PASSWORD)
PROTECTED = [
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/orgs/acme"),
    ("GET", "/no/such/page"),
    ("POST", "/-/reload"),
]
PROBES = ["/healthz", "/readyz", "/-/healthy", "/-/ready"]
HSTS = "max-age=31536000"
PASTED_KEY = "petra_var_" + "0123456789abcdef" * 2


def locked(files: TlsFiles, users: dict[str, str] | None = None, **tls: str) -> Path:
    return write_web_config(
        files.directory / "web.yaml",
        tls=files.tls_section(**tls),
        users={"prometheus": bcrypt_hash(PASSWORD)} if users is None else users,
        headers={"Strict-Transport-Security": HSTS},
    )


async def answer(
    run: Running, method: str, path: str, credentials: dict[str, str] | None = None
) -> aiohttp.ClientResponse:
    async with run.http.request(method, run.url + path, headers=credentials) as response:
        run.pages.append(await response.text())
        run.responses.append(response)
        return response


async def served_certificate(run: Running, client: ssl.SSLContext) -> bytes:
    """The certificate a brand-new connection is shown."""
    port = run.daemon.bound_port
    assert port is not None
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    certificate: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return certificate


async def auth_failures(run: Running, reason: str) -> float | None:
    response = await answer(run, "GET", "/metrics", RIGHT)
    assert response.status == 200
    samples = parse_metrics(run.pages[-1])
    return value(samples, "petra_collector_http_auth_failures_total", reason=reason)


async def test_plain_http_to_the_tls_port_gets_no_http_answer(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "tls")
    client = files.client_context()
    async with running_daemon(tmp_path, [ACME], web_config=locked(files), client_ssl=client) as run:
        port = run.daemon.bound_port
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(4096), timeout=5)
        writer.close()
        assert not reply.startswith(b"HTTP/"), reply[:40]
        assert (await answer(run, "GET", "/healthz")).status == 200  # TLS works


async def test_credentials_decide_everything_but_the_probes(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "tls")
    client = files.client_context()
    async with running_daemon(tmp_path, [ACME], web_config=locked(files), client_ssl=client) as run:
        await run.wait_for(lambda: _ok(run, "/api/v1/orgs/acme"), what="the first poll behind auth")
        wrong = basic_auth("prometheus", "not-it")
        stranger = basic_auth("grafana", PASSWORD)
        for method, path in PROTECTED:
            for credentials in (None, wrong, stranger):
                response = await answer(run, method, path, credentials)
                assert response.status == 401, (method, path, credentials)
                assert response.headers["WWW-Authenticate"].startswith('Basic realm="')
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert response.headers["Strict-Transport-Security"] == HSTS
            response = await answer(run, method, path, RIGHT)
            assert response.status == (404 if path == "/no/such/page" else 200), (method, path)
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Strict-Transport-Security"] == HSTS
        for path in PROBES:
            response = await answer(run, "GET", path)
            assert response.status == 200, path
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        # Each protected path was tried once without credentials, and twice with wrong ones.
        assert await auth_failures(run, "no_credentials") == len(PROTECTED)
        assert await auth_failures(run, "invalid_credentials") == 2 * len(PROTECTED)
        assert await auth_failures(run, "overloaded") == 0
        headers = [str(response.headers) for response in run.responses]
        assert_no_key_material(
            [ACME.key, PASSWORD], run.log_stream.getvalue(), *run.pages, *headers
        )


async def _ok(run: Running, path: str) -> bool:
    response = await answer(run, "GET", path, RIGHT)
    return response.status == 200 and '"last_success' in run.pages[-1]


async def _handshake_refused(run: Running, client: ssl.SSLContext) -> bool:
    async with aiohttp.ClientSession() as other:
        try:
            async with other.get(run.url + "/healthz", ssl=client) as response:
                await response.read()
        except aiohttp.ClientError:
            return True
    return False


async def test_verified_client_certificates_are_required_when_asked(tmp_path: Path) -> None:
    """RequireAndVerifyClientCert, then (re-read) VerifyClientCertIfGiven: a certificate the
    client CA did not sign is refused by both; none at all only by the first."""
    files = TlsFiles(tmp_path / "tls")
    web = locked(files, client_auth_type="RequireAndVerifyClientCert")
    client = files.client_context(files.client_ca)
    no_certificate = files.client_context()
    stranger = files.client_context(TlsFiles(tmp_path / "x").ca)
    async with running_daemon(tmp_path, [ACME], web_config=web, client_ssl=client) as run:
        assert (await answer(run, "GET", "/metrics", RIGHT)).status == 200
        assert await _handshake_refused(run, no_certificate)
        assert await _handshake_refused(run, stranger)
        locked(files, client_auth_type="VerifyClientCertIfGiven")

        async def let_in_without_a_certificate() -> bool:
            return not await _handshake_refused(run, no_certificate)

        await run.wait_for(let_in_without_a_certificate, within=5, what="VerifyClientCertIfGiven")
        assert (await answer(run, "GET", "/metrics", RIGHT)).status == 200
        assert await _handshake_refused(run, stranger)
        assert not run.events("web_config_reload_failed")


async def test_renewed_certificate_and_new_user_need_no_restart(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "tls")
    web = locked(files)
    client = files.client_context()
    async with running_daemon(tmp_path, [ACME], web_config=web, client_ssl=client) as run:
        first = files.served
        assert await served_certificate(run, client) == first
        renewed = files.renew()
        started = time.monotonic()
        while await served_certificate(run, client) != renewed:
            assert time.monotonic() - started < 5, "the renewed certificate was never served"
            await asyncio.sleep(0.1)
        locked(files, users={"prometheus": bcrypt_hash(PASSWORD), "grafana": bcrypt_hash("g")})
        grafana = basic_auth("grafana", "g")

        async def grafana_let_in() -> bool:
            return (await answer(run, "GET", "/metrics", grafana)).status == 200

        await run.wait_for(grafana_let_in, within=5, what="the new user")
        assert run.events("web_config_loaded")
        assert not run.events("web_config_reload_failed")


async def test_a_broken_file_keeps_the_last_good_config(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "tls")
    web = locked(files)
    client = files.client_context()
    async with running_daemon(tmp_path, [ACME], web_config=web, client_ssl=client) as run:
        first = files.served
        web.write_text(web.read_text() + "zz_typo: 1\n")
        await run.wait_for(
            lambda: _gauge_is(run, 0.0), within=5, what="web_config_last_reload_successful 0"
        )
        (failed,) = run.events("web_config_reload_failed")
        assert failed["level"] == "error"
        known = "basic_auth_users, http_server_config, tls_server_config"
        assert failed["problems"] == [f"{web}: zz_typo: unknown key (known here: {known})"]
        assert (await answer(run, "GET", "/metrics", RIGHT)).status == 200
        assert (await answer(run, "GET", "/metrics")).status == 401
        # A Petra key pasted where a hash belongs: rejected, and never echoed.
        locked(files, users={"prometheus": PASTED_KEY, PASTED_KEY: bcrypt_hash("x")})
        await run.wait_for(
            lambda: _logged(run, "web_config_reload_failed", 2), within=5, what="a 2nd failure"
        )
        assert (await answer(run, "GET", "/metrics", RIGHT)).status == 200
        headers = [str(response.headers) for response in run.responses]
        assert_no_key_material(
            [PASTED_KEY, ACME.key], run.log_stream.getvalue(), *run.pages, *headers
        )
        # A policy that checks no client certificate: refused, the last good one stays.
        locked(files, client_auth_type="RequireAnyClientCert")
        await run.wait_for(
            lambda: _logged(run, "web_config_reload_failed", 3), within=5, what="a 3rd failure"
        )
        (refused,) = run.events("web_config_reload_failed")[2]["problems"]
        assert refused.startswith(
            f"{web}: tls_server_config.client_auth_type: RequireAnyClientCert is refused: "
        )
        assert refused.endswith(
            "use one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
        )
        assert (await answer(run, "GET", "/metrics", RIGHT)).status == 200  # no certificate
        files.key_file.write_text("not a key\n")  # a broken key file: the old context stays
        await asyncio.sleep(1)
        assert await served_certificate(run, client) == first
        files.renew()
        locked(files)  # both fixed
        await run.wait_for(lambda: _gauge_is(run, 1.0), within=5, what="a good reload")
        assert await served_certificate(run, client) == files.served


async def _logged(run: Running, event: str, times: int) -> bool:
    return len(run.events(event)) >= times


async def _gauge_is(run: Running, expected: float) -> bool:
    response = await answer(run, "GET", "/metrics", RIGHT)
    samples = parse_metrics(run.pages[-1]) if response.status == 200 else {}
    return value(samples, "petra_collector_web_config_last_reload_successful") == expected


async def test_tenant_name_labels_false_keeps_names_out_of_metrics(tmp_path: Path) -> None:
    """The privacy switch: petra_tenant_info without display_name and microsoft_tenant_id."""
    extra = "metrics:\n  tenant_name_labels: false\n"
    async with running_daemon(tmp_path, [ACME], extra_config=extra) as run:
        await run.wait_metric("petra_up", 1, org="acme")
        status, text = await run.get("/metrics")
    assert status == 200
    info = [line for line in text.splitlines() if line.startswith("petra_tenant_info{")]
    assert len(info) == ACME.tenant_count
    assert all("display_name" not in line and "microsoft_tenant_id" not in line for line in info)
    assert all('tenant_id="' in line for line in info)
