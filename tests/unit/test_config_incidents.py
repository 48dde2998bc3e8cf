"""The `incidents:` section: off by default, validated, and inside each key's route budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import IncidentsSettings, LoadedConfig, load_config
from collector.config_reader import ConfigError

KEY = "petra_live_Zq8xW2mN4vB7cR1tY6uI0oP3aS5dF9gH"
OTHER_KEY = "petra_live_Kj3hG5fD7sA9pO1iU2yT4rE6wQ8zXcV"
ONE_ORG = "orgs:\n  - {name: acme, api_key_file: acme.key}\n"
TWO_ORGS_ONE_KEY = (
    "orgs:\n  - {name: acme, api_key_file: acme.key}\n"
    "  - {name: acme-eu, api_key_file: acme.key}\n"
    "  - {name: globex, api_key_file: globex.key}\n"
)


def load(tmp_path: Path, text: str) -> LoadedConfig:
    (tmp_path / "acme.key").write_text(KEY)
    (tmp_path / "globex.key").write_text(OTHER_KEY)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path, environ={})


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    source = str(tmp_path / "config.yaml") + ": "
    return [problem.removeprefix(source) for problem in caught.value.problems]


def test_incidents_are_off_by_default(tmp_path: Path) -> None:
    """No `incidents:` section: off, every 300 s, 30 days back, as the contract says."""
    loaded = load(tmp_path, ONE_ORG)
    assert loaded.settings.incidents == IncidentsSettings(
        enabled=False, interval_seconds=300.0, lookback_days=30.0
    )
    assert loaded.warnings == ()


def test_every_incidents_option(tmp_path: Path) -> None:
    text = "incidents:\n  enabled: true\n  interval_seconds: 120\n  lookback_days: 7.5\n" + ONE_ORG
    assert load(tmp_path, text).settings.incidents == IncidentsSettings(True, 120.0, 7.5)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("{enabled: yes please}", "incidents.enabled: must be true or false, not a string"),
        ("{enabled: 1}", "incidents.enabled: must be true or false, not a number"),
        ("{interval_seconds: 0}", "incidents.interval_seconds: must be greater than 0, got 0"),
        ("{interval_seconds: soon}", "incidents.interval_seconds: must be a number, not a string"),
        ("{lookback_days: -3}", "incidents.lookback_days: must be greater than 0, got -3"),
        ("{lookback: 30}", "incidents.lookback: unknown key (known here: enabled, "),
        ("[on]", "incidents: must be a mapping, not a list"),
    ],
)
def test_bad_incidents_settings_are_named(tmp_path: Path, section: str, expected: str) -> None:
    [problem] = problems(tmp_path, f"incidents: {section}\n" + ONE_ORG)
    assert problem.startswith(expected), problem


def test_interval_must_fit_the_per_key_route_budget(tmp_path: Path) -> None:
    """Two orgs share a key: 2 x 60/20 = 6 requests a minute on /v1/incidents is over 5."""
    text = "incidents: {enabled: true, interval_seconds: 20}\n" + TWO_ORGS_ONE_KEY
    [problem] = problems(tmp_path, text)
    assert problem.startswith("incidents.interval_seconds: 20 s needs 6.00 requests per minute")
    assert "use an interval of at least 24 s" in problem


def test_interval_exactly_at_the_budget_is_accepted(tmp_path: Path) -> None:
    """2 x 60/24 = 5: the incidents route's own budget, whatever usage spends of its own."""
    text = (
        "polling: {interval_seconds: 24}\n"
        "incidents: {enabled: true, interval_seconds: 24}\n" + TWO_ORGS_ONE_KEY
    )
    assert load(tmp_path, text).settings.incidents.interval_seconds == 24.0


def test_budget_is_not_checked_while_incidents_are_off(tmp_path: Path) -> None:
    text = "incidents: {enabled: false, interval_seconds: 1}\n" + TWO_ORGS_ONE_KEY
    assert load(tmp_path, text).settings.incidents.enabled is False


def test_interval_longer_than_half_the_staleness_is_warned_about(tmp_path: Path) -> None:
    text = (
        "polling: {max_staleness_seconds: 600}\n"
        "incidents: {enabled: true, interval_seconds: 400}\n" + ONE_ORG
    )
    [warning] = load(tmp_path, text).warnings
    assert "incidents.interval_seconds: 400 s is more than half" in warning
