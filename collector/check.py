"""`petra-collector check`: what the config resolves to, and (`--probe`) whether each key works.

The output is made here from plain data, so it is tested without a terminal:
an aligned table for people (coloured unless NO_COLOR is set), tab-separated
lines with a header for pipes, and JSON for scripts (see cli.py).

With incidents enabled, `--probe` asks `/v1/incidents` too (after `/v1/usage`,
each on its own route budget), and with billing enabled `/v1/billable-users`
for the first tenant of the usage answer; an org passes only if every route
asked answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from collector.config import (
    IncidentsSettings,
    OrgConfig,
    Settings,
    iter_orgs_in_shard,
    org_owners,
)
from collector.petra_client import PetraClient, new_client, new_session
from collector.petra_errors import Forbidden, KeyRejected, PetraError, RateLimited
from collector.petra_incidents import MAX_LIMIT, start_date_param, window_start
from collector.state_records import Health
from collector.web_status import HEALTH_LABELS


@dataclass(frozen=True, slots=True)
class RouteProbe:
    """What a route other than usage answered to one org's key."""

    ok: bool
    outcome: Health  # as ProbeResult.outcome
    detail: str
    seconds: float
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class IncidentsProbe(RouteProbe):
    """What `/v1/incidents` answered."""

    incidents: int | None = None  # in the window; a lower bound when `truncated`
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class BillingProbe(RouteProbe):
    """What `/v1/billable-users` answered, for one tenant."""

    tenant_id: str | None = None  # None: the usage answer had no tenant to ask about
    projected_units: float | None = None
    billable_users: float | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    org: str
    ok: bool  # usage answered, and every other route probed too
    outcome: Health  # what the status page would show for this answer (of /v1/usage)
    detail: str
    seconds: float
    tenants: int | None = None
    retry_after: float | None = None
    organization_name: str | None = None
    incidents: IncidentsProbe | None = None  # None: incidents are not enabled
    billing: BillingProbe | None = None  # None: billing is not enabled


@dataclass(frozen=True, slots=True)
class OrgSummary:
    """What `check` says of one org: never the key, only where it comes from."""

    org: str
    key_source: str
    key_fingerprint: str
    interval_seconds: float
    in_this_shard: bool
    shards: tuple[int, ...] = ()  # the shards that poll it, best first; () when not sharded


def describe_config(settings: Settings) -> list[OrgSummary]:
    copies = settings.sharding.copies
    owned = {org.name for org in iter_orgs_in_shard(settings.orgs, settings.shard, copies)}
    return [
        OrgSummary(
            org=org.name,
            key_source=org.key_source.describe(),
            key_fingerprint=org.key_fingerprint,
            interval_seconds=org.interval_seconds,
            in_this_shard=org.name in owned,
            shards=org_owners(settings, org.name),
        )
        for org in settings.orgs
    ]


def _outcome(error: PetraError) -> Health:
    """The state the daemon would record for this error; its message says the rest."""
    if isinstance(error, KeyRejected):
        return Health.AUTH_FAILED
    if isinstance(error, Forbidden):
        return Health.FORBIDDEN
    if isinstance(error, RateLimited):
        return Health.RATE_LIMITED
    return Health.ERROR


async def _probe_one(
    client: PetraClient, org: OrgConfig, slots: asyncio.Semaphore, settings: Settings
) -> ProbeResult:
    async with slots:
        usage, first_tenant = await _probe_usage(client, org)
        side = await _probe_incidents(client, org, settings.incidents)
        billing = None
        if settings.billing.enabled and usage.ok:
            billing = await _probe_billing(client, org, first_tenant)
    result = usage
    if side is not None:
        result = replace(result, ok=result.ok and side.ok, incidents=side)
    if billing is not None:
        result = replace(result, ok=result.ok and billing.ok, billing=billing)
    return result


async def _probe_billing(
    client: PetraClient, org: OrgConfig, tenant_id: str | None
) -> BillingProbe:
    if tenant_id is None:
        return BillingProbe(True, Health.OK, "no tenant to ask about", 0.0)
    started = time.monotonic()
    try:
        report = await client.fetch_billing(org.key, tenant_id=tenant_id)
    except PetraError as error:
        retry = error.retry_after if isinstance(error, RateLimited) else None
        return BillingProbe(
            False,
            _outcome(error),
            error.message,
            time.monotonic() - started,
            tenant_id=tenant_id,
            retry_after=retry,
        )
    return BillingProbe(
        True,
        Health.OK,
        f"tenant {tenant_id}",
        time.monotonic() - started,
        tenant_id=tenant_id,
        projected_units=report.projected_units,
        billable_users=report.billable_users,
    )


async def _probe_usage(client: PetraClient, org: OrgConfig) -> tuple[ProbeResult, str | None]:
    """The usage probe, and the first tenant of the answer (for the billing probe)."""
    started = time.monotonic()
    try:
        report = await client.fetch_usage(org.key)
    except PetraError as error:
        retry = error.retry_after if isinstance(error, RateLimited) else None
        failed = ProbeResult(
            org.name,
            False,
            _outcome(error),
            error.message,
            time.monotonic() - started,
            retry_after=retry,
        )
        return failed, None
    tenants = len(report.tenants)
    name = report.organization_name or "?"
    result = ProbeResult(
        org.name,
        True,
        Health.OK,
        f"{name}: {tenants} tenants",
        time.monotonic() - started,
        tenants=tenants,
        organization_name=report.organization_name,
    )
    return result, report.tenants[0].tenant_id if report.tenants else None


