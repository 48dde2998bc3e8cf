"""The status page at `/`: one self-contained HTML document, no external assets.

The server renders the whole table from status.py's document (the one
`/api/v1/status` serves), so the page works without JavaScript and in an
air-gapped network. A small script then re-fetches `/api/v1/status` every
`refresh` seconds (15 by default, `/?refresh=N` to change, 0 to stop) and
rebuilds the rows with the same cells, using `textContent` only, keeping the
filter the operator typed. A click on an org's name shows its tenants under
its row (from `/api/v1/orgs/NAME`; without JavaScript the link opens that
JSON). Everything from the API or the config is escaped here on the server,
and never reaches `innerHTML` in the browser.

Relative times ("3 min ago") are counted from the document's `generated_at`,
the server's clock, so a browser with a wrong clock still reads them right;
the absolute time (UTC) stands under each one.
"""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from typing import Any, Final

DEFAULT_REFRESH_SECONDS: Final = 15
MAX_REFRESH_SECONDS: Final = 3600
DOCS_URL: Final = "https://github.com/petra-collector/petra-collector/tree/main/docs"
TROUBLESHOOTING_URL: Final = (
    "https://github.com/petra-collector/petra-collector/blob/main/docs/troubleshooting.md"
)

STATE_LABELS: Final = {
    "ok": "OK",
    "auth_failed": "KEY REJECTED",
    "forbidden": "FORBIDDEN",
    "error": "ERROR",
    "rate_limited": "RATE LIMITED",
    "pending": "PENDING",
}

COLUMNS: Final = (
    ("org", "Org"),
    ("state", "State"),
    ("organization_name", "Organization"),
    ("tenants", "Tenants"),
    ("billable_users", "Billable users"),
    ("last_success", "Last success"),
    ("last_error", "Last error"),
    ("next_poll", "Next poll"),
    ("key_fingerprint", "Key"),
)

SUMMARY_FACTS: Final = (
    ("orgs", "orgs"),
    ("ok", "OK"),
    ("failing", "failing"),
    ("auth_failing", "keys rejected"),
    ("rate_limited", "rate-limited"),
    ("stale", "stale"),
    ("pending", "pending"),
)

_STYLE: Final = """
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--muted:#6e7781;
--line:#8884;--badbg:#cf222e14}
@media (prefers-color-scheme:dark){:root{--ok:#3fb950;--bad:#ff7b72;--warn:#d29922;
--muted:#9198a1;--badbg:#ff7b7218}}
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1rem;max-width:110rem}
h1{font-size:1.3rem;margin:0 0 .25rem}
nav{margin:.25rem 0}nav a{margin-right:1rem}
.summary{margin:.75rem 0;display:flex;flex-wrap:wrap;gap:.3rem 1.2rem;align-items:baseline}
.summary b{font-size:1.15rem}
.summary .bad b{color:var(--bad)}.summary .warn b{color:var(--warn)}
.tools{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;margin:.5rem 0}
input{font:inherit;padding:.35rem .5rem;width:min(26rem,100%)}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{position:sticky;top:0;background:Canvas}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td small{display:block;color:var(--muted);overflow-wrap:anywhere}
.state{font-weight:600;white-space:nowrap}
.state::before{content:"\\25CF\\00A0"}
.s-ok{color:var(--ok)}.s-ok::before{content:"\\2714\\00A0"}
.s-auth_failed,.s-forbidden,.s-error{color:var(--bad)}
.s-auth_failed::before,.s-forbidden::before,
.s-error::before{content:"\\2716\\00A0"}
.s-rate_limited{color:var(--warn)}.s-rate_limited::before{content:"\\29D7\\00A0"}
.s-pending{color:var(--muted)}
tr.failing{background:var(--badbg)}
tr.detail>td{padding:.2rem .5rem .8rem 1.5rem}
tr.detail p{margin:.2rem 0}
table.tenants{width:auto;min-width:60%;font-size:.95em}
table.tenants th{position:static}
.muted{color:var(--muted)}
code{font-size:.9em}
.banner{border:1px solid var(--bad);color:var(--bad);padding:.4rem .6rem}
@media (max-width:48rem){
 body{margin:.5rem}
 table,tbody,tr,td{display:block;width:100%}
 thead{display:none}
 tr{border:1px solid var(--line);border-radius:.4rem;margin:0 0 .6rem;padding:.3rem .5rem}
 td{border:0;padding:.15rem 0;display:grid;grid-template-columns:8.5rem 1fr;gap:.5rem}
 td::before{content:attr(data-label);color:var(--muted);font-weight:400}
 td.state::before{content:attr(data-label)}
 td.num{text-align:left}
 td small{grid-column:2}
 tr.detail>td{display:block}
 tr.detail>td::before{content:none}
 table.tenants td{grid-template-columns:7rem 1fr}
}
"""

