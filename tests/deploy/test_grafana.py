"""The Grafana dashboard and provisioning files in deploy/grafana/: every query
parses, reads only metrics the collector exports, and the variables exist."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.dashboard import (
    all_expressions,
    dashboard,
    panels,
    substitute,
    variable_query,
)
from tests.deploy.promql import (
    EXPORTED_LABELS,
    EXPORTED_METRICS,
    assert_promql_parses,
    label_names,
    metric_names,
)
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"


def test_dashboard_is_valid_json_with_unique_ids() -> None:
    """The dashboard parses, has a stable uid, and panel ids are unique."""
    data = dashboard()
    assert data["uid"] == "petra-collector"
    assert data["title"]
    ids = [panel["id"] for panel in panels(data["panels"])]
    assert len(ids) == len(set(ids))
    for panel in panels(data["panels"]):
        position = panel["gridPos"]
        assert position["x"] >= 0, panel["title"]
        assert position["x"] + position["w"] <= 24, panel["title"]


def test_org_and_tenant_variables() -> None:
    """`org` lists every configured org, pending ones too; `tenant` lists tenant ids of those orgs.

    An org has petra_api_requests_total from the start, petra_up only from its
    first poll's outcome.
    """
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    org = variables["org"]
    assert variable_query(org) == "label_values(petra_api_requests_total, org)"
    assert org["multi"]
    assert org["includeAll"]
    tenant = variables["tenant"]
    assert tenant["multi"]
    assert tenant["includeAll"]
    assert 'org=~"$org"' in variable_query(tenant)
    assert "petra_tenant_info" in variable_query(tenant)
    assert "(?<value>" in tenant["regex"], "the tenant variable's value must be the tenant_id"


def test_every_query_uses_the_datasource_variable() -> None:
    """Panels and targets query `${datasource}`, so the dashboard works with any Prometheus."""
    for panel in panels(dashboard()["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_covers_the_requested_views() -> None:
    """Usage, per-tenant, key health, status codes, 429s, latency and staleness all have panels."""
    exprs = " ".join(all_expressions().values())
    for metric in (
        "petra_org_tenants",
        "petra_tenant_licensed_users",
        "petra_tenant_billable_users",
        "petra_auth_failure",
        "petra_last_success_timestamp_seconds",
        "petra_api_requests_total",
        "petra_rate_limited_total",
        "petra_poll_duration_seconds",
        "petra_tenant_incidents",
        "petra_tenant_last_incident_timestamp_seconds",
        "petra_incidents_up",
        "petra_incidents_truncated",
    ):
        assert metric in exprs, f"no panel shows {metric}"
    raw = json.dumps(dashboard())
    assert 'tenant_id=~\\"$tenant\\"' in raw, "no panel filters by the tenant variable"


def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    """promtool parses every panel query and variable query (as recording rules)."""
    promtool = require_tool("promtool", "prometheus")
    assert_promql_parses(all_expressions(), tmp_path, promtool)


@pytest.mark.parametrize("where", sorted(all_expressions()))
def test_expression_uses_only_exported_metrics_and_labels(where: str) -> None:
    """Each query reads only metrics and labels the collector (or Prometheus) exports."""
    expr = all_expressions()[where]
    names = metric_names(expr)
    assert names, f"no metric found in {expr!r}"
    assert names <= EXPORTED_METRICS, f"unknown metrics {sorted(names - EXPORTED_METRICS)}"
    labels = label_names(expr)
    assert labels <= EXPORTED_LABELS, f"unknown labels {sorted(labels - EXPORTED_LABELS)}"


def test_legends_name_only_known_labels() -> None:
    """Legend templates like {{org}} refer to labels the query results carry."""
    for panel in panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            used = set(
                re.findall(
                    r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", target.get("legendFormat", "")
                )
            )
            assert used <= EXPORTED_LABELS, (panel["title"], used - EXPORTED_LABELS)


def test_last_poll_result_shows_pending_orgs_as_pending(tmp_path: Path) -> None:
    """Panel "Last poll result": ok (1), failed (0) or pending (-1: no petra_up yet)."""
    promtool = require_tool("promtool", "prometheus")
    (panel,) = [p for p in panels(dashboard()["panels"]) if p["title"] == "Last poll result"]
    mappings = panel["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {value: mapping["text"] for value, mapping in mappings.items()} == {
        "-1": "pending",
        "0": "failed",
        "1": "ok",
    }
    expr = substitute(panel["targets"][0]["expr"], {"$org": ".+"})
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": []}))
    series = {
        # polled OK / failing / configured but not polled yet
        "acme": ("1x5", "0+1x5"),
        "globex": ("0x5", "0x5"),
        "hooli": (None, "0x5"),
    }
    input_series = []
    for org, (up, requests) in series.items():
        labels = f'job="petra-collector",instance="c:9865",org="{org}"'
        if up is not None:
            input_series.append({"series": f"petra_up{{{labels}}}", "values": up})
        input_series.append(
            {"series": f'petra_api_requests_total{{{labels},code="200"}}', "values": requests}
        )
    expected = {"acme": 1, "globex": 0, "hooli": -1}
    tests = {
        "rule_files": ["rules.yml"],
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series,
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "3m",
                        "exp_samples": [
                            {"labels": f'{{org="{org}"}}', "value": value}
                            for org, value in expected.items()
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(  # noqa: S603 - a fixed promtool command line on test files
        [promtool, "test", "rules", "tests.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_files() -> None:
    """The datasource and dashboard provider files have the shape Grafana expects."""
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "petra-collector.yaml").read_text()
    )
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["access"] == "proxy"
    assert source["url"].startswith("http")
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "petra-collector.yaml").read_text()
    )
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")


def _panel_expr(title: str) -> str:
    (panel,) = [p for p in panels(dashboard()["panels"]) if p["title"] == title]
    return substitute(panel["targets"][0]["expr"], {"$org": ".+", "$tenant": ".+"})


def test_org_panels_merge_the_replicas(tmp_path: Path) -> None:
    """With two replicas, each org counts once: max of up, min of auth failure, no double sums."""
    promtool = require_tool("promtool", "prometheus")
    series = {
        # both up; up on one only; failing on a and pending on b
        'petra_up{instance="a",org="acme"}': "1x5",
        'petra_up{instance="b",org="acme"}': "1x5",
        'petra_up{instance="a",org="globex"}': "0x5",
        'petra_up{instance="b",org="globex"}': "1x5",
        'petra_up{instance="a",org="hooli"}': "0x5",
        # rejected on a, b pending; rejected on a, b had the rotated key accepted
        'petra_auth_failure{instance="a",org="initech"}': "1x5",
        'petra_auth_failure{instance="a",org="umbrella"}': "1x5",
        'petra_auth_failure{instance="b",org="umbrella"}': "0x5",
        # the same two open incidents, seen by both
        'petra_tenant_incidents{instance="a",org="acme",tenant_id="T1",remediation_status="IN_PROGRESS"}': "2x5",  # noqa: E501 - one series per line
        'petra_tenant_incidents{instance="b",org="acme",tenant_id="T1",remediation_status="IN_PROGRESS"}': "2x5",  # noqa: E501 - one series per line
        # every configured org has its request counter on both
        **{
            f'petra_api_requests_total{{instance="{replica}",org="{org}",code="200"}}': "0x5"
            for replica in ("a", "b")
            for org in ("acme", "globex", "hooli", "initech", "umbrella")
        },
    }
    expected = {
        "Orgs polled OK": 2,
        "API keys rejected": 1,
        "Incidents not remediated": 2,
        "Orgs configured": 5,
    }
    tests = {
        "rule_files": ["rules.yml"],
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": name.replace("{", '{job="petra-collector",', 1), "values": values}
                    for name, values in series.items()
                ],
                "promql_expr_test": [
                    {
                        "expr": _panel_expr(title),
                        "eval_time": "3m",
                        "exp_samples": [{"labels": "{}", "value": value}],
                    }
                    for title, value in expected.items()
                ],
            }
        ],
    }
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": []}))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(  # noqa: S603 - a fixed promtool command line on test files
        [promtool, "test", "rules", "tests.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
