"""The cached /metrics body is the stock prometheus-client exposition, byte for byte."""

from __future__ import annotations

import gzip
import subprocess
import zlib

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from collector.metrics import (
    BLOCK_ORGS,
    PetraCollector,
    PetraRegistry,
    build_registry,
    crc32_combine,
)
from collector.state import OrgState
from collector.usage import TenantUsage, UsageReport
from collector.web import make_web_app
from tests.tools import require_tool

NOW = 10_000.0
MAX_STALENESS = 3600.0

NASTY = TenantUsage(
    tenant_id='q"uo\\te\nnl',
    microsoft_tenant_id=None,
    display_name='Zürich "Dental" \\ Co.\nSecond line 🦷',
    service="Monitoring + Response",
    billable_status=None,
    is_paused=True,
    licensed_users=120.0,
    billable_users=1e21,
    prorating_ratio=1 / 3,
    onboarding_timestamp=1.7e9,
    first_billable_timestamp=None,
)
PLAIN = TenantUsage(
    "ZZk90t", "a1b2", "Customer One", None, "Trial", None, None, 0.0, None, None, 12345678901.5
)


def _report(name: str | None, *tenants: TenantUsage) -> UsageReport:
    return UsageReport("2026-11-26", 1.7641e9, name, float(len(tenants)), tenants)


def nasty_states() -> list[OrgState]:
    """Fresh, stale, failing and never-polled orgs with awkward labels and None fields."""
    fresh = OrgState("acme", "sha256:1", "file", 60)
    for code in ("200", "429", "error", "503"):
        fresh.count_request(code)
    fresh.record_success(_report('Acme "MSP"\\\n', NASTY, PLAIN), NOW - 5, 0.125)
    stale = OrgState("old.org-1", "sha256:2", "env", 60)
    stale.count_request("200")
    stale.record_success(_report("Old", PLAIN), NOW - MAX_STALENESS - 1, 0.5)
    stale.count_request("401")
    stale.record_auth_failure("rejected", NOW - 10, 0.01, 1.0)
    limited = OrgState("rate_limited", "sha256:3", "file", 60)
    limited.count_request("200")
    limited.record_success(_report(None, PLAIN), NOW - 100, 0.2)
    limited.count_request("429")
    limited.record_rate_limited("429", NOW - 1, 0.05, NOW + 30)
    pending = OrgState("pending", "sha256:4", "file", 60)
    return [fresh, stale, limited, pending]


def make_registry(states: list[OrgState]) -> PetraRegistry:
    collector = PetraCollector(lambda: states, lambda: MAX_STALENESS, lambda: NOW)
    registry, own = build_registry(collector)
    own.config_loaded(len(states), NOW - 1000)
    # Registered on the registry itself afterwards, as app.py does with its extras.
    Gauge("petra_collector_extra", "Registered after the registry was built.", registry=registry)
    Counter("petra_collector_things", "A counter with a created sample.", registry=registry).inc()
    return registry


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_the_cached_body_is_the_stock_body(openmetrics: bool) -> None:
    """Same bytes as the stock encoder for labels needing escapes, None fields and stale orgs."""
    registry = make_registry(nasty_states())
    stock = (openmetrics_latest if openmetrics else generate_latest)(registry)
    assert registry.exposition(openmetrics) == stock
    assert b"old.org-1" in stock  # the stale org keeps petra_up and its counters...
    assert b'petra_org_tenants{org="old.org-1"}' not in stock  # ...but no usage series


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_the_gzip_body_is_the_stock_body_compressed(openmetrics: bool) -> None:
    """The gzip body decompresses (also as a stream, checking the CRC) to the stock body."""
    registry = make_registry(nasty_states())
    body = registry.exposition_gzip(openmetrics)
    stock = (openmetrics_latest if openmetrics else generate_latest)(registry)
    assert gzip.decompress(body) == stock
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert stream.decompress(body) == stock
    assert stream.eof
    assert not stream.unused_data


def test_cached_pieces_follow_every_change() -> None:
    """After polls, a vanished tenant, a removed org and stale orgs: still the stock body."""
    states = nasty_states() + [OrgState(f"org-{i:04d}", "fp", "file", 60) for i in range(600)]
    for index, state in enumerate(states[4:]):
        state.record_success(_report("Bulk", PLAIN._replace(tenant_id=f"t{index}")), NOW, 0.1)
    clock = [NOW]
    collector = PetraCollector(lambda: states, lambda: MAX_STALENESS, lambda: clock[0])
    registry, _own = build_registry(collector)
    assert len(states) > 2 * BLOCK_ORGS  # several blocks per family

    def check() -> None:
        stock = generate_latest(registry)
        assert registry.exposition(False) == stock
        assert gzip.decompress(registry.exposition_gzip(False)) == stock

    check()
    states[0].record_success(_report("Acme", NASTY), NOW, 0.3)  # PLAIN vanished
    states[300].record_error(states[300].health, "timeout", NOW, None)
    check()
    del states[2]  # an org left the config
    check()
    states[5] = OrgState(states[5].name, "fp2", "file", 60)  # same name, new state
    check()
    clock[0] = NOW + MAX_STALENESS + 1  # every org's report is now too old
    check()


