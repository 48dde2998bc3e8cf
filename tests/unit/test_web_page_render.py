"""The status page's HTML, its fragments and the status document, without a browser."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path
from typing import Final

import pytest

from collector.petra_usage import TenantUsage, UsageReport
from collector.state import OrgState
from collector.state_records import Health
from collector.web_page import (
    COLUMNS,
    DEFAULT_REFRESH_SECONDS,
    load_assets,
    refresh_seconds,
    relative,
    render_detail_fragment,
    render_rows_fragment,
    render_status_page,
)
from collector.web_status import (
    HEALTH_LABELS,
    HEALTH_ORDER,
    StatusDocument,
    TenantStatus,
    org_detail,
    status_document,
)
from tests.outcomes import saved_org, succeed

NOW = 1_790_000_000.0
HOSTILE = "<img src=x onerror=alert(1)>\"'&"
ROOT: Final = Path(__file__).resolve().parents[2]
STATIC: Final = ROOT / "collector" / "static"


def _tenant(tenant_id: str, name: str | None, billable: float, paused: bool | None) -> TenantUsage:
    return TenantUsage(tenant_id, None, name, None, None, paused, 10.0, billable, 1.0, None, None)


def states() -> list[OrgState]:
    ok = OrgState("acme", "sha256:0123456789ab", f"file /keys/{HOSTILE}", 300.0)
    tenants = (_tenant("t1", f"Zed {HOSTILE}", 8.0, False), _tenant("t2", "alpha", 2.5, None))
    succeed(ok, UsageReport("2026-09-21", None, HOSTILE, 1.0, tenants), NOW - 10, 0.1)
    failing = OrgState("umbrella", "sha256:ba9876543210", "env $KEY", 300.0)
    failing.record_error("usage", Health.ERROR, f"HTTP 500: {HOSTILE}", NOW - 5, None)
    never = OrgState("waiting", "sha256:cccccccccccc", "env $OTHER", 300.0)
    return [ok, failing, never]


def document() -> StatusDocument:
    return status_document(states(), NOW, 3600.0, shard=None, version="0.1.0")


def body_rows(html: str) -> str:
    return html.split('<tbody id="rows">', 1)[1].split("</tbody>", 1)[0]


def test_everything_from_the_api_or_config_is_escaped() -> None:
    """No markup from the API or the config survives into the HTML; its text does, escaped."""
    page = render_status_page(document())
    detail = render_detail_fragment(org_detail(states()[0], NOW, 3600.0))
    for html in (page, render_rows_fragment(document()), detail):
        assert "<img" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;&quot;&#x27;&amp;" in html
    assert not re.search(r"<(?!/?(td|tr|a|small|code)\b)", body_rows(page)), "unexpected tag"


class _Inline(HTMLParser):
    """Collects what a strict CSP would block: inline script or style, handlers, js: URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _value in attrs}
        if tag == "style" or (tag == "script" and "src" not in names):
            self._open = tag
            self.found.append(f"<{tag}>")
        self.found += [f"{tag} {n}=" for n, _v in attrs if n == "style" or n.startswith("on")]
        self.found += [f"{tag} {v}" for _n, v in attrs if (v or "").startswith("javascript:")]

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open and data.strip():
            self.found.append(f"<{self._open}> {data[:20]}")


def test_no_inline_script_style_or_handler() -> None:
    """The page runs under `script-src 'self'; style-src 'self'`: nothing inline at all."""
    detail = render_detail_fragment(org_detail(states()[0], NOW, 3600.0))
    for html in (render_status_page(document()), render_rows_fragment(document()), detail):
        parser = _Inline()
        parser.feed(html)
        assert parser.found == []
    planted = _Inline()
    planted.feed('<p style="x" onclick="y"></p><script>go()</script>')
    assert planted.found == ["p style=", "p onclick=", "<script>", "<script> go()"]


def test_page_needs_nothing_from_outside() -> None:
    """Its style, script and icon come from this server (relative URLs): air-gapped works."""
    page = render_status_page(document())
    loaded = re.findall(r"<(?:link|script|img)[^>]+(?:href|src)=\"([^\"]+)\"", page)
    assert sorted(loaded) == ["static/favicon.svg", "static/status.css", "static/status.js"]
    css = (STATIC / "status.css").read_text()
    assert "@import" not in css
    assert "url(" not in css
    assert "'page/rows'" in (STATIC / "status.js").read_text()


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
        "restored": 0,
    }
    later = status_document([], NOW, 3600.0, shard="0/2", version="x")
    assert later["summary"]["orgs"] == 0
    assert ' id="empty" class="muted">' in render_status_page(later)  # shown, not hidden


def test_usage_older_than_max_staleness_is_stale() -> None:
    """Usage from a success longer ago than max_staleness is marked stale, on page and JSON."""
    state = OrgState("acme", "sha256:0123456789ab", "env $KEY", 300.0)
    succeed(state, UsageReport(None, None, "Acme", 0.0, ()), NOW - 7200, 0.1)
    state.record_error("usage", Health.ERROR, "timeout", NOW - 1, None)
    doc = status_document([state], NOW, 3600.0, shard=None, version="0.1.0")
    assert doc["orgs"][0]["stale"] is True
    assert doc["summary"]["stale"] == 1
    assert ">ERROR (stale)<" in render_status_page(doc)