async def _probe_incidents(
    client: PetraClient, org: OrgConfig, settings: IncidentsSettings
) -> IncidentsProbe | None:
    if not settings.enabled:
        return None
    started = time.monotonic()
    start = window_start(time.time(), settings.lookback_days)
    try:
        report = await client.fetch_incidents(
            org.key, start_date=start_date_param(start), limit=MAX_LIMIT
        )
    except PetraError as error:
        retry = error.retry_after if isinstance(error, RateLimited) else None
        return IncidentsProbe(
            False, _outcome(error), error.message, time.monotonic() - started, retry_after=retry
        )
    truncated = report.received >= MAX_LIMIT
    count = len(report.incidents)
    return IncidentsProbe(
        True,
        Health.OK,
        f"{'at least ' if truncated else ''}{count} incidents in {settings.lookback_days:g} days",
        time.monotonic() - started,
        incidents=count,
        truncated=truncated,
    )


async def probe(settings: Settings) -> list[ProbeResult]:
    """One `/v1/usage` call (and one `/v1/incidents` call when incidents are enabled, one
    `/v1/billable-users` call when billing is) per org of this shard, `concurrency` orgs
    at a time."""
    orgs = list(iter_orgs_in_shard(settings.orgs, settings.shard, settings.sharding.copies))
    slots = asyncio.Semaphore(settings.polling.concurrency)
    async with new_session() as session:
        client = new_client(session, settings.api)
        return list(
            await asyncio.gather(*(_probe_one(client, org, slots, settings) for org in orgs))
        )


_COLOURS: Final = {Health.OK: "32", Health.RATE_LIMITED: "33"}  # green, yellow; the rest red
Style = Literal["table", "tsv"]


def _answer(outcome: Health, retry_after: float | None, ok: Callable[[], str]) -> str:
    """A route's answer in a few words: its label, then what `ok` says of a success or
    the wait of a 429."""
    label = HEALTH_LABELS[outcome]
    if outcome is Health.OK:
        return f"{label}, {ok()}"
    if outcome is Health.RATE_LIMITED:
        wait = "no wait given" if retry_after is None else f"retry in {retry_after:g} s"
        return f"{label}, {wait}"
    return label


def probe_answer(result: ProbeResult) -> str:
    """What the API answered, in a few words: "OK, 4 tenants", "RATE LIMITED, retry in 30 s"."""

    def tenants() -> str:
        count = "?" if result.tenants is None else str(result.tenants)
        return f"{count} tenant{'' if result.tenants == 1 else 's'}"

    return _answer(result.outcome, result.retry_after, tenants)


def incidents_answer(probe: IncidentsProbe) -> str:
    """What /v1/incidents answered: "OK, 3 incidents", "OK, at least 500 incidents", ..."""

    def incidents() -> str:
        least = "at least " if probe.truncated else ""
        return f"{least}{probe.incidents} incident{'' if probe.incidents == 1 else 's'}"

    return _answer(probe.outcome, probe.retry_after, incidents)


def billing_answer(probe: BillingProbe) -> str:
    """What /v1/billable-users answered: "OK, 112.4 projected units", "RATE LIMITED, ..."."""

    def units() -> str:
        if probe.tenant_id is None:
            return "no tenant"
        units = "no" if probe.projected_units is None else f"{probe.projected_units:g}"
        return f"{units} projected units"

    return _answer(probe.outcome, probe.retry_after, units)


def probe_detail(result: ProbeResult) -> str:
    """The organization name on success, else the error message (and the other routes')."""
    detail = result.organization_name or "" if result.outcome is Health.OK else result.detail
    if result.incidents is not None and not result.incidents.ok:
        detail = (detail + "; " if detail else "") + "incidents: " + result.incidents.detail
    if result.billing is not None and not result.billing.ok:
        detail = (detail + "; " if detail else "") + "billing: " + result.billing.detail
    return detail


def render_check(
    source: str,
    shard: str | None,
    orgs: Sequence[OrgSummary],
    results: Sequence[ProbeResult],
    *,
    style: Style,
    colour: bool = False,
) -> str:
    """The text `check` prints: an aligned table with a summary, or TSV lines with a header.

    When sharded, each org's row names the shards that poll it.
    """
    if style == "tsv":
        return _tsv(orgs, results)
    return _table(source, shard, orgs, results, colour=colour)