def test_promtool_accepts_the_body() -> None:
    """`promtool check metrics` finds no problem in the fast text body."""
    promtool = require_tool("promtool", "prometheus")
    body = make_registry(nasty_states()).exposition(False)
    result = subprocess.run(  # noqa: S603 - a fixed tool path and no shell
        [promtool, "check", "metrics"], input=body, capture_output=True, check=False, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


class _FakeDaemon:
    """Just what web.py reads for /metrics."""

    ready = True
    max_staleness = MAX_STALENESS
    shard = None

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def org_states(self) -> list[OrgState]:
        return []

    async def reload(self, reason: str) -> list[str]:
        return [reason]


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        ("", False),
        ("text/plain;version=0.0.4;q=0.9,*/*;q=0.1", False),
        ("text/plain;version=1.0.0;escaping=allow-utf-8", False),
        ("application/openmetrics-text;version=1.0.0;q=0.9,text/plain;q=0.5", True),
        ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8", True),
    ],
)
async def test_metrics_endpoint_serves_the_negotiated_body(accept: str, openmetrics: bool) -> None:
    """/metrics answers the format and content type prometheus-client would, gzipped on request."""
    registry = make_registry(nasty_states())
    stock = (openmetrics_latest if openmetrics else generate_latest)(registry)
    async with TestClient(TestServer(make_web_app(_FakeDaemon(registry)))) as client:
        for encoding in ("gzip", "identity"):
            headers = {"Accept": accept, "Accept-Encoding": encoding}
            async with client.get("/metrics", headers=headers) as response:
                assert response.status == 200
                assert await response.read() == stock
                assert response.headers.get("Content-Encoding") == (
                    "gzip" if encoding == "gzip" else None
                )
                kind = "application/openmetrics-text" if openmetrics else "text/plain"
                assert response.headers["Content-Type"].startswith(kind)


async def test_head_metrics_sends_headers_only() -> None:
    """HEAD /metrics answers the length of the body it would send, and no body."""
    registry = make_registry(nasty_states())
    server = TestServer(make_web_app(_FakeDaemon(registry)))
    async with TestClient(server) as client:
        for _ in range(2):  # the connection stays usable after a HEAD
            async with client.head("/metrics", headers={"Accept-Encoding": "gzip"}) as response:
                assert response.status == 200
                assert int(response.headers["Content-Length"]) > 0
                assert await response.read() == b""


async def test_an_escaping_the_fast_path_does_not_make_gets_the_stock_encoder() -> None:
    """A scraper asking for `escaping=dots` gets prometheus-client's own output for it."""
    registry = make_registry(nasty_states())
    accept = "application/openmetrics-text;version=1.0.0;escaping=dots"
    server = TestServer(make_web_app(_FakeDaemon(registry)))
    async with (
        TestClient(server) as client,
        client.get("/metrics", headers={"Accept": accept}) as response,
    ):
        body = await response.read()
    assert b"petra__up" in body  # dots escaping doubles underscores
    assert response.headers["Content-Type"].endswith("escaping=dots")


@pytest.mark.parametrize("split", [0, 1, 7, 1000, 65_537])
def test_crc32_combine_matches_zlib(split: int) -> None:
    """Combining the CRCs of two parts gives the CRC of their concatenation."""
    data = bytes(range(256)) * 300
    first, second = data[:split], data[split:]
    combined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(data)


def test_a_report_with_the_same_tenants_keeps_the_old_tuple() -> None:
    """Equal tenants in a new report: one tuple lives on, and /metrics still follows values."""
    state = OrgState("acme", "fp", "file", 60)
    state.record_success(_report("Acme", PLAIN, NASTY), NOW - 60, 0.1)
    first = state.report
    assert first is not None
    registry = make_registry([state])
    registry.exposition_gzip(False)
    state.record_success(_report("Acme", PLAIN, NASTY), NOW, 0.2)  # equal, not the same
    assert state.report is not None
    assert state.report.tenants is first.tenants
    assert registry.exposition(False) == generate_latest(registry)
    state.record_success(_report("Acme", PLAIN._replace(licensed_users=7.0), NASTY), NOW, 0.3)
    assert state.report.tenants is not first.tenants
    body = gzip.decompress(registry.exposition_gzip(False))
    assert body == generate_latest(registry)
    assert b'petra_tenant_licensed_users{org="acme",tenant_id="ZZk90t"} 7.0' in body
