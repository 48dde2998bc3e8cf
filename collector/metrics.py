"""Prometheus metrics: a custom collector over the per-org snapshots.

Petra data is never kept in labelled `Gauge` objects: those would keep
series of orgs and tenants that are gone. Instead `collect()` walks the
current snapshots on every scrape (no I/O, nothing but reading), so a
removed org or a vanished tenant disappears from the next scrape.
The family table below is the single description of every Petra metric.

`PetraCollector.collect()` is the stock (reference) path; `/metrics` serves the
same bytes from `CachedExposition` (below), which renders and compresses only
what changed since the last scrape.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import (
    generate_latest as openmetrics_generate_latest,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _untyped_float_to_go

from collector import __version__
from collector.state import OrgState
from collector.usage import TenantUsage

CACHED: Final = " Cached from the last successful poll of Petra's /v1/usage."
ORG: Final = ("org",)
TENANT: Final = ("org", "tenant_id")
TENANT_INFO: Final = (
    "org",
    "tenant_id",
    "display_name",
    "microsoft_tenant_id",
    "petra_service",
    "billable_status",
)

Kind = Literal["gauge", "counter"]
LabelValues = tuple[str, ...]
Sample = tuple[LabelValues, float]


@dataclass(frozen=True, slots=True)
class OrgFamily:
    """A metric with samples per org, read from the org's state."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    samples: Callable[[OrgState, bool], Sequence[Sample]]  # (state, fresh) -> samples


@dataclass(frozen=True, slots=True)
class TenantFamily:
    """A metric with one sample per tenant of a fresh report."""

    name: str
    help: str
    labels: tuple[str, ...]
    value: Callable[[TenantUsage], float | None]
    label_values: Callable[[str, TenantUsage], LabelValues]


def _org_value(get: Callable[[OrgState], float | None]) -> Callable[[OrgState, bool], list[Sample]]:
    def samples(state: OrgState, _fresh: bool) -> list[Sample]:
        value = get(state)
        return [] if value is None else [((state.name,), value)]

    return samples


def _report_value(
    get: Callable[[OrgState], float | None],
) -> Callable[[OrgState, bool], list[Sample]]:
    def samples(state: OrgState, fresh: bool) -> list[Sample]:
        if not fresh or state.report is None:
            return []
        value = get(state)
        return [] if value is None else [((state.name,), value)]

    return samples


def _requests(state: OrgState, _fresh: bool) -> list[Sample]:
    return [((state.name, code), float(n)) for code, n in sorted(state.requests_by_code.items())]


def _org_info(state: OrgState, fresh: bool) -> list[Sample]:
    if not fresh or state.report is None or state.report.organization_name is None:
        return []
    return [((state.name, state.report.organization_name), 1.0)]


def _report_generated(state: OrgState) -> float | None:
    return None if state.report is None else state.report.report_generated_at


def _total_tenants(state: OrgState) -> float | None:
    return None if state.report is None else state.report.total_tenants


