"""The `/metrics` body, fast: rendered and compressed only where something changed.

prometheus-client's own exposition builds a Metric and a Sample object per series
and formats every line on every scrape: about 5 us a series, seconds for a fleet.
`CachedExposition` keeps every family's lines only deflated, in blocks of
BLOCK_ORGS orgs per family, and looks at an org again only when its state changed
(`OrgState.version`, and the freshness flag, which flips with time alone):
- org families: each family's value is noted per org, and a line is made again
  only when that value changed (a poll with the same report moves four);
- tenant families (nearly all of the body): made again when the org's tenants
  changed.
Only the blocks holding such orgs are rebuilt (inflated, the changed orgs' lines
put in, deflated); while the orgs are those of the last render in its order, the
orgs that changed are listed as they are noticed and no other block is looked at.
A gzip body is the blocks' deflate output joined into one member (gzipstream.py).
Lines follow the stock rules (labels sorted by name, values escaped like `_escape`,
numbers by `floatToGoString`, HELP/TYPE lines made by the stock encoders
themselves), so the body is byte for byte the stock one:
tests/unit/test_exposition.py holds it to that against `PetraCollector`, which
stays the reference.

`Exposition` is what web_app.py serves: the Petra families, then the collector's own
metrics (`own`, rendered by the stock encoder); `negotiate` picks the body for
a scraper's Accept header.
"""

from __future__ import annotations

