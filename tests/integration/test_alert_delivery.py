"""From a rejected key to a person: collector -> Prometheus -> Alertmanager -> webhook.

A deleted key pages (`firing`, naming the org, with the runbook); the
collector restarts with its state file and no `resolved` arrives; the key
file is replaced and `resolved` arrives.

Real parts, all on 127.0.0.1: the simulator and a webhook receiver run in
this test's event loop; the collector (`python -m collector run`), a real
`prometheus` and a real Alertmanager run as processes. Alertmanager listens
on a loopback port with its cluster listener off (`--cluster.listen-address=`).

What is shortened, so the test takes seconds rather than an hour, and
nothing else:
- the collector polls every 2 s;
- Prometheus scrapes and evaluates every second, from a copy of
  deploy/prometheus/alerts.yml whose `for:` is 3 s (30 s for
  PetraCollectorDown, longer than a restart, as its 5 m is in production) and
  `keep_firing_for:` 8 s (longer than a restart takes on a loaded 2-core
  machine, as 10 m is in production),
  and resends firing alerts every 5 s rather than every minute;
- Alertmanager runs a copy of deploy/alertmanager/alertmanager.yml whose
  webhooks point at the test's receiver and whose group_wait/group_interval
  are 1 s. Its routes, grouping and inhibit rules are the shipped ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import ClientSession, ClientTimeout, web

from collector.petra_simulator import SimulatedOrg, Simulator, sim_key, start_simulator
from tests.alertmanager import fast_copy, running_alertmanager
from tests.integration.test_prometheus_e2e import PROMETHEUS_DIR, eventually, query
from tests.leaks import assert_no_key_material
from tests.processes import LOOPBACK, free_port, start_process, stop_process
from tests.prometheus import running_prometheus
from tests.simulated import key_file_orgs

pytestmark = pytest.mark.slow

RUNBOOK = "https://github.com/petra-collector/petra-collector/blob/main/docs/operations.md#petraapikeyinvalid"
SHORT_FOR = "3s"
KEEP_FIRING_SECONDS = 8
SHORT_KEEP_FIRING_FOR = f"{KEEP_FIRING_SECONDS}s"
# Bounds a hang, not a pace the test must keep: it takes about 30 s alone, longer beside
# other tests.
TIME_BUDGET_SECONDS = 180.0
GOOD_ORG = "acme"
BAD_ORG = "initech"
ORGS = (
    # The simulator's budget is Petra's 10 a minute unless told otherwise; the
    # collector is paced to 30 a minute here.
    SimulatedOrg(GOOD_ORG, sim_key(GOOD_ORG), "Acme MSP", tenant_count=2, requests_per_minute=60),
    SimulatedOrg(BAD_ORG, sim_key(BAD_ORG), "Initech", tenant_count=2, requests_per_minute=60),
)
NEW_KEY = sim_key("initech-rotated")


@dataclass
class Notification:
    receiver: str  # the path it was posted to: the receiver's name
    body: dict[str, Any]
    raw: str

    def alerts_named(self, alertname: str) -> list[dict[str, Any]]:
        return [a for a in self.body["alerts"] if a["labels"]["alertname"] == alertname]


@dataclass
class WebhookReceiver:
    """Records every notification Alertmanager posts, by receiver."""

    notifications: list[Notification] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.text()
        body = await request.json()
        self.notifications.append(Notification(request.match_info["receiver"], body, raw))
        return web.Response(text="ok")

    async def serve(self) -> tuple[web.AppRunner, int]:
        """Serves the receiver on a free 127.0.0.1 port: its runner (to clean up) and port."""
        app = web.Application()
        app.router.add_post("/{receiver}", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, LOOPBACK, 0).start()
        return runner, runner.addresses[0][1]

    def key_alerts(self, status: str) -> list[dict[str, Any]]:
        """PetraApiKeyInvalid alerts delivered to the pager with `status`, in order."""
        return [
            alert
            for note in self.notifications
            if note.receiver == "petra-pager"
            for alert in note.alerts_named("PetraApiKeyInvalid")
            if alert["status"] == status
        ]


def collector_config(directory: Path, simulator_port: int) -> Path:
    orgs = key_file_orgs(directory, ORGS)
    config = {
        "api": {"base_url": f"http://{LOOPBACK}:{simulator_port}"},
        "polling": {
            "interval_seconds": 2,
            # A rejected key is re-checked every 30 s: long enough that a restart
            # shows whether its rejection came back from the state file or from a
            # new poll. A replaced key file is polled at once all the same.
            "auth_failure_interval_seconds": 30,
            "requests_per_minute_per_key": 60,
        },
        "state": {"path": str(directory / "state" / "state.json"), "write_delay_seconds": 0.2},
        "orgs": orgs,
    }
    (directory / "state").mkdir()
    path = directory / "collector.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def prometheus_config(directory: Path, collector_port: int, alertmanager_url: str) -> Path:
    """The shipped prometheus.yml and alerts.yml, faster, pointed at this test's processes."""
    alerts = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for group in alerts["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                # A restart is far shorter than PetraCollectorDown's 5 m in production;
                # keep it shorter than its `for` here too, on a loaded machine.
                rule["for"] = "30s" if rule["alert"] == "PetraCollectorDown" else SHORT_FOR
            if "keep_firing_for" in rule:
                rule["keep_firing_for"] = SHORT_KEEP_FIRING_FOR
    (directory / "alerts.yml").write_text(yaml.safe_dump(alerts))
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    (job,) = config["scrape_configs"]
    job.update({"scrape_interval": "1s", "scrape_timeout": "1s"})
    job["static_configs"] = [{"targets": [f"{LOOPBACK}:{collector_port}"]}]
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    alertmanagers["static_configs"] = [{"targets": [alertmanager_url.removeprefix("http://")]}]
    config["rule_files"] = ["alerts.yml"]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def replace_key_file(path: Path, key: str) -> None:
    """As the operations guide says: write beside it, then rename over it."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(key + "\n")
    temporary.replace(path)


async def test_rejected_key_pages_with_runbook_and_resolves_after_the_fix(
    tmp_path: Path,
) -> None:
    """A deleted key pages; a restart sends no `resolved`; a replaced key file resolves it."""
    logs = [
        tmp_path / "collector.log",
        tmp_path / "prometheus.log",
        tmp_path / "alertmanager" / "alertmanager.log",
    ]
    receiver = WebhookReceiver()
    receiver_runner, receiver_port = await receiver.serve()

    simulator = Simulator(ORGS)
    simulator.delete_key(BAD_ORG)  # answered 401 from the first poll on
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
            contextlib.AsyncExitStack() as stack,
        ):
            deadline = time.monotonic() + TIME_BUDGET_SECONDS
            collector_port = free_port()
            collector_command = [
                sys.executable,
                "-m",
                "collector",
                "run",
                "--config",
                str(collector_config(tmp_path, simulator_port)),
                "--listen",
                f"{LOOPBACK}:{collector_port}",
            ]
            collector = await start_process(collector_command, logs[0])
            processes.append(collector)
            prometheus_url = await stack.enter_async_context(
                running_prometheus(
                    prometheus_config(tmp_path, collector_port, am_url),
                    tmp_path,
                    # The Watchdog fires at the first evaluation, which can come before
                    # Prometheus has found its Alertmanager; it is sent again after this
                    # delay (1 minute by default). Alerts stay valid 4 times as long.
                    "--rules.alert.resend-delay=5s",
                )
            )

            # 1. The pager gets `firing` for the rejected key's org, with the runbook.
            async def firing() -> dict[str, Any] | None:
                alerts = receiver.key_alerts("firing")
                return alerts[0] if alerts else None

            alert = await eventually(firing, deadline, "a firing PetraApiKeyInvalid", logs)
            assert alert["labels"]["org"] == BAD_ORG
            assert alert["labels"]["severity"] == "critical"
            assert alert["annotations"]["runbook_url"] == RUNBOOK
            assert alert["annotations"]["dashboard_url"].endswith(f"?var-org={BAD_ORG}")
            assert BAD_ORG in alert["annotations"]["summary"]
            # The key's first page (Alertmanager may repeat it while the test goes on).
            page = next(
                n
                for n in receiver.notifications
                if n.receiver == "petra-pager" and n.alerts_named("PetraApiKeyInvalid")
            )
            assert page.body["status"] == "firing"
            assert page.body["groupLabels"] == {"alertname": "PetraApiKeyInvalid", "org": BAD_ORG}

            # The dead man's switch reaches the heartbeat receiver, and only it.
            async def heartbeat() -> Notification | None:
                beats = [n for n in receiver.notifications if n.alerts_named("Watchdog")]
                return beats[0] if beats else None

            beat = await eventually(heartbeat, deadline, "a Watchdog heartbeat", logs)
            assert beat.receiver == "petra-heartbeat"

            # 2. The collector restarts. Its state file brings the rejection back
            # before any new poll, and no `resolved` reaches anyone.
            polls_before = simulator.request_count(BAD_ORG)
            assert await stop_process(collector) == 0
            restarted_log = tmp_path / "collector-restarted.log"
            logs.append(restarted_log)
            collector = await start_process(collector_command, restarted_log)
            processes.append(collector)
            collector_url = f"http://{LOOPBACK}:{collector_port}"

            async def restored_rejection() -> bool | None:
                assert collector.returncode is None, "the restarted collector exited"
                async with http.get(f"{collector_url}/metrics") as response:
                    text = await response.text()
                rejected = re.search(
                    rf'^petra_auth_failure{{org="{BAD_ORG}"}} 1(\.0)?$', text, re.MULTILINE
                )
                return True if rejected else None

            await eventually(restored_rejection, deadline, "the restored rejection", logs)
            assert simulator.request_count(BAD_ORG) == polls_before, "polled, not restored"

            # Prometheus has scraped the new process, and keep_firing_for has run out
            # since the gap: a resolve caused by the restart would have been sent.
            restarted_at = time.monotonic()

            async def scraped_again() -> bool | None:
                result = await query(
                    http,
                    prometheus_url,
                    'time() - process_start_time_seconds{job="petra-collector"}',
                )
                return True if result and float(result[0]["value"][1]) < 60 else None

            await eventually(scraped_again, deadline, "a scrape of the restarted collector", logs)
            quiet_until = restarted_at + KEEP_FIRING_SECONDS + 3
            await asyncio.sleep(max(0.0, quiet_until - time.monotonic()))
            assert receiver.key_alerts("resolved") == [], "the restart sent a false resolved"

            # 3. The key file gets a key Petra accepts: `resolved` reaches the pager.
            simulator.replace_key(BAD_ORG, NEW_KEY)
            replaced_at = time.monotonic()
            replace_key_file(tmp_path / "keys" / BAD_ORG, NEW_KEY)

            async def resolved() -> dict[str, Any] | None:
                alerts = receiver.key_alerts("resolved")
                return alerts[0] if alerts else None

            alert = await eventually(resolved, deadline, "a resolved PetraApiKeyInvalid", logs)
            assert alert["labels"]["org"] == BAD_ORG
            assert alert["annotations"]["runbook_url"] == RUNBOOK
            # Not before keep_firing_for has passed since the key was accepted.
            assert time.monotonic() - replaced_at >= KEEP_FIRING_SECONDS

            # Nothing about the healthy org ever paged, and no key reached any receiver.
            paged_orgs = {
                a["labels"].get("org")
                for n in receiver.notifications
                if n.receiver == "petra-pager"
                for a in n.body["alerts"]
            }
            assert paged_orgs == {BAD_ORG}
            assert_no_key_material(
                [org.key for org in ORGS] + [NEW_KEY], *(n.raw for n in receiver.notifications)
            )
            assert await stop_process(collector) == 0
    finally:
        for process in processes:
            await stop_process(process)
        await simulator_runner.cleanup()
        await receiver_runner.cleanup()
