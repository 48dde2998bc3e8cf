"""The `/metrics` body, fast: rendered and compressed only where something changed.

prometheus-client's own exposition builds a Metric and a Sample object per series
and formats every line on every scrape: about 5 us a series, seconds for a fleet.
`CachedExposition` renders an org's lines only when its state changed
(`OrgState.version`, and the freshness flag, which flips with time alone):
- org families (a dozen short lines per org): kept as text per org;
- tenant families (nearly all of the body): kept only deflated, in blocks of
  BLOCK_ORGS orgs per family; a block is rebuilt when one of its orgs' tenants
  changed (the others' lines are taken from the old block, decompressed).
A gzip body is the pieces' deflate output joined into one member (gzipstream.py).
Lines follow the stock rules (labels sorted by name, values escaped like `_escape`,
numbers by `floatToGoString`, HELP/TYPE lines made by the stock encoders
themselves), so the body is byte for byte the stock one:
tests/unit/test_exposition.py holds it to that against `PetraCollector`, which
stays the reference.

`Exposition` is what web.py serves: the Petra families, then the collector's own
metrics (`own`, rendered by the stock encoder); `negotiate` picks the body for
a scraper's Accept header.
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import (
    generate_latest as openmetrics_generate_latest,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _untyped_float_to_go

from collector import gcfreeze
from collector.gzipstream import GzipMember, crc32_shift, deflate, inflate
from collector.metrics import (
    ORG,
    ORG_FAMILIES,
    TENANT,
    TENANT_FAMILIES,
    Kind,
    LabelValues,
    PetraCollector,
    TenantFamily,
    new_family,
)
from collector.state import OrgState
from collector.usage import TenantUsage

FastFormat = Literal["text", "openmetrics"]  # the two bodies the fast path makes

# The stock number formatting, itself (prometheus-client leaves it unannotated).
floatToGoString: Final[Callable[[float], str]] = _untyped_float_to_go


def _escape(value: str) -> str:
    """A label value as prometheus-client escapes it: backslash, newline, double quote."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _plain(text: str) -> bool:
    """True when `_escape` would leave `text` as it is (nearly always)."""
    return "\\" not in text and "\n" not in text and '"' not in text


class _SampleFormat:
    """How one family's samples are written: name, then labels sorted by label name."""

    __slots__ = ("_template", "labels", "org_only", "sample_name")

    def __init__(self, sample_name: str, labels: tuple[str, ...]) -> None:
        order = sorted(range(len(labels)), key=labels.__getitem__)
        # Placeholders name the values' own positions, so values need no reordering.
        inner = ",".join(f'{labels[i]}="{{{i}}}"' for i in order)
        braced = "{{" + inner + "}}" if labels else ""
        self._template = sample_name + braced + " {value}\n"
        self.sample_name = sample_name
        self.labels = labels
        self.org_only = labels == ORG  # the common case, written without the template

    def line(self, values: LabelValues, value: float) -> str:
        return self._template.format(*[_escape(v) for v in values], value=_go(value))

    def plain_line(self, values: LabelValues, value: float) -> str:
        """`line` for values known to need no escaping."""
        return self._template.format(*values, value=_go(value))


_ORG_FORMATS: Final = tuple(
    _SampleFormat(f.name + ("_total" if f.kind == "counter" else ""), f.labels)
    for f in ORG_FAMILIES
)
BLOCK_ORGS: Final = 256  # orgs per separately compressed block of a family
STEP_SECONDS: Final = 0.02  # the longest stretch of rendering between two yields
# Between two slices of a long render: a fifth of the loop's time is left to polling
# while a large first scrape renders everything.
SCRAPE_PAUSE_SECONDS: Final = 0.005


def _family_headers(
    openmetrics: bool, tenant_families: tuple[TenantFamily, ...]
) -> tuple[bytes, ...]:
    """Each family's HELP and TYPE lines, made by the stock encoder itself."""
    headers: list[bytes] = []
    families: list[tuple[str, Kind, str, tuple[str, ...]]] = [
        (f.name, f.kind, f.help, f.labels) for f in ORG_FAMILIES
    ]
    families += [(f.name, "gauge", f.help, f.labels) for f in tenant_families]
    for name, kind, help_text, labels in families:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed([new_family(name, kind, help_text, labels)]))
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
    shift: int  # crc32_shift(size): combining this block's CRC costs one multiplication

    def texts(self) -> list[bytes]:
        text = inflate(self.deflated)
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


def _go(value: float) -> str:
    """`floatToGoString`, remembered: the same counts and dates recur across tenants."""
    text = _GO_TEXTS.get(value)
    if text is None:
        text = floatToGoString(value)
        # Not zero (0.0 and -0.0 are one key but two texts), nor NaN (never found again).
        if value and not math.isnan(value) and len(_GO_TEXTS) < GO_TEXTS_KEPT:
            _GO_TEXTS[value] = text
    return text


