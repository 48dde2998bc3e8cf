"""The status page at `/`, rendered here and only here: rows, summary and tenants.

The server renders the whole page from web_status.py's document (the one
`/api/v1/status` serves), so it works without JavaScript and in an air-gapped
network; its style and script are package data (collector/static), loaded from
this server only, so the page runs under a strict Content-Security-Policy with
no inline script or style. The script refreshes the page every `refresh`
seconds (15 by default, `/?refresh=N` to change, 0 to stop) by fetching
`page/rows`, the same rows rendered by the same code, and swapping them in;
a click on an org's name puts `page/orgs/NAME` (its tenants) under its row.
Without JavaScript the filter is a form (`/?q=TEXT`, rows that do not match
are hidden here) and the org link opens `/api/v1/orgs/NAME` as JSON.

Everything from the API or the config is escaped here. Relative times ("3 min
ago") are counted from the document's `generated_at`, the server's clock, so a
browser with a wrong clock still reads them right; the absolute time (UTC)
stands under each one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from importlib import resources
from types import MappingProxyType
from typing import Final
from urllib.parse import quote

from collector.config import DEFAULT_TELEMETRY_PATH
from collector.state_records import Health
from collector.web_status import (
    HEALTH_LABELS,
    BillingStatus,
    IncidentsStatus,
    OrgDetail,
    OrgStatus,
    StatusDocument,
    Summary,
    TenantIncidentsStatus,
    TenantStatus,
    is_failing,
)

DEFAULT_REFRESH_SECONDS: Final = 15
MAX_REFRESH_SECONDS: Final = 3600
ASCII_DIGITS: Final = re.compile(r"[0-9]+")
DOCS_URL: Final = "https://github.com/petra-collector/petra-collector/tree/main/docs"
TROUBLESHOOTING_URL: Final = (
    "https://github.com/petra-collector/petra-collector/blob/main/docs/troubleshooting.md"
)

COLUMNS: Final = (
    "Org",
    "State",
    "Organization",
    "Tenants",
    "Billable users",
    "Last success",
    "Last error",
    "Next poll",
    "Incidents",
    "Billing",
    "Key",
)

INCIDENT_COLUMNS: Final = ("Tenant", "Petra ID", "Not remediated", "By status", "Newest")

BILLING_COLUMNS: Final = ("Tenant", "Petra ID", "Projected units", "Billable users", "Asked")

TENANT_COLUMNS: Final = (
    "Tenant",
    "Petra ID",
    "Microsoft tenant",
    "Service",
    "Status",
    "Paused",
    "Licensed",
    "Billable",
)


def refresh_seconds(query_value: str | None) -> int:
    """The `?refresh=N` query parameter: whole seconds 0..3600 (0: no refresh), else 15.

    ASCII digits only (`str.isdigit` also takes `²`, which `int` refuses); a number of
    any length is read, so thousands of digits are not handed to `int` either."""
    digits = "" if query_value is None else query_value.strip()
    if not ASCII_DIGITS.fullmatch(digits):
        return DEFAULT_REFRESH_SECONDS
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(MAX_REFRESH_SECONDS)):
        return MAX_REFRESH_SECONDS
    return min(int(significant), MAX_REFRESH_SECONDS)


def _text(value: object) -> str:
    return "" if value is None else escape(str(value))


def _number(value: float | None) -> str:
    """Numbers as people write them: 118.0 -> 118, 118.5 stays."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _seconds(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def relative(iso: str | None, now_iso: str) -> str:
    """How long ago or ahead ("3 min ago", "in 12 s"), counted from the document's own time."""
    if not iso:
        return ""
    s = _seconds(now_iso) - _seconds(iso)
    a = abs(s)
    if a == 0:
        return "now"
    if a < 90:
        text = f"{a} s"
    elif a < 5400:
        text = f"{(a + 30) // 60} min"
    elif a < 129600:
        text = f"{(a + 1800) // 3600} h"
    else:
        text = f"{(a + 43200) // 86400} d"
    return f"{text} ago" if s > 0 else f"in {text}"


