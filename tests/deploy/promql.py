"""PromQL helpers shared by the alert-rule and dashboard tests.

`EXPORTED_METRICS` and `EXPORTED_LABELS` are what the collector exports, as
the contract (shared/contract.md, "Metrics") lists them, plus what Prometheus
adds itself (`up`, `job`, `instance`). A rule or panel that uses any other
name would show nothing, silently.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import yaml

EXPORTED_METRICS: Final = frozenset(
    {
        # per org
        "petra_up",
        "petra_auth_failure",
        "petra_auth_failures_total",
        "petra_api_requests_total",
        "petra_rate_limited_total",
        "petra_poll_duration_seconds",
        "petra_last_poll_timestamp_seconds",
        "petra_last_success_timestamp_seconds",
        "petra_usage_report_generated_timestamp_seconds",
        "petra_org_tenants",
        "petra_org_info",
        # per tenant
        "petra_tenant_licensed_users",
        "petra_tenant_billable_users",
        "petra_tenant_prorating_ratio",
        "petra_tenant_paused",
        "petra_tenant_onboarding_timestamp_seconds",
        "petra_tenant_first_billable_timestamp_seconds",
        "petra_tenant_info",
        # incidents, from the contract's section of that name
        "petra_tenant_incidents",
        "petra_tenant_last_incident_timestamp_seconds",
        "petra_incidents_up",
        "petra_incidents_last_success_timestamp_seconds",
        "petra_incidents_truncated",
        # billing, from the contract's section of that name
        "petra_billing_up",
        "petra_billing_last_success_timestamp_seconds",
        "petra_billing_tenants_stale",
        "petra_tenant_projected_billable_units",
        "petra_tenant_billable_users_listed",
        "petra_tenant_billing_report_generated_timestamp_seconds",
        # the collector itself
        "petra_collector_build_info",
        "petra_collector_orgs",
        "petra_collector_config_last_reload_successful",
        "petra_collector_config_last_reload_success_timestamp_seconds",
        # added by Prometheus for every target
        "up",
    }
)

EXPORTED_LABELS: Final = frozenset(
    {
        "org",
        "code",
        "route",
        "remediation_status",
        "organization_name",
        "tenant_id",
        "display_name",
        "microsoft_tenant_id",
        "petra_service",
        "billable_status",
        "version",
        # target labels
        "job",
        "instance",
        # Prometheus' own
        "__name__",
        "alertname",
        "alertstate",
    }
)

_KEYWORDS: Final = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_RANGE = re.compile(r"\[[^\]]*\]")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (identifiers that are not functions or keywords)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _CLAUSE.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group().lower() in _KEYWORDS:
            continue  # a function or aggregation, or an operator keyword
        names.add(match.group())
    return names


def label_names(expr: str) -> set[str]:
    """The label names an expression uses in matchers and in by/on/... clauses."""
    text = _STRING.sub('""', expr)
    labels: set[str] = set()
    for group in _MATCHERS.findall(text):
        labels.update(_MATCHER_LABEL.findall(group))
    for group in _CLAUSE.findall(text):
        labels.update(name.strip() for name in group.split(",") if name.strip())
    return labels


def assert_promql_parses(exprs: Mapping[str, str], tmp_path: Path, promtool: str) -> None:
    """Fail, naming each culprit, unless promtool parses every expression.

    promtool has no "parse this expression" command, but `check rules` parses
    the expression of every recording rule, so each one becomes a rule.
    """
    names = list(exprs)
    rules = [
        {"record": f"petra_test:expr_{index}", "expr": exprs[name]}
        for index, name in enumerate(names)
    ]
    path = tmp_path / "exprs.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}))
    result = subprocess.run(  # noqa: S603 - a fixed promtool command line on a test file
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        legend = "\n".join(f"  expr_{index}: {name}" for index, name in enumerate(names))
        raise AssertionError(
            f"promtool cannot parse some expressions:\n{result.stdout}{result.stderr}\n"
            f"where:\n{legend}"
        )
