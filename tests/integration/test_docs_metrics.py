"""docs/metrics.md against what the real daemon serves on /metrics, and its queries."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

from collector.petra_simulator import SimulatedOrg, sim_key
from tests.deploy.promql import assert_promql_parses, label_names, metric_names
from tests.integration.harness import Running, running_daemon
from tests.tools import require_tool
from tests.unit.test_docs import code, table_rows

DOC: Final = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ACME = SimulatedOrg(
    "acme",
    sim_key("acme"),
    "Acme MSP",
    tenant_count=3,
    incident_count=4,
    billing_requests_per_minute=600,
)
INCIDENTS_ON = "incidents:\n  enabled: true\n  interval_seconds: 1\n"
BILLING_ON = (
    "billing:\n  enabled: true\n  interval_seconds: 10\n  requests_per_minute_per_key: 120\n"
)
REVOKED_KEY = "petra_revoked_docs_0123456789abcdef"
# Labels Prometheus itself puts on every series of a target.
TARGET_LABELS: Final = {"job", "instance"}

Described = dict[str, tuple[str, frozenset[str]]]  # sample name -> (type, label names)


def documented() -> Described:
    """The metric tables of docs/metrics.md: name -> (type, labels)."""
    metrics: Described = {}
    for cells in table_rows(DOC, "metric"):
        name = code(cells[0])
        assert name is not None, f"metric cell is not `code`: {cells[0]}"
        labels = frozenset(re.findall(r"`([a-z_]+)`", cells[2]))
        assert labels or cells[2] == "none", f"{name}: labels cell {cells[2]!r}"
        assert name not in metrics, f"{name} is documented twice"
        metrics[name] = (cells[1], labels)
    return metrics


def served(text: str) -> Described:
    """What a scrape holds: sample name -> (family type, label names)."""
    metrics: Described = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset(sample.labels)
            known = metrics.setdefault(sample.name, (family.type, labels))
            assert known == (family.type, labels), f"{sample.name} has mixed label sets"
    return metrics


def example_queries() -> list[str]:
    queries = []
    for cells in table_rows(DOC, "query"):
        query = code(cells[0])
        assert query is not None, f"query cell is not `code`: {cells[0]}"
        queries.append(query)
    return queries


async def test_metrics_doc_matches_what_metrics_serves(tmp_path: Path) -> None:
    """Every family /metrics serves is documented with its type and labels, and nothing else."""
    async with running_daemon(
        tmp_path,
        [ACME],
        extra_keys={"umbrella": REVOKED_KEY},
        extra_config=INCIDENTS_ON + BILLING_ON,
    ) as run:
        await run.wait_metric("petra_up", 1, org="acme")
        await run.wait_metric("petra_incidents_up", 1, org="acme")
        await run.wait_for(lambda: _billing_asked(run, 3), what="billing figures of every tenant")
        await run.wait_metric("petra_auth_failure", 1, org="umbrella")
        status, text = await run.get("/metrics")
        assert status == 200
    live = served(text)
    doc = documented()
    assert sorted(set(live) - set(doc)) == [], "served but not documented"
    assert sorted(set(doc) - set(live)) == [], "documented but not served"
    for name, (kind, labels) in doc.items():
        assert live[name] == (kind, labels), f"{name}: served {live[name]}, documented"


async def _billing_asked(run: Running, count: int) -> bool:
    return len(run.simulator.billing_asked("acme")) >= count


def test_every_metric_has_an_example_query_using_only_documented_names(tmp_path: Path) -> None:
    """Each documented metric appears in an example; the examples parse and use real names."""
    doc = documented()
    queries = example_queries()
    labels = set().union(*(labels for _kind, labels in doc.values())) | TARGET_LABELS
    used: set[str] = set()
    for query in queries:
        names = metric_names(query)
        assert names <= set(doc), f"{query}: unknown {sorted(names - set(doc))}"
        assert label_names(query) <= labels, f"{query}: unknown labels"
        used |= names
    assert sorted(set(doc) - used) == [], "documented metrics without an example query"
    promtool = require_tool("promtool", "prometheus")
    assert_promql_parses({query: query for query in queries}, tmp_path, promtool)
