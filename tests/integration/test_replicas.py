"""Two replicas, one truth: two collectors, one Prometheus job, one alert per org.

Two daemons with the same config poll the simulator; one real Prometheus
scrapes both in the job `petra-collector` with the shipped alerts.yml and
sends to a real Alertmanager (the shipped routes, grouping and inhibit
rules), which posts to a webhook receiver in this test.

1. A rejected key pages once: one alert without `instance`, in one
   notification, even after both replicas have seen the 401.
2. Killing one replica (SIGKILL) sends nothing for any org;
   `PetraCollectorReplicaDown` reaches the chat receiver.
3. Killing the other fires `PetraCollectorDown` to the pager.

Shortened as in test_alert_delivery.py: polls every 2 s, scrapes and
evaluations every second, every `for:` 3 s (PetraCollectorDown's 15 s,
longer than Prometheus takes to scrape its first targets),
`keep_firing_for:` 8 s, group_wait/group_interval 1 s. The time from each kill to its notification
is printed (run with -s to see it; it is polled every 0.5 s). On a loaded
2-core machine, 5 runs: one replica lost -> PetraCollectorReplicaDown in
5.0 s every time (its `for:` 3 s + a scrape, an evaluation and group_wait);
both lost -> PetraCollectorDown in 17.0 s median (17.0-18.2; `for:` 15 s +
the same); never a notification for an org. In production, with `for:` 5 m,
30 s scrapes and group_wait 30 s, that is about 6 minutes for each.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import ClientSession, ClientTimeout

from collector.petra_simulator import SimulatedOrg, Simulator, sim_key, start_simulator
from tests.alertmanager import fast_copy, running_alertmanager
from tests.integration.test_alert_delivery import Notification, WebhookReceiver
from tests.integration.test_prometheus_e2e import (
    PROMETHEUS_DIR,
    eventually,
    query,
)
from tests.processes import LOOPBACK, free_port, start_process, stop_process
from tests.simulated import key_file_orgs
from tests.tools import require_tool

pytestmark = pytest.mark.slow

SHORT_FOR = "3s"
COLLECTOR_DOWN_FOR = "15s"
KEEP_FIRING_SECONDS = 8
TIME_BUDGET_SECONDS = 75.0
GOOD_ORG = "acme"
BAD_ORG = "initech"
ORGS = (
    SimulatedOrg(GOOD_ORG, sim_key(GOOD_ORG), "Acme MSP", tenant_count=2, requests_per_minute=120),
    SimulatedOrg(BAD_ORG, sim_key(BAD_ORG), "Initech", tenant_count=2, requests_per_minute=120),
)
REPLICAS = ("a", "b")


def collector_config(directory: Path, simulator_port: int) -> Path:
    """One config for both replicas; each gets half of the key's budget."""
    orgs = key_file_orgs(directory, ORGS)
    config = {
        "api": {"base_url": f"http://{LOOPBACK}:{simulator_port}"},
        "polling": {
            "interval_seconds": 2,
            "auth_failure_interval_seconds": 2,
            "requests_per_minute_per_key": 60 // len(REPLICAS),
        },
        "orgs": orgs,
    }
    path = directory / "collector.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def prometheus_config(directory: Path, targets: list[str], alertmanager_url: str) -> Path:
    """The shipped prometheus.yml and alerts.yml, faster, scraping every replica in one job."""
    alerts = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for group in alerts["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                # Prometheus scrapes a new target only some seconds after it starts
                # (discovery is batched): PetraCollectorDown must wait that out.
                down = rule["alert"] == "PetraCollectorDown"
                rule["for"] = COLLECTOR_DOWN_FOR if down else SHORT_FOR
            if "keep_firing_for" in rule:
                rule["keep_firing_for"] = f"{KEEP_FIRING_SECONDS}s"
    (directory / "alerts.yml").write_text(yaml.safe_dump(alerts))
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    (job,) = config["scrape_configs"]
    job.update({"scrape_interval": "1s", "scrape_timeout": "1s"})
    job["static_configs"] = [{"targets": targets}]
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    alertmanagers["static_configs"] = [{"targets": [alertmanager_url.removeprefix("http://")]}]
    config["rule_files"] = ["alerts.yml"]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def org_alerts(notes: list[Notification]) -> list[dict[str, Any]]:
    return [alert for note in notes for alert in note.body["alerts"] if "org" in alert["labels"]]


def firing(receiver: WebhookReceiver, alertname: str, after: int = 0) -> Notification | None:
    """The first notification from index `after` on with `alertname` firing."""
    for note in receiver.notifications[after:]:
        if any(a["status"] == "firing" for a in note.alerts_named(alertname)):
            return note
    return None


async def test_two_replicas_page_once_and_survive_the_loss_of_one(tmp_path: Path) -> None:
    """One page per org from two replicas; one lost sends nothing for orgs; both lost pages."""
    prometheus_bin = require_tool("prometheus", "prometheus")
    logs = [tmp_path / f"collector-{name}.log" for name in REPLICAS]
    logs += [tmp_path / "prometheus.log", tmp_path / "alertmanager" / "alertmanager.log"]
    receiver = WebhookReceiver()
    receiver_runner, receiver_port = await receiver.serve()

    simulator = Simulator(ORGS)
    simulator.delete_key(BAD_ORG)
    simulator_runner, simulator_port = await start_simulator(simulator, LOOPBACK, 0)
    processes: list[asyncio.subprocess.Process] = []
    alertmanager = fast_copy(
        f"http://{LOOPBACK}:{receiver_port}",
        group_wait="1s",
        group_interval="1s",
        repeat_interval="1h",
    )
    try:
        async with (
            running_alertmanager(alertmanager, tmp_path / "alertmanager") as am_url,
            ClientSession(timeout=ClientTimeout(total=5)) as http,
        ):
            started = time.monotonic()
            deadline = started + TIME_BUDGET_SECONDS
            config = collector_config(tmp_path, simulator_port)
            ports = [free_port() for _ in REPLICAS]
            replicas = []
            for port, log in zip(ports, logs, strict=False):
                command = [sys.executable, "-m", "collector", "run", "--config", str(config)]
                command += ["--listen", f"{LOOPBACK}:{port}"]
                replicas.append(await start_process(command, log))
            processes.extend(replicas)

            # Prometheus starts once both answer, so no replica is down before the test.
            async def answering() -> bool | None:
                for port in ports:
                    async with http.get(f"http://{LOOPBACK}:{port}/healthz") as response:
                        if response.status != 200:
                            return None
                return True

            await eventually(answering, deadline, "both replicas answering /healthz", logs)
            prometheus_port = free_port()
            prometheus_url = f"http://{LOOPBACK}:{prometheus_port}"
            targets = [f"{LOOPBACK}:{port}" for port in ports]
            processes.append(
                await start_process(
                    [
                        prometheus_bin,
                        f"--config.file={prometheus_config(tmp_path, targets, am_url)}",
                        f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                        f"--web.listen-address={LOOPBACK}:{prometheus_port}",
                        "--rules.alert.resend-delay=5s",
                        "--log.level=warn",
                    ],
                    logs[2],
                )
            )

            # 1. The rejected key pages, once, without naming a replica ...
            async def paged() -> Notification | None:
                return firing(receiver, "PetraApiKeyInvalid")

            page = await eventually(paged, deadline, "a firing PetraApiKeyInvalid", logs)
            assert page.receiver == "petra-pager"
            (alert,) = page.alerts_named("PetraApiKeyInvalid")
            assert alert["labels"] == {
                "alertname": "PetraApiKeyInvalid",
                "job": "petra-collector",
                "org": BAD_ORG,
                "severity": "critical",
            }

            # ... also once both replicas have seen the 401 and Alertmanager has
            # had a group_interval to send a changed group.
            async def both_rejected() -> bool | None:
                expr = f'count(petra_auth_failure{{org="{BAD_ORG}"}} == 1)'
                result = await query(http, prometheus_url, expr)
                return True if result and float(result[0]["value"][1]) == len(REPLICAS) else None

            await eventually(both_rejected, deadline, "the 401 on both replicas", logs)
            await asyncio.sleep(3)
            assert org_alerts(receiver.notifications) == [alert], "one alert, one notification"

            # 2. One replica is killed: nothing for any org, PetraCollectorReplicaDown.
            before_first_kill = len(receiver.notifications)
            replicas[1].kill()
            first_kill = time.monotonic()

            async def replica_down() -> Notification | None:
                return firing(receiver, "PetraCollectorReplicaDown", before_first_kill)

            note = await eventually(replica_down, deadline, "PetraCollectorReplicaDown", logs)
            replica_down_seconds = time.monotonic() - first_kill
            assert note.receiver == "petra-chat"
            (down,) = note.alerts_named("PetraCollectorReplicaDown")
            assert down["labels"]["instance"] == targets[1]
            # The lost replica's series are gone for longer than keep_firing_for.
            await asyncio.sleep(max(0.0, first_kill + KEEP_FIRING_SECONDS + 3 - time.monotonic()))
            assert org_alerts(receiver.notifications[before_first_kill:]) == []
            assert firing(receiver, "PetraCollectorDown") is None

            # 3. The other one too: PetraCollectorDown pages.
            before_second_kill = len(receiver.notifications)
            replicas[0].kill()
            second_kill = time.monotonic()

            async def collector_down() -> Notification | None:
                return firing(receiver, "PetraCollectorDown", before_second_kill)

            note = await eventually(collector_down, deadline, "PetraCollectorDown", logs)
            collector_down_seconds = time.monotonic() - second_kill
            assert note.receiver == "petra-pager"
            (down,) = note.alerts_named("PetraCollectorDown")
            assert down["labels"] == {
                "alertname": "PetraCollectorDown",
                "job": "petra-collector",
                "severity": "critical",
            }
            sys.stdout.write(
                f"\nfailover: one replica lost -> PetraCollectorReplicaDown in "
                f"{replica_down_seconds:.1f} s, no org notification; both lost -> "
                f"PetraCollectorDown in {collector_down_seconds:.1f} s\n"
            )
            assert time.monotonic() - started < TIME_BUDGET_SECONDS
    finally:
        for process in processes:
            await stop_process(process)
        await simulator_runner.cleanup()
        await receiver_runner.cleanup()
