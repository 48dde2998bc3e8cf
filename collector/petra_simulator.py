"""A fake of Petra's `GET /v1/usage`, `GET /v1/incidents` and
`GET /v1/billable-users`, for tests, `demo`, `simulate` and benchmarks.

It behaves as petra-api.md describes: a known key gets a report generated from
its org's name (the same org always gets the same tenants), made once per as-of
date (issue 21 describes Petra's report as made once a day): its
`reportGeneratedAt` is the moment the simulator first answered that org for
that date, so answers are byte for byte the same until the tenants change
(`drift`, `set_tenants`) or the date does. An unknown or deleted key gets 401,
a request without User-Agent gets 403, more than the key's per-minute budget
of a route gets 429 with `Retry-After-public-api` (each route has its own
budget). Errors carry a JSON `{"message": ...}` body.

`/v1/incidents` answers the org's incidents, newest `createdAt` first, filtered
by `startDate` (a date or a date-time; created on or after it) and `tenantId`
(a Petra or a Microsoft tenant id of the org; any other is 404), at most
`limit` of them (1..500, default 100; anything else is 400). Each incident has
a made-up `user` (personal data in the real API), so tests can prove none of it
leaves the collector. With `incident_every_seconds`, a new incident appears at
that pace and the oldest open one is remediated, so a demo sees them change.

`/v1/billable-users?tenantId=` answers one tenant of the org (a missing
`tenantId` is 400, another org's or an unknown tenant is 403), on its own
budget of one request a minute per key by default: `totalBillableUsers` is the
tenant's `billableUsersThisMonth`, `projectedBillableUnitsThisMonth` that
prorated (absent for every tenant whose id sorts first in its org, as the field
is newer than the rest), and `users` lists made-up people whose names and
addresses carry `BILLING_USER_MARK`, so tests can prove none of it leaves the
collector.

Misbehaviour is injected per org and route (or for every request to a route)
with a `Fault`. Each fault replaces the normal answer and consumes no rate
budget, except `LatencyFault`, which only delays it. An org's own fault needs
that org's valid key to show; a fault set for every org (name None) shows
whatever the key, and one that needs a report to answer with falls back to 401
for an unknown key.

A small JSON control API under `/_sim/` (no User-Agent needed) drives it from
another process; it never shows keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import hashlib
import json
import math
import os
import random
import re
import socket
import string
import struct
import time
import types
import typing
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import ClassVar, Final, Literal

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = [
    "BILLING_USER_MARK",
    "BadBodyFault",
    "DuplicateTenantsFault",
    "Fault",
    "HangFault",
    "IncidentsQueryError",
    "LatencyFault",
    "OversizeFault",
    "RateLimitFault",
    "RedirectFault",
    "ResetFault",
    "Route",
    "SimulatedOrg",
    "Simulator",
    "StatusFault",
    "TrickleFault",
    "bench_orgs",
    "demo_orgs",
    "fault_from_json",
    "fault_to_json",
    "run_simulator",
    "sim_key",
    "start_simulator",
    "write_bench_config",
]

WINDOW_SECONDS = 60.0
Route = Literal["usage", "incidents", "billable_users"]
ROUTES: Final[tuple[Route, ...]] = ("usage", "incidents", "billable_users")
# In every made-up billable user's name, principal name and mail: personal data in the
# real API, so none of it may show anywhere the collector writes.
BILLING_USER_MARK: Final = "zzbillinguser"
INCIDENTS_DEFAULT_LIMIT: Final = 100
INCIDENTS_MAX_LIMIT: Final = 500
INCIDENT_STATUSES: Final = ("REMEDIATED", "REMEDIATED", "IN_PROGRESS")
OPEN_STATUS: Final = "IN_PROGRESS"
_REQUEST_TIMES_KEPT = 100_000
_GENERATED_DATES_KEPT = 8  # per org: reportGeneratedAt of the last asOf dates asked
_AS_OF = re.compile(r"\d{4}-\d{2}-\d{2}")
_ID_CHARS = string.ascii_letters + string.digits
_OVERSIZE_CHUNK = 64 * 1024


# -- Faults ----------------------------------------------------------------------


@dataclass(frozen=True)
class StatusFault:
    """Answer `status`, with `{"message": message}` unless message is None (empty body)."""

    kind: ClassVar[str] = "status"
    status: int
    message: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 599:
            raise ValueError(f"status must be 200..599, not {self.status}")


@dataclass(frozen=True)
class RateLimitFault:
    """Answer 429, giving the wait in the header `style` names, or no wait if None."""

    kind: ClassVar[str] = "rate-limit"
    retry_after_seconds: int | None = 30
    style: Literal["public-api", "seconds", "http-date"] = "public-api"

    def __post_init__(self) -> None:
        if self.retry_after_seconds is not None and self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must not be negative")


@dataclass(frozen=True)
class HangFault:
    """Accept the request and never answer, until the client gives up."""

    kind: ClassVar[str] = "hang"


@dataclass(frozen=True)
class TrickleFault:
    """Send 200 headers, then the report `chunk_bytes` at a time spread over `seconds`."""

    kind: ClassVar[str] = "trickle"
    seconds: float = 5.0
    chunk_bytes: int = 16

    def __post_init__(self) -> None:
        if self.seconds < 0 or self.chunk_bytes < 1:
            raise ValueError("seconds must be >= 0 and chunk_bytes >= 1")


@dataclass(frozen=True)
class OversizeFault:
    """Answer 200 with a valid JSON object of exactly `size_bytes` bytes (padding)."""

    kind: ClassVar[str] = "oversize"
    size_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.size_bytes < len(b'{"padding":""}'):
            raise ValueError("size_bytes is too small for a JSON object")


BadBodyShape = Literal["invalid-json", "list", "strings", "nulls", "no-tenants"]


@dataclass(frozen=True)
class BadBodyFault:
    """Answer 200 with a broken report.

    invalid-json: truncated JSON; list: a top-level list; strings: every number a
    string; nulls: every field null; no-tenants: the report without its list
    (`tenants`, or `incidents` on /v1/incidents).
    """

    kind: ClassVar[str] = "bad-body"
    shape: BadBodyShape

    def __post_init__(self) -> None:
        if self.shape not in typing.get_args(BadBodyShape):
            raise ValueError(f"unknown bad-body shape {self.shape!r}")


@dataclass(frozen=True)
class RedirectFault:
    """Answer a redirect `status` to the absolute URL `location`."""

    kind: ClassVar[str] = "redirect"
    location: str
    status: int = 302

    def __post_init__(self) -> None:
        if not self.location.startswith(("http://", "https://")):
            raise ValueError("location must be an absolute http(s) URL")
        if not 300 <= self.status <= 399:
            raise ValueError("a redirect status is 3xx")


@dataclass(frozen=True)
class DuplicateTenantsFault:
    """Answer the report with one more tenant that repeats the first one's petraTenantId
    (on /v1/incidents: one more incident that repeats the first one's id)."""

    kind: ClassVar[str] = "duplicate-tenants"


@dataclass(frozen=True)
class ResetFault:
    """Close the connection abruptly (TCP reset), without any HTTP answer."""

    kind: ClassVar[str] = "reset"


@dataclass(frozen=True)
class LatencyFault:
    """Wait `seconds`, then answer as usual (rate limit included)."""

    kind: ClassVar[str] = "latency"
    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("seconds must not be negative")


Fault = (
    StatusFault
    | RateLimitFault
    | HangFault
    | TrickleFault
    | OversizeFault
    | BadBodyFault
    | RedirectFault
    | DuplicateTenantsFault
    | ResetFault
    | LatencyFault
)
_FAULT_KINDS: dict[str, type[Fault]] = {cls.kind: cls for cls in typing.get_args(Fault)}


def fault_to_json(fault: Fault) -> dict[str, object]:
    """`{"kind": ..., <fields>}`, the form the control API takes and shows."""
    return {"kind": fault.kind, **dataclasses.asdict(fault)}


def fault_from_json(data: object) -> Fault:
    """The Fault a control API body describes; ValueError says what is wrong with it."""
    data = data if isinstance(data, dict) else {}
    kind = data.get("kind")
    cls = _FAULT_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"kind must be one of {sorted(_FAULT_KINDS)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    arguments = {k: v for k, v in data.items() if k != "kind"}
    for name, value in arguments.items():
        if name not in names:
            raise ValueError(f"{kind} has no field {name!r}")
        if not _matches(value, hints[name]):
            raise ValueError(f"{kind}.{name} must be {hints[name]}, not {value!r}")
    try:
        return cls(**arguments)
    except TypeError as exc:  # a required field is missing
        raise ValueError(f"{kind}: {exc}") from None


def _matches(value: object, hint: object) -> bool:
    """Whether a decoded JSON value fits a Fault field's annotation."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is not None:  # Mapping[str, str], the only generic field
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
    if isinstance(value, bool):  # bool is an int subclass, never a number here
        return hint is bool
    if hint is float:
        return isinstance(value, int | float)
    return isinstance(hint, type) and isinstance(value, hint)


# -- Orgs ------------------------------------------------------------------------


@dataclass
class SimulatedOrg:
    """One Petra organization the simulator knows, reached with `key`."""

    name: str
    key: str = field(repr=False)
    organization_name: str = ""
    tenant_count: int = 3
    requests_per_minute: int = 10
    incident_count: int = 3
    incidents_requests_per_minute: int = 10
    billing_requests_per_minute: int = 1

    def __post_init__(self) -> None:
        if not self.organization_name:
            words = re.split(r"[-_.]+", self.name)
            self.organization_name = " ".join(w.capitalize() for w in words if w) + " MSP"


def sim_key(name: str) -> str:
    """The deterministic fake key `bench_orgs` and `demo_orgs` give an org."""
    return "petra_sim_" + hashlib.sha256(name.encode()).hexdigest()[:32]


def bench_orgs(count: int, tenants: int, incidents: int = 3) -> list[SimulatedOrg]:
    """`count` orgs named org-00001... with `tenants` tenants and `incidents` incidents
    each, never rate limited."""
    return [
        SimulatedOrg(
            name=f"org-{i:05d}",
            key=sim_key(f"org-{i:05d}"),
            tenant_count=tenants,
            requests_per_minute=1_000_000_000,
            incident_count=incidents,
            incidents_requests_per_minute=1_000_000_000,
            billing_requests_per_minute=1_000_000_000,
        )
        for i in range(1, count + 1)
    ]


def demo_orgs() -> list[SimulatedOrg]:
    """A few orgs for `demo`; `initech` allows 1 usage request a minute, so it gets 429s.
    Billing allows 60 a minute (Petra: 1), so the demo shows figures within a minute."""
    return [
        SimulatedOrg(
            "acme", sim_key("acme"), "Acme MSP", tenant_count=4, billing_requests_per_minute=60
        ),
        SimulatedOrg(
            "globex",
            sim_key("globex"),
            "Globex Managed IT",
            tenant_count=7,
            billing_requests_per_minute=60,
        ),
        SimulatedOrg(
            "initech",
            sim_key("initech"),
            "Initech",
            2,
            requests_per_minute=1,
            billing_requests_per_minute=60,
        ),
    ]


# Word lists read better packed than one word a line.
# fmt: off
_PLACES = ("Northwind", "Blue Harbor", "Summit", "Redwood", "Silver Lake", "Ironbridge",
           "Cedar Point", "Brightline", "Oakridge", "Harborview", "Granite", "Maple Grove")
_TRADES = ("Dental", "Logistics", "Legal", "Clinic", "Accounting", "Engineering", "Realty",
           "Schools", "Foods", "Insurance", "Architects", "Veterinary")
_FIRST_NAMES = ("Anakin", "Leia", "Lando", "Padme", "Mace", "Jyn", "Cassian", "Hera")
_LAST_NAMES = ("Skywalker", "Organa", "Calrissian", "Amidala", "Windu", "Erso", "Andor")
# fmt: on
_SERVICES = ("Monitoring", "Monitoring + Response")
_STATUSES = ("Trial", "Billable", "Free")


def _generate_tenants(org: SimulatedOrg) -> list[dict[str, object]]:
    # Seeded from the name so the same org always gets the same tenants, in any process.
    rng = random.Random(f"petra-sim:{org.name}")  # noqa: S311 -- fake data, not security
    tenants: list[dict[str, object]] = []
    seen: set[str] = set()
    for _ in range(org.tenant_count):
        tenant_id = "".join(rng.choices(_ID_CHARS, k=6))
        while tenant_id in seen:
            tenant_id = "".join(rng.choices(_ID_CHARS, k=6))
        seen.add(tenant_id)
        onboarded = date(2023, 1, 2) + timedelta(days=rng.randrange(700))
        licensed = rng.randint(5, 500)
        tenants.append(
            {
                "petraTenantId": tenant_id,
                "microsoftTenantId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "onboardingDate": onboarded.isoformat(),
                "displayName": f"{rng.choice(_PLACES)} {rng.choice(_TRADES)}",
                "service": rng.choice(_SERVICES),
                "isPaused": rng.random() < 0.1,
                "firstBillableDate": (
                    onboarded + timedelta(days=rng.choice((0, 14, 30)))
                ).isoformat(),
                "billableStatus": rng.choice(_STATUSES),
                "totalLicensedUsers": licensed,
                "billableUsersThisMonth": rng.randint(licensed * 4 // 5, licensed),
                "proratingPercentageThisMonth": 100 if rng.random() < 0.8 else rng.randint(1, 99),
            }
        )
    return tenants


def _iso_milliseconds(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _created_seconds(incident: Mapping[str, object]) -> float:
    """An incident's createdAt as epoch seconds; one that cannot be read sorts last."""
    created = incident.get("createdAt")
    if isinstance(created, str):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(created)
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return -math.inf


def make_incident(
    rng: random.Random, tenant: Mapping[str, object], created_at: float, status: str
) -> dict[str, object]:
    """One incident in the API's shape for `tenant`, with a made-up user (personal data)."""
    incident_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    tenant_id = str(tenant.get("petraTenantId"))
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    domain = re.sub(r"[^a-z]", "", str(tenant.get("displayName") or "tenant").lower())
    mail = f"{first[0].lower()}{last.lower()}{rng.randrange(100, 1000)}@{domain}.example"
    occurred = created_at - rng.uniform(60.0, 2 * 86400.0)
    return {
        "id": incident_id,
        "url": f"https://app.petrasecurity.com/tenant/{tenant_id}/incidents/{incident_id}",
        "createdAt": _iso_milliseconds(created_at),
        "occurredAt": _iso_milliseconds(occurred),
        "remediationStatus": status,
        "isLive": status != "REMEDIATED" or rng.random() < 0.2,
        "dwellTimeMinutes": (created_at - occurred) / 60.0,
        "tenant": {
            "petraTenantId": tenant_id,
            "name": tenant.get("displayName"),
            "microsoftTenantId": tenant.get("microsoftTenantId"),
        },
        "user": {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "userPrincipalName": mail,
            "mail": mail,
            "displayName": f"{first} {last}",
            "accountEnabled": True,
            "lastPasswordChangeDateTime": None,
        },
    }


class _RouteCounters:
    """One route's rate window and request log for one org."""

    def __init__(self, requests_per_minute: int) -> None:
        self.requests_per_minute = requests_per_minute
        self.window: deque[float] = deque()
        self.count = 0
        self.times: deque[float] = deque(maxlen=_REQUEST_TIMES_KEPT)

    def record(self, now: float) -> None:
        self.count += 1
        self.times.append(now)

    def take_slot(self, now: float) -> int | None:
        """Spend one request of the budget, or return the whole seconds until one frees."""
        while self.window and self.window[0] <= now - WINDOW_SECONDS:
            self.window.popleft()
        if len(self.window) >= self.requests_per_minute:
            return max(1, math.ceil(self.window[0] + WINDOW_SECONDS - now))
        self.window.append(now)
        return None


class _OrgState:
    """What the simulator keeps per org: key, tenants, incidents, rate windows, counters,
    body cache."""

    def __init__(self, org: SimulatedOrg) -> None:
        self.org = org
        self.key: str | None = org.key
        self.tenants: list[dict[str, object]] | None = None  # generated on first use
        self.version = 0  # bumped whenever tenants change, invalidates the caches
        self.incidents: list[dict[str, object]] | None = None  # generated on first use
        self.next_incident_at: float | None = None
        self.faults: dict[Route, Fault] = {}
        self.routes: dict[Route, _RouteCounters] = {
            "usage": _RouteCounters(org.requests_per_minute),
            "incidents": _RouteCounters(org.incidents_requests_per_minute),
            "billable_users": _RouteCounters(org.billing_requests_per_minute),
        }
        self.last_served: bytes | None = None
        # The tenantId of each answered billing request, the last ones (bounded as `times`).
        self.billing_asked: deque[str] = deque(maxlen=_REQUEST_TIMES_KEPT)
        self.tenants_json: tuple[int, bytes] | None = None
        self.body: tuple[tuple[int, str], bytes] | None = None
        # reportGeneratedAt per asOf: when this org's report for that date was first made.
        self.generated: dict[str, str] = {}
        self.drift_rng = random.Random(f"petra-sim-drift:{org.name}")  # noqa: S311 -- fake data
        self.incident_rng = random.Random(f"petra-sim-incidents:{org.name}")  # noqa: S311 -- fake data

    @property
    def count(self) -> int:
        return self.routes["usage"].count

    def current_incidents(self, now: float) -> list[dict[str, object]]:
        if self.incidents is None:
            tenants = self.current_tenants()
            rng = self.incident_rng
            self.incidents = [
                make_incident(
                    rng,
                    rng.choice(tenants),
                    now - rng.uniform(600.0, 20 * 86400.0),
                    rng.choice(INCIDENT_STATUSES),
                )
                for _ in range(self.org.incident_count if tenants else 0)
            ]
        return self.incidents

    def advance_incidents(self, now: float, every: float) -> None:
        """Catch up on the incidents due since the last request: at each step the oldest
        open incident is remediated and a new open one appears."""
        incidents = self.current_incidents(now)
        if self.next_incident_at is None:
            self.next_incident_at = now + every
        tenants = self.current_tenants()
        for _ in range(100):  # a long pause between requests catches up on a bounded number
            if now < self.next_incident_at or not tenants:
                return
            open_ones = [i for i in incidents if i.get("remediationStatus") != "REMEDIATED"]
            if open_ones:
                min(open_ones, key=_created_seconds)["remediationStatus"] = "REMEDIATED"
            tenant = self.incident_rng.choice(tenants)
            incidents.append(
                make_incident(self.incident_rng, tenant, self.next_incident_at, OPEN_STATUS)
            )
            self.next_incident_at += every
        self.next_incident_at = now + every

    def current_tenants(self) -> list[dict[str, object]]:
        if self.tenants is None:
            self.tenants = _generate_tenants(self.org)
        return self.tenants

    def drift(self) -> None:
        for tenant in self.current_tenants():
            licensed = tenant.get("totalLicensedUsers")
            billable = tenant.get("billableUsersThisMonth")
            if isinstance(licensed, int) and isinstance(billable, int):
                step = self.drift_rng.randint(-2, 2)
                tenant["billableUsersThisMonth"] = min(licensed, max(0, billable + step))
        self.version += 1


# -- The simulator ---------------------------------------------------------------


class Simulator:
    """The fake API's state; `make_app()` serves it. All methods take the org's `name`."""

    def __init__(
        self,
        orgs: Iterable[SimulatedOrg] = (),
        *,
        latency_seconds: float = 0.0,
        drift: bool = False,
        drifting: Collection[str] | None = None,
        incident_every_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._latency = latency_seconds
        self._drift = drift
        self._drifting = None if drifting is None else frozenset(drifting)  # None: every org
        self._incident_every = incident_every_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._orgs: dict[str, _OrgState] = {}
        self._live: dict[str, _OrgState] = {}  # key -> org, keys that are answered
        self._retired: dict[str, _OrgState] = {}  # deleted or replaced keys, still counted
        self._global_faults: dict[Route, Fault] = {}
        self._closing: asyncio.Event | None = None
        for org in orgs:
            self.add_org(org)

    def add_org(self, org: SimulatedOrg) -> None:
        if org.name in self._orgs:
            raise ValueError(f"a simulated org named {org.name!r} exists already")
        if org.key in self._live or org.key in self._retired:
            raise ValueError(f"org {org.name!r} reuses another org's key")
        state = _OrgState(org)
        self._orgs[org.name] = state
        self._live[org.key] = state

    def remove_org(self, name: str) -> None:
        state = self._state(name)
        del self._orgs[name]
        for keys in (self._live, self._retired):
            for key in [k for k, s in keys.items() if s is state]:
                del keys[key]

    def delete_key(self, name: str) -> None:
        state = self._state(name)
        if state.key is not None:
            self._retired[state.key] = self._live.pop(state.key)
            state.key = None

    def replace_key(self, name: str, new_key: str) -> None:
        state = self._state(name)
        if new_key in self._live or new_key in self._retired:
            raise ValueError("the new key is already in use")
        self.delete_key(name)
        state.key = new_key
        self._live[new_key] = state

    def set_tenants(self, name: str, tenants: list[dict[str, object]]) -> None:
        state = self._state(name)
        state.tenants = [dict(t) for t in tenants]
        state.version += 1

    def set_fault(self, name: str | None, fault: Fault | None, route: Route = "usage") -> None:
        """Misbehave on `route` for org `name` (None: for every request to it), or stop."""
        faults = self._global_faults if name is None else self._state(name).faults
        if fault is None:
            faults.pop(route, None)
        else:
            faults[route] = fault

    def incidents(self, name: str) -> list[dict[str, typing.Any]]:
        """A copy of the org's incidents as the API would show them (user included)."""
        return [dict(i) for i in self._state(name).current_incidents(self._wall_clock())]

    def set_incidents(self, name: str, incidents: list[dict[str, object]]) -> None:
        self._state(name).incidents = [dict(i) for i in incidents]

    def add_incident(
        self,
        name: str,
        *,
        tenant_id: str | None = None,
        status: str = OPEN_STATUS,
        created_at: float | None = None,
    ) -> str:
        """A new incident for the org (its first tenant unless `tenant_id`); returns its id."""
        state = self._state(name)
        now = self._wall_clock()
        incidents = state.current_incidents(now)
        tenants = state.current_tenants()
        tenant = next(
            (t for t in tenants if tenant_id is None or t.get("petraTenantId") == tenant_id),
            {"petraTenantId": tenant_id, "displayName": f"Tenant {tenant_id}"},
        )
        incident = make_incident(state.incident_rng, tenant, created_at or now, status)
        incidents.append(incident)
        return str(incident["id"])

    def set_incident_status(self, name: str, incident_id: str, status: str) -> None:
        for incident in self._state(name).current_incidents(self._wall_clock()):
            if incident.get("id") == incident_id:
                incident["remediationStatus"] = status
                return
        raise KeyError(f"{name!r} has no incident {incident_id!r}")

    def last_body(self, name: str) -> dict[str, object] | None:
        served = self._state(name).last_served
        return None if served is None else typing.cast(dict[str, object], orjson.loads(served))

    def request_count(self, name: str, route: Route = "usage") -> int:
        """Requests to `route` that carried one of the org's keys, current or former,
        whatever the answer."""
        return self._state(name).routes[route].count

    def billing_asked(self, name: str) -> list[str]:
        """The tenant of each `/v1/billable-users` request of the org that reached it
        (past its budget and faults), in order."""
        return list(self._state(name).billing_asked)

    def request_times(self, name: str, route: Route = "usage") -> list[float]:
        """Clock times of those requests (the most recent 100 000)."""
        return list(self._state(name).routes[route].times)

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[_petra_errors])
        app.router.add_get("/v1/usage", self._usage)
        app.router.add_get("/v1/incidents", self._incidents)
        app.router.add_get("/v1/billable-users", self._billing)
        app.router.add_get("/_sim/orgs", self._control_orgs)
        app.router.add_post("/_sim/orgs/{name}/delete-key", self._control_delete_key)
        app.router.add_post("/_sim/orgs/{name}/fault", self._control_set_fault)
        app.router.add_delete("/_sim/orgs/{name}/fault", self._control_set_fault)
        app.router.add_post("/_sim/fault", self._control_set_fault)
        app.router.add_delete("/_sim/fault", self._control_set_fault)
        app.router.add_get("/_sim/orgs/{name}/last-body", self._control_last_body)
        app.router.add_post("/_sim/orgs/{name}/incidents", self._control_add_incident)
        app.router.add_post(
            "/_sim/orgs/{name}/incidents/{id}/remediate", self._control_remediate_incident
        )
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    def _state(self, name: str) -> _OrgState:
        try:
            return self._orgs[name]
        except KeyError:
            raise KeyError(f"no simulated org named {name!r}") from None

    async def _on_startup(self, _app: web.Application) -> None:
        self._closing = asyncio.Event()  # made here so it belongs to the serving loop

    async def _on_shutdown(self, _app: web.Application) -> None:
        if self._closing is not None:
            self._closing.set()  # releases hanging requests so shutdown is not held up

    # -- /v1/usage

    async def _admit(self, request: web.Request, route: Route) -> _OrgState | web.StreamResponse:
        """What every route does first: latency, key, fault, budget. Returns the org, or
        the answer that replaces the normal one."""
        if self._latency:
            await asyncio.sleep(self._latency)
        key = _bearer_key(request.headers.get("Authorization", ""))
        state = self._live.get(key) if key else None
        owner = state or (self._retired.get(key) if key else None)
        if owner is not None:
            owner.routes[route].record(self._clock())
        fault = (state.faults.get(route) if state else None) or self._global_faults.get(route)
        if isinstance(fault, LatencyFault):
            await asyncio.sleep(fault.seconds)
        elif fault is not None:
            return await self._answer_fault(request, state, fault, route)
        if state is None:
            message = "Invalid API key" if key else "Missing or malformed Authorization header"
            return _error(401, message)
        wait = state.routes[route].take_slot(self._clock())
        if wait is not None:
            headers = {"Retry-After-public-api": str(wait)}
            return _error(429, "Rate limit exceeded", headers)
        return state

    async def _usage(self, request: web.Request) -> web.StreamResponse:
        state = await self._admit(request, "usage")
        if not isinstance(state, _OrgState):
            return state  # answered in its place
        as_of = request.query.get("asOf")
        if as_of is not None and not _valid_date(as_of):
            return _error(400, "Invalid asOf: expected a date as YYYY-MM-DD")
        return _json(200, self._serve(state, as_of))

    # -- /v1/incidents

    async def _incidents(self, request: web.Request) -> web.StreamResponse:
        state = await self._admit(request, "incidents")
        if not isinstance(state, _OrgState):
            return state  # answered in its place
        try:
            return _json(200, self._incidents_body(state, request.query))
        except IncidentsQueryError as error:
            return _error(error.status, str(error))

    def _incidents_body(self, state: _OrgState, query: Mapping[str, str]) -> bytes:
        """The answer to a query (raises IncidentsQueryError)."""
        now = self._wall_clock()
        if self._incident_every:
            state.advance_incidents(now, self._incident_every)
        selected = select_incidents(state.current_incidents(now), state.current_tenants(), query)
        return orjson.dumps({"incidents": selected})

    # -- /v1/billable-users

    async def _billing(self, request: web.Request) -> web.StreamResponse:
        state = await self._admit(request, "billable_users")
        if not isinstance(state, _OrgState):
            return state  # answered in its place
        tenant_id = request.query.get("tenantId")
        if not tenant_id:
            return _error(400, "tenantId is required")
        state.billing_asked.append(tenant_id)
        body = self._billing_body(state, tenant_id)
        if body is None:
            return _error(403, "The tenant does not belong to this organization")
        return _json(200, body)

    def _billing_body(self, state: _OrgState, tenant_id: str | None = None) -> bytes | None:
        """One tenant's answer (the org's first tenant when None); None: not the org's."""
        tenants = state.current_tenants()
        if tenant_id is None and tenants:
            tenant_id = str(tenants[0]["petraTenantId"])
        tenant = next((t for t in tenants if t.get("petraTenantId") == tenant_id), None)
        if tenant is None:
            return None
        return orjson.dumps(billing_answer(tenant, tenants, self._wall_clock()))

    def _serve(self, state: _OrgState, as_of: str | None) -> bytes:
        """The report bytes for a 200, advancing drift and remembering them as served."""
        if self._drift and state.last_served is not None and self._drifts(state.org.name):
            state.drift()
        body = self._report_bytes(state, as_of)
        state.last_served = body
        return body

    def _drifts(self, name: str) -> bool:
        return self._drifting is None or name in self._drifting

    def _report_bytes(self, state: _OrgState, as_of: str | None) -> bytes:
        moment = time.gmtime(int(self._wall_clock()))
        as_of = as_of or time.strftime("%Y-%m-%d", moment)
        cache_key = (state.version, as_of)
        if state.body is not None and state.body[0] == cache_key:
            return state.body[1]
        # The dates asked last stay (moved to the end when asked again); the oldest goes.
        generated = state.generated.pop(as_of, None)
        if generated is None:
            generated = time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)
            if len(state.generated) >= _GENERATED_DATES_KEPT:
                del state.generated[next(iter(state.generated))]
        state.generated[as_of] = generated
        tenants = state.current_tenants()
        if state.tenants_json is None or state.tenants_json[0] != state.version:
            state.tenants_json = (state.version, orjson.dumps(tenants))
        head = orjson.dumps(
            {
                "asOf": as_of,
                "reportGeneratedAt": generated,
                "organizationName": state.org.organization_name,
                "totalTenants": len(tenants),
            }
        )
        # Splice the pre-encoded tenants in: only the small head is encoded anew.
        body = head[:-1] + b',"tenants":' + state.tenants_json[1] + b"}"
        state.body = (cache_key, body)
        return body

    async def _answer_fault(
        self, request: web.Request, state: _OrgState | None, fault: Fault, route: Route
    ) -> web.StreamResponse:
        match fault:
            case StatusFault(status, message, headers):
                body = b"" if message is None else orjson.dumps({"message": message})
                return _json(status, body, headers)
            case RateLimitFault(seconds, style):
                return _error(429, "Rate limit exceeded", self._wait_headers(seconds, style))
            case RedirectFault(location, status):
                return web.Response(status=status, headers={"Location": location})
            case HangFault():
                return await self._hang(request)
            case ResetFault():
                _reset(request)
                return web.Response()  # never sent: the connection is gone
            case OversizeFault(size):
                return await _stream_padding(request, size)
            case _ if state is None:  # the rest answer with a report, which needs an org
                return _error(401, "Invalid API key")
            case TrickleFault(seconds, chunk_bytes):
                body = self._route_body(state, route, serve=True)
                return await _trickle(request, body, seconds, chunk_bytes)
            case DuplicateTenantsFault():
                body = self._with_duplicate(state, route)
                if route == "usage":
                    state.last_served = body  # last_body() is the last usage report
                return _json(200, body)
            case BadBodyFault(shape):
                body = self._route_body(state, route, serve=False)
                return _json(200, _bad_body(body, shape, _LIST_KEYS[route]))
            case _:  # LatencyFault is handled by the caller
                raise AssertionError(f"unhandled fault {fault!r}")

    def _with_duplicate(self, state: _OrgState, route: Route) -> bytes:
        """The normal body with its list's first entry once more at the end."""
        list_key = _LIST_KEYS[route]
        report = orjson.loads(self._route_body(state, route, serve=False))
        if report[list_key]:
            twin = {**report[list_key][0]}
            if route == "usage":
                twin["displayName"] = "Duplicate of the first"
                report["totalTenants"] = len(report["tenants"]) + 1
            report[list_key].append(twin)
        return orjson.dumps(report)

    def _route_body(self, state: _OrgState, route: Route, *, serve: bool) -> bytes:
        """The normal 200 body of `route` (with default query), for faults that bend it."""
        if route == "incidents":
            return self._incidents_body(state, {})
        if route == "billable_users":
            return self._billing_body(state) or b"{}"
        return self._serve(state, None) if serve else self._report_bytes(state, None)

    def _wait_headers(self, seconds: int | None, style: str) -> dict[str, str]:
        if seconds is None:
            return {}
        if style == "public-api":
            return {"Retry-After-public-api": str(seconds)}
        if style == "seconds":
            return {"Retry-After": str(seconds)}
        return {"Retry-After": email.utils.formatdate(self._wall_clock() + seconds, usegmt=True)}

    async def _hang(self, request: web.Request) -> web.StreamResponse:
        # Polls rather than awaiting cancellation: a runner without handler_cancellation
        # keeps the handler running after the client has gone.
        while not (self._closing and self._closing.is_set()):
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            await asyncio.sleep(0.05)
        _reset(request)
        return web.Response()  # never sent: the connection is gone

    # -- /_sim/ control API

    async def _control_orgs(self, _request: web.Request) -> web.StreamResponse:
        orgs = [
            {
                "name": name,
                "organizationName": state.org.organization_name,
                "requests": state.count,
                "incidentRequests": state.routes["incidents"].count,
                "billingRequests": state.routes["billable_users"].count,
                "keyActive": state.key is not None,
                "fault": _shown_fault(state.faults.get("usage")),
                "incidentsFault": _shown_fault(state.faults.get("incidents")),
                "billingFault": _shown_fault(state.faults.get("billable_users")),
            }
            for name, state in self._orgs.items()
        ]
        return _json(
            200,
            orjson.dumps(
                {
                    "orgs": orgs,
                    "fault": _shown_fault(self._global_faults.get("usage")),
                    "incidentsFault": _shown_fault(self._global_faults.get("incidents")),
                    "billingFault": _shown_fault(self._global_faults.get("billable_users")),
                }
            ),
        )

    async def _control_delete_key(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self._orgs:
            return _error(404, f"no simulated org named {name!r}")
        self.delete_key(name)
        return _json(200, orjson.dumps({"name": name, "keyActive": False}))

    async def _control_set_fault(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name")
        if name is not None and name not in self._orgs:
            return _error(404, f"no simulated org named {name!r}")
        route = request.query.get("route", "usage")
        if route not in ROUTES:
            return _error(400, f"route must be one of {', '.join(ROUTES)}")
        fault: Fault | None = None
        if request.method == "POST":
            try:
                fault = fault_from_json(orjson.loads(await request.read()))
            except (orjson.JSONDecodeError, ValueError) as exc:
                return _error(400, f"bad fault: {exc}")
        self.set_fault(name, fault, next(known for known in ROUTES if known == route))
        shown = _shown_fault(fault)
        return _json(200, orjson.dumps({"name": name, "route": route, "fault": shown}))

    async def _control_last_body(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self._orgs:
            return _error(404, f"no simulated org named {name!r}")
        served = self._orgs[name].last_served
        if served is None:
            return _error(404, f"nothing served to {name!r} yet")
        return _json(200, served)

    async def _control_add_incident(self, request: web.Request) -> web.StreamResponse:
        """POST {"tenantId": ..., "remediationStatus": ...} (both optional): a new incident."""
        name = request.match_info["name"]
        if name not in self._orgs:
            return _error(404, f"no simulated org named {name!r}")
        try:
            data = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            return _error(400, "the body must be a JSON object")
        data = data if isinstance(data, dict) else {}
        tenant_id, status = data.get("tenantId"), data.get("remediationStatus", OPEN_STATUS)
        if not (tenant_id is None or isinstance(tenant_id, str)) or not isinstance(status, str):
            return _error(400, "tenantId and remediationStatus must be strings")
        incident_id = self.add_incident(name, tenant_id=tenant_id, status=status)
        return _json(200, orjson.dumps({"name": name, "id": incident_id}))

    async def _control_remediate_incident(self, request: web.Request) -> web.StreamResponse:
        name, incident_id = request.match_info["name"], request.match_info["id"]
        if name not in self._orgs:
            return _error(404, f"no simulated org named {name!r}")
        try:
            self.set_incident_status(name, incident_id, "REMEDIATED")
        except KeyError:
            return _error(404, f"{name!r} has no incident {incident_id!r}")
        return _json(200, orjson.dumps({"name": name, "id": incident_id}))


def billing_answer(
    tenant: Mapping[str, object], tenants: list[dict[str, object]], now: float
) -> dict[str, object]:
    """`/v1/billable-users` for `tenant` of an org with `tenants`: as Petra's reference
    shows it, with made-up users (marked with BILLING_USER_MARK)."""
    tenant_id = str(tenant["petraTenantId"])
    billable = tenant.get("billableUsersThisMonth")
    count = billable if isinstance(billable, int) else 0
    ratio = tenant.get("proratingPercentageThisMonth")
    answer: dict[str, object] = {
        "tenantId": tenant_id,
        "tenantDisplayName": tenant.get("displayName"),
        "microsoftTenantId": tenant.get("microsoftTenantId"),
        "reportGeneratedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "totalBillableUsers": count,
    }
    if tenant_id != min(str(t["petraTenantId"]) for t in tenants):
        percent = ratio if isinstance(ratio, int | float) else 100
        answer["projectedBillableUnitsThisMonth"] = round(count * percent / 100 * 0.95, 2)
    answer["users"] = [
        {
            "id": str(uuid.UUID(int=index + 1, version=4)),
            "displayName": f"{BILLING_USER_MARK} Person {index}",
            "userPrincipalName": f"{BILLING_USER_MARK}.{index}@{tenant_id.lower()}.example",
            "mail": f"{BILLING_USER_MARK}.{index}@{tenant_id.lower()}.example",
            "accountEnabled": True,
            "assignedLicenseSkuIds": ["c7df2760-2c81-4ef7-b578-5b5392b571df"],
        }
        for index in range(min(count, 3))
    ]
    return answer


class IncidentsQueryError(ValueError):
    """A query /v1/incidents refuses; `status` is the HTTP status it answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def select_incidents(
    incidents: list[dict[str, object]],
    tenants: list[dict[str, object]],
    query: Mapping[str, str],
) -> list[dict[str, object]]:
    """What /v1/incidents answers to `query`: newest first, `startDate`, `tenantId`, `limit`."""
    limit = _limit(query.get("limit"))
    start = _start_date(query.get("startDate"))
    chosen = incidents
    tenant_param = query.get("tenantId")
    if tenant_param is not None:
        match = next(
            (
                t
                for t in tenants
                if tenant_param in (t.get("petraTenantId"), t.get("microsoftTenantId"))
            ),
            None,
        )
        if match is None:
            raise IncidentsQueryError(404, f"Tenant {tenant_param!r} not found")
        wanted = match.get("petraTenantId")
        chosen = [i for i in chosen if _incident_tenant(i) == wanted]
    if start is not None:
        chosen = [i for i in chosen if _created_seconds(i) >= start]
    return sorted(chosen, key=_created_seconds, reverse=True)[:limit]


def _incident_tenant(incident: Mapping[str, object]) -> object:
    tenant = incident.get("tenant")
    return tenant.get("petraTenantId") if isinstance(tenant, dict) else None


def _limit(text: str | None) -> int:
    if text is None:
        return INCIDENTS_DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= INCIDENTS_MAX_LIMIT:
        raise IncidentsQueryError(
            400, f"Invalid limit: expected an integer from 1 to {INCIDENTS_MAX_LIMIT}"
        )
    return int(text)


def _start_date(text: str | None) -> float | None:
    """startDate as epoch seconds: a date (its midnight UTC) or an ISO 8601 date-time."""
    if text is None:
        return None
    if _valid_date(text):
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or "T" not in text:
        raise IncidentsQueryError(400, "Invalid startDate: expected an ISO 8601 date or date-time")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


_LIST_KEYS: Final[dict[Route, str]] = {
    "usage": "tenants",
    "incidents": "incidents",
    "billable_users": "users",
}


def _shown_fault(fault: Fault | None) -> dict[str, object] | None:
    return None if fault is None else fault_to_json(fault)


# -- HTTP helpers ----------------------------------------------------------------


@web.middleware
async def _petra_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse requests without User-Agent first, and give routing errors a JSON body."""
    if not request.headers.get("User-Agent") and not request.path.startswith("/_sim/"):
        return _error(403, "Forbidden: User-Agent required")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)


def _json(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, headers=headers, content_type="application/json")


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json(status, orjson.dumps({"message": message}), headers)


def _bearer_key(authorization: str) -> str | None:
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


def _valid_date(text: str) -> bool:
    if not _AS_OF.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP reset (SO_LINGER 0) rather than an orderly close."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # If that fails, an orderly close still leaves the client without an answer.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _trickle(
    request: web.Request, body: bytes, seconds: float, chunk_bytes: int
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    chunks = [body[i : i + chunk_bytes] for i in range(0, len(body), chunk_bytes)]
    try:
        for chunk in chunks:
            await response.write(chunk)
            await asyncio.sleep(seconds / len(chunks))
        await response.write_eof()
    except ConnectionError:
        pass  # the client gave up, which is what this fault is for
    return response


async def _stream_padding(request: web.Request, size: int) -> web.StreamResponse:
    # Streamed so a huge body costs the simulator no memory.
    head, tail = b'{"padding":"', b'"}'
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = size
    await response.prepare(request)
    filler = b"x" * _OVERSIZE_CHUNK
    try:
        await response.write(head)
        left = size - len(head) - len(tail)
        while left > 0:
            await response.write(filler[: min(left, _OVERSIZE_CHUNK)])
            left -= _OVERSIZE_CHUNK
        await response.write(tail)
        await response.write_eof()
    except ConnectionError:
        pass  # the client stopped reading, which is what this fault is for
    return response


def _bad_body(report_bytes: bytes, shape: str, list_key: str = "tenants") -> bytes:
    report = orjson.loads(report_bytes)
    if shape == "invalid-json":
        return report_bytes[: len(report_bytes) // 2]
    if shape == "list":
        return orjson.dumps(report[list_key])
    if shape == "no-tenants":
        del report[list_key]
        return orjson.dumps(report)
    items = report.pop(list_key)
    if shape == "nulls":
        return orjson.dumps(
            {
                **dict.fromkeys(report),
                list_key: [dict.fromkeys(item) for item in items],
            }
        )
    return orjson.dumps(_numbers_as_strings({**report, list_key: items}))


def _numbers_as_strings(value: object) -> object:
    if isinstance(value, dict):
        return {k: _numbers_as_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_strings(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


# -- Serving ---------------------------------------------------------------------


async def start_simulator(
    sim: Simulator, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Serve `sim` on host:port (0 picks a free port); returns the runner and the bound port.

    The caller owns the runner and must `await runner.cleanup()`.
    """
    runner = web.AppRunner(
        sim.make_app(), access_log=None, handler_cancellation=True, shutdown_timeout=2.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])


async def run_simulator(
    sim: Simulator,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve `sim` until `stop` is set; `on_ready` gets the bound port once it listens."""
    runner, bound = await start_simulator(sim, host, port)
    try:
        if on_ready is not None:
            on_ready(bound)
        await stop.wait()
    finally:
        await runner.cleanup()


def write_bench_config(
    orgs: Iterable[SimulatedOrg],
    directory: Path,
    base_url: str,
    interval_seconds: int,
    *,
    polling: Mapping[str, int | float] | None = None,
    incidents_interval_seconds: int | None = None,
    billing: Mapping[str, int | float] | None = None,
) -> Path:
    """Write one key file per org (mode 0600) and a collector config.yaml; return its path.

    `polling` adds settings to the config's `polling:` section (e.g. concurrency,
    max_requests_per_second, requests_per_minute_per_key for short intervals);
    `incidents_interval_seconds` turns incidents on at that interval; `billing` turns
    billing on with those settings (interval_seconds, requests_per_minute_per_key).
    """
    keys = directory / "keys"
    keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    # JSON strings are valid YAML scalars, so values are quoted with json.dumps.
    lines = [
        "api:",
        f"  base_url: {json.dumps(base_url)}",
        "polling:",
        f"  interval_seconds: {interval_seconds}",
        *(f"  {name}: {value}" for name, value in (polling or {}).items()),
    ]
    if incidents_interval_seconds is not None:
        lines += [
            "incidents:",
            "  enabled: true",
            f"  interval_seconds: {incidents_interval_seconds}",
        ]
    if billing is not None:
        lines += ["billing:", "  enabled: true", *(f"  {k}: {v}" for k, v in billing.items())]
    lines.append("orgs:")
    for org in orgs:
        key_file = (keys / org.name).resolve()
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(org.key)
        key_file.chmod(0o600)  # os.open keeps the mode of a file that existed already
        lines.append(f"  - name: {json.dumps(org.name)}")
        lines.append(f"    api_key_file: {json.dumps(str(key_file))}")
    config = directory / "config.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config