def _tsv(orgs: Sequence[OrgSummary], results: Sequence[ProbeResult]) -> str:
    """One line per org, tab-separated, under a header line; values as scripts want them."""
    probed = {r.org: r for r in results}
    header = ["org", "key_source", "key_fingerprint", "interval_seconds", "in_this_shard"]
    with_incidents = any(r.incidents is not None for r in results)
    with_billing = any(r.billing is not None for r in results)
    if results:
        header += ["outcome", "answer", "seconds", "detail"]
    if with_incidents:
        header += ["incidents_outcome", "incidents_answer"]
    if with_billing:
        header += ["billing_outcome", "billing_answer"]
    # Last, so the columns before it keep their places for scripts written without it.
    sharded = any(org.shards for org in orgs)
    if sharded:
        header.append("shards")
    lines = [header]
    for org in orgs:
        row = [
            org.org,
            org.key_source,
            org.key_fingerprint,
            f"{org.interval_seconds:g}",
            "yes" if org.in_this_shard else "no",
        ]
        if results:
            result = probed.get(org.org)
            if result is None:
                row += ["-", "not probed: another shard polls it", "", ""]
            else:
                row += [
                    result.outcome,
                    probe_answer(result),
                    f"{result.seconds:.3f}",
                    probe_detail(result),
                ]
            if with_incidents:
                side = None if result is None else result.incidents
                row += ["-", ""] if side is None else [side.outcome, incidents_answer(side)]
            if with_billing:
                billing = None if result is None else result.billing
                row += ["-", ""] if billing is None else [billing.outcome, billing_answer(billing)]
        if sharded:
            row.append(",".join(str(index) for index in org.shards))
        lines.append(row)
    clean = [[cell.replace("\t", " ").replace("\n", " ") for cell in row] for row in lines]
    return "".join("\t".join(row) + "\n" for row in clean)


def _table(
    source: str,
    shard: str | None,
    orgs: Sequence[OrgSummary],
    results: Sequence[ProbeResult],
    *,
    colour: bool,
) -> str:
    """Aligned columns for people; the probe answer coloured when `colour`."""
    probed = {r.org: r for r in results}
    heading = ["ORG", "KEY SOURCE", "KEY FINGERPRINT", "EVERY"]
    if shard:
        heading.append("SHARD")
    with_incidents = any(r.incidents is not None for r in results)
    with_billing = any(r.billing is not None for r in results)
    if results:
        heading += ["PROBE", "TIME", *(["INCIDENTS"] if with_incidents else [])]
        heading += [*(["BILLING"] if with_billing else []), "DETAIL"]
    rows: list[tuple[list[str], Health | None]] = []
    for org in orgs:
        row = [org.org, org.key_source, org.key_fingerprint, f"{org.interval_seconds:g} s"]
        if shard:
            owners = ", ".join(str(index) for index in org.shards)
            row.append(f"{'this' if org.in_this_shard else 'other'} ({owners})")
        result = probed.get(org.org)
        if results:
            row += _probe_cells(result, with_incidents=with_incidents, with_billing=with_billing)
        rows.append((row, None if result is None else _worst(result)))
    widths = [
        max(len(r[i]) for r in [heading, *(row for row, _ in rows)]) for i in range(len(heading))
    ]
    probe_at = heading.index("PROBE") if results else -1

    def line(cells: list[str], outcome: Health | None) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        if colour and outcome is not None:
            code = _COLOURS.get(outcome, "31")
            padded[probe_at] = f"\x1b[{code}m{padded[probe_at]}\x1b[0m"
        return "  ".join(padded).rstrip()

    here = sum(1 for org in orgs if org.in_this_shard)
    copies = max((len(org.shards) for org in orgs), default=1)
    copied = f", {copies} copies" if copies > 1 else ""
    scope = f"shard {shard}{copied}: {here} polled here" if shard else "all polled by this instance"
    lines = [f"{source}: valid, {len(orgs)} org(s) ({scope})", "", line(heading, None)]
    lines += [line(row, outcome) for row, outcome in rows]
    if results:
        failed = [r for r in results if not r.ok]
        lines.append("")
        if failed:
            names = ", ".join(f"{r.org} ({HEALTH_LABELS[_worst(r)]})" for r in failed)
            lines.append(f"{len(failed)} of {len(results)} probe(s) failed: {names}")
        else:
            lines.append(f"all {len(results)} probe(s) OK")
    return "\n".join(lines) + "\n"


def _probe_cells(
    result: ProbeResult | None, *, with_incidents: bool, with_billing: bool
) -> list[str]:
    """The table's PROBE, TIME, (INCIDENTS,) (BILLING,) DETAIL cells of one org."""
    extra = [""] * (with_incidents + with_billing)
    if result is None:
        return ["-", "", *extra, "another shard polls it"]
    cells = [probe_answer(result), f"{result.seconds:.2f} s"]
    if with_incidents:
        side = result.incidents
        cells.append("-" if side is None else incidents_answer(side))
    if with_billing:
        cells.append("-" if result.billing is None else billing_answer(result.billing))
    cells.append(probe_detail(result))
    return cells


def _worst(result: ProbeResult) -> Health:
    """The outcome that colours and names an org: usage's, or the first other route's that
    failed when usage did not."""
    if result.outcome is not Health.OK:
        return result.outcome
    for side in (result.incidents, result.billing):
        if side is not None and not side.ok:
            return side.outcome
    return result.outcome
