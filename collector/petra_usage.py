"""`/v1/usage` JSON -> `UsageReport`. Pure and tolerant.

Petra's schema marks no field as required, so every field may be absent,
null or of a surprising type. A field that cannot be read becomes `None`
(no sample), never a zero; a tenant without an id is skipped, because it
cannot be labelled. What was skipped is listed in `UsageReport.notes` so
the caller can log it. Only an answer that is not an object with a list of
tenants is rejected as a whole (`UsageFormatError`), so a broken answer
never wipes the last good tenant series.
"""

from __future__ import annotations

import hashlib
import math
import operator
from datetime import UTC, date, datetime
from typing import Final, NamedTuple

import orjson

from collector.bounded import keep
from collector.sharedvalues import (
    FLOATS_OF_INTS,
    RATIOS_OF_INTS,
    TEXTS,
    shared_number,
    shared_text,
)


class UsageFormatError(ValueError):
    """The body is not JSON, or not the shape of a usage report."""


class TenantUsage(NamedTuple):
    """One tenant. A tuple, not an object per field: thousands of these live at once."""

    tenant_id: str
    microsoft_tenant_id: str | None
    display_name: str | None
    service: str | None
    billable_status: str | None
    is_paused: bool | None
    licensed_users: float | None
    billable_users: float | None
    prorating_ratio: float | None
    onboarding_timestamp: float | None
    first_billable_timestamp: float | None


# The JSON names of `TenantUsage`'s fields, in its order.
TENANT_KEYS: Final = (
    "petraTenantId",
    "microsoftTenantId",
    "displayName",
    "service",
    "billableStatus",
    "isPaused",
    "totalLicensedUsers",
    "billableUsersThisMonth",
    "proratingPercentageThisMonth",
    "onboardingDate",
    "firstBillableDate",
)
# A tenant's values in `TENANT_KEYS` order, in C: twice as fast as a `.get` per key.
_FIELDS_OF: Final = operator.itemgetter(*TENANT_KEYS)
# NamedTuple's own constructor is a Python function around this: one frame less per tenant.
_new_tenant: Final = tuple.__new__


class UsageReport(NamedTuple):
    as_of: str | None
    report_generated_at: float | None
    organization_name: str | None
    total_tenants: float | None
    tenants: tuple[TenantUsage, ...]
    notes: tuple[str, ...] = ()
    # When read from a body: the SHA-256 of its tail (from its first `"tenants"` on), then
    # that of the tail followed by the head, in one bytes object (one object per org, not
    # two). The next answer with the same tail digest has the same tenants; with both, it
    # is the same body (`parse_usage_body`).
    digest: bytes = b""


_new_report: Final = tuple.__new__
TENANTS_KEY: Final = b'"tenants"'
_sha256: Final = hashlib.sha256


def parse_usage_body(body: bytes, previous: UsageReport | None = None) -> UsageReport:
    """`parse_usage` of the JSON `body`, reusing what `previous` (the org's kept report)
    was read from:
    - a body byte for byte the one `previous` was read from (the same report, the same
      `reportGeneratedAt`) is `previous` itself, not read again (issue 21 describes
      Petra's report as made once a day);
    - when only the body from its first `"tenants"` on is the same, its tenants (and
      the notes about them) are `previous`'s, not read again: the other fields
      (`reportGeneratedAt`, `asOf`) change more often than the tenants, and reading
      them is most of the work.

    Why the tail decides: a JSON string cannot hold `"tenants"` unescaped, so the first
    occurrence is a key or a whole string at or before the top-level key, and the tail
    holds that key, its value and every bracket that closes around it; two valid
    bodies with the same tail have the same top-level `tenants` value.

    Why two digests tell the whole body: each body is cut at its own first `"tenants"`
    into a head and a tail, and the digests are SHA-256 of the tail, then of the tail
    followed by the head (one pass over the body, one hash set-up). Equal first digests
    mean equal tails, so of equal length; equal second ones then mean equal heads: equal
    bodies. A collision-resistant hash needs no length or position beside it, unlike a
    checksum such as CRC-32, which different bodies of one length can share."""
    start = body.find(TENANTS_KEY)
    tail = digest = b""
    if start >= 0:
        whole = memoryview(body)
        hashed = _sha256(whole[start:])
        tail = hashed.digest()
        hashed.update(whole[:start])  # not a second object: its set-up costs more than a head
        digest = tail + hashed.digest()
        if previous is not None and digest == previous.digest:
            return previous
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise UsageFormatError(f"body is not valid JSON: {error}") from None
    if previous is not None and tail and previous.digest.startswith(tail) and type(data) is dict:
        return _report(data, previous.tenants, previous.notes, digest)
    return parse_usage(data, digest)


