"""The alerting rules in deploy/prometheus/, their unit tests and the example
Prometheus config, checked with promtool and against the contract and the
operations guide."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.dashboard import dashboard
from tests.deploy.promql import EXPORTED_LABELS, EXPORTED_METRICS, label_names, metric_names
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
RUNBOOK_BASE = "https://github.com/petra-collector/petra-collector/blob/main/docs/operations.md#"
DASHBOARD_URL = "https://grafana.example.com/d/petra-collector/petra-security-usage"
WATCHDOG = "Watchdog"
EXPECTED_ALERTS = {
    "PetraApiKeyInvalid",
    "PetraUsageStale",
    "PetraOrgNeverPolled",
    "PetraCollectorDown",
    "PetraCollectorReplicaDown",
    "PetraRateLimited",
    "PetraCollectorConfigReloadFailed",
    WATCHDOG,
    "PetraIncidentNotRemediated",
    "PetraIncidentNew",
    "PetraIncidentsStale",
    "PetraBillingStale",
}
# Per-org gauges whose replicas merge by min (one replica that is fine is enough).
MIN_MERGED = {"petra_auth_failure", "petra_billing_tenants_stale"}
# A collector restart leaves a gap of a minute or two in every series; without a
# state file an org then stays pending until its first poll, up to one interval
# (300 s by default). Alerts on the collector's gauges must ride over that.
RESTART_GAP = timedelta(minutes=2)
DEFAULT_INTERVAL = timedelta(seconds=300)
# Alerts without keep_firing_for, and why they need none.
NO_KEEP_FIRING = {
    "PetraRateLimited": "its 15-minute increase() window spans a restart's gap",
    WATCHDOG: "it always fires",
}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "record" in rule]


def petra_alert_rules() -> list[dict[str, Any]]:
    """The alerts about the collector and its orgs (all but the Watchdog)."""
    return [rule for rule in alert_rules() if rule["alert"] != WATCHDOG]


def duration(text: str) -> timedelta:
    """A Prometheus duration of one unit, as the rules write them (`10m`, `30s`, `1h`)."""
    match = re.fullmatch(r"(\d+)([smh])", text)
    assert match, f"unexpected duration {text!r}"
    unit = {"s": "seconds", "m": "minutes", "h": "hours"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed tool command lines on repository files
        command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown document."""
    anchors: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_code or heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        candidate, suffix = slug, 1
        while candidate in anchors:
            candidate, suffix = f"{slug}-{suffix}", suffix + 1
        anchors.add(candidate)
    return anchors