GO_TEXTS_KEPT: Final = 1 << 16
_GO_TEXTS: Final[dict[float, str]] = {}


def _render_tenants(
    org: str, tenants: tuple[TenantUsage, ...], family: TenantFamily, fmt: _SampleFormat
) -> bytes:
    """The lines of one tenant family for one org's tenants."""
    value_of = family.value
    if fmt.labels == TENANT:  # org, tenant_id: the labels' sorted order too
        head = fmt.sample_name + '{org="' + _escape(org) + '",tenant_id="'
        ids = [tenant.tenant_id for tenant in tenants]
        if not _plain("".join(ids)):
            ids = [_escape(tenant_id) for tenant_id in ids]
        return "".join(
            [
                head + tenant_id + '"} ' + _go(value) + "\n"
                for tenant_id, tenant in zip(ids, tenants, strict=True)
                if (value := value_of(tenant)) is not None
            ]
        ).encode()
    label_values = family.label_values
    samples = [
        (label_values(org, tenant), value)
        for tenant in tenants
        if (value := value_of(tenant)) is not None
    ]
    line = fmt.plain_line if _plain("".join([v for s in samples for v in s[0]])) else fmt.line
    return "".join([line(values, value) for values, value in samples]).encode()


# One piece of the body: its text, or a block of tenant lines kept compressed.
Piece = bytes | _Block
# Making a body: yields (None) where the caller may pause, returns the body's pieces.
Steps = Generator[None, None, list[Piece]]


def piece_bytes(piece: Piece) -> bytes:
    """A piece as it goes on the wire (a block of tenant lines is decompressed)."""
    if isinstance(piece, bytes):
        return piece
    return inflate(piece.deflated)


def piece_size(piece: Piece) -> int:
    return len(piece) if isinstance(piece, bytes) else piece.size


