"""The `billing:` section: off by default, validated, warned about above Petra's limit."""

from __future__ import annotations

from pathlib import Path

from collector.config import BillingSettings
from tests.unit.test_config_incidents import ONE_ORG, load, problems


def test_billing_is_off_by_default(tmp_path: Path) -> None:
    """No `billing:` section: off, each tenant daily, half a request a minute per key."""
    loaded = load(tmp_path, ONE_ORG)
    assert loaded.settings.billing == BillingSettings(
        enabled=False, interval_seconds=86400.0, requests_per_minute_per_key=0.5
    )


def test_billing_settings_are_read(tmp_path: Path) -> None:
    text = (
        "billing: {enabled: true, interval_seconds: 3600, requests_per_minute_per_key: 0.25}\n"
        + ONE_ORG
    )
    loaded = load(tmp_path, text)
    assert loaded.settings.billing == BillingSettings(True, 3600.0, 0.25)
    assert loaded.warnings == ()


def test_a_budget_above_petras_is_warned_about(tmp_path: Path) -> None:
    loaded = load(tmp_path, "billing: {requests_per_minute_per_key: 2}\n" + ONE_ORG)
    [warning] = loaded.warnings
    assert "billing.requests_per_minute_per_key" in warning
    assert "above Petra's published limit of 1 per minute on /v1/billable-users" in warning


def test_bad_values_are_named_by_path(tmp_path: Path) -> None:
    text = (
        "billing: {enabled: maybe, interval_seconds: 0, requests_per_minute_per_key: -1, x: 1}\n"
        + ONE_ORG
    )
    found = problems(tmp_path, text)
    assert any(p.startswith("billing.enabled: ") for p in found)
    assert any(p.startswith("billing.interval_seconds: must be greater than 0") for p in found)
    assert any(p.startswith("billing.requests_per_minute_per_key: must be greater") for p in found)
    assert any(p.startswith("billing.x: unknown key") for p in found)
