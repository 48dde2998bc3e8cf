"""The state file's records: what each org's state looks like on disk.

One org's record is `"name":{...}`, JSON (`encode_org`); the journal
(state_journal.py) stores these bytes. A reader joins the latest record of
each org into the JSON document that releases before the journal wrote
whole, versioned:

    {"format": "petra-collector-state", "version": 1, "written_at": <epoch s>,
     "clean_stop": <bool>, "tenant_fields": [...], "orgs": {<name>: <record>}}

and reads it as before (`decode_state`), so such a file is still read.

A record holds `key_fingerprint`, `/v1/usage`'s outcome (`health` and a
`poll` section: times, the failure streak, the last error), and optional
sections: `auth` (while the key is rejected, with the routes answered 401),
`counters`, `report` (the last good usage report; each tenant an array in
`tenant_fields` order) and one section per other polled route, named as the
route (`incidents`, `billable_users`): the same outcome (`health`, `poll`),
its `requests_by_code`, and what the route's own codec (routes.py) keeps of its
answers (for incidents: the last counts and the incidents already announced,
by id and creation time, bounded by the window; for billable users: each
tenant's figures and when it was last asked; nothing about a user). Every
route's outcome goes through one codec here (`_encode_outcome`,
`_decode_outcome`). A reader ignores sections it does not know, so a section
can be added without a new version; a change that an older reader would
misread needs a new version, which older readers refuse.

No key, nor any part of one, is written: orgs are matched by name and key
fingerprint. Reading is strict: anything that is not exactly this shape is
refused as a whole with one line saying what and where (`StateFileError`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

import orjson

from collector.config import ORG_NAME
from collector.petra_usage import TenantUsage, UsageReport
from collector.routes import ROUTES, Route
from collector.state import USAGE, OrgState, RouteState
from collector.state_records import (
    Health,
    Reader,
    SavedOrg,
    SavedRoute,
    SavedState,
    StateFileError,
)

FORMAT: Final = "petra-collector-state"
VERSION: Final = 1
TENANT_FIELDS: Final = TenantUsage._fields
# Far above a real file (10,000 orgs of 10 tenants is about 20 MB): a bound, so a
# foreign multi-gigabyte file at the path is refused instead of read into memory.
MAX_STATE_FILE_BYTES: Final = 1 << 30
_HEALTHS: Final = {health.value: health for health in Health}
# Where a record's tenants go, to be cut out: orjson writes a control character only
# escaped, so this byte is nowhere else in its output.
_TENANTS_MARK: Final = b"\x00"


# -- writing -----------------------------------------------------------------------


def encode_org(state: OrgState, *, wall_now: float, monotonic_now: float) -> bytes:
    """`"name":{record}`: one org's part of the `orgs` object."""
    return b"".join(encode_org_pieces(state, wall_now=wall_now, monotonic_now=monotonic_now))


def encode_tenants(tenants: tuple[TenantUsage, ...]) -> bytes:
    """A report's tenants as the file keeps them (`encode_org_pieces` reuses these)."""
    # As plain tuples, which orjson writes itself (a NamedTuple would go through a
    # Python `default` call per tenant).
    return orjson.dumps(list(map(tuple, tenants)))


