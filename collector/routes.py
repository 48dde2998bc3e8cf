"""Petra's routes, each described once.

A `Route` says everything the daemon needs to know of one of Petra's routes:
its path and name (the `route` label, the state file's section, the name in
`auth_rejected_routes`); whether it is asked once per org or once per
tenant; its interval, per-key budget and staleness (`Timing`, from the
config; a budget below one request a minute is a fraction); how to ask it
and what a good answer leaves in the org's state (`ask`, `take`, and
`expire` for what ages while requests fail; `choose`, for a route asked once
per tenant, which tenant to ask now); and its state-file section
(`encode`, `decode`). One loop and one outcome recorder in scheduler.py, one
saved-route codec in state_file.py, serve every route in `ROUTES`.

Adding a route: a parser module beside petra_usage.py, a `Route` here (with
a `RouteState` subclass for what it keeps of its answers), its line in
`ROUTES`, its metric families in metrics.py and its status fields in
web_status.py, the simulator's handler, tests and docs.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple, Protocol

from collector.apikey import ApiKey
from collector.config import (
    BillingSettings,
    IncidentsSettings,
    OrgConfig,
    PollingSettings,
    Settings,
)
from collector.petra_billing import BillingReport
from collector.petra_incidents import (
    MAX_LIMIT,
    Incident,
    IncidentsReport,
    TenantIncidents,
    new_incidents,
    remember,
    start_date_param,
    summarize,
    window_start,
)
from collector.petra_usage import UsageReport
from collector.state import USAGE, OrgState, RouteState
from collector.state_records import Reader

Per = Literal["org", "tenant"]
INCIDENTS: Final = "incidents"
BILLING: Final = "billable_users"


class Fetcher(Protocol):
    """What asks Petra (`petra_client.PetraClient`; a scripted fake in tests)."""

    async def fetch_usage(
        self, key: ApiKey, previous: UsageReport | None = None
    ) -> UsageReport: ...

    async def fetch_incidents(
        self, key: ApiKey, *, start_date: str, limit: int = ..., tenant_id: str | None = ...
    ) -> IncidentsReport: ...

    async def fetch_billing(self, key: ApiKey, *, tenant_id: str) -> BillingReport: ...


class RouteLog(Protocol):
    """Logs about one org, its name and key fingerprint bound (scheduler's `_OrgLog`)."""

    def info(self, event: str, **fields: object) -> None: ...

    def warning(self, event: str, **fields: object) -> None: ...


@dataclass(frozen=True, slots=True)
class Sections:
    """The parts of the config that routes read."""

    polling: PollingSettings
    incidents: IncidentsSettings = field(default_factory=IncidentsSettings)
    billing: BillingSettings = field(default_factory=BillingSettings)

    @classmethod
    def of(cls, settings: Settings) -> Sections:
        """The sections of a loaded config: the one place that names each route's section."""
        return cls(settings.polling, settings.incidents, settings.billing)


@dataclass(frozen=True, slots=True)
class Timing:
    """How often a route is asked for one org, and within what."""

    interval: float  # seconds between two requests of one org (per tenant: of one tenant)
    max_staleness: float  # the route's values are dropped after this long without success


@dataclass(frozen=True, slots=True)
class Asking:
    """One request about to go, as a route's functions see it."""

    now: float  # wall clock when it was asked
    sections: Sections
    tenant: str | None = None  # the tenant asked about, on a route asked once per tenant


class Choice(NamedTuple):
    """What a route asked once per tenant picks (`Route.choose`)."""

    tenant: str | None  # the tenant to ask now; None: none is due yet
    wait: float  # 0, or the seconds until one is due
    tenants: int  # the tenants of a round (the org's last usage report)
    round_seconds: float  # what a round of them takes at the route's budget


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One of Petra's routes (see the module docstring)."""

    name: str
    path: str
    per: Per
    enabled: Callable[[Sections], bool]
    timing: Callable[[Sections, OrgConfig], Timing]
    # Requests per minute per key on this route, the same for every org; below 1 is allowed.
    budget: Callable[[Sections], float]
    # One request; what it returns goes to `take` (any answer type: each route has its own).
    ask: Callable[[Fetcher, ApiKey, OrgState, Asking], Awaitable[Any]]
    # Returns True when the answer changed the org's tenants: the routes asked once per
    # tenant are woken to ask a new one soon.
    take: Callable[[OrgState, Any, Asking, RouteLog], bool]
    expire: Callable[[OrgState, Asking], None] | None = None
    # Routes asked once per tenant: forget what aged, then which tenant to ask now.
    choose: Callable[[OrgState, Asking], Choice] | None = None
    new_side: Callable[[], RouteState] | None = None  # None: the org's own side (usage)
    # The route's section of the state file beyond its outcome (None: usage, whose
    # report state_file.py writes in the record itself).
    encode: Callable[[RouteState], dict[str, object]] | None = None
    decode: Callable[[Reader, dict[str, object]], object] | None = None
    names_itself_in_logs: bool = True  # usage's log lines never named a route
    # Logged (warning, once per org) when the budget cannot ask every tenant within the
    # interval; routes asked once per tenant only.
    budget_short_event: str | None = None

    def log_fields(self) -> dict[str, object]:
        return {"route": self.name} if self.names_itself_in_logs else {}

    def spread_key(self, org: str) -> str:
        """What spreads the org's first requests on this route over its interval."""
        return f"{org}/{self.name}" if self.names_itself_in_logs else org


def _polling_budget(sections: Sections) -> float:
    return sections.polling.requests_per_minute_per_key


# -- /v1/usage -------------------------------------------------------------------------


def _usage_timing(sections: Sections, org: OrgConfig) -> Timing:
    polling = sections.polling
    return Timing(org.interval_seconds, polling.max_staleness_seconds)


def _ask_usage(fetcher: Fetcher, key: ApiKey, state: OrgState, _asking: Asking) -> Awaitable[Any]:
    # The kept report: an unchanged answer is then not parsed again.
    return fetcher.fetch_usage(key, state.report)


def _take_usage(state: OrgState, report: UsageReport, _asking: Asking, log: RouteLog) -> bool:
    previous = state.report
    if report is previous:
        # The body the org's report was read from, again (`parse_usage_body`): nothing to
        # take, nor to look at again (its poll's times are recorded already).
        return False
    state.take_report(report)
    if report.notes and report.notes != (previous.notes if previous is not None else ()):
        log.warning("usage_anomalies", notes=list(report.notes))
    if previous is None:
        return True
    kept = state.report
    # Usually the very tuple (OrgState.take_report keeps it while nothing changed).
    unchanged = kept is not None and kept.tenants is previous.tenants
    return not unchanged and tenant_ids(previous) != tenant_ids(report)


def tenant_ids(report: UsageReport | None) -> tuple[str, ...]:
    """The tenants of a usage report, as routes asked once per tenant ask them."""
    return () if report is None else tuple(tenant.tenant_id for tenant in report.tenants)


USAGE_ROUTE: Final = Route(
    name=USAGE,
    path="/v1/usage",
    per="org",
    enabled=lambda _sections: True,
    timing=_usage_timing,
    budget=_polling_budget,
    ask=_ask_usage,
    take=_take_usage,
    names_itself_in_logs=False,
)


# -- /v1/incidents ---------------------------------------------------------------------


@dataclass(slots=True)
class IncidentsSide(RouteState):
    """An org's `/v1/incidents` side: the last good answer (nothing personal in it), what
    is exported of it, and the incidents already announced."""

    incidents: tuple[Incident, ...] = ()
    tenants: tuple[TenantIncidents, ...] | None = None  # what is exported; None: nothing
    truncated: bool = False  # the last answer was full: counts are lower bounds
    notes: tuple[str, ...] = ()  # what the last answer's parse skipped
    seen: dict[str, float] = field(default_factory=dict)  # incident key -> creation time

    def restore_data(self, data: object) -> None:
        if not isinstance(data, SavedIncidents):
            return
        self.truncated, self.notes, self.incidents = data.truncated, data.notes, data.incidents
        self.seen = dict(data.seen)
        if self.last_success_at is not None:
            # Counted in today's window by `expire`, which runs after a restore.
            self.tenants = summarize(data.incidents, -math.inf)

    def take(self, report: IncidentsReport, now: float, start: float) -> list[Incident]:
        """A good answer for the window from `start`; returns the incidents not seen
        before, newest first."""
        fresh = new_incidents(report.incidents, self.seen, start)
        self.seen = remember(self.seen, report.incidents, now=now, start=start)
        self.incidents = report.incidents
        tenants = summarize(report.incidents, start)
        if tenants != self.tenants:
            self.tenants = tenants  # else the same tuple stays, as readers cached it
        self.truncated = report.received >= MAX_LIMIT
        self.notes = report.notes
        return fresh

    def expire(self, now: float, start: float, max_staleness: float) -> bool:
        """While polls fail, the window still moves: incidents that left it stop being
        counted, and everything goes once the last success is `max_staleness` old.
        True when what is exported changed."""
        if self.tenants is None:
            return False
        if self.last_success_at is None or now - self.last_success_at > max_staleness:
            self.incidents, self.tenants, self.truncated = (), None, False
            return True
        tenants = summarize(self.incidents, start)
        if tenants == self.tenants:
            return False
        self.tenants = tenants
        return True


@dataclass(frozen=True, slots=True)
class SavedIncidents:
    """What the state file keeps of the incidents side beyond its outcome: the last
    counts and the incidents already announced (`seen`), so `incident_detected` is not
    logged again after a restart."""

    truncated: bool = False
    notes: tuple[str, ...] = ()
    incidents: tuple[Incident, ...] = ()
    seen: dict[str, float] = field(default_factory=dict)


def incidents_side(state: OrgState) -> IncidentsSide | None:
    """The org's incidents side; None while incidents are not polled."""
    side = state.sides.get(INCIDENTS)
    return side if isinstance(side, IncidentsSide) else None


def _incidents_timing(sections: Sections, _org: OrgConfig) -> Timing:
    polling = sections.polling
    return Timing(sections.incidents.interval_seconds, polling.max_staleness_seconds)


def _window(asking: Asking) -> float:
    return window_start(asking.now, asking.sections.incidents.lookback_days)


def _ask_incidents(
    fetcher: Fetcher, key: ApiKey, _state: OrgState, asking: Asking
) -> Awaitable[Any]:
    """Those created in the last `lookback_days`, newest first."""
    start_date = start_date_param(_window(asking))
    return fetcher.fetch_incidents(key, start_date=start_date, limit=MAX_LIMIT)


def _take_incidents(
    state: OrgState, report: IncidentsReport, asking: Asking, log: RouteLog
) -> bool:
    side = incidents_side(state)
    assert side is not None  # noqa: S101 - the scheduler asks only routes it polls
    previous_notes, was_truncated = side.notes, side.truncated
    fresh: list[Incident] = []

    def change(_side: RouteState) -> bool:
        fresh.extend(side.take(report, asking.now, _window(asking)))
        return True

    state.change_side(INCIDENTS, change)
    if report.notes and report.notes != previous_notes:
        log.warning("incidents_anomalies", notes=list(report.notes))
    if side.truncated and not was_truncated:
        log.warning(
            "incidents_truncated",
            received=report.received,
            lookback_days=asking.sections.incidents.lookback_days,
        )
    for incident in fresh:
        log.warning(
            "incident_detected",
            tenant_id=incident.tenant_id,
            remediation_status=incident.remediation_status,
            created_at=_iso(incident.created_at),
            url=incident.url,
        )
    return False


def _expire_incidents(state: OrgState, asking: Asking) -> None:
    start = _window(asking)
    max_staleness = asking.sections.polling.max_staleness_seconds

    def change(side: RouteState) -> bool:
        assert isinstance(side, IncidentsSide)  # noqa: S101 - new_side makes only these
        return side.expire(asking.now, start, max_staleness)

    state.change_side(INCIDENTS, change)


def _encode_incidents(side: RouteState) -> dict[str, object]:
    """No user data: an `Incident` holds none (collector/petra_incidents.py drops it)."""
    assert isinstance(side, IncidentsSide)  # noqa: S101 - new_side makes only these
    return {
        "truncated": side.truncated,
        "notes": side.notes,
        "incidents": [list(incident) for incident in side.incidents],
        "seen": side.seen,
    }


def _decode_incidents(reader: Reader, raw: dict[str, object]) -> SavedIncidents:
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
    seen_reader = Reader(f"{reader.path}.seen")
    return SavedIncidents(
        truncated=truncated,
        notes=tuple(notes),
        incidents=tuple(_decode_incident(reader, i, item) for i, item in enumerate(raw_list)),
        seen={key: _seen_time(seen_reader, seen_raw, key) for key in seen_raw},
    )


def _seen_time(reader: Reader, seen: dict[str, object], key: str) -> float:
    moment = reader.number(seen, key)
    if moment is None:
        raise reader.fail(key, "must be a number")
    return moment


def _decode_incident(reader: Reader, index: int, item: object) -> Incident:
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


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return (
        datetime.fromtimestamp(moment, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


INCIDENTS_ROUTE: Final = Route(
    name=INCIDENTS,
    path="/v1/incidents",
    per="org",
    enabled=lambda sections: sections.incidents.enabled,
    timing=_incidents_timing,
    budget=_polling_budget,
    ask=_ask_incidents,
    take=_take_incidents,
    expire=_expire_incidents,
    new_side=IncidentsSide,
    encode=_encode_incidents,
    decode=_decode_incidents,
)

# -- asked once per tenant ----------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class TenantsSide(RouteState):
    """The side of a route asked once per tenant: when each tenant was last asked."""

    attempted: dict[str, float] = field(default_factory=dict)  # tenant -> wall clock


def pick_tenant(
    tenants: tuple[str, ...],
    attempted: dict[str, float],
    *,
    now: float,
    interval: float,
    spacing: float,
) -> tuple[str | None, float]:
    """The tenant to ask now and 0, or None and the seconds until one is due.

    Oldest attempt first (never asked: before all others), so a new tenant is asked
    soon and a failing one does not hold the round up. A tenant is due `interval`
    after its last attempt, less the time a full round takes (`len(tenants) x
    spacing`, at most `interval`): every tenant is asked again within `interval`
    while the budget allows, and as often as the budget allows when it does not."""
    if not tenants:
        return None, interval
    oldest = min(tenants, key=lambda tenant: attempted.get(tenant, -math.inf))
    lead = min(interval, len(tenants) * spacing)
    due = attempted.get(oldest, -math.inf) + interval - lead
    return (oldest, 0.0) if due <= now else (None, due - now)


# -- /v1/billable-users ------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class BillingSide(TenantsSide):
    """An org's `/v1/billable-users` side: each tenant's last figures (nothing personal)
    and when they were asked, and how many of the usage report's tenants lack fresh
    figures."""

    figures: dict[str, BillingFigures] = field(default_factory=dict)
    stale: int = 0  # tenants of the usage report with no figures younger than the interval

    def restore_data(self, data: object) -> None:
        if isinstance(data, SavedBilling):
            self.attempted = dict(data.attempted)
            self.figures = dict(data.figures)

    def expire(self, tenants: tuple[str, ...], now: float, interval: float) -> bool:
        """Forget tenants that left the usage report and figures older than twice the
        interval; count the stale ones. True when what is exported changed."""
        wanted = set(tenants)
        changed = False
        for tenant in [t for t in self.attempted if t not in wanted]:
            del self.attempted[tenant]
        for tenant, kept in list(self.figures.items()):
            if tenant not in wanted or now - kept.asked_at > 2 * interval:
                del self.figures[tenant]
                changed = True
        stale = sum(
            1
            for tenant in tenants
            if (figures := self.figures.get(tenant)) is None or now - figures.asked_at > interval
        )
        if stale != self.stale:
            self.stale, changed = stale, True
        return changed


class BillingFigures(NamedTuple):
    """One tenant's last good billing answer and when it was asked (wall clock)."""

    report: BillingReport
    asked_at: float


@dataclass(frozen=True, slots=True)
class SavedBilling:
    """What the state file keeps of the billing side beyond its outcome: when each tenant
    was asked and its last figures, so a restart continues the round where it stopped."""

    attempted: dict[str, float] = field(default_factory=dict)
    figures: dict[str, BillingFigures] = field(default_factory=dict)


def billing_side(state: OrgState) -> BillingSide | None:
    """The org's billing side; None while billing is not polled."""
    side = state.sides.get(BILLING)
    return side if isinstance(side, BillingSide) else None


def billing_figures(state: OrgState) -> list[BillingFigures]:
    """The billing figures of the tenants of the org's usage report, in its order: a
    tenant that left the report is not shown anywhere, at once."""
    side = billing_side(state)
    if side is None or not side.figures:
        return []
    figures = side.figures
    return [figures[tenant] for tenant in tenant_ids(state.report) if tenant in figures]


def _billing_timing(sections: Sections, _org: OrgConfig) -> Timing:
    interval = sections.billing.interval_seconds
    return Timing(interval, 2 * interval)


def _ask_billing(fetcher: Fetcher, key: ApiKey, state: OrgState, asking: Asking) -> Awaitable[Any]:
    tenant = asking.tenant
    assert tenant is not None  # noqa: S101 - the scheduler asks what _choose_billing chose

    def mark(side: RouteState) -> bool:
        # Asked now, whatever the answer: it goes to the back of the round. Nothing
        # exported changes.
        assert isinstance(side, BillingSide)  # noqa: S101 - new_side makes only these
        side.attempted[tenant] = asking.now
        return False

    state.change_side(BILLING, mark)
    return fetcher.fetch_billing(key, tenant_id=tenant)


def _take_billing(state: OrgState, report: BillingReport, asking: Asking, _log: RouteLog) -> bool:
    def change(side: RouteState) -> bool:
        assert isinstance(side, BillingSide)  # noqa: S101 - new_side makes only these
        side.figures[report.tenant_id] = BillingFigures(report, asking.now)
        side.expire(tenant_ids(state.report), asking.now, asking.sections.billing.interval_seconds)
        return True

    state.change_side(BILLING, change)
    return False


def _expire_billing(state: OrgState, asking: Asking) -> None:
    def change(side: RouteState) -> bool:
        assert isinstance(side, BillingSide)  # noqa: S101 - new_side makes only these
        interval = asking.sections.billing.interval_seconds
        return side.expire(tenant_ids(state.report), asking.now, interval)

    state.change_side(BILLING, change)


def _choose_billing(state: OrgState, asking: Asking) -> Choice:
    _expire_billing(state, asking)
    side = billing_side(state)
    assert side is not None  # noqa: S101 - chosen only while billing is polled
    tenants = tenant_ids(state.report)
    interval = asking.sections.billing.interval_seconds
    spacing = 60.0 / asking.sections.billing.requests_per_minute_per_key
    tenant, wait = pick_tenant(
        tenants, side.attempted, now=asking.now, interval=interval, spacing=spacing
    )
    return Choice(tenant, wait, len(tenants), len(tenants) * spacing)


def _encode_billing(side: RouteState) -> dict[str, object]:
    """Per tenant: when it was last asked, and its figures with when they were asked.
    No user: a `BillingReport` holds none (collector/petra_billing.py drops them)."""
    assert isinstance(side, BillingSide)  # noqa: S101 - new_side makes only these
    return {
        "attempted": side.attempted,
        "figures": [
            [kept.report.tenant_id, *kept.report[1:], kept.asked_at]
            for kept in side.figures.values()
        ],
    }


def _decode_billing(reader: Reader, raw: dict[str, object]) -> SavedBilling:
    attempted_raw = reader.section(raw, "attempted") or {}
    attempted_reader = Reader(f"{reader.path}.attempted")
    raw_figures = raw.get("figures", [])
    if not isinstance(raw_figures, list):
        raise reader.fail("figures", "must be a list")
    figures = [_decode_figures(reader, index, item) for index, item in enumerate(raw_figures)]
    return SavedBilling(
        attempted={key: _seen_time(attempted_reader, attempted_raw, key) for key in attempted_raw},
        figures={kept.report.tenant_id: kept for kept in figures},
    )


def _decode_figures(reader: Reader, index: int, item: object) -> BillingFigures:
    where = f"figures[{index}]"
    if type(item) is not list or len(item) != len(BillingReport._fields) + 1:
        raise reader.fail(where, f"must be a list of {len(BillingReport._fields) + 1} fields")
    tenant_id, *numbers = item
    if type(tenant_id) is not str or not tenant_id:
        raise reader.fail(where, "has no tenant id")
    if not all(n is None or type(n) in (int, float) for n in numbers) or numbers[-1] is None:
        raise reader.fail(where, "figures must be numbers or null, and the time a number")
    billable, projected, generated, asked_at = (None if n is None else float(n) for n in numbers)
    assert asked_at is not None  # noqa: S101 - checked above
    return BillingFigures(BillingReport(tenant_id, billable, projected, generated), asked_at)


BILLING_ROUTE: Final = Route(
    name=BILLING,
    path="/v1/billable-users",
    per="tenant",
    enabled=lambda sections: sections.billing.enabled,
    timing=_billing_timing,
    budget=lambda sections: sections.billing.requests_per_minute_per_key,
    ask=_ask_billing,
    take=_take_billing,
    expire=_expire_billing,
    choose=_choose_billing,
    new_side=BillingSide,
    encode=_encode_billing,
    decode=_decode_billing,
    budget_short_event="billing_budget_short",
)

# Every route, usage first (the others depend on its report). Registering a route is
# adding it here.
ROUTES: Final[tuple[Route, ...]] = (USAGE_ROUTE, INCIDENTS_ROUTE, BILLING_ROUTE)
ROUTES_BY_NAME: Final = {route.name: route for route in ROUTES}
