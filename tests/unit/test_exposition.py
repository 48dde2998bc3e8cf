"""The cached /metrics body is the stock prometheus-client exposition, byte for byte."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import math
import random
import subprocess
import zlib

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import Counter, Gauge, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from collector import exposition as exposition_module
from collector.exposition import BLOCK_ORGS, Exposition, FastFormat, Steps, negotiate
from collector.metrics import CollectorMetrics, PetraCollector, tenant_families
from collector.petra_usage import TenantUsage, UsageReport
from collector.state import OrgState
from collector.web_app import make_web_app
from tests.outcomes import succeed
from tests.tools import require_tool

NOW = 10_000.0
MAX_STALENESS = 3600.0
SMALL_BLOCK = BLOCK_ORGS // 8

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
        fresh.count_request("usage", code)
    succeed(fresh, _report('Acme "MSP"\\\n', NASTY, PLAIN), NOW - 5, 0.125)
    stale = OrgState("old.org-1", "sha256:2", "env", 60)
    stale.count_request("usage", "200")
    succeed(stale, _report("Old", PLAIN), NOW - MAX_STALENESS - 1, 0.5)
    stale.count_request("usage", "401")
    stale.record_auth_failure("usage", "rejected", NOW - 10, 0.01, 1.0)
    limited = OrgState("rate_limited", "sha256:3", "file", 60)
    limited.count_request("usage", "200")
    succeed(limited, _report(None, PLAIN), NOW - 100, 0.2)
    limited.count_request("usage", "429")
    limited.record_rate_limited("usage", "429", NOW - 1, 0.05, NOW + 30)
    pending = OrgState("pending", "sha256:4", "file", 60)
    return [fresh, stale, limited, pending]


def make_exposition(states: list[OrgState], *, name_labels: bool = True) -> Exposition:
    families = tenant_families(name_labels=name_labels)
    exposition = Exposition(
        PetraCollector(lambda: states, lambda: MAX_STALENESS, lambda: NOW, families)
    )
    CollectorMetrics(exposition.own).config_loaded(len(states), NOW - 1000)
    # Registered on `own` afterwards, as app.py does with its extras.
    own = exposition.own
    Gauge("petra_collector_extra", "Registered after the exposition was built.", registry=own)
    Counter("petra_collector_things", "A counter with a created sample.", registry=own).inc()
    return exposition


def stock(exposition: Exposition, fmt: FastFormat) -> bytes:
    """What prometheus-client's own encoder makes of everything /metrics serves."""
    return (openmetrics_latest if fmt == "openmetrics" else generate_latest)(exposition.registry)


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_the_cached_body_is_the_stock_body(fmt: FastFormat) -> None:
    """Same bytes as the stock encoder for labels needing escapes, None fields and stale orgs."""
    exposition = make_exposition(nasty_states())
    stock_body = stock(exposition, fmt)
    assert exposition.body(fmt) == stock_body
    assert b"old.org-1" in stock_body  # the stale org keeps petra_up and its counters...
    assert b'petra_org_tenants{org="old.org-1"}' not in stock_body  # ...but no usage series


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_the_gzip_body_is_the_stock_body_compressed(fmt: FastFormat) -> None:
    """The gzip body decompresses (also as a stream, checking the CRC) to the stock body."""
    exposition = make_exposition(nasty_states())
    body = exposition.body_gzip(fmt)
    stock_body = stock(exposition, fmt)
    assert gzip.decompress(body) == stock_body
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert stream.decompress(body) == stock_body
    assert stream.eof
    assert not stream.unused_data


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_without_tenant_name_labels_the_info_carries_no_names(fmt: FastFormat) -> None:
    """metrics.tenant_name_labels: false: no display_name or microsoft_tenant_id anywhere,
    the rest of petra_tenant_info stays, and the cached body is still the stock one."""
    exposition = make_exposition(nasty_states(), name_labels=False)
    body = exposition.body(fmt)
    assert body == stock(exposition, fmt)
    assert gzip.decompress(exposition.body_gzip(fmt)) == body
    assert b"display_name" not in body
    assert b"microsoft_tenant_id" not in body
    assert b"Customer One" not in body
    assert b"a1b2" not in body
    assert b'petra_tenant_info{billable_status="Trial",org="acme",petra_service=""' in body


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Blocks of SMALL_BLOCK orgs: a fleet of a few blocks per family then costs the stock
    encoder (the reference every body is compared with) an eighth of what 256-org blocks
    would, and the block arithmetic is the same."""
    monkeypatch.setattr(exposition_module, "BLOCK_ORGS", SMALL_BLOCK)
    return SMALL_BLOCK


def test_cached_pieces_follow_every_change(small_blocks: int) -> None:
    """After polls, a vanished tenant, a removed org and stale orgs: still the stock body."""
    bulk = [OrgState(f"org-{i:04d}", "fp", "file", 60) for i in range(2 * small_blocks + 11)]
    states = nasty_states() + bulk
    for index, state in enumerate(states[4:]):
        succeed(state, _report("Bulk", PLAIN._replace(tenant_id=f"t{index}")), NOW, 0.1)
    clock = [NOW]
    collector = PetraCollector(lambda: states, lambda: MAX_STALENESS, lambda: clock[0])
    exposition = Exposition(collector)
    assert len(states) > 2 * small_blocks  # several blocks per family

    def check() -> None:
        stock_body = stock(exposition, "text")
        assert exposition.body("text") == stock_body
        assert gzip.decompress(exposition.body_gzip("text")) == stock_body

    check()
    succeed(states[0], _report("Acme", NASTY), NOW, 0.3)  # PLAIN vanished
    stale = states[small_blocks + 5]
    stale.record_error("usage", stale.health, "timeout", NOW, None)
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
    body = make_exposition(nasty_states()).body("text")
    result = subprocess.run(  # noqa: S603 - a fixed tool path and no shell
        [promtool, "check", "metrics"], input=body, capture_output=True, check=False, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


class _CountingExposition(Exposition):
    """The real exposition, counting the bodies its fast path makes."""

    def __init__(self, petra: PetraCollector) -> None:
        super().__init__(petra)
        self.fast_bodies = 0

    def steps(self, fmt: FastFormat, *, gzipped: bool) -> Steps:
        self.fast_bodies += 1
        return super().steps(fmt, gzipped=gzipped)


def counting_exposition(states: list[OrgState]) -> _CountingExposition:
    exposition = _CountingExposition(
        PetraCollector(lambda: states, lambda: MAX_STALENESS, lambda: NOW)
    )
    CollectorMetrics(exposition.own).config_loaded(len(states), NOW - 1000)
    return exposition


class _FakeDaemon:
    """Just what web_app.py reads for /metrics."""

    ready = True
    max_staleness = MAX_STALENESS
    shard = None
    telemetry_path = "/metrics"

    def __init__(self, exposition: Exposition) -> None:
        self.exposition = exposition

    def org_states(self) -> list[OrgState]:
        return []

    async def reload(self, reason: str) -> list[str]:
        return [reason]


# The Accept headers scrapers send (Prometheus' scrape.go: `scrapeAcceptHeader`, later
# `acceptHeader(scrape_protocols, escaping)`), and the body each must get fast.
PROTOBUF = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
)
OM_1 = "application/openmetrics-text;version=1.0.0"
OM_0 = "application/openmetrics-text;version=0.0.1"
TEXT_1 = "text/plain;version=1.0.0"
TEXT_0 = "text/plain;version=0.0.4"
SCRAPER_ACCEPT_HEADERS: dict[str, tuple[str, FastFormat]] = {
    "prometheus-2-openmetrics-0.0.1-era": (
        "application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "text",
    ),
    "prometheus-2-openmetrics-1.0.0": (
        ",".join([OM_1, f"{OM_0};q=0.75", f"{TEXT_0};q=0.5", "*/*;q=0.1"]),
        "openmetrics",
    ),
    "prometheus-2.49-to-2.55": (
        ",".join([f"{OM_1};q=0.5", f"{OM_0};q=0.4", f"{TEXT_0};q=0.3", "*/*;q=0.2"]),
        "openmetrics",
    ),
    "prometheus-2-protobuf-first": (
        ",".join(
            [f"{PROTOBUF};q=0.5", f"{OM_1};q=0.4", f"{OM_0};q=0.3", f"{TEXT_0};q=0.2", "*/*;q=0.1"]
        ),
        "openmetrics",
    ),
    "prometheus-3.0-utf8-names": (
        ",".join(
            [
                f"{OM_1};escaping=allow-utf-8;q=0.6",
                f"{OM_0};escaping=allow-utf-8;q=0.5",
                f"{TEXT_1};escaping=allow-utf-8;q=0.4",
                f"{TEXT_0};escaping=allow-utf-8;q=0.3",
                "*/*;q=0.2",
            ]
        ),
        "openmetrics",
    ),
    "prometheus-3-allow-utf-8": (
        ",".join(
            [
                f"{OM_1};escaping=allow-utf-8;q=0.6",
                f"{OM_0};q=0.5",
                f"{TEXT_1};escaping=allow-utf-8;q=0.4",
                f"{TEXT_0};q=0.3",
                "*/*;q=0.2",
            ]
        ),
        "openmetrics",
    ),
    "prometheus-3-underscores": (
        ",".join(
            [
                f"{OM_1};escaping=underscores;q=0.6",
                f"{OM_0};q=0.5",
                f"{TEXT_1};escaping=underscores;q=0.4",
                f"{TEXT_0};q=0.3",
                "*/*;q=0.2",
            ]
        ),
        "openmetrics",
    ),
    "prometheus-3-protobuf-first": (
        ",".join(
            [
                f"{PROTOBUF};q=0.6",
                f"{OM_1};escaping=allow-utf-8;q=0.5",
                f"{OM_0};q=0.4",
                f"{TEXT_1};escaping=allow-utf-8;q=0.3",
                f"{TEXT_0};q=0.2",
                "*/*;q=0.1",
            ]
        ),
        "openmetrics",
    ),
    "prometheus-3-text-1.0.0-only": (f"{TEXT_1};escaping=allow-utf-8;q=0.6,*/*;q=0.5", "text"),
    "prometheus-text-0.0.4-only": ("text/plain;version=0.0.4;q=0.6,*/*;q=0.5", "text"),
    "plain-text-0.0.4": ("text/plain;version=0.0.4", "text"),
    "no-accept-header": ("", "text"),
    "curl": ("*/*", "text"),
    "protobuf-only": (PROTOBUF, "text"),
}


@pytest.mark.parametrize(
    ("accept", "fmt"), SCRAPER_ACCEPT_HEADERS.values(), ids=SCRAPER_ACCEPT_HEADERS.keys()
)
def test_scrapers_accept_headers_pick_the_fast_body(accept: str, fmt: FastFormat) -> None:
    """Each scraper's header gets the fast body, and it is the negotiated encoder's output.

    This is what keeps a prometheus-client upgrade from silently sending every
    scrape down the stock encoder (30 times the CPU), or the fast body in a format
    the client would have rendered differently.
    """
    negotiated = negotiate(accept)
    assert negotiated.fast == fmt, negotiated.content_type
    kind = "application/openmetrics-text" if fmt == "openmetrics" else "text/plain"
    assert negotiated.content_type.startswith(kind)
    exposition = make_exposition(nasty_states())
    assert exposition.body(fmt) == negotiated.encoder(exposition.registry)


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text;version=1.0.0;escaping=dots",
        "application/openmetrics-text;version=1.0.0;escaping=values",
        "text/plain;version=1.0.0;escaping=dots",
        "application/openmetrics-text;version=2.0.0",
    ],
)
def test_formats_the_fast_path_does_not_make_go_to_the_stock_encoder(accept: str) -> None:
    """Name escapings that rewrite names, and versions it does not render: stock."""
    assert negotiate(accept).fast is None


@pytest.mark.parametrize(
    ("accept", "fmt"), SCRAPER_ACCEPT_HEADERS.values(), ids=SCRAPER_ACCEPT_HEADERS.keys()
)
async def test_metrics_endpoint_serves_the_negotiated_body(accept: str, fmt: FastFormat) -> None:
    """/metrics answers prometheus-client's format and content type, from the fast path,
    gzipped on request."""
    exposition = counting_exposition(nasty_states())
    negotiated = negotiate(accept)
    assert negotiated.fast == fmt
    stock_body = negotiated.encoder(exposition.registry)
    async with TestClient(TestServer(make_web_app(_FakeDaemon(exposition)))) as client:
        for served, encoding in enumerate(("gzip", "identity"), start=1):
            headers = {"Accept": accept, "Accept-Encoding": encoding}
            async with client.get("/metrics", headers=headers) as response:
                assert response.status == 200
                assert await response.read() == stock_body
                assert response.headers.get("Content-Encoding") == (
                    "gzip" if encoding == "gzip" else None
                )
                assert response.headers["Content-Type"] == negotiated.content_type
            assert exposition.fast_bodies == served


async def test_head_metrics_sends_headers_only() -> None:
    """HEAD /metrics answers the length of the body it would send, and no body."""
    server = TestServer(make_web_app(_FakeDaemon(make_exposition(nasty_states()))))
    async with TestClient(server) as client:
        for _ in range(2):  # the connection stays usable after a HEAD
            async with client.head("/metrics", headers={"Accept-Encoding": "gzip"}) as response:
                assert response.status == 200
                assert int(response.headers["Content-Length"]) > 0
                assert await response.read() == b""


async def test_an_escaping_the_fast_path_does_not_make_gets_the_stock_encoder() -> None:
    """A scraper asking for `escaping=dots` gets prometheus-client's own output for it."""
    exposition = counting_exposition(nasty_states())
    accept = "application/openmetrics-text;version=1.0.0;escaping=dots"
    server = TestServer(make_web_app(_FakeDaemon(exposition)))
    async with (
        TestClient(server) as client,
        client.get("/metrics", headers={"Accept": accept}) as response,
    ):
        body = await response.read()
    assert b"petra__up" in body  # dots escaping doubles underscores
    assert response.headers["Content-Type"].endswith("escaping=dots")
    assert exposition.fast_bodies == 0