class CachedExposition:
    """The Petra families as exposition text, re-rendering only orgs that changed.

    Relies on every change to what an org exports bumping `OrgState.version`
    (state.py does so in every `record_*`). Reads state, never writes it. The
    work is a generator that yields now and then (`STEP_SECONDS`), so a caller
    on the event loop can let polls through during a long first render; callers
    must not interleave two runs (`Exposition.pieces` holds a lock).
    """

    def __init__(self, collector: PetraCollector) -> None:
        self._collector = collector
        self._cache: dict[str, _OrgChunks] = {}
        self._families = collector.tenant_families
        self._formats = tuple(_SampleFormat(f.name, f.labels) for f in self._families)
        self._headers = {
            False: _family_headers(False, self._families),
            True: _family_headers(True, self._families),
        }
        # (openmetrics, position) -> a piece's text and its deflate, from the last gzip body
        self._deflated: dict[tuple[bool, int], tuple[bytes, bytes]] = {}
        self._blocks: list[list[_Block]] = [[] for _ in self._families]

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
                    texts.append(
                        _render_tenants(
                            entry.state.name,
                            entry.tenants,
                            self._families[index],
                            self._formats[index],
                        )
                    )
            text = b"".join(texts)
            block = _Block(
                group,
                generations,
                tuple(map(len, texts)),
                deflate(text),
                zlib.crc32(text),
                len(text),
                crc32_shift(len(text)),
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

    def pieces(self, openmetrics: bool, pieces: list[Piece], pause: _Pause) -> Iterator[None]:
        """Fill `pieces` with the Petra part of the body, in order; yields to pause."""
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
            if pause.due():
                yield None
        with_tenants = [entry for entry in entries if entry.tenants]
        for index in range(len(self._families)):
            pieces.append(headers[len(ORG_FAMILIES) + index])
            yield from self._tenant_blocks(index, with_tenants, pause)
            pieces.extend(self._blocks[index])

    def text(self, openmetrics: bool, tail: bytes) -> Steps:
        """Generator: yields to pause, returns (via StopIteration) the body's pieces,
        tenant blocks still compressed (see `piece_bytes`)."""
        pieces: list[Piece] = []
        yield from self.pieces(openmetrics, pieces, _Pause())
        pieces.append(tail)
        return pieces

    def gzip(self, openmetrics: bool, tail: bytes) -> Steps:
        """Generator: yields to pause, returns the body gzip-compressed (level 1), in pieces.

        Each piece is deflated on its own and ended with a sync flush, so the pieces
        concatenate into one valid deflate stream; an unchanged piece reuses its bytes
        from the last scrape, and the CRCs of kept blocks are combined, not recomputed.
        """
        pieces: list[Piece] = []
        pause = _Pause()
        yield from self.pieces(openmetrics, pieces, pause)
        old, kept = self._deflated, {}
        member = GzipMember()
        for position, piece in enumerate(pieces):
            if isinstance(piece, _Block):
                member.add_deflated(piece.deflated, piece.crc, piece.size, piece.shift)
            else:
                key = (openmetrics, position)
                cached = old.get(key)
                if cached is None or cached[0] != piece:
                    cached = (piece, deflate(piece))
                kept[key] = cached
                member.add(piece, cached[1])
            if pause.due():
                yield None
        self._deflated = {**{k: v for k, v in old.items() if k[0] != openmetrics}, **kept}
        member.add(tail)
        return list[Piece](member.finish())


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


class Exposition:
    """What `/metrics` serves: the Petra families, then the collector's own metrics.

    `own` is the registry of the collector's own metrics (app.py registers its
    gauges and the process collector there); `registry` holds the Petra collector
    and `own` for prometheus-client's encoders: the reference body, and the one
    served in a format the fast path does not make.
    """

    def __init__(self, petra: PetraCollector) -> None:
        self.petra = petra
        self.own = CollectorRegistry(auto_describe=False)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(petra)
        self.registry.register(self.own)  # a registry is a collector too: its metrics follow
        self._cache = CachedExposition(petra)
        self._one_at_a_time = asyncio.Lock()  # the cache is not made for two renders at once

    async def pieces(self, fmt: FastFormat, *, gzipped: bool) -> list[Piece]:
        """The body's pieces, letting the event loop run (polls go on) every few ms.

        One render at a time. The pieces returned never change, so the caller may
        send them after the next render has begun.
        """
        async with self._one_at_a_time:
            steps = self.steps(fmt, gzipped=gzipped)
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    pieces: list[Piece] = done.value
                    break
                # What the render made so far (the cache) lives on: out of the way of
                # full collections, which would otherwise walk it all, loop stopped.
                gcfreeze.settle()
                # Not sleep(0): a poll needs several loop turns, and this leaves them room.
                await asyncio.sleep(SCRAPE_PAUSE_SECONDS)
            gcfreeze.settle()
            return pieces

    def steps(self, fmt: FastFormat, *, gzipped: bool) -> Steps:
        """Generator making the body (gzip-compressed or not): yields now and then so
        an event loop can run in between; returns the body's pieces (`piece_bytes`
        gives each one's bytes, `run_to_end` the whole body)."""
        openmetrics = fmt == "openmetrics"
        encode = openmetrics_generate_latest if openmetrics else generate_latest
        tail = encode(self.own)  # a few gauges (and `# EOF` in OpenMetrics)
        if gzipped:
            return self._cache.gzip(openmetrics, tail)
        return self._cache.text(openmetrics, tail)

    def body(self, fmt: FastFormat) -> bytes:
        """The body the stock encoder makes of `registry`, byte for byte."""
        return run_to_end(self.steps(fmt, gzipped=False))

    def body_gzip(self, fmt: FastFormat) -> bytes:
        """`body()`, gzip-compressed, mostly from compressed pieces kept since the last
        scrape."""
        return run_to_end(self.steps(fmt, gzipped=True))


# -- Which body a scraper gets ----------------------------------------------------------

# The Content-Types whose body the fast path makes, by (media type, version).
FAST_FORMATS: Final[dict[tuple[str, str], FastFormat]] = {
    ("text/plain", "0.0.4"): "text",
    ("text/plain", "1.0.0"): "text",
    ("application/openmetrics-text", "1.0.0"): "openmetrics",
}
# Name escapings whose output is the fast body: every Petra name is a legacy name, which
# both leave as it is. Others (dots, values) rewrite names: the stock encoder serves them.
FAST_ESCAPINGS: Final = frozenset({"underscores", "allow-utf-8"})


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The answer to one Accept header."""

    content_type: str  # the Content-Type the body is sent with
    encoder: Callable[[CollectorRegistry], bytes]  # prometheus-client's encoder for it
    fast: FastFormat | None  # the fast body that is the encoder's output, if any


def negotiate(accept: str) -> Negotiated:
    """prometheus-client's choice of format for `accept`, and the fast body that matches.

    The choice itself is prometheus-client's (`choose_encoder`), so /metrics answers
    every scraper as the stock exporter would. Which fast body fits is read from the
    Content-Type it chose, the one thing a scraper parses the body by, not from how
    the encoder is built: anything not known to be the fast body's format (another
    version, a name escaping that rewrites names, another charset) is served by the
    stock encoder instead, correct if slower.
    """
    encoder, content_type = choose_encoder(accept)
    media_type, *parameters = content_type.split(";")
    params: dict[str, str] = {}
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        params[name.strip().lower()] = value.strip()
    fast = FAST_FORMATS.get((media_type.strip().lower(), params.pop("version", "")))
    if params.pop("charset", "utf-8").lower() != "utf-8":
        fast = None
    if params.pop("escaping", "underscores") not in FAST_ESCAPINGS or params:
        fast = None
    return Negotiated(content_type, encoder, fast)
