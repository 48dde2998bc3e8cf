"""The page's routes in web_app.py: security headers, fragments, and assets from memory."""

from __future__ import annotations

from typing import Final

import pytest
from aiohttp.test_utils import TestClient, TestServer

from collector.exposition import Exposition
from collector.metrics import PetraCollector
from collector.petra_usage import TenantUsage, UsageReport
from collector.state import OrgState
from collector.state_records import Health
from collector.web_app import PAGE_SECURITY_HEADERS, make_web_app
from tests.outcomes import succeed

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class _FakeDaemon:
    """What web_app.py reads for the page: two orgs, one failing."""

    ready = True
    max_staleness = 3600.0
    shard = None
    telemetry_path = "/metrics"

    def __init__(self) -> None:
        acme = OrgState("acme", "sha256:0123456789ab", "env $KEY", 300.0)
        tenant = TenantUsage("t1", None, "<b>T</b>", None, None, None, 1.0, 1.0, 1.0, None, None)
        succeed(acme, UsageReport(None, None, "Acme", 1.0, (tenant,)), 1e9, 0.1)
        umbrella = OrgState("umbrella", "sha256:ba9876543210", "env $OTHER", 300.0)
        umbrella.record_error("usage", Health.ERROR, "HTTP 500", 1e9, None)
        self.states = [acme, umbrella]
        self.exposition = Exposition(PetraCollector(self.org_states, lambda: self.max_staleness))

    def org_states(self) -> list[OrgState]:
        return self.states

    async def reload(self, reason: str) -> list[str]:
        return [reason]


def test_the_policy_is_the_one_the_page_is_built_for() -> None:
    """The header says exactly the strict policy (tests/browser runs the page under it)."""
    assert PAGE_SECURITY_HEADERS == {
        "Content-Security-Policy": CSP,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
    }


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html"),
        ("/?q=acme&refresh=0", "text/html"),
        ("/page/rows", "text/html"),
        ("/page/orgs/acme", "text/html"),
        ("/static/status.css", "text/css"),
        ("/static/status.js", "text/javascript"),
        ("/static/favicon.svg", "image/svg+xml"),
    ],
)
async def test_page_and_assets_carry_the_security_headers(path: str, content_type: str) -> None:
    """Every part of the page answers with the CSP, no framing and no type sniffing."""
    async with TestClient(TestServer(make_web_app(_FakeDaemon()))) as client:
        response = await client.get(path)
        assert response.status == 200
        assert response.content_type == content_type
        for name, value in PAGE_SECURITY_HEADERS.items():
            assert response.headers[name] == value


async def test_fragments_are_the_pages_rows_and_an_orgs_tenants() -> None:
    """`page/rows` has every org's row, `page/orgs/NAME` the tenant row; unknown is 404."""
    async with TestClient(TestServer(make_web_app(_FakeDaemon()))) as client:
        rows = await (await client.get("/page/rows")).text()
        assert rows.index('data-org="umbrella"') < rows.index('data-org="acme"')
        tenants = await (await client.get("/page/orgs/acme")).text()
        assert '<tr class="detail" data-detail-for="acme">' in tenants
        assert "&lt;b&gt;T&lt;/b&gt;" in tenants
        missing = await client.get("/page/orgs/nobody")
        assert missing.status == 404
        assert missing.headers["Content-Security-Policy"] == CSP
        assert (await client.get("/page/rows")).headers["Cache-Control"] == "no-store"


async def test_assets_are_revalidated_by_etag() -> None:
    """An asset answers with its ETag, and 304 with no body when the browser has it."""
    async with TestClient(TestServer(make_web_app(_FakeDaemon()))) as client:
        first = await client.get("/static/status.js")
        body = await first.read()
        assert b"page/rows" in body
        assert first.headers["Cache-Control"] == "no-cache"
        etag = first.headers["ETag"]
        again = await client.get("/static/status.js", headers={"If-None-Match": etag})
        assert again.status == 304
        assert await again.read() == b""
        changed = await client.get("/static/status.js", headers={"If-None-Match": '"other"'})
        assert changed.status == 200
        assert (await client.get("/static/nothing.js")).status == 404
        assert (await client.get("/static/..%2fpage.py")).status == 404


async def test_telemetry_path_moves_metrics_and_the_pages_link() -> None:
    """With `--web.telemetry-path /internal/metrics` the metrics are there, not at /metrics,
    and the page links to them."""
    daemon = _FakeDaemon()
    daemon.telemetry_path = "/internal/metrics"
    async with TestClient(TestServer(make_web_app(daemon))) as client:
        moved = await client.get("/internal/metrics")
        assert moved.status == 200
        assert "petra_up" in await moved.text()
        assert (await client.get("/metrics")).status == 404
        page = await (await client.get("/")).text()
        assert '<a href="internal/metrics">/internal/metrics</a>' in page