def test_promtool_check_rules_accepts_alerts() -> None:
    """promtool accepts alerts.yml (syntax, PromQL, templates)."""
    promtool = require_tool("promtool", "prometheus")
    result = run([promtool, "check", "rules", str(ALERTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    rules = len(EXPECTED_ALERTS) + len(recording_rules())
    assert f"SUCCESS: {rules} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    """Every case in alerts_test.yml passes under `promtool test rules`."""
    promtool = require_tool("promtool", "prometheus")
    result = run([promtool, "test", "rules", ALERTS_TEST.name], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_config_accepts_example_prometheus_yml() -> None:
    """The example prometheus.yml (and the rule file it loads) is valid."""
    promtool = require_tool("promtool", "prometheus")
    result = run([promtool, "check", "config", PROMETHEUS_CONFIG.name], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_documented_alerts_exist_once_each() -> None:
    """alerts.yml defines exactly the documented alerts, none twice."""
    names = [rule["alert"] for rule in alert_rules()]
    assert sorted(names) == sorted(EXPECTED_ALERTS)


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    """alerts_test.yml has, per alert, a case where it fires and one where it must not."""
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert firing == EXPECTED_ALERTS, f"alerts never tested firing: {EXPECTED_ALERTS - firing}"
    # The Watchdog has no case where it must not fire: it always fires.
    expected_silent = EXPECTED_ALERTS - {WATCHDOG}
    assert silent == expected_silent, f"alerts never tested silent: {expected_silent - silent}"


@pytest.mark.parametrize("rule", petra_alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_has_severity_annotations_and_runbook(rule: dict[str, Any]) -> None:
    """Each alert has a severity, a summary, a description and a runbook URL into the guide."""
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert rule.get("for"), "an alert without `for:` fires on a single bad evaluation"
    assert annotations["runbook_url"] == RUNBOOK_BASE + rule["alert"].lower()


def test_watchdog_always_fires_with_a_runbook() -> None:
    """The dead man's switch: vector(1), no `for:`, a severity no pager route matches."""
    (watchdog,) = [rule for rule in alert_rules() if rule["alert"] == WATCHDOG]
    assert watchdog["expr"].strip() == "vector(1)"
    assert "for" not in watchdog
    assert "keep_firing_for" not in watchdog
    assert watchdog["labels"] == {"severity": "none"}
    assert watchdog["annotations"]["runbook_url"] == RUNBOOK_BASE + "watchdog"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_links_the_dashboard_for_its_org(rule: dict[str, Any]) -> None:
    """dashboard_url opens the shipped dashboard (its uid), filtered to the org for org alerts."""
    data = dashboard()
    url = rule["annotations"]["dashboard_url"]
    assert f"/d/{data['uid']}/" in url
    variables = {variable["name"] for variable in data["templating"]["list"]}
    assert "org" in variables
    per_org = "$labels.org" in rule["annotations"]["summary"]
    expected = DASHBOARD_URL + ("?var-org={{ $labels.org }}" if per_org else "")
    assert url == expected


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_rides_over_a_restart(rule: dict[str, Any]) -> None:
    """Alerts on the collector's gauges keep firing through a restart and a pending first poll."""
    name = rule["alert"]
    if name in NO_KEEP_FIRING:
        assert "keep_firing_for" not in rule, f"{name}: documented as needing none"
        return
    keep = duration(rule["keep_firing_for"])
    assert keep > RESTART_GAP, f"{name}: keep_firing_for shorter than a restart"
    if "$labels.org" in rule["annotations"]["summary"]:
        assert keep > RESTART_GAP + DEFAULT_INTERVAL, f"{name}: shorter than restart + first poll"


def test_runbook_anchors_and_internal_links_resolve() -> None:
    """Every runbook_url anchor and every #link in operations.md is a heading of it."""
    text = OPERATIONS_DOC.read_text()
    anchors = github_anchors(text)
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook_url"].rpartition("#")[2]
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor} in operations.md"
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links <= anchors, f"broken links in operations.md: {sorted(links - anchors)}"


@pytest.mark.parametrize("rule", petra_alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_uses_only_exported_metrics_and_labels(rule: dict[str, Any]) -> None:
    """Alert expressions and annotation templates name only metrics and labels that exist."""
    names = metric_names(rule["expr"])
    assert names, "found no metric in the expression"
    assert names <= EXPORTED_METRICS, f"unknown metrics: {sorted(names - EXPORTED_METRICS)}"
    labels = label_names(rule["expr"])
    for text in rule["annotations"].values():
        labels.update(re.findall(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert labels <= EXPORTED_LABELS, f"unknown labels: {sorted(labels - EXPORTED_LABELS)}"


def test_collector_down_alerts_match_the_example_scrape_job() -> None:
    """PetraCollectorDown and PetraCollectorReplicaDown watch the example scrape config's job."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert jobs == ["petra-collector"]
    for rule in alert_rules():
        if "up{" in rule["expr"]:
            assert 'up{job="petra-collector"}' in rule["expr"], rule["alert"]
    assert config["rule_files"] == [ALERTS.name]


@pytest.mark.parametrize("rule", petra_alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_org_alerts_carry_no_instance(rule: dict[str, Any]) -> None:
    """An org alert merges the replicas of a job: its templates never name one replica."""
    texts = " ".join(rule["annotations"].values())
    if "$labels.org" not in texts:
        return
    assert "$labels.instance" not in texts
    assert "instance" not in label_names(rule["expr"])
    assert re.search(r"\b(?:max|min|sum) by \(job, org\b", rule["expr"]), "not merged by org"


@pytest.mark.parametrize("rule", recording_rules(), ids=lambda rule: str(rule["record"]))
def test_recording_rule_merges_one_exported_gauge_per_org(rule: dict[str, Any]) -> None:
    """`org:METRIC:AGG` is `AGG by (job, org) (METRIC)`, METRIC a per-org gauge of the contract;
    or, for `sum`, a per-tenant gauge taken once per tenant (the max of the replicas)."""
    level, metric, aggregation = rule["record"].split(":")
    assert level == "org"
    assert metric in EXPORTED_METRICS
    if aggregation == "sum":
        assert rule["expr"] == f"sum by (job, org) (max by (job, org, tenant_id) ({metric}))"
        return
    assert rule["expr"] == f"{aggregation} by (job, org) ({metric})"
    assert aggregation == ("min" if metric in MIN_MERGED else "max")
