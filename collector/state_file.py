"""The state file: what each org's state looks like on disk, and how it gets there.

A JSON document, versioned, one record per org:

    {"format": "petra-collector-state", "version": 1, "written_at": <epoch s>,
     "clean_stop": <bool>, "tenant_fields": [...], "orgs": {<name>: <record>}}

A record holds `key_fingerprint`, `health` and a `poll` section (times, the
failure streak, the last error), and optional sections: `auth` (while the
key is rejected, with the routes answered 401), `counters`, `report` (the
last good usage report; each tenant an array in `tenant_fields` order) and
`incidents` (while incidents are polled: that route's health and times, its
last counts, and the incidents already announced, by id and creation time,
bounded by the window; nothing about a user). A reader ignores sections it does
not know, so a section can be added without a new version; a change that an
older reader would misread needs a new version, which older readers refuse.

No key, nor any part of one, is written: orgs are matched by name and key
fingerprint. Reading is strict: anything that is not exactly this shape is
refused as a whole with one line saying what and where (`StateFileError`).
Writing is atomic: a temp file beside the target, fsync, rename, fsync of
the directory, so a crash or a full disk leaves the old file or the new one.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import orjson

from collector.config import ORG_NAME
from collector.petra_incidents import Incident
from collector.petra_usage import TenantUsage, UsageReport
from collector.state import Health, IncidentsState, OrgState

FORMAT: Final = "petra-collector-state"
VERSION: Final = 1
TENANT_FIELDS: Final = TenantUsage._fields
# Far above a real file (10,000 orgs of 10 tenants is about 20 MB): a bound, so a
# foreign multi-gigabyte file at the path is refused instead of read into memory.
MAX_STATE_FILE_BYTES: Final = 1 << 30
TEMP_SUFFIX: Final = ".tmp"
WRITEV_PIECES: Final = 1024  # IOV_MAX on Linux
_HEALTHS: Final = {health.value: health for health in Health}
# Where a record's tenants go, to be cut out: orjson writes a control character only
# escaped, so this byte is nowhere else in its output.
_TENANTS_MARK: Final = b"\x00"


class StateFileError(Exception):
    """The state file cannot be used; the message names the problem (never a key)."""


@dataclass(frozen=True, slots=True)
class SavedIncidents:
    """An org's `/v1/incidents` side as the file keeps it: its last counts and the
    incidents already announced (`seen`), so `incident_detected` is not logged again."""

    health: Health = Health.PENDING
    last_poll_at: float | None = None
    last_success_at: float | None = None
    next_poll_at: float | None = None
    poll_duration: float | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    rate_limited_until: float | None = None
    truncated: bool = False
    notes: tuple[str, ...] = ()
    incidents: tuple[Incident, ...] = ()
    seen: Mapping[str, float] = field(default_factory=dict)
    requests_by_code: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SavedOrg:
    """One org as the file keeps it. Times are wall-clock epoch seconds."""

    key_fingerprint: str
    health: Health = Health.PENDING
    last_poll_at: float | None = None
    last_success_at: float | None = None
    next_poll_at: float | None = None
    poll_duration: float | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    rate_limited_until: float | None = None
    auth_failing_since: float | None = None  # set while the key is rejected
    auth_failed_fingerprint: str | None = None
    auth_warned_at: float | None = None
    auth_rejected_routes: frozenset[str] = frozenset()  # the routes whose last answer was 401
    requests_by_code: Mapping[str, int] | None = None  # None: no counters kept
    auth_failures_total: int = 0
    rate_limited_total: int = 0
    report: UsageReport | None = None
    incidents: SavedIncidents | None = None  # kept only while incidents are polled

    @property
    def auth_failing(self) -> bool:
        return self.auth_failing_since is not None


@dataclass(frozen=True, slots=True)
class SavedState:
    written_at: float
    clean_stop: bool  # written at a clean stop: nothing happened after it
    orgs: Mapping[str, SavedOrg] = field(default_factory=dict)


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
        "health": state.health.value,
        "poll": {
            "last_poll_at": state.last_poll_at,
            "last_success_at": state.last_success_at,
            "next_poll_at": state.next_poll_at,
            "poll_duration": state.poll_duration,
            "consecutive_failures": state.consecutive_failures,
            "last_error": state.last_error,
            "last_error_at": state.last_error_at,
            "rate_limited_until": state.rate_limited_until,
        },
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
    if state.incidents is not None:
        record["incidents"] = _encode_incidents(state.incidents)
    encoded = orjson.dumps(state.name) + b":" + orjson.dumps(record)
    if report is None:
        return (encoded,)
    head, tail = encoded.split(_TENANTS_MARK)
    return head, encode_tenants(report.tenants) if tenants is None else tenants, tail


def _encode_incidents(side: IncidentsState) -> dict[str, object]:
    """No user data: an `Incident` holds none (collector/petra_incidents.py drops it)."""
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
        "truncated": side.truncated,
        "notes": side.notes,
        "incidents": [list(incident) for incident in side.incidents],
        "seen": side.seen,
        "requests_by_code": side.requests_by_code,
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


def write_atomically(path: Path, pieces: Sequence[bytes]) -> None:
    """Replace `path` with `pieces`, concatenated, so that a crash at any point leaves
    the old file or the new one, whole."""
    temp = path.with_name(path.name + TEMP_SUFFIX)
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        for start in range(0, len(pieces), WRITEV_PIECES):
            _write_all(descriptor, pieces[start : start + WRITEV_PIECES])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    temp.replace(path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _write_all(descriptor: int, pieces: Sequence[bytes]) -> None:
    written = os.writev(descriptor, pieces)
    if written == sum(map(len, pieces)):
        return
    # A short write (rare: a signal, a nearly full disk): the rest one piece at a time.
    for piece in pieces:
        if written >= len(piece):
            written -= len(piece)
            continue
        view = memoryview(piece)[written:]
        written = 0
        while view:
            view = view[os.write(descriptor, view) :]


# -- reading -----------------------------------------------------------------------


def read_state_file(path: Path) -> SavedState | None:
    """The saved state; None when there is no file. Raises StateFileError."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_STATE_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StateFileError("is a directory, not a state file") from None
    except OSError as error:
        raise StateFileError(f"cannot be read: {error.strerror or error}") from None
    if len(data) > MAX_STATE_FILE_BYTES:
        raise StateFileError(f"is larger than {MAX_STATE_FILE_BYTES} bytes")
    return decode_state(data)


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
    reader = _Reader("")
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