def absolute(iso: str | None) -> str:
    return "" if not iso else iso.replace("T", " ").replace("Z", " UTC")


@dataclass(frozen=True, slots=True)
class Cell:
    """One table cell as text; `html` is how `text` is marked up (escaped already)."""

    label: str
    text: str
    cls: str = ""
    small: str = ""
    title: str = ""
    html: str | None = None

    def render(self) -> str:
        attributes = f' data-label="{escape(self.label)}"'
        if self.cls:
            attributes += f' class="{escape(self.cls)}"'
        if self.title:
            attributes += f' title="{escape(self.title)}"'
        content = _text(self.text) if self.html is None else self.html
        extra = f"<small>{_text(self.small)}</small>" if self.small else ""
        return f"<td{attributes}>{content}{extra}</td>"


def _when(label: str, iso: str | None, now: str, none: str) -> Cell:
    if not iso:
        return Cell(label, none)
    return Cell(label, relative(iso, now), small=absolute(iso), title=iso)


def state_label(org: OrgStatus) -> str:
    notes = [note for note, on in (("stale", org["stale"]), ("restored", org["restored"])) if on]
    label = HEALTH_LABELS[org["state"]]
    return f"{label} ({', '.join(notes)})" if notes else label


def org_cells(org: OrgStatus, now: str) -> list[Cell]:
    """The cells of an org's row, in COLUMNS order."""
    failures = org["consecutive_failures"]
    error_at = org["last_error_at"]
    name = _text(org["org"])
    return [
        Cell(
            "Org",
            org["org"],
            cls="org",
            html=f'<a class="org-link" href="api/v1/orgs/{escape(quote(org["org"], safe=""))}"'
            f' title="show or hide its tenants" aria-expanded="false">{name}</a>',
        ),
        Cell(
            "State",
            state_label(org),
            cls=f"state s-{org['state'].value}",
            small=f"{failures} failures in a row" if failures > 1 else "",
        ),
        Cell("Organization", org["organization_name"] or ""),
        Cell("Tenants", _number(org["tenants"]), cls="num"),
        Cell("Billable users", _number(org["billable_users"]), cls="num"),
        _when("Last success", org["last_success"], now, "never"),
        Cell(
            "Last error",
            org["last_error"] or "",
            small=f"{relative(error_at, now)}, {absolute(error_at)}" if error_at else "",
            title=error_at or "",
        ),
        _when("Next poll", org["next_poll"], now, ""),
        incidents_cell(org["incidents"]),
        billing_cell(org["billing"]),
        Cell(
            "Key",
            org["key_fingerprint"],
            cls="key",
            small=org["key_source"],
            html=f"<code>{_text(org['key_fingerprint'])}</code>",
        ),
    ]


def incidents_cell(side: IncidentsStatus | None) -> Cell:
    """How many incidents of the window are not remediated, of how many; empty while off."""
    if side is None:
        return Cell("Incidents", "", small="not polled")
    notes = [] if side["state"] is Health.OK else [HEALTH_LABELS[side["state"]]]
    if side["truncated"]:
        notes.append("at least: the answer was full")
    total, open_ = side["total"], side["not_remediated"]
    if total is None or open_ is None:
        return Cell("Incidents", "", small=", ".join(notes or ["no counts"]))
    text = f"{open_} not remediated" if open_ else "all remediated" if total else "none"
    small = ", ".join([f"{total} in the window", *notes])
    return Cell("Incidents", text, cls="incidents-open" if open_ else "", small=small)