def test_a_report_with_the_same_tenants_keeps_the_old_tuple() -> None:
    """Equal tenants in a new report: one tuple lives on, and /metrics still follows values."""
    state = OrgState("acme", "fp", "file", 60)
    succeed(state, _report("Acme", PLAIN, NASTY), NOW - 60, 0.1)
    first = state.report
    assert first is not None
    exposition = make_exposition([state])
    exposition.body_gzip("text")
    succeed(state, _report("Acme", PLAIN, NASTY), NOW, 0.2)  # equal, not the same
    assert state.report is not None
    assert state.report.tenants is first.tenants
    assert exposition.body("text") == stock(exposition, "text")
    succeed(state, _report("Acme", PLAIN._replace(licensed_users=7.0), NASTY), NOW, 0.3)
    assert state.report.tenants is not first.tenants
    body = gzip.decompress(exposition.body_gzip("text"))
    assert body == stock(exposition, "text")
    assert b'petra_tenant_licensed_users{org="acme",tenant_id="ZZk90t"} 7.0' in body


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_numbers_that_look_alike_keep_their_own_text(fmt: FastFormat) -> None:
    """Remembered number texts: -0.0 is not 0.0, NaN and infinities, ints and huge values."""
    values = (0.0, -0.0, math.nan, math.inf, -math.inf, 7, 7.0, 1e21, 12345678901.5, -0.0)
    tenants = [PLAIN._replace(tenant_id=f"t{i}", licensed_users=v) for i, v in enumerate(values)]
    state = OrgState("numbers", "sha256:5", "file", 60)
    state.count_request("usage", "200")
    succeed(state, _report("Numbers", *tenants), NOW - 5, 0.1)
    exposition = make_exposition([state])
    for _ in range(2):  # the second time from the remembered texts
        assert exposition.body(fmt) == stock(exposition, fmt)


