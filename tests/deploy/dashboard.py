"""Reading the PromQL out of deploy/grafana/dashboards/petra-collector.json.

Shared by the dashboard's static test and the end-to-end test, which runs
every query against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "petra-collector.json"

# What Grafana puts in place of its variables. Multi-value variables become
# regexes, hence the alternations.
PARSE_SUBSTITUTIONS: Mapping[str, str] = {
    "$__rate_interval": "2m",
    "$__interval": "30s",
    "$__range": "1h",
    "${__range_s}": "3600",
    "$org": "acme|globex",
    "$tenant": "ZZk90t|AAb12c",
}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    return str(query.get("query", "")) if isinstance(query, dict) else str(query or "")


def unwrap_variable_query(query: str) -> str:
    """The PromQL in a variable query: label_values(EXPR, label) or query_result(EXPR)."""
    match = re.fullmatch(r"label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\)", query.strip())
    if match:
        return match.group(1)
    match = re.fullmatch(r"query_result\((.*)\)", query.strip())
    if match:
        return match.group(1)
    raise AssertionError(f"unexpected variable query {query!r}")


def substitute(expr: str, substitutions: Mapping[str, str]) -> str:
    """Replace Grafana variables (longest names first); fail on any left over."""
    for variable, value in sorted(substitutions.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable left in {expr!r}"
    return expr


def all_expressions(
    substitutions: Mapping[str, str] = PARSE_SUBSTITUTIONS,
) -> dict[str, str]:
    """Every PromQL expression of the dashboard, by where it is, variables substituted."""
    data = dashboard()
    exprs: dict[str, str] = {}
    for panel in panels(data["panels"]):
        for target in panel.get("targets", []):
            where = f"panel {panel['id']} {panel['title']!r} {target['refId']}"
            exprs[where] = substitute(target["expr"], substitutions)
    for variable in data["templating"]["list"]:
        if variable["type"] == "query":
            exprs[f"variable {variable['name']}"] = substitute(
                unwrap_variable_query(variable_query(variable)), substitutions
            )
    return exprs