def test_the_refresh_gets_the_very_rows_of_the_page() -> None:
    """`page/rows` holds the summary and rows that `/` shows, rendered by the same code."""
    page = render_status_page(document())
    fragment = render_rows_fragment(document())
    assert body_rows(fragment) == body_rows(page)
    summary = re.compile(r'<div class="summary" id="summary">.*?</div>')
    assert summary.findall(fragment) == summary.findall(page)
    assert "<title>(1 failing) petra-collector</title>" in fragment
    assert '<span id="updated">2026-09-21 14:13:20 UTC</span>' in fragment


def test_filter_works_without_javascript() -> None:
    """`/?q=` hides the rows that do not match (any cell's text, any case) and says how many."""
    page = render_status_page(document(), query="  ENV $ ")
    visible = re.findall(r'<tr data-org="([^"]+)"[^>]*?(?<! hidden)>', body_rows(page))
    assert visible == ["umbrella", "waiting"]
    assert ">2 of 3 shown<" in page
    assert 'name="q" type="search" value="  ENV $ "' in page
    assert " hidden" not in body_rows(render_status_page(document()))
    kept = render_status_page(document(), refresh=2, query="x")
    assert '<input type="hidden" name="refresh" value="2">' in kept


def test_detail_row_lists_the_tenants_sorted_by_name() -> None:
    """The tenant row: a caption, then one line per tenant by name; paused as yes/no."""
    html = render_detail_fragment(org_detail(states()[0], NOW, 3600.0))
    assert f'<td colspan="{len(COLUMNS)}"><p>2 tenants of &lt;img' in html
    assert ", as of 2026-09-21</p>" in html
    tenant_rows = re.findall(r"<tbody><tr>.*", html)[0].split("</tr>")
    assert "alpha" in tenant_rows[0]
    assert ">2.5<" in tenant_rows[0]
    assert ">no<" in tenant_rows[1]
    assert ">8<" in tenant_rows[1]
    empty = render_detail_fragment(org_detail(states()[2], NOW, 3600.0))
    assert "No tenants in the last report." in empty


def test_relative_and_absolute_times() -> None:
    """Relative times count from the document's own time."""
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


def test_every_health_state_has_a_place_a_label_and_a_style() -> None:
    """A new Health state must be given its sort place, its words and its colour and shape."""
    assert set(HEALTH_ORDER) == set(Health)
    assert set(HEALTH_LABELS) == set(Health)
    css = (STATIC / "status.css").read_text()
    for health in Health:
        assert f".s-{health.value}" in css, health


def test_troubleshooting_names_each_state_as_the_code_does() -> None:
    """docs/troubleshooting.md's state table: every identifier with the label people see."""
    documented: dict[str, str] = {}
    in_table = False
    for line in (ROOT / "docs" / "troubleshooting.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        in_table = line.startswith("|") and (in_table or cells[:2] == ["state", "page state"])
        if in_table and cells[0].startswith("`"):
            documented[cells[0].strip("`")] = cells[1]
    assert documented == {health.value: label for health, label in HEALTH_LABELS.items()}


def test_state_symbols_are_in_every_font() -> None:
    """Only geometric shapes every font has (DejaVu, Liberation...), no emoji or rare block.

    U+29D7 (the old rate-limited hourglass) showed as an empty box in Debian's Chromium.
    """
    css = (STATIC / "status.css").read_text()
    symbols = {int(code, 16) for code in re.findall(r'content:"\\([0-9A-Fa-f]{4})', css)}
    assert symbols == {0x25CB, 0x25CF, 0x25A0, 0x25B2}  # ○ ● ■ ▲


def test_tenant_status_has_the_fields_of_a_tenant() -> None:
    """`/api/v1/orgs/NAME` lists every field of a parsed tenant, no more, no fewer."""
    assert list(TenantStatus.__annotations__) == list(TenantUsage._fields)


def test_static_files_are_package_data_with_etags() -> None:
    """Every file of collector/static is loaded, typed, and matched by pyproject's package-data."""
    assets = load_assets()
    assert set(assets) == {path.name for path in STATIC.iterdir()}
    assert assets["status.js"].content_type.startswith("text/javascript")
    assert assets["status.css"].content_type.startswith("text/css")
    assert len({asset.etag for asset in assets.values()}) == len(assets)
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["collector"]
    for name in assets:
        assert any(fnmatch(f"static/{name}", pattern) for pattern in patterns), name


def test_restored_orgs_are_marked_until_their_first_poll() -> None:
    """An org served from the state file says so on the page and in the JSON, until polled."""
    state = OrgState("acme", "sha256:0123456789ab", "env $KEY", 300.0)
    saved = saved_org("sha256:0123456789ab", Health.OK, last_success_at=NOW - 60)
    state.restore(saved, wall_now=NOW, monotonic_now=0.0, counters=False)
    doc = status_document([state], NOW, 3600.0, shard=None, version="0.1.0")
    assert doc["orgs"][0]["restored"] is True
    assert doc["summary"]["restored"] == 1
    assert ">OK (restored)<" in render_status_page(doc)
    succeed(state, UsageReport(None, None, "Acme", 0.0, ()), NOW, 0.1)
    doc = status_document([state], NOW, 3600.0, shard=None, version="0.1.0")
    assert doc["orgs"][0]["restored"] is False
    assert ">OK<" in render_status_page(doc)