def listed(
    data: object, key: str, error: type[ValueError]
) -> tuple[dict[str, object], list[object]]:
    """An answer that must be a JSON object holding a list under `key`: the object and
    the list, or `error` naming what the answer is instead (usage and incidents)."""
    if not isinstance(data, dict):
        raise error(f"expected a JSON object, got {json_type(data)}")
    items = data.get(key)
    if items is None:
        raise error(f"the answer has no {key!r} list")
    if not isinstance(items, list):
        raise error(f"{key!r} is {json_type(items)}, not a list")
    return data, items


def parse_usage(data: object, digest: bytes = b"") -> UsageReport:
    data, raw_tenants = listed(data, "tenants", UsageFormatError)
    notes: list[str] = []
    tenants: list[TenantUsage] = []
    seen: set[str] = set()
    dates, texts, counts, ratios = _DATES, TEXTS, FLOATS_OF_INTS, RATIOS_OF_INTS
    fields_of, see, add = _FIELDS_OF, seen.add, tenants.append
    for index, item in enumerate(raw_tenants):
        if type(item) is dict:
            try:
                values = fields_of(item)
            except KeyError:  # a field left out: read as null, as .get reads it
                values = tuple(map(item.get, TENANT_KEYS))
        elif isinstance(item, dict):  # a subclass: its own __getitem__ might add the key
            values = tuple(map(item.get, TENANT_KEYS))
        else:
            notes.append(f"tenants[{index}] is {json_type(item)}, skipped")
            continue
        (
            raw_id,
            microsoft,
            name,
            service,
            status,
            paused,
            licensed,
            billable,
            prorating,
            onboarded,
            first,
        ) = values
        tenant_id = (raw_id or None) if type(raw_id) is str else json_text(raw_id)
        if tenant_id is None:
            notes.append(f"tenants[{index}] has no petraTenantId, skipped")
            continue
        if tenant_id in seen:
            notes.append(f"tenants[{index}] repeats petraTenantId {tenant_id!r}, skipped")
            continue
        see(tenant_id)
        # `tenant_usage`, inline: a value of the type Petra sends (string, boolean, int,
        # a date seen before) is taken here, anything else by the same general helper,
        # so the result is the same; no call per field, the bulk of a 100-tenant parse.
        # A date not seen yet, or an int too large for a float, takes the general path.
        # Recurring values (texts, whole counts and percentages, dates) come from the
        # tables of kept copies (sharedvalues.py), equal to what `tenant_usage` makes.
        try:
            ratio = ratios[prorating] if type(prorating) is int else _ratio(prorating)
            licensed = counts[licensed] if type(licensed) is int else json_number(licensed)
            billable = counts[billable] if type(billable) is int else json_number(billable)
            onboarded = dates[onboarded] if type(onboarded) is str else _date(onboarded)
            first = dates[first] if type(first) is str else _date(first)
        except (KeyError, OverflowError):  # a date not seen yet; an int beyond any float
            add(tenant_usage(tenant_id, values))
            continue
        add(
            _new_tenant(
                TenantUsage,
                (
                    tenant_id,
                    (microsoft or None) if type(microsoft) is str else json_text(microsoft),
                    (name or None) if type(name) is str else json_text(name),
                    (texts[service] if service else None)
                    if type(service) is str
                    else json_text(service),
                    (texts[status] if status else None)
                    if type(status) is str
                    else json_text(status),
                    paused if type(paused) is bool else _flag(paused),
                    licensed,
                    billable,
                    ratio,
                    onboarded,
                    first,
                ),
            )
        )
    if raw_tenants and not tenants:
        # Nothing usable in a non-empty list is a broken answer, not an org with no
        # tenants: keep the last good series rather than wipe them.
        raise UsageFormatError(f"none of the {len(raw_tenants)} tenants is usable: {notes[0]}")
    return _report(data, tuple(tenants), tuple(notes), digest)


