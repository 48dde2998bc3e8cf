"""`/v1/incidents` JSON -> `IncidentsReport`, and the window arithmetic. Pure and tolerant.

Personal data stops here: an incident's `user` (a person's name, mail and
principal name) is never read, and neither is the tenant's name; what
leaves this module is the tenant id, the remediation status, the creation
time, an identity to recognise the incident by, and its `url` (for the one
log line that announces a new incident, never a label or page content).

Petra's schema marks no field as required. An incident that cannot be
attributed to a tenant, or cannot be told apart from the others, is skipped
and listed in `notes`; a missing or odd status becomes `UNKNOWN` (which
counts as not remediated); a missing `createdAt` is trusted to be inside
the window the request asked for. Only an answer that is not an object with
a list of incidents, or a non-empty list of which nothing is usable, is
rejected whole (`IncidentsFormatError`), so a broken answer never wipes the
last good counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final, NamedTuple

import orjson

from collector.petra_usage import iso_datetime, json_text, json_type, listed

REMEDIATED: Final = "REMEDIATED"
STATUS_UNKNOWN: Final = "UNKNOWN"
MAX_LIMIT: Final = 500  # the most incidents one answer carries (`limit` 1..500)
MAX_STATUS_CHARS: Final = 64  # a status is a label value: anything longer is not a status
MAX_URL_CHARS: Final = 512
SECONDS_PER_DAY: Final = 86400.0
# Seen incidents kept per org: the window bounds them; this bounds a pathological API.
SEEN_KEPT: Final = 10_000


class IncidentsFormatError(ValueError):
    """The body is not JSON, or not the shape of an incidents answer."""


class Incident(NamedTuple):
    """One incident, with nothing personal in it."""

    key: str  # the incident's `id`, or tenant and `createdAt`: recognises it, never a label
    tenant_id: str
    remediation_status: str
    created_at: float | None
    url: str | None  # for the `incident_detected` log line only


class IncidentsReport(NamedTuple):
    incidents: tuple[Incident, ...]
    received: int  # entries in the answer, usable or not; `limit` of them: maybe more exist
    notes: tuple[str, ...] = ()


class TenantIncidents(NamedTuple):
    """What is exported for one tenant: counts by status, and the newest creation time."""

    tenant_id: str
    by_status: tuple[tuple[str, int], ...]  # sorted by status
    last_created_at: float | None


def parse_incidents_body(body: bytes) -> IncidentsReport:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise IncidentsFormatError(f"body is not valid JSON: {error}") from None
    return parse_incidents(data)


def parse_incidents(data: object) -> IncidentsReport:
    data, raw = listed(data, "incidents", IncidentsFormatError)
    notes: list[str] = []
    incidents: list[Incident] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        incident = _incident(index, item, notes)
        if incident is None:
            continue
        if incident.key in seen:
            notes.append(f"incidents[{index}] repeats an earlier incident, skipped")
            continue
        seen.add(incident.key)
        incidents.append(incident)
    if raw and not incidents:
        raise IncidentsFormatError(f"none of the {len(raw)} incidents is usable: {notes[0]}")
    return IncidentsReport(tuple(incidents), len(raw), tuple(notes))


def _incident(index: int, item: object, notes: list[str]) -> Incident | None:
    where = f"incidents[{index}]"
    if not isinstance(item, dict):
        notes.append(f"{where} is {json_type(item)}, skipped")
        return None
    tenant = item.get("tenant")
    tenant_id = json_text(tenant.get("petraTenantId")) if isinstance(tenant, dict) else None
    if tenant_id is None:
        notes.append(f"{where} has no tenant.petraTenantId, skipped")
        return None
    raw_created = item.get("createdAt")
    created_at = iso_datetime(raw_created)
    if raw_created is not None and created_at is None:
        notes.append(f"{where} has an unreadable createdAt, counted as inside the window")
    incident_id = json_text(item.get("id"))
    if incident_id is not None:
        key = incident_id
    elif created_at is not None:
        key = f"{tenant_id}@{created_at!r}"
    else:
        notes.append(f"{where} has neither id nor createdAt to recognise it by, skipped")
        return None
    return Incident(key, tenant_id, _status(item.get("remediationStatus")), created_at, _url(item))


def _status(value: object) -> str:
    if isinstance(value, str):
        text = value.strip()
        if text and len(text) <= MAX_STATUS_CHARS and text.isprintable():
            return text
    return STATUS_UNKNOWN


def _url(item: dict[str, object]) -> str | None:
    value = item.get("url")
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        return value[:MAX_URL_CHARS]
    return None


# -- the window ------------------------------------------------------------------


def window_start(now: float, lookback_days: float) -> float:
    """The earliest creation time counted: `lookback_days` before `now` (epoch seconds)."""
    return now - lookback_days * SECONDS_PER_DAY


def start_date_param(start: float) -> str:
    """`startDate` for the request: an ISO 8601 UTC date-time with milliseconds."""
    moment = datetime.fromtimestamp(start, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def in_window(incident: Incident, start: float) -> bool:
    """Created on or after `start`; an undated incident is trusted to be, since it was asked for."""
    return incident.created_at is None or incident.created_at >= start


def summarize(incidents: Iterable[Incident], start: float) -> tuple[TenantIncidents, ...]:
    """Per tenant (sorted), the in-window incidents by status and the newest `createdAt`.

    A tenant with no incident in the window is absent, so its series leave /metrics.
    """
    counts: dict[str, Counter[str]] = {}
    newest: dict[str, float] = {}
    for incident in incidents:
        if not in_window(incident, start):
            continue
        counts.setdefault(incident.tenant_id, Counter())[incident.remediation_status] += 1
        if incident.created_at is not None:
            previous = newest.get(incident.tenant_id)
            if previous is None or incident.created_at > previous:
                newest[incident.tenant_id] = incident.created_at
    return tuple(
        TenantIncidents(tenant_id, tuple(sorted(counts[tenant_id].items())), newest.get(tenant_id))
        for tenant_id in sorted(counts)
    )


def new_incidents(
    incidents: Iterable[Incident], seen: Mapping[str, float], start: float
) -> list[Incident]:
    """The in-window incidents not seen before, in the answer's order (newest first)."""
    return [
        incident
        for incident in incidents
        if incident.key not in seen and in_window(incident, start)
    ]


def remember(
    seen: Mapping[str, float],
    incidents: Iterable[Incident],
    *,
    now: float,
    start: float,
    kept: int = SEEN_KEPT,
) -> dict[str, float]:
    """The seen incidents after an answer: each with its creation time (or, undated, the
    time it was first seen), those older than the window forgotten, at most `kept`."""
    merged = {key: moment for key, moment in seen.items() if moment >= start}
    for incident in incidents:
        if incident.key not in merged:
            moment = incident.created_at if incident.created_at is not None else now
            if moment >= start:
                merged[incident.key] = moment
    if len(merged) > kept:
        newest = sorted(merged.items(), key=lambda item: item[1], reverse=True)[:kept]
        merged = dict(newest)
    return merged