def encode_org_pieces(
    state: OrgState, *, wall_now: float, monotonic_now: float, tenants: bytes | None = None
) -> tuple[bytes, ...]:
    """`encode_org`, in pieces to write one after another: with a report, the second
    of three is its tenants, `tenants` when given (the bytes `encode_tenants` made of
    `state.report.tenants`: the bulk of a record, and usually unchanged since the last
    write), else encoded here."""
    record: dict[str, object] = {
        "key_fingerprint": state.key_fingerprint,
        **_encode_outcome(state),
        "counters": {
            "requests_by_code": state.requests_by_code,
            "auth_failures_total": state.auth_failures_total,
            "rate_limited_total": state.rate_limited_total,
        },
    }
    if state.auth_failing:
        record["auth"] = {
            "failing_since": state.auth_failing_since,
            "failed_fingerprint": state.auth_failed_fingerprint,
            # The monotonic clock does not survive a restart; its wall-clock equivalent does.
            "warned_at": wall_now - (monotonic_now - state.auth_warned_monotonic),
            "rejected_routes": sorted(state.auth_rejected_routes),
        }
    report = state.report
    if report is not None:
        record["report"] = {
            "as_of": report.as_of,
            "report_generated_at": report.report_generated_at,
            "organization_name": report.organization_name,
            "total_tenants": report.total_tenants,
            "tenants": orjson.Fragment(_TENANTS_MARK),
            "notes": report.notes,
        }
    for route in ROUTES:
        side = state.sides.get(route.name)
        if side is not None and route.encode is not None:
            record[route.name] = {
                **_encode_outcome(side),
                **route.encode(side),
                "requests_by_code": side.requests_by_code,
            }
    encoded = orjson.dumps(state.name) + b":" + orjson.dumps(record)
    if report is None:
        return (encoded,)
    head, tail = encoded.split(_TENANTS_MARK)
    return head, encode_tenants(report.tenants) if tenants is None else tenants, tail


def _encode_outcome(side: RouteState) -> dict[str, object]:
    """A route's outcome, the same for every route: usage's in the record itself, every
    other route's in its section."""
    return {
        "health": side.health.value,
        "poll": {
            "last_poll_at": side.last_poll_at,
            "last_success_at": side.last_success_at,
            "next_poll_at": side.next_poll_at,
            "poll_duration": side.poll_duration,
            "consecutive_failures": side.consecutive_failures,
            "last_error": side.last_error,
            "last_error_at": side.last_error_at,
            "rate_limited_until": side.rate_limited_until,
        },
    }


def encode_document(
    org_parts: Iterable[bytes], *, written_at: float, clean_stop: bool
) -> list[bytes]:
    """The whole file from `encode_org` parts, as pieces to write one after another
    (never joined: copying 20 MB into one string would hold the GIL for milliseconds)."""
    return encode_document_pieces(
        ((part,) for part in org_parts), written_at=written_at, clean_stop=clean_stop
    )


def encode_document_pieces(
    orgs: Iterable[Sequence[bytes]], *, written_at: float, clean_stop: bool
) -> list[bytes]:
    """`encode_document` from each org's `encode_org_pieces`."""
    head = orjson.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "written_at": written_at,
            "clean_stop": clean_stop,
            "tenant_fields": TENANT_FIELDS,
        }
    )
    pieces = [head[:-1], b',"orgs":{']
    for index, org in enumerate(orgs):
        if index:
            pieces.append(b",")
        pieces.extend(org)
    pieces.append(b"}}\n")
    return pieces


# -- reading -----------------------------------------------------------------------


