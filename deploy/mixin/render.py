"""Render deploy/'s alert rules, PrometheusRule and Grafana dashboard from the mixin.

    python3 deploy/mixin/render.py           # write the three files
    python3 deploy/mixin/render.py --check   # exit 1, naming each file that differs

Runs `jsonnet` (Debian package `jsonnet`) on render.jsonnet beside this file,
then writes YAML (block style for multi-line PromQL, rule keys in reading
order) and JSON (2-space indent) so the same mixin always gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import yaml

MIXIN: Final = Path(__file__).resolve().parent
ROOT: Final = MIXIN.parents[1]
ALERTS: Final = Path("deploy/prometheus/alerts.yml")
PROMETHEUS_RULE: Final = Path("deploy/kubernetes/base/prometheusrule.yaml")
DASHBOARD: Final = Path("deploy/grafana/dashboards/petra-collector.json")

GENERATED: Final = (
    "# Generated from deploy/mixin/ by `python3 deploy/mixin/render.py`: do not edit\n"
    "# here. Edit the mixin and render again (a test fails while they differ).\n"
)
ALERTS_HEADER: Final = (
    GENERATED
    + """#
# Load with `rule_files:` in prometheus.yml (see prometheus.yml beside this
# file); deploy/alertmanager/alertmanager.yml routes the alerts. Why each rule
# is as it is: the comments in deploy/mixin/alerts.libsonnet. Each alert's
# runbook is the heading of the same name in docs/operations.md.
#
# The rules match the scrape job "petra-collector" and link the dashboard on
# https://grafana.example.com: for another job name or your Grafana, set
# `selector` and `grafanaUrl` in the mixin's _config (deploy/mixin/README.md).
"""
)
PROMETHEUS_RULE_HEADER: Final = (
    GENERATED
    + """#
# The rules of deploy/prometheus/alerts.yml for the Prometheus Operator. Your
# Prometheus resource's ruleSelector must match these labels
# (kube-prometheus-stack: add `release: <its release>`).
"""
)
# Keys of a rule and its annotations in the order people read them; any other
# key comes after these, sorted.
KEY_ORDER: Final = (
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "name",
    "alert",
    "record",
    "expr",
    "for",
    "keep_firing_for",
    "labels",
    "annotations",
    "summary",
    "description",
    "runbook_url",
    "dashboard_url",
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as `|` blocks, lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow=flow, indentless=False)
        del indentless


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def _reading_order(value: Any) -> Any:  # noqa: ANN401 - any JSON value
    if isinstance(value, dict):
        rank = {key: index for index, key in enumerate(KEY_ORDER)}
        keys = sorted(value, key=lambda key: (rank.get(key, len(rank)), key))
        return {key: _reading_order(value[key]) for key in keys}
    if isinstance(value, list):
        return [_reading_order(item) for item in value]
    return value


def _yaml(header: str, data: object) -> str:
    body = yaml.dump(
        _reading_order(data), Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True
    )
    return header + body


def evaluate(jsonnet: str) -> dict[str, Any]:
    """The mixin's render.jsonnet, evaluated."""
    result = subprocess.run(  # noqa: S603 - a fixed jsonnet command line on the mixin's files
        [jsonnet, "-J", str(MIXIN), str(MIXIN / "render.jsonnet")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        message = f"jsonnet failed on deploy/mixin/render.jsonnet:\n{result.stderr}"
        raise RuntimeError(message)
    rendered: dict[str, Any] = json.loads(result.stdout)
    return rendered


def render(jsonnet: str) -> dict[Path, str]:
    """Each shipped file (relative to the repository) and the text the mixin gives it."""
    parts = evaluate(jsonnet)
    return {
        ALERTS: _yaml(ALERTS_HEADER, parts["rules"]),
        PROMETHEUS_RULE: _yaml(PROMETHEUS_RULE_HEADER, parts["prometheusRule"]),
        DASHBOARD: json.dumps(parts["dashboard"], indent=2, ensure_ascii=False) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a shipped file differs"
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the repository to write or check (default: this)"
    )
    args = parser.parse_args(argv)
    jsonnet = shutil.which("jsonnet")
    if jsonnet is None:
        print("jsonnet not found: apt-get install jsonnet", file=sys.stderr)
        return 2
    try:
        files = render(jsonnet)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    differ = []
    for relative, text in files.items():
        path = args.root / relative
        if args.check:
            if not path.is_file() or path.read_text() != text:
                differ.append(str(relative))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if differ:
        print(
            "differs from what deploy/mixin renders (run python3 deploy/mixin/render.py): "
            + ", ".join(differ),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
