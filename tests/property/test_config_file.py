"""Any config file is a loaded config or a ConfigError: one message per
problem, each naming the file, and never an API key in any of them."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from collector.config import LoadedConfig, parse_config
from collector.config_reader import ConfigError
from tests.leaks import assert_no_key_material
from tests.property.strategies import api_keys, examples, json_values, scalars

SOURCE: Final = "petra.yaml"
SECTIONS: Final = {
    "api": ("base_url", "timeout_seconds", "user_agent", "max_response_bytes"),
    "polling": (
        "interval_seconds",
        "concurrency",
        "max_requests_per_second",
        "requests_per_minute_per_key",
        "auth_failure_interval_seconds",
        "max_staleness_seconds",
        "shutdown_grace_seconds",
    ),
    "server": ("listen",),
    "logging": ("format", "level"),
    "state": ("path", "write_delay_seconds"),
}
ORG_FIELDS: Final = ("name", "api_key_file", "api_key_env", "api_key", "interval_seconds")
NAMES: Final = st.sampled_from(
    [*SECTIONS, "orgs", "shard", *ORG_FIELDS, *(k for keys in SECTIONS.values() for k in keys)]
)


def load(text: str, environ: dict[str, str] | None = None) -> LoadedConfig | ConfigError:
    """The outcome of loading `text`; any other exception fails the test."""
    try:
        return parse_config(text, source=SOURCE, base_dir=Path("/nonexistent"), environ=environ)
    except ConfigError as error:
        check_problems(error.problems)
        return error


def check_problems(problems: list[str]) -> None:
    assert problems, "a ConfigError with no problem in it"
    for problem in problems:
        assert problem.startswith(f"{SOURCE}: "), problem
        assert "Traceback" not in problem


def messages(outcome: LoadedConfig | ConfigError) -> list[str]:
    if isinstance(outcome, ConfigError):
        return outcome.problems
    return list(outcome.warnings)


@st.composite
def config_structures(draw: st.DrawFn, value: st.SearchStrategy[object]) -> object:
    """Mappings shaped like the config file, with `value` in every field."""
    sections = {
        name: draw(st.fixed_dictionaries({}, optional=dict.fromkeys(keys, value)) | value)
        for name, keys in SECTIONS.items()
        if draw(st.booleans())
    }
    org = st.fixed_dictionaries({}, optional=dict.fromkeys(ORG_FIELDS, value))
    if draw(st.booleans()):
        sections["orgs"] = draw(st.lists(org | value, max_size=3) | value)
    if draw(st.booleans()):
        sections["shard"] = draw(value)
    return sections


def dump(structure: object) -> str:
    return yaml.safe_dump(structure, allow_unicode=True)


@settings(max_examples=examples(200))
@given(st.text(max_size=200))
# Well-formed YAML that PyYAML cannot build (found while writing these tests).
@example("a: " + "1" * 5000)
@example("a: 2026-13-45")
@example("a: !!timestamp x")
@example("? [1, 2]\n: x")
@example("{[1]: 2}")
@example("[" * 800)  # deeper than the recursion limit
def test_any_text(text: str) -> None:
    """Arbitrary text, YAML or not: loaded, or a ConfigError naming the file."""
    load(text)


@settings(max_examples=examples(200))
@given(
    st.lists(
        st.sampled_from(
            ["api:", "  base_url: x", "orgs:", "  - name: a", "    api_key: k", "- [", "{", "&a"]
        )
        | st.text(max_size=15),
        max_size=8,
    ).map("\n".join)
)
def test_broken_yaml_lines(text: str) -> None:
    """Config-looking lines mixed with garbage: anchors, flow collections, bad indentation."""
    load(text)


@settings(max_examples=examples(100))
@given(config_structures(scalars() | st.lists(scalars(), max_size=2)))
def test_config_shaped_structures(structure: object) -> None:
    """Every section and field present or not, holding any value: never a traceback."""
    load(dump(structure))


@settings(max_examples=examples(100))
@given(json_values(NAMES))
def test_any_structure(structure: object) -> None:
    """Whatever YAML can hold at the top, with config names sprinkled in as keys."""
    load(dump(structure))


@settings(max_examples=examples(120))
@given(st.data(), api_keys())
def test_a_key_in_any_field_is_never_echoed(data: st.DataObject, key: str) -> None:
    """An API key pasted into any field (or as a field's name) appears in no message."""
    value = st.just(key) | scalars()
    structure = data.draw(config_structures(value | st.lists(value, max_size=2)))
    if data.draw(st.booleans()) and isinstance(structure, dict):
        structure[key] = data.draw(value)  # a key used as a field name
    environ = {"PETRA_KEY": key, key: key}
    outcome = load(dump(structure), environ)
    assert_no_key_material([key], *messages(outcome))
    if isinstance(outcome, LoadedConfig):
        assert_no_key_material([key], repr(outcome.settings))
