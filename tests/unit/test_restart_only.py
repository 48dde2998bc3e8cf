"""What a reload leaves until a restart: every field of `server` and `metrics`, said by
`config_needs_restart` when the file changes it."""

from __future__ import annotations

from dataclasses import fields, replace

from collector.app import _restart_only
from collector.config import DEFAULT_PORT, HostPort, MetricsSettings, ServerSettings, Settings


def test_every_server_and_metrics_field_is_compared() -> None:
    settings = Settings(orgs=())
    names = {name for name, _running, _configured in _restart_only(settings, settings)}
    assert names == {f"server.{f.name}" for f in fields(ServerSettings)} | {
        f"metrics.{f.name}" for f in fields(MetricsSettings)
    }


def test_only_the_changed_ones_differ_and_addresses_read_as_written() -> None:
    old = Settings(orgs=())
    new = replace(
        old,
        server=replace(old.server, max_connections=64, listen=(HostPort("127.0.0.2", 9100),)),
        metrics=MetricsSettings(tenant_name_labels=False),
    )
    changed = {name: (was, now) for name, was, now in _restart_only(old, new) if was != now}
    assert changed == {
        "server.max_connections": (512, 64),
        "server.listen": (f"127.0.0.1:{DEFAULT_PORT}", "127.0.0.2:9100"),
        "metrics.tenant_name_labels": (True, False),
    }