# Mirrors _row() below cell for cell; the browser test checks that both agree.
_SCRIPT: Final = """
(function(){
  'use strict';
  const labels=JSON.parse(document.getElementById('labels').textContent);
  const input=document.getElementById('filter');
  const body=document.getElementById('rows');
  const params=new URLSearchParams(location.search);
  const refreshSeconds=Number(document.body.dataset.refresh);
  const KEY='petra-collector-filter';
  const tones={failing:'bad',auth_failing:'bad',rate_limited:'warn',stale:'warn'};
  // sessionStorage can be unavailable (privacy settings): the filter then lives per load.
  function recall(){try{return sessionStorage.getItem(KEY)||'';}catch(e){return '';}}
  function remember(v){try{sessionStorage.setItem(KEY,v);}catch(e){}}
  input.value=params.has('q')?params.get('q'):recall();
  function ago(iso,now){
    if(!iso){return '';}
    const s=Math.floor((now-Date.parse(iso))/1000);
    const a=Math.abs(s);
    if(a===0){return 'now';}
    const t=a<90?a+' s':a<5400?Math.floor((a+30)/60)+' min'
      :a<129600?Math.floor((a+1800)/3600)+' h':Math.floor((a+43200)/86400)+' d';
    return s>0?t+' ago':'in '+t;
  }
  function abs(iso){return iso?iso.replace('T',' ').replace('Z',' UTC'):'';}
  function num(v){return v===null||v===undefined?'':String(v);}
  function td(tr,label,cls,text,small){
    const cell=document.createElement('td');
    cell.dataset.label=label;
    if(cls){cell.className=cls;}
    cell.append(text);
    if(small){const s=document.createElement('small');s.textContent=small;cell.append(s);}
    tr.append(cell);
    return cell;
  }
  function when(tr,label,iso,now,none){
    const cell=td(tr,label,'',iso?ago(iso,now):none,iso?abs(iso):'');
    if(iso){cell.title=iso;}
  }
  function row(o,now){
    const tr=document.createElement('tr');
    tr.dataset.org=o.org; tr.dataset.state=o.state;
    if(!['ok','pending','rate_limited'].includes(o.state)){tr.className='failing';}
    const link=document.createElement('a');
    link.href='api/v1/orgs/'+encodeURIComponent(o.org); link.textContent=o.org;
    link.className='org-link'; link.title='show or hide its tenants';
    link.setAttribute('aria-expanded',String(open.has(o.org)));
    td(tr,'Org','org',link,'');
    let state=labels[o.state]||o.state;
    if(o.stale){state+=' (stale)';}
    td(tr,'State','state s-'+o.state,state,
       o.consecutive_failures>1?o.consecutive_failures+' failures in a row':'');
    td(tr,'Organization','',o.organization_name||'','');
    td(tr,'Tenants','num',num(o.tenants),'');
    td(tr,'Billable users','num',num(o.billable_users),'');
    when(tr,'Last success',o.last_success,now,'never');
    const err=td(tr,'Last error','',o.last_error||'',
                 o.last_error_at?ago(o.last_error_at,now)+', '+abs(o.last_error_at):'');
    if(o.last_error_at){err.title=o.last_error_at;}
    when(tr,'Next poll',o.next_poll,now,'');
    const code=document.createElement('code'); code.textContent=o.key_fingerprint;
    td(tr,'Key','key',code,o.key_source);
    return tr;
  }
  function orgRows(){return Array.from(body.querySelectorAll('tr[data-org]'));}
  function applyFilter(){
    const q=input.value.trim().toLowerCase();
    remember(input.value);
    const all=orgRows();
    let shown=0;
    for(const tr of all){
      const hit=!q||tr.textContent.toLowerCase().includes(q);
      tr.hidden=!hit; if(hit){shown++;}
      const next=tr.nextElementSibling;
      if(next&&next.dataset.detailFor===tr.dataset.org){next.hidden=!hit;}
    }
    document.getElementById('shown').textContent=q?shown+' of '+all.length+' shown':'';
  }
  // Tenants of an org, shown under its row when its name is clicked (kept across refreshes).
  const open=new Map();
  const TENANT_COLUMNS=[['display_name','Tenant'],['tenant_id','Petra ID'],
    ['microsoft_tenant_id','Microsoft tenant'],['service','Service'],
    ['billable_status','Status'],['is_paused','Paused'],['licensed_users','Licensed'],
    ['billable_users','Billable']];
  function tenantTable(detail){
    const table=document.createElement('table'); table.className='tenants';
    const head=table.createTHead().insertRow();
    for(const [,title] of TENANT_COLUMNS){
      const th=document.createElement('th'); th.textContent=title; head.append(th);
    }
    const tbody=table.createTBody();
    const list=[...detail.tenant_list].sort((a,b)=>
      String(a.display_name||'').localeCompare(String(b.display_name||'')));
    for(const t of list){
      const tr=tbody.insertRow();
      for(const [key,title] of TENANT_COLUMNS){
        const v=t[key];
        td(tr,title,typeof v==='number'?'num':'',
           v===true?'yes':v===false?'no':num(v),'');
      }
    }
    return table;
  }
  function detailRow(org,detail){
    const tr=document.createElement('tr');
    tr.className='detail'; tr.dataset.detailFor=org;
    const cell=document.createElement('td'); cell.colSpan=9; tr.append(cell);
    if(!detail){cell.textContent='Loading tenants…';}
    else if(detail.error){cell.textContent='Could not load the tenants: '+detail.error;}
    else if(!detail.tenant_list.length){cell.textContent='No tenants in the last report.';}
    else{
      const caption=document.createElement('p');
      const n=detail.tenant_list.length;
      caption.textContent=n+(n===1?' tenant':' tenants')+' of '+
        (detail.organization_name||org)+(detail.as_of?', as of '+detail.as_of:'');
      cell.append(caption,tenantTable(detail));
    }
    return tr;
  }
  function placeDetails(){
    for(const old of body.querySelectorAll('tr.detail')){old.remove();}
    for(const tr of orgRows()){
      if(open.has(tr.dataset.org)){
        const row=detailRow(tr.dataset.org,open.get(tr.dataset.org));
        row.hidden=tr.hidden; tr.after(row);
      }
    }
  }
  async function loadDetail(org){
    let detail;
    try{
      const r=await fetch('api/v1/orgs/'+encodeURIComponent(org),{cache:'no-store'});
      if(!r.ok){throw new Error('HTTP '+r.status);}
      detail=await r.json();
    }catch(e){detail={error:e.message};}
    if(open.has(org)){open.set(org,detail); placeDetails();}
  }
  body.addEventListener('click',e=>{
    const link=e.target.closest('a.org-link');
    if(!link||e.ctrlKey||e.metaKey||e.shiftKey||e.button!==0){return;}
    e.preventDefault();
    const org=link.closest('tr').dataset.org;
    if(open.has(org)){open.delete(org);}else{open.set(org,null); loadDetail(org);}
    link.setAttribute('aria-expanded',String(open.has(org)));
    placeDetails();
  });
  function render(doc,receivedAt){
    const now=Date.parse(doc.generated_at)+(Date.now()-receivedAt);
    const rows=document.createDocumentFragment();
    for(const o of doc.orgs){rows.append(row(o,now));}
    body.replaceChildren(rows);
    placeDetails();
    for(const org of open.keys()){loadDetail(org);}
    for(const [k,v] of Object.entries(doc.summary)){
      const el=document.getElementById('sum-'+k);
      if(el){el.textContent=String(v); el.parentElement.className=v&&tones[k]?tones[k]:'';}
    }
    document.getElementById('empty').hidden=doc.orgs.length>0;
    document.getElementById('updated').textContent=abs(doc.generated_at);
    document.title=(doc.summary.failing?'('+doc.summary.failing+' failing) ':'')+
      'petra-collector';
    applyFilter();
  }
  let refreshing=false;
  async function refresh(){
    if(refreshing){return;}
    refreshing=true;
    const banner=document.getElementById('refresh-failed');
    try{
      const r=await fetch('api/v1/status',{cache:'no-store'});
      if(!r.ok){throw new Error('HTTP '+r.status);}
      render(await r.json(),Date.now());
      banner.hidden=true;
    }catch(e){
      banner.textContent='Could not refresh ('+e.message+'); showing the last answer.';
      banner.hidden=false;
    }finally{refreshing=false;}
  }
  input.addEventListener('input',applyFilter);
  document.addEventListener('keydown',e=>{
    if(e.key==='/'&&document.activeElement!==input){e.preventDefault();input.focus();}
  });
  applyFilter();
  if(refreshSeconds>0){
    setInterval(()=>{if(!document.hidden){refresh();}},refreshSeconds*1000);
    document.addEventListener('visibilitychange',()=>{if(!document.hidden){refresh();}});
  }
  window.petraStatus={render,refresh,applyFilter};
})();
"""