def _fleet(count: int) -> list[OrgState]:
    states = nasty_states() + [OrgState(f"org-{i:04d}", "fp", "file", 60) for i in range(count)]
    for index, state in enumerate(states[4:]):
        state.count_request("usage", "200")
        succeed(state, _report("Bulk", PLAIN._replace(tenant_id=f"t{index}")), NOW, 0.1)
    return states


def _act(
    rng: random.Random, states: list[OrgState], step: int, kinds: tuple[int, ...] = tuple(range(8))
) -> None:
    """One random change, of the kinds polling, reloads and time make."""
    state = rng.choice(states)
    now = NOW + step
    kind = rng.choice(kinds)
    if kind == 0:  # the same report again: only times, duration and a counter move
        state.count_request("usage", "200")
        if state.report is not None:
            succeed(state, state.report, now, rng.choice((0.1, 0.0, -0.0, 0.25)))
    elif kind == 1:  # tenants changed
        tenant = PLAIN._replace(tenant_id=f"n{step}", licensed_users=rng.choice((0.0, -0.0, 7.0)))
        succeed(state, _report("Changed", tenant, NASTY), now, 0.2)
    elif kind == 2:  # a failed poll
        state.count_request("usage", "error")
        state.record_error("usage", state.health, "timeout", now, None)
    elif kind == 3:
        state.count_request("usage", "401")
        state.record_auth_failure("usage", "rejected", now, 0.01, 1.0)
    elif kind == 4:
        state.count_request("usage", "429")
        state.record_rate_limited("usage", "429", now, 0.05, now + 30)
    elif kind == 5 and len(states) > 10:  # an org left the config
        states.remove(state)
    elif kind == 6:  # an org joined
        fresh = OrgState(f"new-{step}-{rng.randrange(10**9)}", "fp", "file", 60)
        succeed(fresh, _report(None, PLAIN), now, 0.3)
        states.insert(rng.randrange(len(states) + 1), fresh)
    else:  # no tenants at all
        succeed(state, _report("Empty"), now, 0.1)


