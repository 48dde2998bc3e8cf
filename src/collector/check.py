"""`petra-collector check`: what the config resolves to, and (`--probe`) whether each key works."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from collector.app import new_client, new_session
from collector.config import OrgConfig, Settings, iter_orgs_in_shard
from collector.errors import Forbidden, KeyRejected, PetraError, RateLimited, Unavailable
from collector.petra import PetraClient


@dataclass(frozen=True, slots=True)
class ProbeResult:
    org: str
    ok: bool
    outcome: str  # ok | key_rejected | forbidden | rate_limited | unreachable | bad_response
    detail: str
    seconds: float
    tenants: int | None = None
    retry_after: float | None = None


def describe_config(settings: Settings) -> list[dict[str, object]]:
    owned = {org.name for org in iter_orgs_in_shard(settings.orgs, settings.shard)}
    return [
        {
            "org": org.name,
            "key_source": org.key_source.describe(),
            "key_fingerprint": org.key_fingerprint,
            "interval_seconds": org.interval_seconds,
            "in_this_shard": org.name in owned,
        }
        for org in settings.orgs
    ]


def _outcome(error: PetraError) -> tuple[str, str]:
    if isinstance(error, KeyRejected):
        return "key_rejected", error.message
    if isinstance(error, Forbidden):
        return "forbidden", error.message
    if isinstance(error, RateLimited):
        return "rate_limited", error.message
    if isinstance(error, Unavailable):
        return "unreachable", error.message
    return "bad_response", error.message


async def _probe_one(client: PetraClient, org: OrgConfig, slots: asyncio.Semaphore) -> ProbeResult:
    async with slots:
        started = time.monotonic()
        try:
            report = await client.fetch_usage(org.key)
        except PetraError as error:
            outcome, detail = _outcome(error)
            retry = error.retry_after if isinstance(error, RateLimited) else None
            return ProbeResult(
                org.name, False, outcome, detail, time.monotonic() - started, retry_after=retry
            )
        tenants = len(report.tenants)
        name = report.organization_name or "?"
        return ProbeResult(
            org.name,
            True,
            "ok",
            f"{name}: {tenants} tenants",
            time.monotonic() - started,
            tenants=tenants,
        )


async def probe(settings: Settings) -> list[ProbeResult]:
    """One `/v1/usage` call per org of this shard, `concurrency` at a time."""
    orgs = list(iter_orgs_in_shard(settings.orgs, settings.shard))
    slots = asyncio.Semaphore(settings.polling.concurrency)
    async with new_session(settings) as session:
        client = new_client(session, settings)
        return list(await asyncio.gather(*(_probe_one(client, org, slots) for org in orgs)))
