// The status page's script (collector/page.py renders the page; this file is served
// from this server only, under a Content-Security-Policy without inline script).
// It renders nothing itself: refreshes swap in the rows the server rendered
// (page/rows), a click on an org's name puts the server's tenant row
// (page/orgs/NAME) under it. What it adds to the server's page: the live filter,
// kept across refreshes and loads, and the refresh itself.
(function () {
  'use strict';
  const input = document.getElementById('filter');
  const form = document.getElementById('filter-form');
  const params = new URLSearchParams(location.search);
  const refreshSeconds = Number(document.body.dataset.refresh);
  const KEY = 'petra-collector-filter';
  const open = new Map(); // org -> its tenant row (null while the first one loads)

  // sessionStorage can be unavailable (privacy settings): the filter then lives per load.
  function recall() { try { return sessionStorage.getItem(KEY) || ''; } catch (e) { return ''; } }
  function remember(v) { try { sessionStorage.setItem(KEY, v); } catch (e) { /* per load */ } }
  input.value = params.has('q') ? params.get('q') : recall();

  function rowsBody() { return document.getElementById('rows'); }
  function orgRows() { return Array.from(rowsBody().querySelectorAll('tr[data-org]')); }

  function applyFilter() {
    const q = input.value.trim().toLowerCase();
    remember(input.value);
    const all = orgRows();
    let shown = 0;
    for (const tr of all) {
      const hit = !q || tr.textContent.toLowerCase().includes(q);
      tr.hidden = !hit;
      if (hit) { shown++; }
      const next = tr.nextElementSibling;
      if (next && next.dataset.detailFor === tr.dataset.org) { next.hidden = !hit; }
    }
    document.getElementById('shown').textContent = q ? shown + ' of ' + all.length + ' shown' : '';
  }

  async function fetchHtml(url) {
    const r = await fetch(url, { cache: 'no-store', headers: { Accept: 'text/html' } });
    if (!r.ok) { throw new Error('HTTP ' + r.status); }
    // A parsed document is inert: nothing in it runs, and the server escaped it.
    return new DOMParser().parseFromString(await r.text(), 'text/html');
  }

  function failedRow(org, message) {
    const tr = document.getElementById('detail-failed').content.firstElementChild.cloneNode(true);
    tr.dataset.detailFor = org;
    tr.cells[0].textContent = 'Could not load the tenants: ' + message;
    return tr;
  }

  // The open orgs' tenant rows go under their rows (after a refresh too).
  function placeDetails() {
    for (const old of rowsBody().querySelectorAll('tr.detail')) { old.remove(); }
    for (const tr of orgRows()) {
      const link = tr.querySelector('a.org-link');
      const detail = open.get(tr.dataset.org);
      if (link) { link.setAttribute('aria-expanded', String(open.has(tr.dataset.org))); }
      if (detail) { detail.hidden = tr.hidden; tr.after(detail); }
    }
  }

  async function loadDetail(org) {
    let row;
    try {
      const doc = await fetchHtml('page/orgs/' + encodeURIComponent(org));
      row = document.adoptNode(doc.querySelector('tr.detail'));
    } catch (e) {
      row = failedRow(org, e.message);
    }
    if (open.has(org)) { open.set(org, row); placeDetails(); }
  }

  rowsBody().closest('table').addEventListener('click', (e) => {
    const link = e.target.closest('a.org-link');
    if (!link || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) { return; }
    e.preventDefault();
    const org = link.closest('tr').dataset.org;
    if (open.has(org)) { open.delete(org); } else { open.set(org, null); loadDetail(org); }
    placeDetails();
  });

  // Swap in the server's fresh parts of the page, then put back what the operator set.
  function swap(doc) {
    for (const id of ['summary', 'rows', 'empty', 'updated']) {
      const fresh = doc.getElementById(id);
      if (fresh) { document.getElementById(id).replaceWith(document.adoptNode(fresh)); }
    }
    document.title = doc.title;
    applyFilter();
    placeDetails();
    for (const org of open.keys()) { loadDetail(org); }
  }

  let refreshing = false;
  async function refresh() {
    if (refreshing) { return; }
    refreshing = true;
    const banner = document.getElementById('refresh-failed');
    try {
      swap(await fetchHtml('page/rows'));
      banner.hidden = true;
    } catch (e) {
      banner.textContent = 'Could not refresh (' + e.message + '); showing the last answer.';
      banner.hidden = false;
    } finally {
      refreshing = false;
    }
  }

  input.addEventListener('input', applyFilter);
  form.addEventListener('submit', (e) => { e.preventDefault(); applyFilter(); });
  document.addEventListener('keydown', (e) => {
    if (e.key === '/' && document.activeElement !== input) { e.preventDefault(); input.focus(); }
  });
  applyFilter();
  if (refreshSeconds > 0) {
    setInterval(() => { if (!document.hidden) { refresh(); } }, refreshSeconds * 1000);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) { refresh(); } });
  }
  window.petraStatus = { refresh, applyFilter };
}());