import asyncio
import math
import operator
import time
from array import array
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Final, Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import (
    generate_latest as openmetrics_generate_latest,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _untyped_float_to_go

from collector import memory_gc, memory_trim
from collector.gzipstream import GzipMember, crc32, deflate, inflate, kept_shift
from collector.metrics import (
    ORG,
    ORG_FAMILIES,
    TENANT,
    Kind,
    LabelValues,
    PetraCollector,
    TenantFamily,
    new_family,
)
from collector.petra_usage import TenantUsage
from collector.state import OrgState

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

    __slots__ = ("_template", "labels", "org_only", "remember", "sample_name")

    def __init__(self, sample_name: str, labels: tuple[str, ...]) -> None:
        order = sorted(range(len(labels)), key=labels.__getitem__)
        # Placeholders name the values' own positions, so values need no reordering.
        inner = ",".join(f'{labels[i]}="{{{i}}}"' for i in order)
        braced = "{{" + inner + "}}" if labels else ""
        self._template = sample_name + braced + " {value}\n"
        self.sample_name = sample_name
        self.labels = labels
        self.org_only = labels == ORG  # the common case, written without the template
        # Times and durations differ in every sample: not worth remembering their texts.
        self.remember = not sample_name.endswith(("_timestamp_seconds", "_duration_seconds"))

    def line(self, values: LabelValues, value: float) -> str:
        if _plain("".join(values)):
            return self._template.format(*values, value=_go(value))
        return self._template.format(*[_escape(v) for v in values], value=_go(value))

    def plain_line(self, values: LabelValues, value: float) -> str:
        """`line` for values known to need no escaping."""
        return self._template.format(*values, value=_go(value))


_ORG_FORMATS: Final = tuple(
    _SampleFormat(f.name + ("_total" if f.kind == "counter" else ""), f.labels)
    for f in ORG_FAMILIES
)
_UNSET: Final = object()  # no value noted yet: differs from every value
_ORG_VALUES: Final = tuple(f.value for f in ORG_FAMILIES)
BLOCK_ORGS: Final = 256  # orgs per separately compressed block of a family
STEP_SECONDS: Final = 0.02  # the longest stretch of rendering between two yields
# Between two slices of a render, the loop turns this many times: what is ready runs
# (a poll's next step, a probe's answer, which takes two turns), with no idle wait.
PAUSE_TURNS: Final = 4


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
class _OrgEntry:
    """What the cache knows of one org: which state its lines were made from, and
    where they are in the last render (the lines themselves are only in the blocks).
    """

    state: OrgState
    org_label: str  # `{org="<escaped name>"} `
    version: int = -1
    fresh: bool = False
    # Per org family: what its lines are made from (the value; for a family of several
    # samples, the lines themselves), and a count bumped each time that changes, so a
    # poll that moved only the timestamps and a counter re-renders only those.
    values: list[object] = field(default_factory=lambda: [_UNSET] * len(ORG_FAMILIES))
    stamps: array[int] = field(default_factory=lambda: array("Q", bytes(8 * len(ORG_FAMILIES))))
    tenants: tuple[TenantUsage, ...] | None = None  # what the tenant lines are made from
    generation: int = 0  # bumped when `tenants` changes
    # Positions in the last render, among all orgs and among orgs with tenants: where an
    # unchanged org's lines are found in the old blocks (checked, never trusted).
    org_slot: int = -1
    tenant_slot: int = -1
    # While one render makes this org's tenant lines: (generation, each tenant's
    # `{org=..,tenant_id=..} ` text, the tenants' fields as columns); shared by the
    # families, dropped when the render ends.
    scratch: tuple[int, list[str], list[tuple[object, ...]]] | None = None


@dataclass(slots=True, eq=False)
class _Block:
    """The lines of up to BLOCK_ORGS orgs for one family, deflated on their own."""

    members: tuple[_OrgEntry, ...]
    stamps: array[int]  # each member's stamp for the family (org) or `generation` (tenant)
    lengths: array[int]  # each member's share of the text, in bytes
    deflated: bytes  # raw deflate, sync-flushed: concatenates with the other pieces
    crc: int  # CRC-32 of the text
    size: int  # length of the text
    shift: int | None  # kept_shift(size): combining this block's CRC again costs little

    def texts(self) -> list[bytes]:
        """Each member's share of the text."""
        text = inflate(self.deflated)
        ends = list(accumulate(self.lengths))
        return [text[start:end] for start, end in zip([0, *ends], ends, strict=False)]


def _note_org_values(
    entry: _OrgEntry, state: OrgState, fresh: bool, changed: list[list[_OrgEntry]]
) -> None:
    """Note each org family's value; bump the stamp of each family whose value changed,
    and list the entry under that family in `changed`."""
    values, stamps = entry.values, entry.stamps
    for index, value_of in enumerate(_ORG_VALUES):
        value: object
        if value_of is None:
            # A family of several samples: its lines themselves. Bytes, which the
            # garbage collector never walks (tuples of samples, kept per org, it would).
            fmt = _ORG_FORMATS[index]
            samples = ORG_FAMILIES[index].samples(state, fresh)
            value = "".join([fmt.line(labels, number) for labels, number in samples]).encode()
        else:
            value = value_of(state, fresh)
        old = values[index]
        if value is old:
            continue
        # A single number: 0.0 and -0.0 compare equal, their texts do not.
        if value == old and (value != 0 or _same_zero(value, old)):
            continue
        values[index] = value
        stamps[index] += 1
        changed[index].append(entry)


def _same_zero(value: object, old: object) -> bool:
    """For two values equal to zero: whether both are 0.0 or both -0.0."""
    assert isinstance(value, float | int)  # noqa: S101 - what equals 0 here is a number
    assert isinstance(old, float | int)  # noqa: S101 - the same
    return math.copysign(1.0, value) == math.copysign(1.0, old)


def _org_lines(entry: _OrgEntry, index: int) -> bytes:
    """The org's lines of org family `index`, from the value `_note_org_values` noted."""
    value = entry.values[index]
    if isinstance(value, bytes):  # the lines of a family of several samples
        return value
    fmt = _ORG_FORMATS[index]
    if value is None:
        return b""
    assert isinstance(value, float | int)  # noqa: S101 - what an OrgFamily.value returns
    text = _GO_TEXTS[value] if fmt.remember else floatToGoString(value)
    return (fmt.sample_name + entry.org_label + text + "\n").encode()


class _GoTexts(dict[float, str]):
    """`floatToGoString` by value, remembered: the same counts and dates recur across
    tenants. Zero is never kept (0.0 and -0.0 are one key but two texts), nor NaN
    (never found again), nor more than GO_TEXTS_KEPT values."""

    __slots__ = ()

    def __missing__(self, value: float) -> str:
        if value == 0:
            return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
        text = floatToGoString(value)
        if not math.isnan(value) and len(self) < GO_TEXTS_KEPT:
            self[value] = text
        return text


GO_TEXTS_KEPT: Final = 1 << 16
_GO_TEXTS: Final = _GoTexts()


def _go(value: float) -> str:
    """`floatToGoString`, remembered where it pays."""
    return _GO_TEXTS[value]


def _tenant_lines(entry: _OrgEntry, family: TenantFamily, fmt: _SampleFormat) -> bytes:
    """The lines of one tenant family for one org's tenants."""
    tenants = entry.tenants
    assert tenants is not None  # noqa: S101 - only orgs with tenants have tenant lines
    column = family.column
    if column is not None and fmt.labels == TENANT:  # org, tenant_id: sorted order too
        scratch = entry.scratch
        if scratch is None or scratch[0] != entry.generation:
            scratch = entry.scratch = (
                entry.generation,
                _tenant_labels(entry.state.name, tenants),
                list(zip(*tenants, strict=True)),
            )
        labels, values = scratch[1], scratch[2][column]
        head = fmt.sample_name
        if None in values:
            pairs = [(label, v) for label, v in zip(labels, values, strict=True) if v is not None]
            if not pairs:
                return b""
            labels, values = [p[0] for p in pairs], tuple(p[1] for p in pairs)
        # head + label + value on every line: the separator carries the next line's head.
        texts = map(_GO_TEXTS.__getitem__, values)  # type: ignore[arg-type]  # bool | float
        lines = ("\n" + head).join(map(operator.add, labels, texts))
        return (head + lines + "\n").encode()
    label_values = family.label_values
    org = entry.state.name
    samples = [
        (label_values(org, tenant), value)
        for tenant in tenants
        if (value := family.value(tenant)) is not None
    ]
    line = fmt.plain_line if _plain("".join([v for s in samples for v in s[0]])) else fmt.line
    return "".join([line(values, value) for values, value in samples]).encode()


def _tenant_labels(org: str, tenants: tuple[TenantUsage, ...]) -> list[str]:
    """Each tenant's `{org="..",tenant_id=".."} `, escaped as the stock encoder does."""
    head = '{org="' + _escape(org) + '",tenant_id="'
    ids = [tenant.tenant_id for tenant in tenants]
    if not _plain("".join(ids)):
        ids = [_escape(tenant_id) for tenant_id in ids]
    return [head + tenant_id + '"} ' for tenant_id in ids]


# One piece of the body: its text, or a block of lines kept compressed.
Piece = bytes | _Block
# Making a body: yields (None) where the caller may pause, returns the body's pieces.
Steps = Generator[None, None, list[Piece]]


def piece_bytes(piece: Piece) -> bytes:
    """A piece as it goes on the wire (a block of lines is decompressed)."""
    if isinstance(piece, bytes):
        return piece
    return inflate(piece.deflated)


def piece_size(piece: Piece) -> int:
    return len(piece) if isinstance(piece, bytes) else piece.size


WRITE_BYTES: Final = 1 << 18  # how much of a body goes to the socket in one write


def wire_chunks(pieces: list[Piece], size: int = WRITE_BYTES) -> Iterator[bytes]:
    """The pieces' bytes (`piece_bytes`) joined into chunks of at least `size` bytes
    (the last may be shorter). A large body is a few thousand pieces of a few KB, and
    each write costs the event loop more than copying the bytes once."""
    batch: list[bytes] = []
    held = 0
    for piece in pieces:
        data = piece_bytes(piece)
        batch.append(data)
        held += len(data)
        if held >= size:
            yield b"".join(batch)
            batch, held = [], 0
    if batch:
        yield b"".join(batch)


async def send_pieces(pieces: list[Piece], write: Callable[[bytes], Awaitable[None]]) -> None:
    """Writes the pieces' bytes (`wire_chunks`) with `write`, turning the event loop
    PAUSE_TURNS times after every STEP_SECONDS of making and writing chunks.

    A write seldom waits: a scraper's socket on a fast link takes each chunk at once,
    so without the pauses a plain-text body (no gzip: 140 MB, every block inflated on
    the way at 20,000 orgs) would hold the loop, and every probe, for a quarter second.
    """
    pause = _Pause()
    for chunk in wire_chunks(pieces):
        await write(chunk)
        if pause.due():
            for _ in range(PAUSE_TURNS):
                await asyncio.sleep(0)


# Renders one family's lines of one org: (entry, family index) -> bytes.
_Render = Callable[[_OrgEntry, int], bytes]


def _block(members: tuple[_OrgEntry, ...], stamps: array[int], texts: list[bytes]) -> _Block:
    return _compressed(members, stamps, array("I", map(len, texts)), b"".join(texts))


def _compressed(
    members: tuple[_OrgEntry, ...], stamps: array[int], lengths: array[int], text: bytes
) -> _Block:
    size = len(text)
    return _Block(members, stamps, lengths, deflate(text), crc32(text), size, kept_shift(size))


def _patch(  # noqa: PLR0917 - one path of CachedExposition._update, its arguments
    blocks: list[_Block],
    index: int,
    changed: list[_OrgEntry],
    tenant_side: bool,
    render: _Render,
    pause: _Pause,
) -> Iterator[None]:
    """`blocks` (family `index`) made for the same orgs in the same order as now, with
    the lines of the `changed` orgs made anew; every other block is kept as it is."""
    positions: dict[int, list[int]] = {}  # block -> positions of changed orgs in it
    for entry in changed:
        slot = entry.tenant_slot if tenant_side else entry.org_slot
        positions.setdefault(slot // BLOCK_ORGS, []).append(slot % BLOCK_ORGS)
    for number, changed_positions in positions.items():
        previous = blocks[number]
        blocks[number] = _spliced(previous, sorted(changed_positions), index, tenant_side, render)
        previous.members = ()  # no cycle through the entries: freed at once
        if pause.due():
            yield None


def _spliced(
    previous: _Block, positions: list[int], index: int, tenant_side: bool, render: _Render
) -> _Block:
    """`previous` with the lines of the members at `positions` (ascending) made anew.

    The text around them is copied as it is, never cut into a piece per member."""
    text = memoryview(inflate(previous.deflated))
    stamps, lengths = array("Q", previous.stamps), array("I", previous.lengths)
    ends = list(accumulate(lengths))
    parts: list[bytes | memoryview] = []
    cursor = 0
    for position in positions:
        entry = previous.members[position]
        lines = render(entry, index)
        parts += (text[cursor : ends[position] - lengths[position]], lines)
        cursor = ends[position]
        stamps[position] = entry.generation if tenant_side else entry.stamps[index]
        lengths[position] = len(lines)
    parts.append(text[cursor:])
    return _compressed(previous.members, stamps, lengths, b"".join(parts))


def _regrouped_texts(
    old: list[_Block],
    group: tuple[_OrgEntry, ...],
    *,
    stamps: array[int],
    index: int,
    tenant_side: bool,
    render: _Render,
    opened: dict[int, list[bytes]],
) -> list[bytes]:
    """A group of orgs other than the old block's: each org's lines from whichever
    old block held them (its slot in the last render) if unchanged, else anew."""
    texts = []
    for entry, stamp in zip(group, stamps, strict=True):
        slot = entry.tenant_slot if tenant_side else entry.org_slot
        block = old[slot // BLOCK_ORGS] if 0 <= slot < len(old) * BLOCK_ORGS else None
        position = slot % BLOCK_ORGS
        if (
            block is not None
            and position < len(block.members)
            and block.members[position] is entry
            and block.stamps[position] == stamp
        ):
            if id(block) not in opened:
                opened[id(block)] = block.texts()
            texts.append(opened[id(block)][position])
        else:
            texts.append(render(entry, index))
    return texts


def _group_block(
    old: list[_Block],
    previous: _Block | None,
    group: tuple[_OrgEntry, ...],
    *,
    index: int,
    tenant_side: bool,
    render: _Render,
    opened: dict[int, list[bytes]],
) -> _Block:
    """Family `index`'s block for `group`: `previous` (the old block at its place) if
    nothing in it changed, else made from what is unchanged and what is made anew."""
    if tenant_side:
        stamps = array("Q", [entry.generation for entry in group])
    else:
        stamps = array("Q", [entry.stamps[index] for entry in group])
    if previous is not None and previous.members == group:
        if previous.stamps == stamps:
            return previous
        # The same orgs as before (the common case): only the changed ones anew.
        texts = previous.texts()
        for position, (was, now) in enumerate(zip(previous.stamps, stamps, strict=True)):
            if was != now:
                texts[position] = render(group[position], index)
    else:
        texts = _regrouped_texts(
            old,
            group,
            stamps=stamps,
            index=index,
            tenant_side=tenant_side,
            render=render,
            opened=opened,
        )
    return _block(group, stamps, texts)


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
        self._cache: dict[str, _OrgEntry] = {}
        self._families = collector.tenant_families
        self._formats = tuple(_SampleFormat(f.name, f.labels) for f in self._families)
        headers = {
            False: _family_headers(False, self._families),
            True: _family_headers(True, self._families),
        }
        self._headers = headers
        self._deflated_headers = {
            openmetrics: tuple((header, deflate(header)) for header in headers[openmetrics])
            for openmetrics in (False, True)
        }
        self._org_blocks: list[list[_Block]] = [[] for _ in ORG_FAMILIES]
        self._tenant_blocks: list[list[_Block]] = [[] for _ in self._families]
        # The orgs (and those with tenants) in the order of the last render that brought
        # every block up to date, else None; and what changed since, per family.
        self._order: list[_OrgEntry] | None = None
        self._tenant_order: list[_OrgEntry] | None = None
        self._changed_org: list[list[_OrgEntry]] = [[] for _ in ORG_FAMILIES]
        self._changed_tenants: list[_OrgEntry] = []

    def _entries(self, pause: _Pause) -> Iterator[None]:
        old = self._cache
        cache: dict[str, _OrgEntry] = {}
        changed_org = self._changed_org = [[] for _ in ORG_FAMILIES]
        changed_tenants = self._changed_tenants = []
        states, now, limit = self._collector.states()
        for state in states:
            fresh = not state.is_stale(now, limit)
            entry = old.get(state.name)
            if entry is None or entry.state is not state:
                entry = _OrgEntry(state, '{org="' + _escape(state.name) + '"} ')
            if entry.version != state.version or entry.fresh != fresh:
                entry.version, entry.fresh = state.version, fresh
                _note_org_values(entry, state, fresh, changed_org)
                tenants = state.report.tenants if fresh and state.report is not None else None
                if tenants is not entry.tenants and (
                    tenants is None or entry.tenants is None or entry.tenants != tenants
                ):
                    entry.generation += 1
                    changed_tenants.append(entry)
                entry.tenants = tenants  # equal lines: keep them, drop the old tuple
                if pause.due():
                    yield None
            cache[state.name] = entry
        self._cache = cache

    def _tenant_render(self, entry: _OrgEntry, index: int) -> bytes:
        return _tenant_lines(entry, self._families[index], self._formats[index])

    @staticmethod
    def _update(
        blocks: list[list[_Block]],
        members: list[_OrgEntry],
        *,
        tenant_side: bool,
        render: _Render,
        pause: _Pause,
        changed: list[list[_OrgEntry]] | None,
    ) -> Iterator[None]:
        """Bring every family's blocks (`blocks`, one list per family) up to date,
        re-using every unchanged block; an unchanged org's lines in a changed block are
        taken from its old block.

        `changed`, when given, lists per family every org whose lines of it changed
        since the last render, and `members` are that render's orgs in its order: then
        only their blocks are looked at. Otherwise the blocks are made group by group,
        every family of one group of orgs before the next group, so what the tenant
        families share while an org's lines are made (its scratch) lives only that long
        and does not strew long-lived blocks among short-lived objects in the heap."""
        if changed is not None:
            for index, orgs in enumerate(changed):
                yield from _patch(blocks[index], index, orgs, tenant_side, render, pause)
            return
        olds = list(blocks)
        news: list[list[_Block]] = [[] for _ in blocks]
        opened: list[dict[int, list[bytes]]] = [{} for _ in blocks]  # per family: old texts
        for start in range(0, len(members), BLOCK_ORGS):
            group = tuple(members[start : start + BLOCK_ORGS])
            for index, (old, new) in enumerate(zip(olds, news, strict=True)):
                new.append(
                    _group_block(
                        old,
                        old[len(new)] if len(new) < len(old) else None,
                        group,
                        index=index,
                        tenant_side=tenant_side,
                        render=render,
                        opened=opened[index],
                    )
                )
            for entry in group:
                entry.scratch = None
            if pause.due():
                yield None
        blocks[:] = news
        for old, new in zip(olds, news, strict=True):
            kept = {id(block) for block in new}
            for block in old:
                if id(block) not in kept:
                    block.members = ()  # no cycle through the entries: freed at once

    def pieces(self, openmetrics: bool, pieces: list[Piece], pause: _Pause) -> Iterator[None]:
        """Fill `pieces` with the Petra part of the body, in order; yields to pause.

        A header is bytes; every other piece is a `_Block`."""
        order, self._order = self._order, None  # None until every block is up to date
        tenant_order, self._tenant_order = self._tenant_order, None
        yield from self._entries(pause)
        entries = list(self._cache.values())
        with_tenants = [entry for entry in entries if entry.tenants]
        try:
            yield from self._update(
                self._org_blocks,
                entries,
                tenant_side=False,
                render=_org_lines,
                pause=pause,
                changed=self._changed_org if entries == order else None,
            )
            yield from self._update(
                self._tenant_blocks,
                with_tenants,
                tenant_side=True,
                render=self._tenant_render,
                pause=pause,
                changed=[self._changed_tenants] * len(self._families)
                if with_tenants == tenant_order
                else None,
            )
        finally:  # also when a scraper went away mid-render (the generator is closed)
            for entry in with_tenants:
                entry.scratch = None
        self._changed_org, self._changed_tenants = [[] for _ in ORG_FAMILIES], []
        headers = self._headers[openmetrics]
        for index, blocks in enumerate([*self._org_blocks, *self._tenant_blocks]):
            pieces.append(headers[index])
            pieces.extend(blocks)
        # Where each org's lines are now, for the next render (only once every family
        # is up to date: until then the old blocks are the ones the slots point into).
        for slot, entry in enumerate(entries):
            entry.org_slot = slot
        for slot, entry in enumerate(with_tenants):
            entry.tenant_slot = slot
        self._order, self._tenant_order = entries, with_tenants

    def text(self, openmetrics: bool, tail: bytes) -> Steps:
        """Generator: yields to pause, returns (via StopIteration) the body's pieces,
        blocks still compressed (see `piece_bytes`)."""
        pieces: list[Piece] = []
        yield from self.pieces(openmetrics, pieces, _Pause())
        pieces.append(tail)
        return pieces

    def gzip(self, openmetrics: bool, tail: bytes) -> Steps:
        """Generator: yields to pause, returns the body gzip-compressed (level 1), in pieces.

        Each piece is deflated on its own and ended with a sync flush, so the pieces
        concatenate into one valid deflate stream; an unchanged block reuses its bytes
        from the last scrape, and the CRCs of blocks are combined, not recomputed.
        """
        pieces: list[Piece] = []
        pause = _Pause()
        yield from self.pieces(openmetrics, pieces, pause)
        deflated_headers = dict(self._deflated_headers[openmetrics])
        member = GzipMember()
        for piece in pieces:
            if isinstance(piece, _Block):
                member.add_deflated(piece.deflated, piece.crc, piece.size, piece.shift)
            else:
                member.add(piece, deflated_headers.get(piece))
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
            # What polling made since the daemon last settled out of the way first:
            # else the render's own allocations start collections that walk it all.
            memory_gc.settle()
            steps = self.steps(fmt, gzipped=gzipped)
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    pieces: list[Piece] = done.value
                    break
                # What the render made so far (the cache) lives on: out of the way of
                # full collections, which would otherwise walk it all, loop stopped.
                memory_gc.settle()
                for _ in range(PAUSE_TURNS):
                    await asyncio.sleep(0)
            memory_gc.settle()
            memory_trim.trim()  # the render's text, freed, back to the system
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