ORG_FAMILIES: Final[tuple[OrgFamily, ...]] = (
    OrgFamily(
        "petra_up",
        "gauge",
        "1 if the last poll of the org succeeded, else 0.",
        ORG,
        _org_value(lambda s: 1.0 if s.up else 0.0),
    ),
    OrgFamily(
        "petra_auth_failure",
        "gauge",
        "1 while the org's API key is rejected with 401 (invalid, missing or deleted), "
        "from the 401 until the next successful poll.",
        ORG,
        _org_value(lambda s: 1.0 if s.auth_failing else 0.0),
    ),
    OrgFamily(
        "petra_auth_failures",
        "counter",
        "401 answers to the org's key.",
        ORG,
        _org_value(lambda s: float(s.auth_failures_total)),
    ),
    OrgFamily(
        "petra_api_requests",
        "counter",
        'Requests to Petra\'s API by HTTP status; code="error" when no answer came.',
        ("org", "code"),
        _requests,
    ),
    OrgFamily(
        "petra_rate_limited",
        "counter",
        "429 answers to the org's key.",
        ORG,
        _org_value(lambda s: float(s.rate_limited_total)),
    ),
    OrgFamily(
        "petra_poll_duration_seconds",
        "gauge",
        "Duration of the org's last poll.",
        ORG,
        _org_value(lambda s: s.poll_duration),
    ),
    OrgFamily(
        "petra_last_poll_timestamp_seconds",
        "gauge",
        "When the org's last poll finished (Unix time).",
        ORG,
        _org_value(lambda s: s.last_poll_at),
    ),
    OrgFamily(
        "petra_last_success_timestamp_seconds",
        "gauge",
        "When the org's last successful poll finished (Unix time).",
        ORG,
        _org_value(lambda s: s.last_success_at),
    ),
    OrgFamily(
        "petra_usage_report_generated_timestamp_seconds",
        "gauge",
        "reportGeneratedAt of the usage report (Unix time)." + CACHED,
        ORG,
        _report_value(_report_generated),
    ),
    OrgFamily(
        "petra_org_tenants",
        "gauge",
        "totalTenants of the organization." + CACHED,
        ORG,
        _report_value(_total_tenants),
    ),
    OrgFamily(
        "petra_org_info",
        "gauge",
        "Always 1; organizationName as a label." + CACHED,
        ("org", "organization_name"),
        _org_info,
    ),
)


def _tenant_labels(org: str, tenant: TenantUsage) -> LabelValues:
    return (org, tenant.tenant_id)


def _tenant_info_labels(org: str, tenant: TenantUsage) -> LabelValues:
    return (
        org,
        tenant.tenant_id,
        tenant.display_name or "",
        tenant.microsoft_tenant_id or "",
        tenant.service or "",
        tenant.billable_status or "",
    )


def _paused(tenant: TenantUsage) -> float | None:
    return None if tenant.is_paused is None else float(tenant.is_paused)


TENANT_FAMILIES: Final[tuple[TenantFamily, ...]] = (
    TenantFamily(
        "petra_tenant_licensed_users",
        "totalLicensedUsers of the tenant." + CACHED,
        TENANT,
        lambda t: t.licensed_users,
        _tenant_labels,
    ),
    TenantFamily(
        "petra_tenant_billable_users",
        "billableUsersThisMonth of the tenant." + CACHED,
        TENANT,
        lambda t: t.billable_users,
        _tenant_labels,
    ),
    TenantFamily(
        "petra_tenant_prorating_ratio",
        "proratingPercentageThisMonth / 100 of the tenant." + CACHED,
        TENANT,
        lambda t: t.prorating_ratio,
        _tenant_labels,
    ),
    TenantFamily(
        "petra_tenant_paused",
        "1 if the tenant is paused (isPaused)." + CACHED,
        TENANT,
        _paused,
        _tenant_labels,
    ),
    TenantFamily(
        "petra_tenant_onboarding_timestamp_seconds",
        "onboardingDate of the tenant (Unix time, midnight UTC)." + CACHED,
        TENANT,
        lambda t: t.onboarding_timestamp,
        _tenant_labels,
    ),
    TenantFamily(
        "petra_tenant_first_billable_timestamp_seconds",
        "firstBillableDate of the tenant (Unix time, midnight UTC)." + CACHED,
        TENANT,
        lambda t: t.first_billable_timestamp,
        _tenant_labels,
    ),
    TenantFamily(
        "petra_tenant_info",
        "Always 1; the tenant's descriptive fields as labels." + CACHED,
        TENANT_INFO,
        lambda _t: 1.0,
        _tenant_info_labels,
    ),
)

FAMILY_NAMES: Final = tuple(
    [f.name + ("_total" if f.kind == "counter" else "") for f in ORG_FAMILIES]
    + [f.name for f in TENANT_FAMILIES]
)


