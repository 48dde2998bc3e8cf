"""Prometheus metrics: a custom collector over the per-org snapshots.

Petra data is never kept in labelled `Gauge` objects: those would keep
series of orgs and tenants that are gone. Instead `collect()` walks the
current snapshots on every scrape (no I/O, nothing but reading), so a
removed org or a vanished tenant disappears from the next scrape.
The family table below is the single description of every Petra metric.

`PetraCollector.collect()` is the stock (reference) path; `/metrics` serves the
same bytes from exposition.py, which renders and compresses only what changed
since the last scrape. `CollectorMetrics` are the collector's own gauges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector import __version__
from collector.petra_billing import BillingReport
from collector.petra_usage import TenantUsage
from collector.routes import ROUTES, billing_figures, billing_side, incidents_side
from collector.state import USAGE, OrgState, RouteState
from collector.state_records import Health

CACHED: Final = " Cached from the last successful poll of Petra's /v1/usage."
CACHED_INCIDENTS: Final = " Cached from the last successful poll of Petra's /v1/incidents."
CACHED_BILLING: Final = (
    " Cached from the tenant's last successful ask of Petra's /v1/billable-users."
)
ORG: Final = ("org",)
TENANT: Final = ("org", "tenant_id")
TENANT_STATUS: Final = ("org", "tenant_id", "remediation_status")
TENANT_INFO: Final = (
    "org",
    "tenant_id",
    "display_name",
    "microsoft_tenant_id",
    "petra_service",
    "billable_status",
)
# metrics.tenant_name_labels: false: who the tenant is stays out of Prometheus.
TENANT_INFO_WITHOUT_NAMES: Final = ("org", "tenant_id", "petra_service", "billable_status")

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
    # For a family of at most one sample per org, labelled by `org` alone: its value
    # (None: no sample). `samples` says the same; exposition.py renders from this.
    value: Callable[[OrgState, bool], float | None] | None = None

    @classmethod
    def single(
        cls, name: str, kind: Kind, help_text: str, value: Callable[[OrgState, bool], float | None]
    ) -> OrgFamily:
        """A family of one sample per org at most, labelled `org`, of `value`'s value."""

        def samples(state: OrgState, fresh: bool) -> list[Sample]:
            number = value(state, fresh)
            return [] if number is None else [((state.name,), number)]

        return cls(name, kind, help_text, ORG, samples, value)


@dataclass(frozen=True, slots=True)
class TenantFamily:
    """A metric with one sample per tenant of a fresh report."""

    name: str
    help: str
    labels: tuple[str, ...]
    value: Callable[[TenantUsage], float | None]
    label_values: Callable[[str, TenantUsage], LabelValues]
    # Where `value` reads from, for families labelled TENANT: the TenantUsage field
    # whose value (a bool as 0 or 1) is the sample; exposition.py renders from it.
    column: int | None = None


# Each value below is one plain function of (state, fresh): exposition.py calls sixteen
# of them per changed org on every scrape, so no wrapper around a wrapper.
_PENDING: Final = Health.PENDING
_OK: Final = Health.OK


def _route_up(side: RouteState | None) -> float | None:
    """A route's up: None when not polled, or before its first outcome, as for
    `_auth_failing`: pending is not failing (alerts on `== 0` must not fire for an org
    not asked yet, after a start or a reload)."""
    return None if side is None or side.pending else (1.0 if side.health is _OK else 0.0)


def _up(state: OrgState, _fresh: bool) -> float | None:
    return _route_up(state)


def _auth_failing(state: OrgState, _fresh: bool) -> float | None:
    return None if state.health is _PENDING else (1.0 if state.auth_failing else 0.0)


def _requests(state: OrgState, _fresh: bool) -> list[Sample]:
    samples: list[Sample] = [
        ((state.name, code, USAGE), float(n)) for code, n in sorted(state.requests_by_code.items())
    ]
    for route, side in state.sides.items():
        samples += [
            ((state.name, code, route), float(n))
            for code, n in sorted(side.requests_by_code.items())
        ]
    return samples


def _incidents_up(state: OrgState, _fresh: bool) -> float | None:
    return _route_up(incidents_side(state))


