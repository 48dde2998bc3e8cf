"""deploy/alertmanager/alertmanager.yml: valid for amtool, every alert of
deploy/prometheus/alerts.yml reaches the intended receiver, and the inhibit
rules mute what they should in a real Alertmanager."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.alertmanager import (
    RECEIVERS,
    ROOT,
    SHIPPED_CONFIG,
    SHIPPED_WEBHOOK_BASE,
    fast_copy,
    running_alertmanager,
    shipped_config,
    webhook_urls,
)
from tests.deploy.test_prometheus_rules import WATCHDOG, alert_rules, duration
from tests.processes import LOOPBACK, free_port
from tests.tools import require_tool
from tests.waiting import eventually

OPERATIONS_DOC = ROOT / "docs" / "operations.md"
RECEIVER_FOR_SEVERITY = {"critical": "petra-pager", "warning": "petra-chat"}
# Labels every per-org alert carries (merged across replicas); Prometheus adds alertname.
TARGET_LABELS = {"job": "petra-collector", "org": "acme"}


def amtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    binary = require_tool("amtool", "prometheus-alertmanager")
    return subprocess.run(  # noqa: S603 - a fixed amtool command line on repository files
        [binary, *arguments], capture_output=True, text=True, timeout=60, check=False
    )


def routes_to(labels: dict[str, str]) -> str:
    """The receiver(s) amtool resolves for an alert with `labels`, as it prints them."""
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={SHIPPED_CONFIG}",
        *(f"{name}={value}" for name, value in labels.items()),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def intended_receiver(rule: dict[str, Any]) -> str:
    if rule["alert"] == WATCHDOG:
        return "petra-heartbeat"
    return RECEIVER_FOR_SEVERITY[rule["labels"]["severity"]]


def test_amtool_check_config_accepts_it() -> None:
    """amtool parses the config: routes, inhibit rules and the three receivers."""
    result = amtool("check-config", str(SHIPPED_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert " - 2 inhibit rules" in result.stdout
    assert f" - {len(RECEIVERS)} receivers" in result.stdout


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_routes_to_its_receiver(rule: dict[str, Any]) -> None:
    """Critical pages, warnings go to chat, the Watchdog only to the heartbeat receiver."""
    labels = {"alertname": rule["alert"], **rule["labels"]}
    if rule["alert"] != WATCHDOG:
        labels |= TARGET_LABELS
    expected = intended_receiver(rule)
    assert routes_to(labels) == expected
    verified = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={SHIPPED_CONFIG}",
        f"--verify.receivers={expected}",
        *(f"{name}={value}" for name, value in labels.items()),
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize("severity", sorted(RECEIVER_FOR_SEVERITY))
def test_an_alert_added_later_routes_by_its_severity(severity: str) -> None:
    """An alert this config has never heard of (a future incidents alert) needs no new route."""
    labels = {"alertname": "PetraSomethingNew", "severity": severity, **TARGET_LABELS}
    assert routes_to(labels) == RECEIVER_FOR_SEVERITY[severity]


def test_alerts_group_by_alertname_and_org() -> None:
    """One notification group per alert and org; no child route regroups."""
    route = shipped_config()["route"]
    assert route["group_by"] == ["alertname", "org"]
    for child in route["routes"]:
        assert "group_by" not in child, child
        assert not child.get("continue", False), "an alert must reach one receiver only"


def test_heartbeat_repeats_often_and_never_resolves() -> None:
    """The Watchdog's route repeats every few minutes; its receiver sends no `resolved`."""
    config = shipped_config()
    (heartbeat,) = [r for r in config["route"]["routes"] if r["receiver"] == "petra-heartbeat"]
    assert heartbeat["matchers"] == [f'alertname="{WATCHDOG}"']
    assert duration(heartbeat["repeat_interval"]) <= timedelta(minutes=5)
    assert duration(heartbeat["group_wait"]) == timedelta(0)
    (receiver,) = [r for r in config["receivers"] if r["name"] == "petra-heartbeat"]
    assert receiver["webhook_configs"][0]["send_resolved"] is False


