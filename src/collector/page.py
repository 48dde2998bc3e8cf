"""The status page at `/`: one self-contained HTML document, no external assets.

The server renders the full table (so the page works without JavaScript
and in air-gapped networks); a small script then refreshes it from
`/api/v1/status` every 15 s, building rows with `textContent` only, and
keeps the filter the operator typed. Everything from the API or the
config is escaped on the server side.
"""

from __future__ import annotations

from html import escape
from typing import Any, Final

STATE_LABELS: Final = {
    "ok": "OK",
    "auth_failed": "KEY REJECTED",
    "key_unavailable": "KEY UNREADABLE",
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

_STYLE: Final = """
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--muted:#6e7781}
body{font:14px/1.4 system-ui,sans-serif;margin:1rem;max-width:100rem}
h1{font-size:1.3rem;margin:0 0 .5rem}
.summary{margin:.5rem 0 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1rem}
.summary b{font-size:1.1rem}
nav a{margin-right:1rem}
input{font:inherit;padding:.3rem .5rem;width:min(24rem,100%);margin:.5rem 0}
.wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #8884;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.state{font-weight:600;white-space:nowrap}
.state::before{content:"\\25CF  "}
.s-ok{color:var(--ok)}.s-ok::before{content:"\\2714  "}
.s-auth_failed,.s-key_unavailable,.s-forbidden,.s-error{color:var(--bad)}
.s-auth_failed::before,.s-key_unavailable::before,.s-forbidden::before,
.s-error::before{content:"\\2716  "}
.s-rate_limited{color:var(--warn)}.s-rate_limited::before{content:"\\29D7  "}
.s-pending{color:var(--muted)}
.muted,small{color:var(--muted)}
code{font-size:.85em}
@media (max-width:40rem){th:nth-child(3),td:nth-child(3),th:nth-child(8),td:nth-child(8),
th:nth-child(9),td:nth-child(9){display:none}}
"""

_SCRIPT: Final = """
(function(){
  const input=document.getElementById('filter');
  const body=document.getElementById('rows');
  const saved=sessionStorage.getItem('petra-filter');
  if(saved!==null){input.value=saved;}
  const labels=JSON.parse(document.getElementById('labels').textContent);
  function ago(iso){
    if(!iso){return '';}
    const s=Math.round((Date.now()-Date.parse(iso))/1000);
    const a=Math.abs(s);
    const t=a<90?a+' s':a<5400?Math.round(a/60)+' min':a<129600?Math.round(a/3600)+' h'
      :Math.round(a/86400)+' d';
    return s>=0?t+' ago':'in '+t;
  }
  function applyFilter(){
    const q=input.value.trim().toLowerCase();
    sessionStorage.setItem('petra-filter',input.value);
    let shown=0;
    for(const tr of body.rows){
      const hit=!q||tr.textContent.toLowerCase().includes(q);
      tr.hidden=!hit; if(hit){shown++;}
    }
    document.getElementById('shown').textContent=shown+' of '+body.rows.length+' shown';
  }
  function cell(tr,text,cls,title){
    const td=document.createElement('td');
    td.textContent=text===null||text===undefined?'':String(text);
    if(cls){td.className=cls;} if(title){td.title=title;}
    tr.appendChild(td); return td;
  }
  function render(doc){
    const rows=document.createDocumentFragment();
    for(const o of doc.orgs){
      const tr=document.createElement('tr');
      tr.dataset.org=o.org; tr.dataset.state=o.state;
      cell(tr,o.org);
      cell(tr,(labels[o.state]||o.state)+(o.stale&&o.state!=='pending'?' (stale)':''),
           'state s-'+o.state);
      cell(tr,o.organization_name);
      cell(tr,o.tenants,'num');
      cell(tr,o.billable_users,'num');
      cell(tr,o.last_success?ago(o.last_success):'never',null,o.last_success||'');
      cell(tr,o.last_error||'',null,o.last_error_at||'');
      cell(tr,ago(o.next_poll),null,o.next_poll||'');
      cell(tr,o.key_fingerprint,'muted',o.key_source);
      rows.appendChild(tr);
    }
    body.replaceChildren(rows);
    for(const [k,v] of Object.entries(doc.summary)){
      const el=document.getElementById('sum-'+k); if(el){el.textContent=v;}
    }
    document.getElementById('updated').textContent=doc.generated_at;
    applyFilter();
  }
  async function refresh(){
    try{
      const r=await fetch('api/v1/status',{cache:'no-store'});
      if(r.ok){render(await r.json());}
      document.getElementById('stale-page').hidden=r.ok;
    }catch(e){document.getElementById('stale-page').hidden=false;}
  }
  input.addEventListener('input',applyFilter);
  for(const td of document.querySelectorAll('td[data-ago]')){td.textContent=ago(td.dataset.ago);}
  applyFilter();
  setInterval(refresh,15000);
  window.petraRefresh=refresh;
})();
"""


def _text(value: Any) -> str:
    return "" if value is None else escape(str(value))


def _row(org: dict[str, Any]) -> str:
    state = str(org["state"])
    label = STATE_LABELS.get(state, state)
    if org["stale"] and state != "pending":
        label += " (stale)"
    last_success = org["last_success"]
    cells = [
        f"<td>{_text(org['org'])}</td>",
        f'<td class="state s-{escape(state)}">{_text(label)}</td>',
        f"<td>{_text(org['organization_name'])}</td>",
        f'<td class="num">{_text(org["tenants"])}</td>',
        f'<td class="num">{_text(org["billable_users"])}</td>',
        (
            f'<td title="{_text(last_success)}" data-ago="{_text(last_success)}">'
            f"{_text(last_success)}</td>"
        )
        if last_success
        else "<td>never</td>",
        f'<td title="{_text(org["last_error_at"])}">{_text(org["last_error"])}</td>',
        (
            f'<td title="{_text(org["next_poll"])}" data-ago="{_text(org["next_poll"])}">'
            f"{_text(org['next_poll'])}</td>"
        ),
        f'<td class="muted" title="{_text(org["key_source"])}">'
        f"{_text(org['key_fingerprint'])}</td>",
    ]
    return (
        f'<tr data-org="{_text(org["org"])}" data-state="{escape(state)}">'
        + "".join(cells)
        + "</tr>"
    )


def render_status_page(document: dict[str, Any]) -> str:
    summary = document["summary"]
    shard = document["shard"]
    labels_json = escape(
        "{" + ",".join(f'"{k}":"{v}"' for k, v in STATE_LABELS.items()) + "}", quote=False
    )
    facts = [
        ("orgs", "orgs"),
        ("ok", "OK"),
        ("failing", "failing"),
        ("auth_failing", "keys rejected"),
        ("rate_limited", "rate-limited"),
        ("stale", "stale"),
        ("pending", "pending"),
    ]
    summary_html = "".join(
        f'<span><b id="sum-{key}">{_text(summary[key])}</b> {label}</span>' for key, label in facts
    )
    shard_html = f"<span>shard <b>{_text(shard)}</b></span>" if shard else ""
    head = "".join(f"<th scope=col>{escape(title)}</th>" for _key, title in COLUMNS)
    rows = "".join(_row(org) for org in document["orgs"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>petra-collector</title><style>{_STYLE}</style></head>
<body>
<h1>petra-collector <small>{_text(document["version"])}</small></h1>
<nav><a href="metrics">/metrics</a><a href="api/v1/status">/api/v1/status</a>
<a href="https://github.com/petra-collector/petra-collector/tree/main/docs">docs</a></nav>
<div class="summary" id="summary">{summary_html}{shard_html}</div>
<label for="filter">Filter</label>
<input id="filter" type="search" placeholder="org, state, organization, error…" autocomplete="off">
<span id="shown" class="muted"></span>
<p id="stale-page" class="s-error" hidden>Could not refresh; showing the last answer.</p>
<div class="wrap"><table><thead><tr>{head}</tr></thead>
<tbody id="rows">{rows}</tbody></table></div>
<p class="muted">Updated <span id="updated">{_text(document["generated_at"])}</span>;
refreshes every 15 s.</p>
<script type="application/json" id="labels">{labels_json}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