def billing_cell(side: BillingStatus | None) -> Cell:
    """The projected units of the org's tenants summed, and how many are stale."""
    if side is None:
        return Cell("Billing", "", small="not polled")
    notes = [] if side["state"] in {Health.OK, Health.PENDING} else [HEALTH_LABELS[side["state"]]]
    if side["tenants_stale"]:
        stale = side["tenants_stale"]
        notes.append(f"{stale} tenant{'' if stale == 1 else 's'} stale")
    units = side["projected_units"]
    if units is None:
        return Cell("Billing", "", cls="num", small=", ".join(notes or ["no figures yet"]))
    small = ", ".join([f"projected units of {side['tenants_with_figures']} tenants", *notes])
    return Cell("Billing", _number(units), cls="num", small=small)


def matches(cells: Sequence[Cell], query: str) -> bool:
    """The filter: `query` anywhere in the row's text, as the script matches it."""
    needle = query.strip().casefold()
    return not needle or needle in "".join(c.text + c.small for c in cells).casefold()


def _row(org: OrgStatus, cells: Sequence[Cell], *, hidden: bool) -> str:
    attributes = f' data-org="{_text(org["org"])}" data-state="{org["state"].value}"'
    if is_failing(org["state"]):
        attributes += ' class="failing"'
    if hidden:
        attributes += " hidden"
    return f"<tr{attributes}>{''.join(c.render() for c in cells)}</tr>"


def _title(summary: Summary) -> str:
    failing = summary["failing"]
    return (f"({failing} failing) " if failing else "") + "petra-collector"


def _summary(document: StatusDocument) -> str:
    summary = document["summary"]
    facts = (
        ("orgs", summary["orgs"], "orgs", ""),
        ("ok", summary["ok"], "OK", ""),
        ("failing", summary["failing"], "failing", "bad"),
        ("auth_failing", summary["auth_failing"], "keys rejected", "bad"),
        ("rate_limited", summary["rate_limited"], "rate-limited", "warn"),
        ("stale", summary["stale"], "stale", "warn"),
        ("pending", summary["pending"], "pending", ""),
        ("restored", summary["restored"], "restored from the state file", ""),
    )
    spans = "".join(
        ('<span class="' + tone + '">' if tone and count else "<span>")
        + f'<b id="sum-{key}">{count}</b> {label}</span>'
        for key, count, label, tone in facts
    )
    shard = document["shard"]
    where = (
        f"<span>shard <b>{_text(shard)}</b></span>"
        if shard
        else '<span class="muted">all orgs (no shard)</span>'
    )
    return f'<div class="summary" id="summary">{spans}{where}</div>'


@dataclass(frozen=True, slots=True)
class _Live:
    """What a refresh replaces: the summary, the rows, the "no org" note and the time."""

    summary: str
    rows: str
    empty: str
    updated: str
    shown: int


def _live(document: StatusDocument, query: str) -> _Live:
    now = document["generated_at"]
    rows = []
    shown = 0
    for org in document["orgs"]:
        cells = org_cells(org, now)
        hit = matches(cells, query)
        shown += 1 if hit else 0
        rows.append(_row(org, cells, hidden=not hit))
    hidden = " hidden" if document["orgs"] else ""
    return _Live(
        summary=_summary(document),
        rows=f'<tbody id="rows">{"".join(rows)}</tbody>',
        empty=f'<p id="empty" class="muted"{hidden}>'
        "No org in this instance (check the config, or this replica's shard).</p>",
        updated=f'<span id="updated">{_text(absolute(now))}</span>',
        shown=shown,
    )


def render_rows_fragment(document: StatusDocument) -> str:
    """`page/rows`: the parts of the page a refresh replaces, as a small HTML document."""
    live = _live(document, "")
    return (
        f"<!doctype html>\n<title>{_text(_title(document['summary']))}</title>\n"
        f"{live.summary}\n<table>{live.rows}</table>\n{live.empty}\n<p>{live.updated}</p>\n"
    )


