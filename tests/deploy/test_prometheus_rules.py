"""The alerting rules in deploy/prometheus/, their unit tests and the example
Prometheus config, checked with promtool and against the contract and the
operations guide."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.promql import EXPORTED_LABELS, EXPORTED_METRICS, label_names, metric_names
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
RUNBOOK_BASE = "https://github.com/petra-collector/petra-collector/blob/main/docs/operations.md#"
EXPECTED_ALERTS = {
    "PetraApiKeyInvalid",
    "PetraUsageStale",
    "PetraOrgNeverPolled",
    "PetraCollectorDown",
    "PetraRateLimited",
    "PetraCollectorConfigReloadFailed",
}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


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
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout


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


def test_the_five_alerts_exist_once_each() -> None:
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
    assert silent == EXPECTED_ALERTS, f"alerts never tested silent: {EXPECTED_ALERTS - silent}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_has_severity_annotations_and_runbook(rule: dict[str, Any]) -> None:
    """Each alert has a severity, a summary, a description and a runbook URL into the guide."""
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert rule.get("for"), "an alert without `for:` fires on a single bad evaluation"
    assert annotations["runbook_url"] == RUNBOOK_BASE + rule["alert"].lower()


def test_runbook_anchors_and_internal_links_resolve() -> None:
    """Every runbook_url anchor and every #link in operations.md is a heading of it."""
    text = OPERATIONS_DOC.read_text()
    anchors = github_anchors(text)
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook_url"].rpartition("#")[2]
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor} in operations.md"
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links <= anchors, f"broken links in operations.md: {sorted(links - anchors)}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_uses_only_exported_metrics_and_labels(rule: dict[str, Any]) -> None:
    """Alert expressions and annotation templates name only metrics and labels that exist."""
    names = metric_names(rule["expr"])
    assert names, "found no metric in the expression"
    assert names <= EXPORTED_METRICS, f"unknown metrics: {sorted(names - EXPORTED_METRICS)}"
    labels = label_names(rule["expr"])
    for text in rule["annotations"].values():
        labels.update(re.findall(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert labels <= EXPORTED_LABELS, f"unknown labels: {sorted(labels - EXPORTED_LABELS)}"


def test_collector_down_alert_matches_the_example_scrape_job() -> None:
    """PetraCollectorDown watches the job name the example scrape config uses."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert jobs == ["petra-collector"]
    down = next(rule for rule in alert_rules() if rule["alert"] == "PetraCollectorDown")
    assert 'job="petra-collector"' in down["expr"]
    assert config["rule_files"] == [ALERTS.name]