def set_aside(path: Path, now: float) -> Path:
    """Rename an unusable file out of the way (kept for a person to look at). Raises OSError."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
    path.rename(target)
    return target


def decode_state(data: bytes) -> SavedState:
    """Parse and check a whole file. Raises StateFileError naming the first problem."""
    if not data.strip():
        raise StateFileError("is empty")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise StateFileError(f"is not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise StateFileError("is not a JSON object")
    if document.get("format") != FORMAT:
        raise StateFileError(f"is not a petra-collector state file (no format {FORMAT!r})")
    version = document.get("version")
    if type(version) is not int:
        raise StateFileError("has no version number")
    if version != VERSION:
        raise StateFileError(f"has version {version}; this petra-collector reads version {VERSION}")
    reader = Reader("")
    written_at = reader.timestamp(document, "written_at", required=True)
    clean_stop = document.get("clean_stop")
    if type(clean_stop) is not bool:
        raise StateFileError("clean_stop: must be true or false")
    fields = document.get("tenant_fields")
    if fields != list(TENANT_FIELDS):
        raise StateFileError("tenant_fields: not the tenant fields of this version")
    raw_orgs = document.get("orgs")
    if not isinstance(raw_orgs, dict):
        raise StateFileError("orgs: must be an object")
    orgs: dict[str, SavedOrg] = {}
    for name, raw in raw_orgs.items():
        if not ORG_NAME.fullmatch(name):
            raise StateFileError("orgs: an org name that is not a valid name")
        orgs[name] = _decode_org(name, raw)
    assert written_at is not None  # noqa: S101 - required=True never returns None
    return SavedState(written_at=written_at, clean_stop=clean_stop, orgs=orgs)


def _decode_org(name: str, raw: object) -> SavedOrg:
    org = Reader(f"orgs.{name}")
    if not isinstance(raw, dict):
        raise StateFileError(f"orgs.{name}: must be an object")
    fingerprint = org.text(raw, "key_fingerprint", required=True)
    auth = org.section(raw, "auth")
    auths = Reader(f"orgs.{name}.auth")
    counters = org.section(raw, "counters")
    report = org.section(raw, "report")
    by_code, auth_failures, rate_limited = _decode_counters(
        Reader(f"orgs.{name}.counters"), counters
    )
    assert fingerprint is not None  # noqa: S101 - required=True never returns None
    routes = {
        USAGE: _decode_outcome(
            org,
            raw,
            by_code,
            None if report is None else _decode_report(Reader(f"orgs.{name}.report"), report),
        )
    }
    for route in ROUTES:
        section = org.section(raw, route.name) if route.decode is not None else None
        if section is not None:
            routes[route.name] = _decode_route(Reader(f"orgs.{name}.{route.name}"), route, section)
    return SavedOrg(
        key_fingerprint=fingerprint,
        routes=routes,
        auth_failing_since=None
        if auth is None
        else auths.timestamp(auth, "failing_since", required=True),
        auth_failed_fingerprint=None if auth is None else auths.text(auth, "failed_fingerprint"),
        auth_warned_at=None if auth is None else auths.timestamp(auth, "warned_at"),
        auth_rejected_routes=frozenset() if auth is None else _routes(auths, auth),
        auth_failures_total=auth_failures,
        rate_limited_total=rate_limited,
    )


def _decode_outcome(
    reader: Reader, raw: dict[str, object], by_code: dict[str, int] | None, data: object
) -> SavedRoute:
    """A route's outcome, the same for every route (see `_encode_outcome`)."""
    health = _HEALTHS.get(reader.text(raw, "health", required=True) or "")
    if health is None:
        raise reader.fail("health", "is not a known health")
    poll = reader.section(raw, "poll") or {}
    polls = Reader(f"{reader.path}.poll")
    return SavedRoute(
        health=health,
        last_poll_at=polls.timestamp(poll, "last_poll_at"),
        last_success_at=polls.timestamp(poll, "last_success_at"),
        next_poll_at=polls.timestamp(poll, "next_poll_at"),
        poll_duration=polls.timestamp(poll, "poll_duration"),
        consecutive_failures=polls.count(poll, "consecutive_failures"),
        last_error=polls.text(poll, "last_error"),
        last_error_at=polls.timestamp(poll, "last_error_at"),
        rate_limited_until=polls.timestamp(poll, "rate_limited_until"),
        requests_by_code=by_code,
        data=data,
    )


def _decode_route(reader: Reader, route: Route, raw: dict[str, object]) -> SavedRoute:
    """A route's section: its outcome, its counters and what its own codec reads."""
    codes_raw = reader.section(raw, "requests_by_code") or {}
    codes = Reader(f"{reader.path}.requests_by_code")
    by_code = {code: codes.count(codes_raw, code) for code in codes_raw}
    assert route.decode is not None  # noqa: S101 - only routes with a codec have a section
    return _decode_outcome(reader, raw, by_code, route.decode(reader, raw))


_ROUTE_NAMES: Final = frozenset(route.name for route in ROUTES)