def test_receivers_deliver_nowhere_until_replaced_and_are_documented() -> None:
    """No receiver looks like a real endpoint: each posts to loopback and the guide names it."""
    urls = webhook_urls(shipped_config())
    assert set(urls) == set(RECEIVERS)
    guide = OPERATIONS_DOC.read_text()
    for name, url in urls.items():
        assert url == SHIPPED_WEBHOOK_BASE + name
        assert f"`{name}`" in guide, f"docs/operations.md does not name receiver {name}"
    assert "REPLACE THE THREE RECEIVERS BEFORE USE" in SHIPPED_CONFIG.read_text()


def alert(name: str, **labels: str) -> dict[str, Any]:
    """An alert as Prometheus posts it, firing for the next 10 minutes."""
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": name},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


# (alert, whether it must be muted) for the inhibition test. No replica of job
# petra-collector can be scraped; in job other, globex's key is rejected.
INHIBITION_CASES: list[tuple[dict[str, Any], bool]] = [
    (alert("PetraCollectorDown", job="petra-collector"), False),
    (alert("PetraRateLimited", job="petra-collector", org="acme"), True),
    (alert("PetraApiKeyInvalid", job="petra-collector", org="hooli"), True),
    (alert("PetraCollectorReplicaDown", job="petra-collector", instance="a:9865"), True),
    (alert("PetraCollectorConfigReloadFailed", job="petra-collector", instance="a:9865"), True),
    (alert("PetraApiKeyInvalid", job="other", org="globex"), False),
    (alert("PetraUsageStale", job="other", org="globex"), True),
    (alert("PetraOrgNeverPolled", job="other", org="globex"), True),
    # a rejected key mutes only its own org's stale data, and not its rate limiting
    (alert("PetraRateLimited", job="other", org="globex"), False),
    (alert("PetraUsageStale", job="other", org="initech"), False),
    # a replica down mutes nothing: the other replicas still watch every org
    (alert("PetraCollectorReplicaDown", job="other", instance="b:9865"), False),
    (alert("PetraRateLimited", job="other", org="acme"), False),
    (alert(WATCHDOG, severity="none"), False),
]


async def test_inhibit_rules_in_a_real_alertmanager(tmp_path: Path) -> None:
    """No replica up mutes the job's alerts; a rejected key mutes its org's staleness."""
    # Notifications go to a loopback port where nothing listens: only muting is tested here.
    config = fast_copy(
        f"http://{LOOPBACK}:{free_port()}",
        group_wait="1s",
        group_interval="1s",
        repeat_interval="1h",
    )
    async with (
        running_alertmanager(config, tmp_path / "alertmanager") as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
    ):
        posted = [case for case, _ in INHIBITION_CASES]
        async with http.post(f"{url}/api/v2/alerts", json=posted) as response:
            assert response.status == 200, await response.text()
        expected = {
            _key(case["labels"]): "suppressed" if muted else "active"
            for case, muted in INHIBITION_CASES
        }
        states: dict[tuple[tuple[str, str], ...], str] = {}

        async def settled() -> list[dict[str, Any]] | None:
            async with http.get(f"{url}/api/v2/alerts") as response:
                listed: list[dict[str, Any]] = await response.json()
            states.clear()
            states.update({_key(item["labels"]): item["status"]["state"] for item in listed})
            return listed if states == expected else None

        def wrong() -> str:
            return "alerts in the wrong state: " + str(
                {
                    dict(key)["alertname"] + str(dict(key)): f"{states.get(key)}, not {state}"
                    for key, state in expected.items()
                    if states.get(key) != state
                }
            )

        listed = await eventually(settled, "every alert's state", every=0.2, details=wrong)
        inhibited = {_key(item["labels"]) for item in listed if item["status"]["inhibitedBy"]}
        muted = {_key(case["labels"]) for case, is_muted in INHIBITION_CASES if is_muted}
        assert inhibited == muted, "muted by something other than an inhibit rule"


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))