def _tenant_cells(tenant: TenantStatus) -> list[Cell]:
    paused = tenant["is_paused"]
    values = (
        tenant["display_name"] or "",
        tenant["tenant_id"],
        tenant["microsoft_tenant_id"] or "",
        tenant["service"] or "",
        tenant["billable_status"] or "",
        "" if paused is None else ("yes" if paused else "no"),
    )
    numbers = (tenant["licensed_users"], tenant["billable_users"])
    titles = iter(TENANT_COLUMNS)
    return [Cell(next(titles), text) for text in values] + [
        Cell(next(titles), _number(number), cls="num") for number in numbers
    ]


def _tenant_table(tenants: Sequence[TenantStatus]) -> str:
    head = "".join(f"<th scope=col>{escape(title)}</th>" for title in TENANT_COLUMNS)
    body = "".join(
        f"<tr>{''.join(cell.render() for cell in _tenant_cells(tenant))}</tr>"
        for tenant in sorted(tenants, key=lambda t: (t["display_name"] or "").casefold())
    )
    return f'<table class="tenants"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _incident_table(detail: OrgDetail) -> str:
    """Per tenant with incidents in the window: how many are not remediated, by status."""
    names = {t["tenant_id"]: t["display_name"] or "" for t in detail["tenant_list"]}
    head = "".join(f"<th scope=col>{escape(title)}</th>" for title in INCIDENT_COLUMNS)
    rows = sorted(detail["incident_tenants"], key=lambda t: (-t["not_remediated"], t["tenant_id"]))
    body = "".join(
        f"<tr>{''.join(cell.render() for cell in _incident_cells(tenant, names))}</tr>"
        for tenant in rows
    )
    return f'<table class="tenants"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _incident_cells(tenant: TenantIncidentsStatus, names: dict[str, str]) -> list[Cell]:
    by_status = ", ".join(f"{status} {count}" for status, count in tenant["by_status"].items())
    not_remediated = tenant["not_remediated"]
    return [
        Cell("Tenant", names.get(tenant["tenant_id"], "") or "(not in the usage report)"),
        Cell("Petra ID", tenant["tenant_id"]),
        Cell(
            "Not remediated",
            str(not_remediated),
            cls="num incidents-open" if not_remediated else "num",
        ),
        Cell("By status", by_status),
        Cell("Newest", absolute(tenant["last_incident_at"])),
    ]


def _incidents_part(detail: OrgDetail) -> str:
    side = detail["incidents"]
    if side is None:
        return ""
    if not detail["incident_tenants"]:
        return "<p>No incident in the window.</p>" if side["total"] is not None else ""
    lower = " (at least: the last answer was full)" if side["truncated"] else ""
    count = len(detail["incident_tenants"])
    caption = f"Incidents of {count} tenant{'' if count == 1 else 's'}{lower}"
    return f"<p>{_text(caption)}</p>{_incident_table(detail)}"


def _billing_part(detail: OrgDetail) -> str:
    """Per tenant with billing figures: projected units, billable users, when asked."""
    if detail["billing"] is None or not detail["billing_tenants"]:
        return ""
    names = {t["tenant_id"]: t["display_name"] or "" for t in detail["tenant_list"]}
    head = "".join(f"<th scope=col>{escape(title)}</th>" for title in BILLING_COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(
            cell.render()
            for cell in (
                Cell("Tenant", names.get(tenant["tenant_id"], "")),
                Cell("Petra ID", tenant["tenant_id"]),
                Cell("Projected units", _number(tenant["projected_units"]), cls="num"),
                Cell("Billable users", _number(tenant["billable_users_listed"]), cls="num"),
                Cell("Asked", absolute(tenant["asked_at"])),
            )
        )
        + "</tr>"
        for tenant in detail["billing_tenants"]
    )
    count = len(detail["billing_tenants"])
    caption = f"Billing figures of {count} tenant{'' if count == 1 else 's'}"
    table = f'<table class="tenants"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f"<p>{_text(caption)}</p>{table}"