def _routes(reader: Reader, auth: dict[str, object]) -> frozenset[str]:
    raw = auth.get("rejected_routes", [])
    if not isinstance(raw, list) or not all(route in _ROUTE_NAMES for route in raw):
        names = ", ".join(route.name for route in ROUTES)
        raise reader.fail("rejected_routes", f"must be a list of routes ({names})")
    return frozenset(raw)


def _decode_counters(
    reader: Reader, counters: dict[str, object] | None
) -> tuple[dict[str, int] | None, int, int]:
    if counters is None:
        return None, 0, 0
    raw = reader.section(counters, "requests_by_code") or {}
    by_code: dict[str, int] = {}
    for code in raw:
        if not code or len(code) > 16:
            raise reader.fail("requests_by_code", "has a code that is not a status")
        by_code[code] = Reader(f"{reader.path}.requests_by_code").count(raw, code)
    return (
        by_code,
        reader.count(counters, "auth_failures_total"),
        reader.count(counters, "rate_limited_total"),
    )


def _decode_report(reader: Reader, report: dict[str, object]) -> UsageReport:
    raw_tenants = report.get("tenants")
    if not isinstance(raw_tenants, list):
        raise reader.fail("tenants", "must be a list")
    tenants = tuple(_decode_tenant(reader, index, item) for index, item in enumerate(raw_tenants))
    raw_notes = report.get("notes", [])
    if not isinstance(raw_notes, list) or not all(type(note) is str for note in raw_notes):
        raise reader.fail("notes", "must be a list of strings")
    return UsageReport(
        as_of=reader.text(report, "as_of"),
        report_generated_at=reader.number(report, "report_generated_at"),
        organization_name=reader.text(report, "organization_name"),
        total_tenants=reader.number(report, "total_tenants"),
        tenants=tenants,
        notes=tuple(raw_notes),
    )


_TEXT_FIELDS: Final = (1, 2, 3, 4)
_NUMBER_FIELDS: Final = (6, 7, 8, 9, 10)
_NONE: Final = type(None)
# Every type combination a tenant array may have, whole numbers read as floats aside:
# one set lookup checks a tenant (100,000 of them at 10,000 orgs) in C.
_TENANT_SHAPES: Final = frozenset(
    (str, *texts, paused, *numbers)
    for texts in itertools.product((str, _NONE), repeat=len(_TEXT_FIELDS))
    for paused in (bool, _NONE)
    for numbers in itertools.product((float, _NONE), repeat=len(_NUMBER_FIELDS))
)


def _decode_tenant(reader: Reader, index: int, item: object) -> TenantUsage:
    if type(item) is list and tuple(map(type, item)) in _TENANT_SHAPES and item[0]:
        return TenantUsage._make(item)
    return _decode_odd_tenant(reader, index, item)


def _decode_odd_tenant(reader: Reader, index: int, item: object) -> TenantUsage:
    """The slow path: whole numbers to convert, or a problem to name."""
    if type(item) is not list or len(item) != len(TENANT_FIELDS):
        raise reader.fail(f"tenants[{index}]", f"must be a list of {len(TENANT_FIELDS)} fields")
    tenant_id = item[0]
    if type(tenant_id) is not str or not tenant_id:
        raise reader.fail(f"tenants[{index}]", "has no tenant id")
    for position in _TEXT_FIELDS:
        if item[position] is not None and type(item[position]) is not str:
            raise reader.fail(f"tenants[{index}]", f"{TENANT_FIELDS[position]} must be a string")
    if item[5] is not None and type(item[5]) is not bool:
        raise reader.fail(f"tenants[{index}]", "is_paused must be true, false or null")
    for position in _NUMBER_FIELDS:
        number = item[position]
        if number is None or type(number) is float:
            continue
        if type(number) is int:
            item[position] = float(number)
            continue
        raise reader.fail(f"tenants[{index}]", f"{TENANT_FIELDS[position]} must be a number")
    return TenantUsage._make(item)