@pytest.mark.parametrize("seed", range(4))
def test_random_changes_between_scrapes_keep_the_stock_body(seed: int, small_blocks: int) -> None:
    """Several random changes between scrapes (most orgs unchanged, some changed in the
    same block, orgs coming and going), for 30 scrapes: every body is the stock one."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    states = _fleet(3 * small_blocks)
    clock = [NOW]
    exposition = Exposition(PetraCollector(lambda: states, lambda: MAX_STALENESS, lambda: clock[0]))
    for step in range(30):
        for _ in range(rng.choice((0, 1, 5, 40))):
            _act(rng, states, step)
        clock[0] = NOW + step
        fmt: FastFormat = rng.choice(("text", "openmetrics"))
        stock_body = stock(exposition, fmt)
        if rng.random() < 0.5:
            assert gzip.decompress(exposition.body_gzip(fmt)) == stock_body, step
        else:
            assert exposition.body(fmt) == stock_body, step


@pytest.mark.parametrize("orgs_come_and_go", [False, True])
@pytest.mark.parametrize("stop_after", [1, 3, 20, 60, 200])
def test_a_render_given_up_halfway_leaves_the_next_one_right(
    monkeypatch: pytest.MonkeyPatch, small_blocks: int, stop_after: int, orgs_come_and_go: bool
) -> None:
    """A scraper that goes away mid-render closes the render's generator: some blocks
    are new, others not, and the changes it noted are in none. The next render, after
    more changes, is still the stock body (with the same orgs as before, and not)."""
    monkeypatch.setattr(exposition_module, "STEP_SECONDS", 0.0)  # a pause after every step
    rng = random.Random(stop_after)  # noqa: S311 - reproducible test data, not secrets
    kinds = (0, 1, 2, 3, 4, 5, 6, 7) if orgs_come_and_go else (0, 1, 2, 3, 4, 7)
    states = _fleet(3 * small_blocks)
    exposition = Exposition(PetraCollector(lambda: states, lambda: MAX_STALENESS, lambda: NOW))
    exposition.body_gzip("text")
    for _ in range(40):
        _act(rng, states, 1, kinds)
    steps = exposition.steps("text", gzipped=True)
    for _ in range(stop_after):
        try:
            next(steps)
        except StopIteration:
            break
    steps.close()
    for _ in range(3):
        _act(rng, states, 2, kinds)
    assert gzip.decompress(exposition.body_gzip("text")) == stock(exposition, "text")
    assert exposition.body("openmetrics") == stock(exposition, "openmetrics")


def test_a_duration_from_zero_to_minus_zero_changes_its_text() -> None:
    """0.0 and -0.0 compare equal but are written differently: the org line follows."""
    state = OrgState("zero", "fp", "file", 60)
    state.count_request("usage", "200")
    succeed(state, _report("Zero", PLAIN), NOW, 0.0)
    exposition = make_exposition([state])
    assert exposition.body("text") == stock(exposition, "text")
    succeed(state, _report("Zero", PLAIN), NOW, -0.0)
    body = exposition.body("text")
    assert body == stock(exposition, "text")
    assert b'petra_poll_duration_seconds{org="zero"} -0.0' in body


def test_wire_chunks_join_the_pieces_into_few_writes_of_the_same_bytes() -> None:
    """Every chunk but the last holds at least the asked size; together they are the body."""
    states = nasty_states()
    exposition = make_exposition(states)
    steps = exposition.steps("text", gzipped=True)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            pieces = done.value
            break
    body = b"".join(exposition_module.piece_bytes(piece) for piece in pieces)
    for size in (1, 100, 1 << 30):
        chunks = list(exposition_module.wire_chunks(pieces, size))
        assert b"".join(chunks) == body
        assert all(len(chunk) >= size for chunk in chunks[:-1])
        assert len(chunks) <= len(pieces)
    assert len(list(exposition_module.wire_chunks(pieces, 1 << 30))) == 1
    assert gzip.decompress(body) == stock(exposition, "text")


async def test_sending_a_body_turns_the_event_loop_between_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A scraper whose socket takes every write at once (no write ever waits) still
    leaves the loop to other tasks (a probe's answer) while a large body goes out."""
    monkeypatch.setattr(exposition_module, "STEP_SECONDS", 0.0)  # a pause after every chunk
    chunks = [bytes([n]) * exposition_module.WRITE_BYTES for n in range(5)]
    pieces: list[exposition_module.Piece] = list(chunks)
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    sent: list[bytes] = []
    turns_at_write: list[int] = []

    async def write(chunk: bytes) -> None:
        sent.append(chunk)
        turns_at_write.append(turns)

    other = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    await exposition_module.send_pieces(pieces, write)
    other.cancel()
    assert sent == chunks
    assert all(a < b for a, b in itertools.pairwise(turns_at_write))