class _Reader:
    """Typed getters that name the path of what they refuse."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> StateFileError:
        where = f"{self.path}.{key}" if self.path else key
        return StateFileError(f"{where}: {message}")

    def section(self, record: dict[str, object], key: str) -> dict[str, object] | None:
        value = record.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, "must be an object")
        return value

    def number(self, record: dict[str, object], key: str) -> float | None:
        value = record.get(key)
        if value is None:
            return None
        if type(value) is float:  # never NaN or infinite: orjson refuses those as it parses
            return value
        if type(value) is int:
            return float(value)
        raise self.fail(key, "must be a number")

    def timestamp(
        self, record: dict[str, object], key: str, *, required: bool = False
    ) -> float | None:
        value = self.number(record, key)
        if value is None:
            if required:
                raise self.fail(key, "is missing")
            return None
        if value < 0:
            raise self.fail(key, "must not be negative")
        return value

    def count(self, record: dict[str, object], key: str) -> int:
        value = record.get(key, 0)
        if type(value) is not int or value < 0:
            raise self.fail(key, "must be a whole number, 0 or more")
        return value

    def text(self, record: dict[str, object], key: str, *, required: bool = False) -> str | None:
        value = record.get(key)
        if value is None:
            if required:
                raise self.fail(key, "is missing")
            return None
        if type(value) is not str:
            raise self.fail(key, "must be a string")
        return value


def _decode_org(name: str, raw: object) -> SavedOrg:
    org = _Reader(f"orgs.{name}")
    if not isinstance(raw, dict):
        raise StateFileError(f"orgs.{name}: must be an object")
    fingerprint = org.text(raw, "key_fingerprint", required=True)
    health_text = org.text(raw, "health", required=True)
    health = _HEALTHS.get(health_text or "")
    if health is None or fingerprint is None:
        raise org.fail("health", "is not a known health")
    poll = org.section(raw, "poll") or {}
    polls = _Reader(f"orgs.{name}.poll")
    auth = org.section(raw, "auth")
    auths = _Reader(f"orgs.{name}.auth")
    counters = org.section(raw, "counters")
    report = org.section(raw, "report")
    incidents = org.section(raw, "incidents")
    by_code, auth_failures, rate_limited = _decode_counters(
        _Reader(f"orgs.{name}.counters"), counters
    )
    return SavedOrg(
        key_fingerprint=fingerprint,
        health=health,
        last_poll_at=polls.timestamp(poll, "last_poll_at"),
        last_success_at=polls.timestamp(poll, "last_success_at"),
        next_poll_at=polls.timestamp(poll, "next_poll_at"),
        poll_duration=polls.timestamp(poll, "poll_duration"),
        consecutive_failures=polls.count(poll, "consecutive_failures"),
        last_error=polls.text(poll, "last_error"),
        last_error_at=polls.timestamp(poll, "last_error_at"),
        rate_limited_until=polls.timestamp(poll, "rate_limited_until"),
        auth_failing_since=None
        if auth is None
        else auths.timestamp(auth, "failing_since", required=True),
        auth_failed_fingerprint=None if auth is None else auths.text(auth, "failed_fingerprint"),
        auth_warned_at=None if auth is None else auths.timestamp(auth, "warned_at"),
        auth_rejected_routes=frozenset() if auth is None else _routes(auths, auth),
        requests_by_code=by_code,
        auth_failures_total=auth_failures,
        rate_limited_total=rate_limited,
        report=None if report is None else _decode_report(_Reader(f"orgs.{name}.report"), report),
        incidents=None
        if incidents is None
        else _decode_incidents(_Reader(f"orgs.{name}.incidents"), incidents),
    )


_ROUTES: Final = frozenset({"usage", "incidents"})


def _routes(reader: _Reader, auth: dict[str, object]) -> frozenset[str]:
    raw = auth.get("rejected_routes", [])
    if not isinstance(raw, list) or not all(route in _ROUTES for route in raw):
        raise reader.fail("rejected_routes", "must be a list of routes (usage, incidents)")
    return frozenset(raw)


def _decode_incidents(reader: _Reader, raw: dict[str, object]) -> SavedIncidents:
    health = _HEALTHS.get(reader.text(raw, "health", required=True) or "")
    if health is None:
        raise reader.fail("health", "is not a known health")
    poll = reader.section(raw, "poll") or {}
    polls = _Reader(f"{reader.path}.poll")
    truncated = raw.get("truncated", False)
    if type(truncated) is not bool:
        raise reader.fail("truncated", "must be true or false")
    notes = raw.get("notes", [])
    if not isinstance(notes, list) or not all(type(note) is str for note in notes):
        raise reader.fail("notes", "must be a list of strings")
    raw_list = raw.get("incidents", [])
    if not isinstance(raw_list, list):
        raise reader.fail("incidents", "must be a list")
    seen_raw = reader.section(raw, "seen") or {}
    seen_reader = _Reader(f"{reader.path}.seen")
    codes_raw = reader.section(raw, "requests_by_code") or {}
    codes = _Reader(f"{reader.path}.requests_by_code")
    return SavedIncidents(
        health=health,
        last_poll_at=polls.timestamp(poll, "last_poll_at"),
        last_success_at=polls.timestamp(poll, "last_success_at"),
        next_poll_at=polls.timestamp(poll, "next_poll_at"),
        poll_duration=polls.timestamp(poll, "poll_duration"),
        consecutive_failures=polls.count(poll, "consecutive_failures"),
        last_error=polls.text(poll, "last_error"),
        last_error_at=polls.timestamp(poll, "last_error_at"),
        rate_limited_until=polls.timestamp(poll, "rate_limited_until"),
        truncated=truncated,
        notes=tuple(notes),
        incidents=tuple(_decode_incident(reader, i, item) for i, item in enumerate(raw_list)),
        seen={key: _seen_time(seen_reader, seen_raw, key) for key in seen_raw},
        requests_by_code={code: codes.count(codes_raw, code) for code in codes_raw},
    )


def _seen_time(reader: _Reader, seen: dict[str, object], key: str) -> float:
    moment = reader.number(seen, key)
    if moment is None:
        raise reader.fail(key, "must be a number")
    return moment


def _decode_incident(reader: _Reader, index: int, item: object) -> Incident:
    where = f"incidents[{index}]"
    if type(item) is not list or len(item) != len(Incident._fields):
        raise reader.fail(where, f"must be a list of {len(Incident._fields)} fields")
    key, tenant_id, status, created_at, url = item
    if not (type(key) is str and type(tenant_id) is str and type(status) is str):
        raise reader.fail(where, "key, tenant_id and remediation_status must be strings")
    if created_at is not None and type(created_at) not in (int, float):
        raise reader.fail(where, "created_at must be a number or null")
    if url is not None and type(url) is not str:
        raise reader.fail(where, "url must be a string or null")
    return Incident(key, tenant_id, status, None if created_at is None else float(created_at), url)


def _decode_counters(
    reader: _Reader, counters: dict[str, object] | None
) -> tuple[dict[str, int] | None, int, int]:
    if counters is None:
        return None, 0, 0
    raw = reader.section(counters, "requests_by_code") or {}
    by_code: dict[str, int] = {}
    for code in raw:
        if not code or len(code) > 16:
            raise reader.fail("requests_by_code", "has a code that is not a status")
        by_code[code] = _Reader(f"{reader.path}.requests_by_code").count(raw, code)
    return (
        by_code,
        reader.count(counters, "auth_failures_total"),
        reader.count(counters, "rate_limited_total"),
    )


def _decode_report(reader: _Reader, report: dict[str, object]) -> UsageReport:
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


def _decode_tenant(reader: _Reader, index: int, item: object) -> TenantUsage:
    if type(item) is list and tuple(map(type, item)) in _TENANT_SHAPES and item[0]:
        return TenantUsage._make(item)
    return _decode_odd_tenant(reader, index, item)


def _decode_odd_tenant(reader: _Reader, index: int, item: object) -> TenantUsage:
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