def _incidents_last_success(state: OrgState, _fresh: bool) -> float | None:
    side = incidents_side(state)
    return None if side is None else side.last_success_at


def _truncated(state: OrgState, _fresh: bool) -> float | None:
    side = incidents_side(state)
    if side is None or side.tenants is None:
        return None
    return 1.0 if side.truncated else 0.0


def _tenant_incidents(state: OrgState, _fresh: bool) -> list[Sample]:
    side = incidents_side(state)
    if side is None or side.tenants is None:
        return []
    return [
        ((state.name, tenant.tenant_id, status), float(count))
        for tenant in side.tenants
        for status, count in tenant.by_status
    ]


def _tenant_last_incident(state: OrgState, _fresh: bool) -> list[Sample]:
    side = incidents_side(state)
    if side is None or side.tenants is None:
        return []
    return [
        ((state.name, tenant.tenant_id), tenant.last_created_at)
        for tenant in side.tenants
        if tenant.last_created_at is not None
    ]


def _billing_up(state: OrgState, _fresh: bool) -> float | None:
    return _route_up(billing_side(state))


def _billing_last_success(state: OrgState, _fresh: bool) -> float | None:
    side = billing_side(state)
    return None if side is None else side.last_success_at


def _billing_stale(state: OrgState, _fresh: bool) -> float | None:
    side = billing_side(state)
    return None if side is None else float(side.stale)


def _billing_sample(
    value: Callable[[BillingReport], float | None],
) -> Callable[[OrgState, bool], list[Sample]]:
    def samples(state: OrgState, _fresh: bool) -> list[Sample]:
        found: list[Sample] = []
        for figures in billing_figures(state):
            number = value(figures.report)
            if number is not None:
                found.append(((state.name, figures.report.tenant_id), number))
        return found

    return samples


def _org_info(state: OrgState, fresh: bool) -> list[Sample]:
    if not fresh or state.report is None or state.report.organization_name is None:
        return []
    return [((state.name, state.report.organization_name), 1.0)]


def _report_generated(state: OrgState, fresh: bool) -> float | None:
    report = state.report
    return report.report_generated_at if fresh and report is not None else None


def _total_tenants(state: OrgState, fresh: bool) -> float | None:
    report = state.report
    return report.total_tenants if fresh and report is not None else None


def _auth_failures(state: OrgState, _fresh: bool) -> float:
    return float(state.auth_failures_total)


def _rate_limited(state: OrgState, _fresh: bool) -> float:
    return float(state.rate_limited_total)


def _poll_duration(state: OrgState, _fresh: bool) -> float | None:
    return state.poll_duration


def _last_poll(state: OrgState, _fresh: bool) -> float | None:
    return state.last_poll_at


def _last_success(state: OrgState, _fresh: bool) -> float | None:
    return state.last_success_at


