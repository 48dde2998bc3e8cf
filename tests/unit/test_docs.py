"""The docs cannot drift from the code: options, defaults, log events and links are checked.

docs/metrics.md is checked against a live `/metrics` in
tests/integration/test_docs_metrics.py.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from collector import __version__
from collector.config import (
    ApiSettings,
    IncidentsSettings,
    LoggingSettings,
    MetricsSettings,
    PollingSettings,
    ServerSettings,
    ShardingSettings,
    StateSettings,
    parse_config,
)
from collector.config_reader import ConfigError

ROOT: Final = Path(__file__).resolve().parents[2]
DOCS: Final = ROOT / "docs"
SECTIONS: Final = {
    "api": ApiSettings,
    "polling": PollingSettings,
    "incidents": IncidentsSettings,
    "server": ServerSettings,
    "logging": LoggingSettings,
    "state": StateSettings,
    "metrics": MetricsSettings,
    "sharding": ShardingSettings,
}
ONE_ORG: Final = "orgs:\n  - name: acme\n    api_key: petra_docs_test_key_0123456789\n"
NOT_A_VALUE: Final = object()
LOG_METHODS: Final = {"debug", "info", "warning", "error", "critical", "exception"}


def table_rows(path: Path, first_header: str) -> list[list[str]]:
    """The body rows of every Markdown table whose first column is `first_header`."""
    rows: list[list[str]] = []
    in_table = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == first_header:
            in_table = True
        elif in_table and not set(cells[0]) <= set("-: "):
            rows.append(cells)
    return rows


def code(cell: str) -> str | None:
    """The text of a cell that is exactly one `code span`, else None."""
    match = re.fullmatch(r"`([^`]+)`", cell)
    return match.group(1) if match else None


def documented_options() -> dict[str, str]:
    """option path -> its default cell, from docs/configuration.md."""
    options: dict[str, str] = {}
    for cells in table_rows(DOCS / "configuration.md", "option"):
        name = code(cells[0])
        assert name is not None, f"option cell is not `code`: {cells[0]}"
        assert name not in options, f"{name} is documented twice"
        options[name] = cells[2]
    return options


def documented_default(cell: str) -> object:
    """A default cell as a value: YAML in a code span, `<version>` filled in."""
    text = code(cell)
    if text is None:
        return NOT_A_VALUE
    return yaml.safe_load(text.replace("<version>", __version__))


def model_default(value: object) -> object:
    """A dataclass default as it is written in YAML (HostPort -> "127.0.0.1:9865"; a list of
    one address as that address, the form the docs show)."""
    if isinstance(value, tuple) and len(value) == 1:
        return model_default(value[0])
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def known_keys(yaml_text: str, path: str) -> set[str]:
    """The keys the parser accepts at `path`, read from its unknown-key error message."""
    with pytest.raises(ConfigError) as raised:
        parse_config(yaml_text)
    for problem in raised.value.problems:
        match = re.search(
            rf": {re.escape(path)}\.zz_unknown: unknown key \(known here: (.*)\)$", problem
        )
        if match:
            return set(match.group(1).split(", "))
    raise AssertionError(f"no unknown-key error for {path}: {raised.value.problems}")


def test_every_option_of_the_parser_is_documented_and_nothing_else() -> None:
    """docs/configuration.md lists exactly the keys the config parser accepts, at every level."""
    documented = set(documented_options())
    top = {name.split(".")[0].removesuffix("[]") for name in documented}
    with pytest.raises(ConfigError) as raised:
        parse_config("zz_unknown: 1\n" + ONE_ORG)
    (problem,) = raised.value.problems
    assert top == set(problem.split("known here: ")[1].rstrip(")").split(", "))
    for section in SECTIONS:
        accepted = known_keys(f"{section}:\n  zz_unknown: 1\n{ONE_ORG}", section)
        assert {f"{section}.{key}" for key in accepted} == {
            name for name in documented if name.startswith(f"{section}.")
        }
    org_keys = known_keys(ONE_ORG + "    zz_unknown: 1\n", "orgs[0]")
    assert {f"orgs[].{key}" for key in org_keys} == {
        name for name in documented if name.startswith("orgs[].")
    }


def test_documented_defaults_are_the_models_defaults() -> None:
    """Every section option's documented default equals the dataclass default in config.py."""
    documented = documented_options()
    for section, model in SECTIONS.items():
        defaults = model()
        for field in dataclasses.fields(model):
            name = f"{section}.{field.name}"
            assert name in documented, f"{name} is in config.py but not in the docs"
            expected = model_default(getattr(defaults, field.name))
            assert documented_default(documented[name]) == expected, name


def test_example_config_shows_every_option_with_its_documented_default() -> None:
    """config.example.yaml has every section option, at the documented default."""
    example: dict[str, Any] = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    documented = documented_options()
    for section in SECTIONS:
        shown = {f"{section}.{key}": value for key, value in example[section].items()}
        assert set(shown) == {name for name in documented if name.startswith(f"{section}.")}
        for name, value in shown.items():
            expected = documented_default(documented[name])
            assert str(value).replace("<version>", __version__) == str(expected), name
    assert "# shard: 0/3" in (ROOT / "config.example.yaml").read_text()
    for org in example["orgs"]:
        assert {f"orgs[].{key}" for key in org} <= set(documented)


def log_events() -> dict[str, set[str]]:
    """event name -> the levels it is logged at, from `<logger>.<level>("event", ...)`, and
    the events a route description names for the scheduler to log (`*_event="..."`,
    warnings)."""
    events: dict[str, set[str]] = {}
    for path in (ROOT / "collector").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.keyword)
                and (node.arg or "").endswith("_event")
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                events.setdefault(node.value.value, set()).add("warning")
                continue
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and re.fullmatch(r"[a-z]+(_[a-z]+)*", node.args[0].value)
            ):
                continue
            receiver = ast.unparse(node.func.value)
            if receiver in {"log", "self._log", "get_logger()", "logger"}:
                level = "error" if node.func.attr == "exception" else node.func.attr
                events.setdefault(node.args[0].value, set()).add(level)
    return events


def test_every_log_event_is_explained_in_troubleshooting() -> None:
    """Each event the code logs has a row in docs/troubleshooting.md, and each row is logged."""
    rows = table_rows(DOCS / "troubleshooting.md", "event")
    documented = {code(cells[0]) for cells in rows}
    emitted = log_events()
    assert len(emitted) >= 15, f"the event scan found too little: {sorted(emitted)}"
    assert set(emitted) - documented == set(), "logged but not explained"
    assert documented - set(emitted) == set(), "explained but never logged"
    for cells in rows:
        event = code(cells[0])
        assert event is not None
        assert {cells[1]} == emitted[event], f"{event} is logged at {emitted[event]}"


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    """Every relative link in README.md and docs/ names a file that exists, and its anchor."""
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.exists(), f"{path.name} links to missing {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{path.name} links to missing anchor {target}"


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_readme_links_every_doc() -> None:
    """README's Documentation section reaches every page under docs/."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    for page in DOCS.glob("*.md"):
        assert f"(docs/{page.name})" in section, f"README does not link docs/{page.name}"
