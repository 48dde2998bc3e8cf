"""The status page's HTML and the status document, without a browser."""

from __future__ import annotations

import re
from typing import Any

import pytest

from collector.page import (
    DEFAULT_REFRESH_SECONDS,
    STATE_LABELS,
    _script_json,
    refresh_seconds,
    relative,
    render_status_page,
)
from collector.state import Health, OrgState
from collector.status import HEALTH_ORDER, status_document
from collector.usage import TenantUsage, UsageReport

NOW = 1_790_000_000.0
HOSTILE = "<img src=x onerror=alert(1)>\"'&"


def document() -> dict[str, Any]:
    tenant = TenantUsage("t1", None, HOSTILE, None, None, None, 10.0, 8.0, 1.0, None, None)
    ok = OrgState("acme", "sha256:0123456789ab", f"file /keys/{HOSTILE}", 300.0)
    ok.record_success(UsageReport(None, None, HOSTILE, 1.0, (tenant,)), NOW - 10, 0.1)
    failing = OrgState("umbrella", "sha256:ba9876543210", "env $KEY", 300.0)
    failing.record_error(Health.ERROR, f"HTTP 500: {HOSTILE}", NOW - 5, None)
    never = OrgState("waiting", "sha256:cccccccccccc", "env $OTHER", 300.0)
    return status_document([ok, failing, never], NOW, 3600.0, shard=None, version="0.1.0")


def test_everything_from_the_api_or_config_is_escaped() -> None:
    """No markup from the API or the config survives into the HTML; its text does, escaped."""
    page = render_status_page(document())
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;&quot;&#x27;&amp;" in page
    body = page.split("<tbody", 1)[1].split("</tbody>", 1)[0]
    assert not re.search(r"<(?!/?(td|tr|a|small|code)\b)", body), "unexpected tag in the rows"


def test_failing_orgs_come_first_and_never_polled_is_not_stale() -> None:
    """Rows are ordered failing first; an org without a success has no stale usage."""
    doc = document()
    assert [o["org"] for o in doc["orgs"]] == ["umbrella", "waiting", "acme"]
    assert [o["stale"] for o in doc["orgs"]] == [False, False, False]
    assert doc["summary"] == {
        "orgs": 3,
        "ok": 1,
        "failing": 1,
        "auth_failing": 0,
        "rate_limited": 0,
        "stale": 0,
        "pending": 1,
    }
    later = status_document([], NOW, 3600.0, shard="0/2", version="x")
    assert later["summary"]["orgs"] == 0


def test_usage_older_than_max_staleness_is_stale() -> None:
    """Usage from a success longer ago than max_staleness is marked stale, on page and JSON."""
    state = OrgState("acme", "sha256:0123456789ab", "env $KEY", 300.0)
    state.record_success(UsageReport(None, None, "Acme", 0.0, ()), NOW - 7200, 0.1)
    state.record_error(Health.ERROR, "timeout", NOW - 1, None)
    doc = status_document([state], NOW, 3600.0, shard=None, version="0.1.0")
    assert doc["orgs"][0]["stale"] is True
    assert doc["summary"]["stale"] == 1
    assert ">ERROR (stale)<" in render_status_page(doc)


def test_relative_and_absolute_times() -> None:
    """Relative times count from the document's own time, in the script's units."""
    now = "2026-11-26T12:00:00Z"
    assert relative(None, now) == ""
    assert relative(now, now) == "now"
    assert relative("2026-11-26T11:59:15Z", now) == "45 s ago"
    assert relative("2026-11-26T12:02:00Z", now) == "in 2 min"
    assert relative("2026-11-26T11:58:30Z", now) == "2 min ago"
    assert relative("2026-11-26T09:00:00Z", now) == "3 h ago"
    assert relative("2026-11-20T12:00:00Z", now) == "6 d ago"
    page = render_status_page(document())
    assert "2026-09-21 14:13:10 UTC" in page  # the absolute time of acme's success


@pytest.mark.parametrize(
    ("query", "seconds"),
    [
        (None, DEFAULT_REFRESH_SECONDS),
        ("1", 1),
        ("0", 0),
        (" 30 ", 30),
        ("abc", DEFAULT_REFRESH_SECONDS),
        ("-1", DEFAULT_REFRESH_SECONDS),
        ("1.5", DEFAULT_REFRESH_SECONDS),
        ("999999", 3600),
    ],
)
def test_refresh_query_parameter(query: str | None, seconds: int) -> None:
    """`?refresh=N`: whole seconds up to an hour, 0 for never, anything else the default."""
    assert refresh_seconds(query) == seconds


def test_refresh_interval_reaches_the_script() -> None:
    """The interval is on <body> for the script, and the footer says it."""
    assert 'data-refresh="1"' in render_status_page(document(), refresh=1)
    never = render_status_page(document(), refresh=0)
    assert 'data-refresh="0"' in never
    assert "does not refresh" in never


def test_json_in_a_script_element_cannot_close_it() -> None:
    """`</script>` in embedded JSON is written as \\u003c/script>."""
    assert "</" not in _script_json({"a": "</script><script>alert(1)</script>"})


def test_page_needs_nothing_from_outside() -> None:
    """No stylesheet, script, font or image is loaded from anywhere (air-gapped networks)."""
    page = render_status_page(document())
    assert not re.search(r"<(link|script|img)[^>]+(href|src)=\"(https?:)?//", page)
    assert "@import" not in page
    assert "url(" not in page
    assert 'rel="icon" href="data:,"' in page


def test_every_health_state_has_a_place_and_a_label() -> None:
    """A new Health state must be given its sort place and its words on the page."""
    assert set(HEALTH_ORDER) == set(Health)
    assert set(STATE_LABELS) == {health.value for health in Health}