ORG_FAMILIES: Final[tuple[OrgFamily, ...]] = (
    OrgFamily.single(
        "petra_up",
        "gauge",
        "1 if the last poll of the org succeeded, else 0; no sample before the first poll.",
        _up,
    ),
    OrgFamily.single(
        "petra_auth_failure",
        "gauge",
        "1 while the org's API key is rejected with 401 (invalid, missing or deleted), "
        "from the 401 until the next successful poll; no sample before the first poll.",
        _auth_failing,
    ),
    OrgFamily.single(
        "petra_auth_failures",
        "counter",
        "401 answers to the org's key.",
        _auth_failures,
    ),
    OrgFamily(
        "petra_api_requests",
        "counter",
        "Requests to Petra's API by HTTP status and route ("
        + ", ".join(route.name for route in ROUTES)
        + '); code="error" when no answer came.',
        ("org", "code", "route"),
        _requests,
    ),
    OrgFamily.single(
        "petra_rate_limited",
        "counter",
        "429 answers to the org's key.",
        _rate_limited,
    ),
    OrgFamily.single(
        "petra_poll_duration_seconds",
        "gauge",
        "Duration of the org's last poll.",
        _poll_duration,
    ),
    OrgFamily.single(
        "petra_last_poll_timestamp_seconds",
        "gauge",
        "When the org's last poll finished (Unix time).",
        _last_poll,
    ),
    OrgFamily.single(
        "petra_last_success_timestamp_seconds",
        "gauge",
        "When the org's last successful poll finished (Unix time).",
        _last_success,
    ),
    OrgFamily.single(
        "petra_usage_report_generated_timestamp_seconds",
        "gauge",
        "reportGeneratedAt of the usage report (Unix time)." + CACHED,
        _report_generated,
    ),
    OrgFamily.single(
        "petra_org_tenants",
        "gauge",
        "totalTenants of the organization." + CACHED,
        _total_tenants,
    ),
    OrgFamily(
        "petra_org_info",
        "gauge",
        "Always 1; organizationName as a label." + CACHED,
        ("org", "organization_name"),
        _org_info,
    ),
    OrgFamily.single(
        "petra_incidents_up",
        "gauge",
        "1 if the last poll of the org's /v1/incidents succeeded, else 0; no sample before "
        "the first poll, nor while incidents are not polled.",
        _incidents_up,
    ),
    OrgFamily.single(
        "petra_incidents_last_success_timestamp_seconds",
        "gauge",
        "When the org's last successful /v1/incidents poll finished (Unix time).",
        _incidents_last_success,
    ),
    OrgFamily.single(
        "petra_incidents_truncated",
        "gauge",
        "1 when the last /v1/incidents answer was full (500 incidents), so older ones of the "
        "window may be missing and the counts are lower bounds." + CACHED_INCIDENTS,
        _truncated,
    ),
    OrgFamily(
        "petra_tenant_incidents",
        "gauge",
        "Incidents created in the last lookback_days, by remediationStatus as the API spells "
        "it (anything but REMEDIATED is not remediated)." + CACHED_INCIDENTS,
        TENANT_STATUS,
        _tenant_incidents,
    ),
    OrgFamily(
        "petra_tenant_last_incident_timestamp_seconds",
        "gauge",
        "createdAt of the tenant's newest incident in the window (Unix time)." + CACHED_INCIDENTS,
        TENANT,
        _tenant_last_incident,
    ),
    OrgFamily.single(
        "petra_billing_up",
        "gauge",
        "1 if the org's last /v1/billable-users request succeeded, else 0 (absent while "
        "billing is not polled, and before its first request).",
        _billing_up,
    ),
    OrgFamily.single(
        "petra_billing_last_success_timestamp_seconds",
        "gauge",
        "When the org's last successful /v1/billable-users request finished (Unix time).",
        _billing_last_success,
    ),
    OrgFamily.single(
        "petra_billing_tenants_stale",
        "gauge",
        "Tenants of the usage report whose billing figures are missing or older than "
        "billing.interval_seconds.",
        _billing_stale,
    ),
    OrgFamily(
        "petra_tenant_projected_billable_units",
        "gauge",
        "projectedBillableUnitsThisMonth: the prorated units billed for the month (no sample "
        "when the answer has none)." + CACHED_BILLING,
        TENANT,
        _billing_sample(lambda report: report.projected_units),
    ),
    OrgFamily(
        "petra_tenant_billable_users_listed",
        "gauge",
        "totalBillableUsers: users billable in the tenant now." + CACHED_BILLING,
        TENANT,
        _billing_sample(lambda report: report.billable_users),
    ),
    OrgFamily(
        "petra_tenant_billing_report_generated_timestamp_seconds",
        "gauge",
        "reportGeneratedAt of the tenant's billable-users answer (Unix time)." + CACHED_BILLING,
        TENANT,
        _billing_sample(lambda report: report.report_generated_at),
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


def _tenant_info_labels_without_names(org: str, tenant: TenantUsage) -> LabelValues:
    return (org, tenant.tenant_id, tenant.service or "", tenant.billable_status or "")


def _column(field: str) -> int:
    return TenantUsage._fields.index(field)


def _paused(tenant: TenantUsage) -> float | None:
    return None if tenant.is_paused is None else float(tenant.is_paused)


TENANT_FAMILIES: Final[tuple[TenantFamily, ...]] = (
    TenantFamily(
        "petra_tenant_licensed_users",
        "totalLicensedUsers of the tenant." + CACHED,
        TENANT,
        lambda t: t.licensed_users,
        _tenant_labels,
        _column("licensed_users"),
    ),
    TenantFamily(
        "petra_tenant_billable_users",
        "billableUsersThisMonth of the tenant." + CACHED,
        TENANT,
        lambda t: t.billable_users,
        _tenant_labels,
        _column("billable_users"),
    ),
    TenantFamily(
        "petra_tenant_prorating_ratio",
        "proratingPercentageThisMonth / 100 of the tenant." + CACHED,
        TENANT,
        lambda t: t.prorating_ratio,
        _tenant_labels,
        _column("prorating_ratio"),
    ),
    TenantFamily(
        "petra_tenant_paused",
        "1 if the tenant is paused (isPaused)." + CACHED,
        TENANT,
        _paused,
        _tenant_labels,
        _column("is_paused"),
    ),
    TenantFamily(
        "petra_tenant_onboarding_timestamp_seconds",
        "onboardingDate of the tenant (Unix time, midnight UTC)." + CACHED,
        TENANT,
        lambda t: t.onboarding_timestamp,
        _tenant_labels,
        _column("onboarding_timestamp"),
    ),
    TenantFamily(
        "petra_tenant_first_billable_timestamp_seconds",
        "firstBillableDate of the tenant (Unix time, midnight UTC)." + CACHED,
        TENANT,
        lambda t: t.first_billable_timestamp,
        _tenant_labels,
        _column("first_billable_timestamp"),
    ),
    TenantFamily(
        "petra_tenant_info",
        "Always 1; the tenant's descriptive fields as labels." + CACHED,
        TENANT_INFO,
        lambda _t: 1.0,
        _tenant_info_labels,
    ),
)


def tenant_families(*, name_labels: bool) -> tuple[TenantFamily, ...]:
    """The tenant families; without `name_labels`, petra_tenant_info carries neither
    display_name nor microsoft_tenant_id (metrics.tenant_name_labels: false)."""
    if name_labels:
        return TENANT_FAMILIES
    return tuple(
        replace(
            family,
            labels=TENANT_INFO_WITHOUT_NAMES,
            label_values=_tenant_info_labels_without_names,
        )
        if family.labels == TENANT_INFO
        else family
        for family in TENANT_FAMILIES
    )


class PetraCollector(Collector):
    """Reads the snapshots at scrape time; cheap, and never does I/O."""

    def __init__(
        self,
        states: Callable[[], Iterable[OrgState]],
        max_staleness_seconds: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
        tenant_families: tuple[TenantFamily, ...] = TENANT_FAMILIES,
    ) -> None:
        self._states = states
        self._max_staleness = max_staleness_seconds
        self._wall_clock = wall_clock
        self.tenant_families = tenant_families

    def snapshot(self) -> list[tuple[OrgState, bool]]:
        """Every org's state with its freshness (usage series shown) as of now."""
        states, now, limit = self.states()
        return [(s, not s.is_stale(now, limit)) for s in states]

    def states(self) -> tuple[Iterable[OrgState], float, float]:
        """Every org's state, now, and the staleness limit: `snapshot` without its list
        of 20,000 pairs, for a reader that tests `is_stale(now, limit)` as it goes."""
        return self._states(), self._wall_clock(), self._max_staleness()

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot()
        for family in ORG_FAMILIES:
            metric = new_family(family.name, family.kind, family.help, family.labels)
            for state, fresh in snapshot:
                for labels, value in family.samples(state, fresh):
                    metric.add_metric(labels, value)
            yield metric
        reports = [
            (state.name, state.report.tenants)
            for state, fresh in snapshot
            if fresh and state.report is not None
        ]
        for tenant_family in self.tenant_families:
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


def new_family(
    name: str, kind: Kind, help_text: str, labels: tuple[str, ...]
) -> CounterMetricFamily | GaugeMetricFamily:
    if kind == "counter":
        return CounterMetricFamily(name, help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)


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