def _report(
    data: dict[str, object],
    tenants: tuple[TenantUsage, ...],
    notes: tuple[str, ...],
    digest: bytes,
) -> UsageReport:
    # The common types inline and NamedTuple's constructor skipped, as for a tenant.
    get = data.get
    as_of, name = get("asOf"), get("organizationName")
    return _new_report(
        UsageReport,
        (
            (as_of or None) if type(as_of) is str else json_text(as_of),
            iso_datetime(get("reportGeneratedAt")),
            (name or None) if type(name) is str else json_text(name),
            json_number(get("totalTenants")),
            tenants,
            notes,
            digest,
        ),
    )


def tenant_usage(tenant_id: str, values: tuple[object, ...]) -> TenantUsage:
    """A tenant from its id and its fields' values in `TENANT_KEYS` order, each read by
    the general helpers: what `parse_usage` makes of a tenant inline must equal this
    (a property test holds it to that)."""
    _, microsoft, name, service, status, paused, licensed, billable, prorating, onboarded, first = (
        values
    )
    return TenantUsage(
        tenant_id,
        json_text(microsoft),
        json_text(name),
        json_text(service),
        json_text(status),
        _flag(paused),
        json_number(licensed),
        json_number(billable),
        _ratio(prorating),
        _date(onboarded),
        _date(first),
    )


def shared_tenants(tenants: tuple[TenantUsage, ...]) -> tuple[TenantUsage, ...]:
    """`tenants` that did not come through `parse_usage` (the state file's), equal,
    with their recurring values replaced by the kept copies (`shared_text`,
    `shared_number`)."""
    return tuple(
        TenantUsage(
            tenant.tenant_id,
            tenant.microsoft_tenant_id,
            tenant.display_name,
            shared_text(tenant.service),
            shared_text(tenant.billable_status),
            tenant.is_paused,
            shared_number(tenant.licensed_users),
            shared_number(tenant.billable_users),
            shared_number(tenant.prorating_ratio),
            shared_number(tenant.onboarding_timestamp),
            shared_number(tenant.first_billable_timestamp),
        )
        for tenant in tenants
    )


def json_type(value: object) -> str:
    """How a JSON value is named in a message about an answer."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def json_text(value: object) -> str | None:
    """A JSON string as it came (an ID or name is kept as Petra spells it, so one tenant
    has one `tenant_id` in every series; "" is None), a JSON integer as its digits, else
    None."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            return None
    return None


def json_number(value: object) -> float | None:
    """A finite number as a float (-0.0 as 0.0: a sign no metric means), or None."""
    if type(value) is float:  # the common types first, by identity: no MRO walk
        return value + 0.0 if math.isfinite(value) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # beyond any float: no sample rather than a crash
            return None
    if isinstance(value, str):
        # Some gateways quote numbers; a clean decimal string is still a number.
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, float) and math.isfinite(value):
        return value + 0.0
    return None


def _ratio(percent: object) -> float | None:
    number = json_number(percent)
    return None if number is None else number / 100.0


def _flag(value: object) -> bool | None:
    if type(value) is bool:
        return value
    if value in (0, 1, "true", "false"):
        return value in (1, "true")
    return None


def _date(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    # The same few hundred dates recur in every report: each is parsed once.
    try:
        return _DATES[value]
    except KeyError:
        pass
    seconds = _parse_date(value)
    keep(_DATES, value, seconds, _DATES_KEPT)
    return seconds


_DATES_KEPT: Final = 8192
_DATES: Final[dict[str, float | None]] = {}  # a plain dict: parse_usage looks dates up inline


def _parse_date(value: str) -> float | None:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return iso_datetime(value)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def iso_datetime(value: object) -> float | None:
    """An ISO 8601 date-time (UTC when it names no zone) as epoch seconds, or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