def render_detail_row(detail: OrgDetail) -> str:
    """The row under an org's row: its tenants as last reported, and their incidents."""
    tenants = detail["tenant_list"]
    if tenants:
        count = len(tenants)
        caption = (
            f"{count} tenant{'' if count == 1 else 's'} of "
            f"{detail['organization_name'] or detail['org']}"
            + (f", as of {detail['as_of']}" if detail["as_of"] else "")
        )
        content = f"<p>{_text(caption)}</p>{_tenant_table(tenants)}"
    else:
        content = "No tenants in the last report."
    content += _incidents_part(detail)
    content += _billing_part(detail)
    return (
        f'<tr class="detail" data-detail-for="{_text(detail["org"])}">'
        f'<td colspan="{len(COLUMNS)}">{content}</td></tr>'
    )


def render_detail_fragment(detail: OrgDetail) -> str:
    """`page/orgs/NAME`: an org's tenant row, in a table so that it parses as a row."""
    return f"<!doctype html>\n<table><tbody>{render_detail_row(detail)}</tbody></table>\n"


def render_status_page(
    document: StatusDocument,
    *,
    refresh: int = DEFAULT_REFRESH_SECONDS,
    query: str = "",
    metrics_path: str = DEFAULT_TELEMETRY_PATH,
) -> str:
    """The page for web_status.py's document; `refresh` in seconds (0: never), `query` filters.

    `metrics_path` is where this daemon serves /metrics (`--web.telemetry-path`)."""
    live = _live(document, query)
    head = "".join(f"<th scope=col>{escape(title)}</th>" for title in COLUMNS)
    every = f"refreshes every {refresh} s" if refresh else "does not refresh (refresh=0)"
    keep_refresh = (
        f'<input type="hidden" name="refresh" value="{refresh}">'
        if refresh != DEFAULT_REFRESH_SECONDS
        else ""
    )
    shown = f"{live.shown} of {len(document['orgs'])} shown" if query.strip() else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="static/status.css">
<script src="static/status.js" defer></script>
<title>{_text(_title(document["summary"]))}</title></head>
<body data-refresh="{refresh}">
<h1>petra-collector <small class="muted">{_text(document["version"])}</small></h1>
<nav><a href="{escape(metrics_path.lstrip("/"))}">{escape(metrics_path)}</a>\
<a href="api/v1/status">/api/v1/status</a>\
<a href="{DOCS_URL}">docs</a><a href="{TROUBLESHOOTING_URL}">troubleshooting</a></nav>
{live.summary}
<form class="tools" id="filter-form" method="get" action="" role="search">
<label for="filter">Filter</label>
<input id="filter" name="q" type="search" value="{_text(query)}"
 placeholder="org, state, organization, error, key…" autocomplete="off" spellcheck="false">
{keep_refresh}<span id="shown" class="muted" aria-live="polite">{shown}</span></form>
<p id="refresh-failed" class="banner" role="alert" hidden></p>
<table id="orgs"><thead><tr>{head}</tr></thead>
{live.rows}</table>
{live.empty}
<p class="muted">Updated {live.updated}; {every}.
Failing orgs come first. Type <kbd>/</kbd> to filter.</p>
<template id="detail-failed"><tr class="detail"><td colspan="{len(COLUMNS)}"></td></tr></template>
</body></html>
"""


ASSET_TYPES: Final = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One of the page's static files, as served."""

    body: bytes
    content_type: str
    etag: str  # a strong validator: the content's hash, quoted


def load_assets() -> MappingProxyType[str, Asset]:
    """Every file of collector/static (package data) by name, read once at start."""
    found: dict[str, Asset] = {}
    for entry in resources.files("collector").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if not entry.is_file() or suffix not in ASSET_TYPES:
            continue
        body = entry.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:20]
        found[entry.name] = Asset(body, ASSET_TYPES[suffix], f'"{digest}"')
    return MappingProxyType(found)