def refresh_seconds(query_value: str | None) -> int:
    """The `?refresh=N` query parameter: whole seconds 0..3600 (0: no refresh), else 15."""
    if query_value is None or not query_value.strip().isdigit():
        return DEFAULT_REFRESH_SECONDS
    return min(int(query_value), MAX_REFRESH_SECONDS)


def _text(value: Any) -> str:
    return "" if value is None else escape(str(value))


def _number(value: Any) -> str:
    """Like JavaScript's String(n) for the numbers the document holds (118.0 -> 118)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _seconds(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def relative(iso: str | None, now_iso: str) -> str:
    """ "3 min ago" / "in 12 s", counted from the document's own time; the script's ago()."""
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


def _cell(label: str, content: str, *, cls: str = "", small: str = "", title: str = "") -> str:
    attributes = f' data-label="{escape(label)}"'
    if cls:
        attributes += f' class="{escape(cls)}"'
    if title:
        attributes += f' title="{_text(title)}"'
    extra = f"<small>{_text(small)}</small>" if small else ""
    return f"<td{attributes}>{content}{extra}</td>"


def _when(label: str, iso: str | None, now: str, none: str) -> str:
    if not iso:
        return _cell(label, _text(none))
    return _cell(label, _text(relative(iso, now)), small=absolute(iso), title=iso)


def _row(org: dict[str, Any], now: str) -> str:
    state = str(org["state"])
    label = STATE_LABELS.get(state, state)
    if org["stale"]:
        label += " (stale)"
    failures = int(org["consecutive_failures"] or 0)
    error_at = org["last_error_at"]
    name = _text(org["org"])
    cells = [
        _cell(
            "Org",
            f'<a class="org-link" href="api/v1/orgs/{name}" title="show or hide its tenants"'
            f' aria-expanded="false">{name}</a>',
            cls="org",
        ),
        _cell(
            "State",
            _text(label),
            cls=f"state s-{state}",
            small=f"{failures} failures in a row" if failures > 1 else "",
        ),
        _cell("Organization", _text(org["organization_name"])),
        _cell("Tenants", _number(org["tenants"]), cls="num"),
        _cell("Billable users", _number(org["billable_users"]), cls="num"),
        _when("Last success", org["last_success"], now, "never"),
        _cell(
            "Last error",
            _text(org["last_error"]),
            small=f"{relative(error_at, now)}, {absolute(error_at)}" if error_at else "",
            title=error_at or "",
        ),
        _when("Next poll", org["next_poll"], now, ""),
        _cell(
            "Key",
            f"<code>{_text(org['key_fingerprint'])}</code>",
            cls="key",
            small=org["key_source"] or "",
        ),
    ]
    failing = state not in ("ok", "pending", "rate_limited")
    return (
        f'<tr data-org="{name}" data-state="{_text(state)}"'
        + (' class="failing"' if failing else "")
        + ">"
        + "".join(cells)
        + "</tr>"
    )


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element: `<` can never close it early."""
    return json.dumps(value).replace("<", "\\u003c")


