"""`petra-collector demo`: the simulator and the daemon, wired together in one process.

Needs no files and no arguments. The collector polls the simulator's
orgs, plus one org whose key the simulator rejects (`umbrella`), and
`initech` is allowed fewer requests than the collector makes, so it is
rate-limited now and then. Incidents are on: every org has a few, and every
`DEMO_INCIDENT_EVERY_SECONDS` one more appears while the oldest open one is
remediated. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Final, TextIO

from collector.apikey import ApiKey
from collector.app import Daemon, StartupError
from collector.config import (
    ApiSettings,
    BillingSettings,
    HostPort,
    IncidentsSettings,
    LoadedConfig,
    LoggingSettings,
    OrgConfig,
    PollingSettings,
    ServerSettings,
    Settings,
)
from collector.keys import KeySource
from collector.logs import configure_logging, get_logger
from collector.petra_simulator import Simulator, demo_orgs, start_simulator

DEMO_INTERVAL_SECONDS: Final = 15.0
DEMO_INCIDENTS_INTERVAL_SECONDS: Final = 20.0
DEMO_INCIDENT_EVERY_SECONDS: Final = 45.0
DEMO_BILLING_INTERVAL_SECONDS: Final = 300.0
DEMO_BILLING_REQUESTS_PER_MINUTE: Final = 30.0  # one every 2 s: 7 tenants in 14 s
REJECTED_ORG: Final = "umbrella"
REJECTED_KEY: Final = "petra_demo_deleted_key_0000000000000000"


def demo_settings(simulator_port: int, listen: HostPort) -> Settings:
    orgs = [
        OrgConfig(
            name=org.name,
            key_source=KeySource("inline", inline=ApiKey(org.key)),
            interval_seconds=DEMO_INTERVAL_SECONDS,
            key=ApiKey(org.key),
        )
        for org in demo_orgs()
    ]
    rejected = ApiKey(REJECTED_KEY)
    orgs.append(
        OrgConfig(
            name=REJECTED_ORG,
            key_source=KeySource("inline", inline=rejected),
            interval_seconds=DEMO_INTERVAL_SECONDS,
            key=rejected,
        )
    )
    return Settings(
        orgs=tuple(orgs),
        api=ApiSettings(base_url=f"http://127.0.0.1:{simulator_port}", timeout_seconds=5.0),
        polling=PollingSettings(
            interval_seconds=DEMO_INTERVAL_SECONDS,
            auth_failure_interval_seconds=30.0,
            requests_per_minute_per_key=5.0,
            max_staleness_seconds=600.0,
        ),
        incidents=IncidentsSettings(
            enabled=True, interval_seconds=DEMO_INCIDENTS_INTERVAL_SECONDS, lookback_days=30.0
        ),
        # Faster than Petra allows (the simulator's orgs allow it): every tenant's figures
        # show within the first minute.
        billing=BillingSettings(
            enabled=True,
            interval_seconds=DEMO_BILLING_INTERVAL_SECONDS,
            requests_per_minute_per_key=DEMO_BILLING_REQUESTS_PER_MINUTE,
        ),
        server=ServerSettings(listen=(listen,)),
        logging=LoggingSettings(),
        source="<demo>",
    )


async def run_demo(
    listen: HostPort,
    simulator_listen: HostPort,
    *,
    duration: float | None = None,
    log_format: str = "json",
    out: TextIO = sys.stderr,
) -> int:
    configure_logging(log_format, "info")
    simulator = Simulator(
        demo_orgs(), drift=True, incident_every_seconds=DEMO_INCIDENT_EVERY_SECONDS
    )
    try:
        sim_runner, sim_port = await start_simulator(
            simulator, simulator_listen.host, simulator_listen.port
        )
    except OSError as error:
        print(f"demo: cannot start the simulator on {simulator_listen}: {error.strerror}", file=out)
        return 1
    daemon = Daemon(LoadedConfig(demo_settings(sim_port, listen), warnings=()))
    try:
        runner = asyncio.create_task(daemon.run())
        serving = asyncio.ensure_future(daemon.serving.wait())
        await asyncio.wait({serving, runner}, return_when=asyncio.FIRST_COMPLETED)
        serving.cancel()
        if runner.done():
            await runner
        base = f"http://{listen.host}:{daemon.bound_port}"
        print(
            "\npetra-collector demo is running (Ctrl-C stops it).\n"
            f"  status page     {base}/\n"
            f"  metrics         {base}/metrics\n"
            f"  status as JSON  {base}/api/v1/status\n"
            f"  fake Petra API  http://{simulator_listen.host}:{sim_port}/v1/usage\n"
            f"Orgs: {', '.join(o.name for o in demo_orgs())} (served by the simulator), "
            f"{REJECTED_ORG} (its key is rejected: watch petra_auth_failure and the "
            "auth_failed log line); initech is rate-limited now and then. Incidents are on: a "
            f"new one appears about every {DEMO_INCIDENT_EVERY_SECONDS:g} s (watch "
            "petra_tenant_incidents and the incident_detected log line). Billing is on: each "
            "tenant's projected units show within a minute (petra_tenant_projected_billable_units"
            ").\n",
            file=out,
            flush=True,
        )
        if duration is not None:
            done, _ = await asyncio.wait({runner}, timeout=duration)
            if not done:
                daemon.stop()
        await runner
    except StartupError as error:
        get_logger().error("startup_failed", error=str(error))
        return 1
    finally:
        await sim_runner.cleanup()
    return 0