class PetraCollector(Collector):
    """Reads the snapshots at scrape time; cheap, and never does I/O."""

    def __init__(
        self,
        states: Callable[[], Iterable[OrgState]],
        max_staleness_seconds: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._states = states
        self._max_staleness = max_staleness_seconds
        self._wall_clock = wall_clock

    def snapshot(self) -> list[tuple[OrgState, bool]]:
        """Every org's state with its freshness (usage series shown) as of now."""
        now = self._wall_clock()
        limit = self._max_staleness()
        return [(s, not s.is_stale(now, limit)) for s in self._states()]

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot()
        for family in ORG_FAMILIES:
            metric = _new_family(family.name, family.kind, family.help, family.labels)
            for state, fresh in snapshot:
                for labels, value in family.samples(state, fresh):
                    metric.add_metric(labels, value)
            yield metric
        reports = [
            (state.name, state.report.tenants)
            for state, fresh in snapshot
            if fresh and state.report is not None
        ]
        for tenant_family in TENANT_FAMILIES:
            metric = GaugeMetricFamily(
                tenant_family.name, tenant_family.help, labels=tenant_family.labels
            )
            for org, tenants in reports:
                for tenant in tenants:
                    tenant_value = tenant_family.value(tenant)
                    if tenant_value is not None:
                        labels = tenant_family.label_values(org, tenant)
                        metric.add_metric(labels, tenant_value)
            yield metric


def _new_family(
    name: str, kind: Kind, help_text: str, labels: tuple[str, ...]
) -> CounterMetricFamily | GaugeMetricFamily:
    if kind == "counter":
        return CounterMetricFamily(name, help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)


# -- The fast path: lines rendered once per change, compressed once per change -------------
#
# prometheus-client's own exposition builds a Metric and a Sample object per series
# and formats every line on every scrape: about 5 us a series, seconds for a fleet.
# `CachedExposition` renders an org's lines only when its state changed
# (`OrgState.version`, and the freshness flag, which flips with time alone):
# - org families (a dozen short lines per org): kept as text per org;
# - tenant families (nearly all of the body): kept only deflated, in blocks of
#   BLOCK_ORGS orgs per family; a block is rebuilt when one of its orgs' tenants
#   changed (the others' lines are taken from the old block, decompressed).
# A gzip body is the pieces' deflate output concatenated (each ends with a sync
# flush), with the CRC combined from the pieces'. Lines follow the stock rules
# (labels sorted by name, values escaped like `_escape`, numbers by
# `floatToGoString`, HELP/TYPE lines made by the stock encoders themselves), so the
# body is byte for byte the stock one: tests/unit/test_exposition.py holds it to that
# against `PetraCollector`, which stays the reference.


# The stock number formatting, itself (prometheus-client leaves it unannotated).
floatToGoString: Final[Callable[[float], str]] = _untyped_float_to_go


def _escape(value: str) -> str:
    """A label value as prometheus-client escapes it: backslash, newline, double quote."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _SampleFormat:
    """How one family's samples are written: name, then labels sorted by label name."""

    __slots__ = ("_order", "_template", "org_only", "sample_name")

    def __init__(self, sample_name: str, labels: tuple[str, ...]) -> None:
        order = sorted(range(len(labels)), key=labels.__getitem__)
        inner = ",".join(f'{labels[i]}="{{{n}}}"' for n, i in enumerate(order))
        self._order = tuple(order)
        braced = "{{" + inner + "}}" if labels else ""
        self._template = sample_name + braced + " {value}\n"
        self.sample_name = sample_name
        self.org_only = labels == ORG  # the common case, written without the template

    def line(self, values: LabelValues, value: float) -> str:
        escaped = [_escape(values[i]) for i in self._order]
        return self._template.format(*escaped, value=floatToGoString(value))


_ORG_FORMATS: Final = tuple(
    _SampleFormat(f.name + ("_total" if f.kind == "counter" else ""), f.labels)
    for f in ORG_FAMILIES
)
_TENANT_FORMATS: Final = tuple(_SampleFormat(f.name, f.labels) for f in TENANT_FAMILIES)
BLOCK_ORGS: Final = 256  # orgs per separately compressed block of a family
GZIP_LEVEL: Final = 1  # level 1 is several times cheaper than 9 and close in size
# gzip member header: magic, deflate, no flags, no mtime, "fastest" (level 1), unknown OS.
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
_DEFLATE_END: Final = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS).flush()
STEP_SECONDS: Final = 0.02  # the longest stretch of rendering between two yields