def render_status_page(document: dict[str, Any], *, refresh: int = DEFAULT_REFRESH_SECONDS) -> str:
    """The page for status.py's `status_document`; `refresh` is in seconds, 0 for never."""
    summary = document["summary"]
    shard = document["shard"]
    now = str(document["generated_at"])
    tones = {"failing": "bad", "auth_failing": "bad", "rate_limited": "warn", "stale": "warn"}
    summary_html = "".join(
        f'<span class="{tones.get(key, "") if summary[key] else ""}">'
        f'<b id="sum-{key}">{_text(summary[key])}</b> {label}</span>'
        for key, label in SUMMARY_FACTS
    )
    shard_html = (
        f"<span>shard <b>{_text(shard)}</b></span>"
        if shard
        else '<span class="muted">all orgs (no shard)</span>'
    )
    head = "".join(f"<th scope=col>{escape(title)}</th>" for _key, title in COLUMNS)
    rows = "".join(_row(org, now) for org in document["orgs"])
    title = (f"({summary['failing']} failing) " if summary["failing"] else "") + "petra-collector"
    every = f"refreshes every {refresh} s" if refresh else "does not refresh (refresh=0)"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{_text(title)}</title><style>{_STYLE}</style></head>
<body data-refresh="{refresh}">
<h1>petra-collector <small class="muted">{_text(document["version"])}</small></h1>
<nav><a href="metrics">/metrics</a><a href="api/v1/status">/api/v1/status</a>\
<a href="{DOCS_URL}">docs</a><a href="{TROUBLESHOOTING_URL}">troubleshooting</a></nav>
<div class="summary" id="summary">{summary_html}{shard_html}</div>
<div class="tools"><label for="filter">Filter</label>
<input id="filter" type="search" placeholder="org, state, organization, error, key…"
 autocomplete="off" spellcheck="false">
<span id="shown" class="muted" aria-live="polite"></span></div>
<p id="refresh-failed" class="banner" role="alert" hidden></p>
<table><thead><tr>{head}</tr></thead>
<tbody id="rows">{rows}</tbody></table>
<p id="empty" class="muted"{" hidden" if document["orgs"] else ""}>No org in this instance
(check the config, or this replica's shard).</p>
<p class="muted">Updated <span id="updated">{_text(absolute(now))}</span>; {every}.
Failing orgs come first. Type <kbd>/</kbd> to filter.</p>
<script type="application/json" id="labels">{_script_json(STATE_LABELS)}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
