"""The monitoring mixin in deploy/mixin/: what deploy/ ships is what it renders.

The shipped rule file is checked by promtool and its unit tests
(test_prometheus_rules.py), the PrometheusRule against it
(test_kubernetes.py) and the dashboard by test_grafana.py: since each must
equal the mixin's rendering byte for byte, a mixin whose rules fail promtool
or their unit tests fails there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.deploy.dashboard import panels
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
MIXIN = ROOT / "deploy" / "mixin"
RENDER = MIXIN / "render.py"
SHIPPED = (
    Path("deploy/prometheus/alerts.yml"),
    Path("deploy/kubernetes/base/prometheusrule.yaml"),
    Path("deploy/grafana/dashboards/petra-collector.json"),
)


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed command lines on repository files
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def evaluate(snippet: str) -> Any:  # noqa: ANN401 - any JSON value
    jsonnet = require_tool("jsonnet", "jsonnet")
    result = run([jsonnet, "-J", str(MIXIN), "-e", snippet])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_shipped_files_are_what_the_mixin_renders() -> None:
    """alerts.yml, the PrometheusRule and the dashboard equal the mixin's rendering."""
    require_tool("jsonnet", "jsonnet")
    result = run([sys.executable, str(RENDER), "--check"])
    assert result.returncode == 0, result.stderr


def test_check_names_each_file_that_differs(tmp_path: Path) -> None:
    """`render.py --check` fails, naming the file, when one differs from the mixin."""
    require_tool("jsonnet", "jsonnet")
    assert run([sys.executable, str(RENDER), "--root", str(tmp_path)]).returncode == 0
    for relative in SHIPPED:
        assert (tmp_path / relative).read_bytes() == (ROOT / relative).read_bytes()
    edited = tmp_path / SHIPPED[0]
    edited.write_text(edited.read_text().replace("for: 5m", "for: 6m", 1))
    (tmp_path / SHIPPED[2]).unlink()
    result = run([sys.executable, str(RENDER), "--check", "--root", str(tmp_path)])
    assert result.returncode == 1
    assert str(SHIPPED[0]) in result.stderr
    assert str(SHIPPED[2]) in result.stderr
    assert str(SHIPPED[1]) not in result.stderr


def test_mixin_has_the_kube_prometheus_fields() -> None:
    """prometheusAlerts, prometheusRules and grafanaDashboards, as kube-prometheus imports them."""
    mixin = evaluate(
        "local m = import 'mixin.libsonnet'; "
        "{alerts: m.prometheusAlerts, rules: m.prometheusRules, "
        "dashboards: std.objectFields(m.grafanaDashboards), config: m._config}"
    )
    assert mixin["alerts"]["groups"]
    assert mixin["rules"]["groups"]
    assert mixin["dashboards"] == ["petra-collector.json"]
    assert mixin["config"]["selector"] == 'job="petra-collector"'


def test_selector_reaches_every_rule_and_panel_that_names_the_job() -> None:
    """With another `selector`, no rule or panel names job="petra-collector" any more."""
    mixin = evaluate(
        "local m = (import 'mixin.libsonnet') + {_config+:: {selector: 'job=\"petra\"'}}; "
        "{groups: m.prometheusAlerts.groups + m.prometheusRules.groups, "
        "dashboard: m.grafanaDashboards['petra-collector.json']}"
    )
    exprs = [rule["expr"] for group in mixin["groups"] for rule in group["rules"]]
    exprs += [
        target["expr"]
        for panel in panels(mixin["dashboard"]["panels"])
        for target in panel.get("targets", [])
    ]
    assert not [expr for expr in exprs if "petra-collector" in expr]
    assert sum('up{job="petra"}' in expr for expr in exprs) == 3, "two alerts and one panel"


def test_jsonnet_sources_are_formatted() -> None:
    """Every .jsonnet and .libsonnet file is as `jsonnetfmt` writes it."""
    jsonnetfmt = require_tool("jsonnetfmt", "jsonnet")
    sources = sorted(str(path) for path in MIXIN.rglob("*sonnet"))
    assert sources
    result = run([jsonnetfmt, "--test", *sources])
    assert result.returncode == 0, f"not formatted (run jsonnetfmt -i): {result.stderr}"