def _family_headers(openmetrics: bool) -> tuple[bytes, ...]:
    """Each family's HELP and TYPE lines, made by the stock encoder itself."""
    headers: list[bytes] = []
    families: list[tuple[str, Kind, str, tuple[str, ...]]] = [
        (f.name, f.kind, f.help, f.labels) for f in ORG_FAMILIES
    ]
    families += [(f.name, "gauge", f.help, f.labels) for f in TENANT_FAMILIES]
    for name, kind, help_text, labels in families:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed([_new_family(name, kind, help_text, labels)]))
        text = (openmetrics_generate_latest if openmetrics else generate_latest)(registry)
        headers.append(text.removesuffix(b"# EOF\n"))
    return tuple(headers)


class _Fixed(Collector):
    """A collector that yields the metrics it was given (for rendering headers)."""

    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


@dataclass(slots=True, eq=False)
class _OrgChunks:
    """One org's rendered lines, valid while its state's version and freshness hold.

    The org families' lines are kept as text (a few short lines). The tenant
    families' lines, nearly all of the body, are kept only compressed, inside the
    family's `_Block`s; `where` says which block holds them, at which position.
    """

    state: OrgState
    org_label: str  # `{org="<escaped name>"} `
    version: int = -1
    fresh: bool = False
    org: tuple[bytes, ...] = ()  # one chunk per ORG_FAMILIES entry
    tenants: tuple[TenantUsage, ...] | None = None  # what the tenant lines are made from
    generation: int = 0  # bumped when `tenants` changes
    where: list[tuple[_Block, int, int] | None] = field(
        default_factory=lambda: [None] * len(TENANT_FAMILIES)
    )  # per tenant family: (block, position, generation)


@dataclass(slots=True, eq=False)
class _Block:
    """The tenant lines of up to BLOCK_ORGS orgs for one family, deflated on their own."""

    members: tuple[_OrgChunks, ...]
    generations: tuple[int, ...]
    lengths: tuple[int, ...]  # each member's share of the text
    deflated: bytes  # raw deflate, sync-flushed: concatenates with the other pieces
    crc: int  # CRC-32 of the text
    size: int  # length of the text

    def texts(self) -> list[bytes]:
        text = zlib.decompressobj(-zlib.MAX_WBITS).decompress(self.deflated)
        parts, offset = [], 0
        for length in self.lengths:
            parts.append(text[offset : offset + length])
            offset += length
        return parts


def _render_org(state: OrgState, fresh: bool, org_label: str) -> tuple[bytes, ...]:
    """The org's chunk of every org family; `org_label` is `{org="<escaped name>"} `."""
    chunks: list[bytes] = []
    for family, fmt in zip(ORG_FAMILIES, _ORG_FORMATS, strict=True):
        samples = family.samples(state, fresh)
        if not samples:
            chunks.append(b"")
        elif fmt.org_only and len(samples) == 1:
            line = fmt.sample_name + org_label + floatToGoString(samples[0][1]) + "\n"
            chunks.append(line.encode())
        else:
            chunks.append("".join([fmt.line(labels, value) for labels, value in samples]).encode())
    return tuple(chunks)


