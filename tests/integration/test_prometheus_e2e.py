"""End to end with a real Prometheus: simulator -> petra-collector -> Prometheus.

The collector is locked as deploy/ ships it: TLS only and basic auth (a web
config with a throwaway CA, bcrypt cost 10), and Prometheus scrapes it with
`scheme: https`, `tls_config` and `basic_auth`, as docs/operations.md shows.

The simulator serves three orgs in this test's event loop, one of whose keys
is deleted before the collector starts. The collector runs as a subprocess
(`python -m collector run`, the same entry point as the `petra-collector`
script) and a real `prometheus` scrapes it every second, evaluating a copy of
deploy/prometheus/alerts.yml whose `for:` and `keep_firing_for:` durations are
shortened. Everything listens on 127.0.0.1 and every process is stopped in
`finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml

from collector.petra_simulator import SimulatedOrg, Simulator, sim_key, start_simulator
from tests.deploy.dashboard import all_expressions
from tests.processes import LOOPBACK, free_port, log_tails, start_process, stop_process
from tests.prometheus import running_prometheus
from tests.simulated import key_file_orgs
from tests.tools import require_tool
from tests.waiting import eventually as wait_until
from tests.webtls import TlsFiles, basic_auth, bcrypt_hash, write_web_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
# Bounds a hang, not a pace the test must keep: it takes about 10 s alone, longer beside
# other tests.
TIME_BUDGET_SECONDS = 120.0
SHORT_FOR = "2s"

ORGS = (
    SimulatedOrg(
        "acme",
        sim_key("acme"),
        "Acme MSP",
        tenant_count=3,
        requests_per_minute=600,
        billing_requests_per_minute=60,
    ),
    SimulatedOrg(
        "globex",
        sim_key("globex"),
        "Globex IT",
        tenant_count=4,
        requests_per_minute=600,
        billing_requests_per_minute=60,
    ),
    SimulatedOrg("initech", sim_key("initech"), "Initech", tenant_count=2, requests_per_minute=600),
)
BAD_ORG = "initech"
SCRAPE_USER = "prometheus"
SCRAPE_PASSWORD = "e2e-scrape-password"
GOOD_ORGS = ("acme", "globex")

# Dashboard queries (title and refId) that rightly return nothing here: the
# last success of orgs whose key fails, and initech never succeeded.
MAY_BE_EMPTY = ("'Rejected API keys' B", "'Rejected API keys' C")
SUCCESS_RATIO_PANEL = "'Poll success ratio (1 h)' A"

T = TypeVar("T")


def write_collector_config(directory: Path, simulator_port: int) -> Path:
    orgs = key_file_orgs(directory, ORGS)
    config = {
        "api": {"base_url": f"http://{LOOPBACK}:{simulator_port}"},
        # Every 2 s, so the success ratio's second poll comes within seconds: 30 usage and
        # 30 incidents requests a minute, which the simulator's orgs allow.
        "polling": {
            "interval_seconds": 2,
            "auth_failure_interval_seconds": 2,
            "requests_per_minute_per_key": 60,
        },
        "incidents": {"enabled": True, "interval_seconds": 2},
        # One tenant every 2 s: every tenant has figures within seconds of its usage report.
        "billing": {"enabled": True, "interval_seconds": 60, "requests_per_minute_per_key": 30},
        "logging": {"format": "json", "level": "info"},
        "orgs": orgs,
    }
    path = directory / "collector.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_web_config_files(directory: Path) -> tuple[Path, TlsFiles]:
    """The collector's web config (TLS, one user) and Prometheus' password file."""
    files = TlsFiles(directory / "tls")
    web = write_web_config(
        files.directory / "web.yml",
        tls=files.tls_section(),
        users={SCRAPE_USER: bcrypt_hash(SCRAPE_PASSWORD, cost=10)},
    )
    (directory / "scrape.password").write_text(SCRAPE_PASSWORD + "\n")
    return web, files


def write_prometheus_config(directory: Path, collector_port: int, files: TlsFiles) -> Path:
    """deploy/prometheus/prometheus.yml and alerts.yml, made fast and pointed at the collector."""
    alerts = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for group in alerts["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            for duration in ("for", "keep_firing_for"):
                if duration in rule:
                    rule[duration] = SHORT_FOR
    (directory / "alerts.yml").write_text(yaml.safe_dump(alerts))
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config.pop("alerting", None)
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    (job,) = config["scrape_configs"]
    job.update({"scrape_interval": "1s", "scrape_timeout": "1s"})
    job["static_configs"] = [{"targets": [f"{LOOPBACK}:{collector_port}"]}]
    job["scheme"] = "https"
    job["tls_config"] = {"ca_file": str(files.ca_file)}
    job["basic_auth"] = {
        "username": SCRAPE_USER,
        "password_file": str(directory / "scrape.password"),
    }
    config["rule_files"] = ["alerts.yml"]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    deadline: float,
    what: str,
    logs: list[Path],
) -> T:
    """The first truthy result of `check`, or a failure with the logs' tails at `deadline`
    (a time.monotonic() value, a bound on a hang: not a time the test must keep)."""
    return await wait_until(
        check,
        what,
        within=max(0.0, deadline - time.monotonic()),
        every=0.25,
        ignore=(aiohttp.ClientError,),
        details=lambda: log_tails(logs),
    )


async def query(http: aiohttp.ClientSession, prometheus: str, expr: str) -> list[dict[str, Any]]:
    """An instant query; fails the test unless Prometheus evaluated it."""
    async with http.get(f"{prometheus}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def incident_alerts_firing(
    http: aiohttp.ClientSession, prometheus_url: str, org: str
) -> set[tuple[str, str]] | None:
    """Both incident alerts firing for `org`, and no other incident alert."""
    firing = await query(
        http, prometheus_url, 'ALERTS{alertstate="firing", alertname=~"PetraIncident.*"}'
    )
    names = {(s["metric"]["alertname"], s["metric"]["org"]) for s in firing}
    wanted = {("PetraIncidentNotRemediated", org), ("PetraIncidentNew", org)}
    return names if names == wanted else None


def old_and_remediated(incident: dict[str, Any]) -> dict[str, Any]:
    two_days_ago = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 2 * 86400))
    return {**incident, "remediationStatus": "REMEDIATED", "createdAt": two_days_ago}


def by_label(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {series["metric"][label]: float(series["value"][1]) for series in result}


async def test_prometheus_scrapes_usage_and_fires_key_alert(tmp_path: Path) -> None:
    """Prometheus gets the simulator's usage through the collector and alerts on the deleted key."""
    promtool = require_tool("promtool", "prometheus")
    collector_log = tmp_path / "collector.log"
    logs = [collector_log, tmp_path / "prometheus.log"]

    simulator = Simulator(ORGS)
    simulator.delete_key(BAD_ORG)  # from now on its key is answered 401
    for org in GOOD_ORGS:  # incidents to show, none that the incident alerts fire on
        simulator.set_incidents(org, [old_and_remediated(i) for i in simulator.incidents(org)])
    runner, simulator_port = await start_simulator(simulator, LOOPBACK, 0)
    processes: list[asyncio.subprocess.Process] = []
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            contextlib.AsyncExitStack() as stack,
        ):
            deadline = time.monotonic() + TIME_BUDGET_SECONDS
            collector_port = free_port()
            collector_url = f"https://{LOOPBACK}:{collector_port}"
            web, tls_files = write_web_config_files(tmp_path)
            client_ssl = tls_files.client_context()
            credentials = basic_auth(SCRAPE_USER, SCRAPE_PASSWORD)
            collector = await start_process(
                [
                    sys.executable,
                    "-m",
                    "collector",
                    "run",
                    "--config",
                    str(write_collector_config(tmp_path, simulator_port)),
                    "--web.config.file",
                    str(web),
                    "--listen",
                    f"{LOOPBACK}:{collector_port}",
                    "--log-format",
                    "json",
                ],
                collector_log,
            )
            processes.append(collector)

            async def collector_ready() -> bool | None:
                assert collector.returncode is None, "the collector exited"
                async with http.get(f"{collector_url}/readyz", ssl=client_ssl) as response:
                    return True if response.status == 200 else None

            await eventually(collector_ready, deadline, "the collector's /readyz", logs)

            config = write_prometheus_config(tmp_path, collector_port, tls_files)
            prometheus_url = await stack.enter_async_context(running_prometheus(config, tmp_path))

            # 1. The usage series in Prometheus equal what the simulator served.
            async def usage_arrived() -> bool | None:
                tenants = by_label(await query(http, prometheus_url, "petra_org_tenants"), "org")
                for name in GOOD_ORGS:
                    body = simulator.last_body(name)
                    if body is None or tenants.get(name) != body["totalTenants"]:
                        return None
                    licensed = by_label(
                        await query(
                            http, prometheus_url, f'petra_tenant_licensed_users{{org="{name}"}}'
                        ),
                        "tenant_id",
                    )
                    served_tenants = body["tenants"]
                    assert isinstance(served_tenants, list)
                    served = {
                        tenant["petraTenantId"]: float(tenant["totalLicensedUsers"])
                        for tenant in served_tenants
                    }
                    if licensed != served:
                        return None
                return True

            await eventually(usage_arrived, deadline, "usage series with the served values", logs)
            assert BAD_ORG not in by_label(
                await query(http, prometheus_url, "petra_org_tenants"), "org"
            )

            # 2. PetraApiKeyInvalid fires for the deleted key's org, and nothing else fires.
            async def only_key_alert_firing() -> list[dict[str, Any]] | None:
                firing = await query(
                    http, prometheus_url, 'ALERTS{alertstate="firing", alertname=~"Petra.*"}'
                )
                names = {(s["metric"]["alertname"], s["metric"].get("org")) for s in firing}
                return firing if names == {("PetraApiKeyInvalid", BAD_ORG)} else None

            (alert,) = await eventually(
                only_key_alert_firing,
                deadline,
                f"PetraApiKeyInvalid firing for {BAD_ORG} only",
                logs,
            )
            assert alert["metric"]["severity"] == "critical"
            scraped = await query(http, prometheus_url, 'up{job="petra-collector"}')
            assert [float(series["value"][1]) for series in scraped] == [1.0]  # over HTTPS
            up = by_label(await query(http, prometheus_url, "petra_up"), "org")
            assert up == {"acme": 1.0, "globex": 1.0, BAD_ORG: 0.0}

            # 3. Every dashboard query runs against the real data. The success
            # ratio needs a second poll of each org inside its window: wait for it.
            live = {
                "$org": ".+",
                "$tenant": ".+",
                "$__rate_interval": "1m",
                "$__interval": "15s",
                "$__range": "1h",
                "${__range_s}": "3600",
            }
            exprs = all_expressions(live)  # "panel <id> '<title>' <refId>" or "variable <name>"
            (ratio_expr,) = [e for w, e in exprs.items() if w.endswith(SUCCESS_RATIO_PANEL)]

            # Every org has a code="200" series from its start, so the rejected key
            # shows a ratio of 0 rather than no data.
            async def ratio_for_all_orgs() -> dict[str, float] | None:
                ratio = by_label(await query(http, prometheus_url, ratio_expr), "org")
                return ratio if set(ratio) == {*GOOD_ORGS, BAD_ORG} else None

            ratio = await eventually(ratio_for_all_orgs, deadline, "a poll success ratio", logs)
            assert ratio == {**dict.fromkeys(GOOD_ORGS, 1.0), BAD_ORG: 0.0}
            for where, expr in exprs.items():
                result = await query(http, prometheus_url, expr)
                values = [float(series["value"][1]) for series in result]
                assert all(not math.isnan(v) for v in values), f"{where}: NaN from {expr}"
                if not where.endswith(MAY_BE_EMPTY):
                    assert result, f"{where}: no data from {expr}"

            # 3b. An open incident reaches Prometheus and raises both incident alerts.
            simulator.add_incident("acme", status="IN_PROGRESS")

            await eventually(
                lambda: incident_alerts_firing(http, prometheus_url, "acme"),
                deadline,
                "both incident alerts",
                logs,
            )

            # 4. promtool finds nothing to complain about in the exposition.
            async with http.get(
                f"{collector_url}/metrics", ssl=client_ssl, headers=credentials
            ) as response:
                assert response.status == 200
                exposition = await response.read()
            lint = await asyncio.create_subprocess_exec(
                promtool,
                "check",
                "metrics",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            report, _ = await asyncio.wait_for(lint.communicate(exposition), timeout=30)
            assert lint.returncode == 0, report.decode()
            assert report.decode().strip() == "", report.decode()
            assert re.search(
                rb'^petra_auth_failure\{org="initech"\} 1(\.0)?$', exposition, re.MULTILINE
            )

            # 5. SIGTERM is a clean stop.
            assert await stop_process(collector) == 0
    finally:
        for process in processes:
            await stop_process(process)
        await runner.cleanup()