def _render_tenants(org: str, tenants: tuple[TenantUsage, ...], index: int) -> bytes:
    """The lines of tenant family `index` for one org's tenants."""
    family, fmt = TENANT_FAMILIES[index], _TENANT_FORMATS[index]
    lines: list[str] = []
    for tenant in tenants:
        value = family.value(tenant)
        if value is not None:
            lines.append(fmt.line(family.label_values(org, tenant), value))
    return "".join(lines).encode()


# One piece of the body: its text, or a block of tenant lines kept compressed.
Piece = bytes | _Block
# Making a body: yields (None) where the caller may pause, returns the body's pieces.
Steps = Generator[None, None, list[Piece]]


def piece_bytes(piece: Piece) -> bytes:
    """A piece as it goes on the wire (a block of tenant lines is decompressed)."""
    if isinstance(piece, bytes):
        return piece
    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(piece.deflated)


def piece_size(piece: Piece) -> int:
    return len(piece) if isinstance(piece, bytes) else piece.size


class CachedExposition:
    """The Petra families as exposition text, re-rendering only orgs that changed.

    Relies on every change to what an org exports bumping `OrgState.version`
    (state.py does so in every `record_*`). Reads state, never writes it. The
    work is a generator that yields now and then (`STEP_SECONDS`), so a caller
    on the event loop can let polls through during a long first render; callers
    must not interleave two runs (web.py holds a lock).
    """

    def __init__(self, collector: PetraCollector) -> None:
        self._collector = collector
        self._cache: dict[str, _OrgChunks] = {}
        self._headers = {False: _family_headers(False), True: _family_headers(True)}
        self._deflated: dict[tuple[int, int], tuple[tuple[bytes, ...], bytes]] = {}
        self._blocks: list[list[_Block]] = [[] for _ in TENANT_FAMILIES]

    def _entries(self, pause: _Pause) -> Iterator[None]:
        old = self._cache
        cache: dict[str, _OrgChunks] = {}
        for state, fresh in self._collector.snapshot():
            entry = old.get(state.name)
            if entry is None or entry.state is not state:
                entry = _OrgChunks(state, '{org="' + _escape(state.name) + '"} ')
            if entry.version != state.version or entry.fresh != fresh:
                entry.version, entry.fresh = state.version, fresh
                entry.org = _render_org(state, fresh, entry.org_label)
                tenants = state.report.tenants if fresh and state.report is not None else None
                if tenants is not entry.tenants and (
                    tenants is None or entry.tenants is None or entry.tenants != tenants
                ):
                    entry.generation += 1
                entry.tenants = tenants  # equal lines: keep them, drop the old tuple
                if pause.due():
                    yield None
            cache[state.name] = entry
        self._cache = cache

    def _tenant_blocks(
        self, index: int, members: list[_OrgChunks], pause: _Pause
    ) -> Iterator[None]:
        """Bring family `index`'s blocks up to date, re-using every unchanged one."""
        old, new = self._blocks[index], list[_Block]()
        opened: dict[int, list[bytes]] = {}  # id(old block) -> its members' texts
        for start in range(0, len(members), BLOCK_ORGS):
            group = tuple(members[start : start + BLOCK_ORGS])
            generations = tuple(entry.generation for entry in group)
            previous = old[len(new)] if len(new) < len(old) else None
            if (
                previous is not None
                and previous.members == group
                and previous.generations == generations
            ):
                new.append(previous)
                continue
            texts = []
            for entry in group:
                where = entry.where[index]
                if where is not None and where[2] == entry.generation:
                    block, position, _generation = where
                    if id(block) not in opened:
                        opened[id(block)] = block.texts()
                    texts.append(opened[id(block)][position])
                else:
                    assert entry.tenants is not None  # noqa: S101 - members have tenants
                    texts.append(_render_tenants(entry.state.name, entry.tenants, index))
            text = b"".join(texts)
            block = _Block(
                group,
                generations,
                tuple(map(len, texts)),
                _deflate(text),
                zlib.crc32(text),
                len(text),
            )
            for position, entry in enumerate(group):
                entry.where[index] = (block, position, entry.generation)
            new.append(block)
            if pause.due():
                yield None
        self._blocks[index] = new
        kept = {id(block) for block in new}
        for block in old:
            if id(block) not in kept:
                block.members = ()  # no cycle through the entries: freed at once

    def pieces(self, openmetrics: bool, pieces: list[Piece]) -> Iterator[None]:
        """Fill `pieces` with the Petra part of the body, in order; yields to pause."""
        pause = _Pause()
        yield from self._entries(pause)
        entries = list(self._cache.values())
        headers = self._headers[openmetrics]
        for index in range(len(ORG_FAMILIES)):
            pieces.append(headers[index])
            chunks = [entry.org[index] for entry in entries]
            pieces += [
                b"".join(chunks[start : start + BLOCK_ORGS])
                for start in range(0, len(chunks), BLOCK_ORGS)
            ]
        with_tenants = [entry for entry in entries if entry.tenants]
        for index in range(len(TENANT_FAMILIES)):
            pieces.append(headers[len(ORG_FAMILIES) + index])
            yield from self._tenant_blocks(index, with_tenants, pause)
            pieces.extend(self._blocks[index])

    def text(self, openmetrics: bool, tail: bytes) -> Steps:
        """Generator: yields to pause, returns (via StopIteration) the body's pieces,
        tenant blocks still compressed (see `piece_bytes`)."""
        pieces: list[Piece] = []
        yield from self.pieces(openmetrics, pieces)
        pieces.append(tail)
        return pieces

    def gzip(self, openmetrics: bool, tail: bytes) -> Steps:
        """Generator: yields to pause, returns the body gzip-compressed (level 1), in pieces.

        Each piece is deflated on its own and ended with a sync flush, so the pieces
        concatenate into one valid deflate stream; an unchanged piece reuses its bytes
        from the last scrape, and the CRCs of kept blocks are combined, not recomputed.
        """
        pieces: list[Piece] = []
        yield from self.pieces(openmetrics, pieces)
        old, kept = self._deflated, {}
        out = [_GZIP_HEADER]
        crc = size = 0
        for position, piece in enumerate(pieces):
            if isinstance(piece, _Block):
                crc = crc32_combine(crc, piece.crc, piece.size)
                size += piece.size
                out.append(piece.deflated)
                continue
            key = (int(openmetrics), position)
            cached = old.get(key)
            if cached is None or cached[0][0] != piece:
                cached = ((piece,), _deflate(piece))
            kept[key] = cached
            crc = zlib.crc32(piece, crc)
            size += len(piece)
            out.append(cached[1])
        self._deflated = {**{k: v for k, v in old.items() if k[0] != int(openmetrics)}, **kept}
        out += [_deflate(tail), _DEFLATE_END]
        crc = zlib.crc32(tail, crc)
        size += len(tail)
        out.append(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
        return list[Piece](out)


class _Pause:
    """Says when STEP_SECONDS of work have passed since the last pause."""

    __slots__ = ("_since",)

    def __init__(self) -> None:
        self._since = time.perf_counter()

    def due(self) -> bool:
        now = time.perf_counter()
        if now - self._since < STEP_SECONDS:
            return False
        self._since = now
        return True


def run_to_end(steps: Steps) -> bytes:
    """Drive a `CachedExposition.text`/`gzip` generator without pausing; the body."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            pieces: list[Piece] = done.value
            return b"".join([piece_bytes(piece) for piece in pieces])


def _deflate(text: bytes) -> bytes:
    """Raw deflate of `text` alone, ending on a byte boundary without a final block."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)


# CRC-32 of a concatenation from the parts' CRCs (zlib's crc32_combine, which Python's
# zlib module does not offer): multiplication by x^(8 * len2) modulo the CRC polynomial.
_CRC_POLY: Final = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1


def _powers() -> tuple[int, ...]:
    powers, p = [], 1 << 30  # x^1
    for _ in range(32):
        powers.append(p)
        p = _multmodp(p, p)
    return tuple(powers)


_X2N: Final = _powers()  # x^(2^n) modulo the polynomial


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of A + B, from crc1 = crc32(A), crc2 = crc32(B) and len2 = len(B)."""
    if len2 <= 0:
        return crc1
    p, k, n = 1 << 31, 3, len2  # x^0; k = 3: lengths count bytes, x^(8n) = x^(2^3 n)
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return _multmodp(p, crc1) ^ crc2


class CollectorMetrics:
    """The collector's own metrics, on the same registry as the Petra data."""

    def __init__(self, registry: CollectorRegistry) -> None:
        build = Gauge(
            "petra_collector_build_info",
            "Always 1; the collector's version as a label.",
            ["version"],
            registry=registry,
        )
        build.labels(version=__version__).set(1)
        self.orgs = Gauge(
            "petra_collector_orgs",
            "Organizations this instance polls (its shard's share of the config).",
            registry=registry,
        )
        self.reload_successful = Gauge(
            "petra_collector_config_last_reload_successful",
            "1 if the last config load or reload succeeded, 0 if it was rejected.",
            registry=registry,
        )
        self.reload_success_timestamp = Gauge(
            "petra_collector_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully (Unix time).",
            registry=registry,
        )

    def config_loaded(self, org_count: int, now: float) -> None:
        self.orgs.set(org_count)
        self.reload_successful.set(1)
        self.reload_success_timestamp.set(now)

    def config_rejected(self) -> None:
        self.reload_successful.set(0)


class PetraRegistry(CollectorRegistry):
    """The daemon's registry: the stock `collect()` yields everything (Petra data, then
    the collector's own metrics), and `exposition()` makes the same body fast."""

    def __init__(self, collector: PetraCollector) -> None:
        super().__init__(auto_describe=False)
        self.petra = collector
        self.own = CollectorRegistry(auto_describe=False)
        self.cached = CachedExposition(collector)
        super().register(collector)
        super().register(self.own)  # a registry is a collector too: its metrics follow

    def register(self, collector: Collector) -> None:
        """Anything registered later (own gauges, ProcessCollector) joins `own`, which the
        fast path renders with the stock encoder after the Petra families."""
        self.own.register(collector)

    def unregister(self, collector: Collector) -> None:
        self.own.unregister(collector)

    def _own(self, openmetrics: bool) -> bytes:
        """The collector's own metrics: a few gauges (and `# EOF` in OpenMetrics)."""
        return (openmetrics_generate_latest if openmetrics else generate_latest)(self.own)

    def exposition_steps(self, openmetrics: bool, gzipped: bool) -> Steps:
        """Generator making the body (gzip-compressed or not): yields now and then so
        an event loop can run in between; returns the body's pieces (`piece_bytes`
        gives each one's bytes, `run_to_end` the whole body)."""
        tail = self._own(openmetrics)
        if gzipped:
            return self.cached.gzip(openmetrics, tail)
        return self.cached.text(openmetrics, tail)

    def exposition(self, openmetrics: bool) -> bytes:
        """The body the stock encoder would make for this registry, byte for byte."""
        return run_to_end(self.exposition_steps(openmetrics, gzipped=False))

    def exposition_gzip(self, openmetrics: bool) -> bytes:
        """`exposition()`, gzip-compressed, mostly from compressed pieces kept since the
        last scrape."""
        return run_to_end(self.exposition_steps(openmetrics, gzipped=True))


def build_registry(collector: PetraCollector) -> tuple[PetraRegistry, CollectorMetrics]:
    registry = PetraRegistry(collector)
    return registry, CollectorMetrics(registry.own)
