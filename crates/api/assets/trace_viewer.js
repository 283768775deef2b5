// The trace viewer: lists traces from /api/trace-viewer/traces (filters, auto-refresh) and
// draws a trace's waterfall from /api/trace-viewer/traces/{trace_id}.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  let loads = 0, timer = null, selected = null, serviceOptions = new Set();

  // Prefill from ?video=&user=&service=&errors=&limit=, so a filtered view can be linked.
  const q = new URLSearchParams(location.search);
  if (q.get('video')) $('filter-video').value = q.get('video');
  if (q.get('user')) $('filter-user').value = q.get('user');
  if (q.get('service')) {
    const o = document.createElement('option');
    o.value = o.textContent = q.get('service');
    $('filter-service').append(o);
    serviceOptions.add(q.get('service'));
    $('filter-service').value = q.get('service');
  }
  if (q.get('errors') === 'true') $('filter-errors').checked = true;
  if (q.get('limit')) $('filter-limit').value = q.get('limit');

  function params() {
    const p = new URLSearchParams();
    const v = (id) => $(id).value.trim();
    if (v('filter-video')) p.set('video', v('filter-video'));
    if (v('filter-user')) p.set('user', v('filter-user'));
    if (v('filter-service')) p.set('service', v('filter-service'));
    if ($('filter-errors').checked) p.set('errors', 'true');
    if (v('filter-limit')) p.set('limit', v('filter-limit'));
    return p;
  }

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    Object.assign(e, props || {});
    for (const c of children) e.append(c);
    return e;
  }

  async function api(url) {
    const r = await fetch(url, {credentials: 'same-origin'});
    if (r.status === 401) { location.href = '/login?next=/trace-viewer'; throw new Error('signed out'); }
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
    return body;
  }

  async function load() {
    const p = params();
    history.replaceState(null, '', '/trace-viewer' + (p.toString() ? '?' + p : ''));
    try {
      const data = await api('/api/trace-viewer/traces?' + p);
      $('error').textContent = '';
      render(data);
    } catch (e) {
      $('error').textContent = 'Could not load traces: ' + e.message;
    }
    document.body.dataset.loaded = String(++loads);
  }

  function render(data) {
    for (const s of data.stats.services) {
      if (!serviceOptions.has(s)) {
        serviceOptions.add(s);
        $('filter-service').append(el('option', {value: s, textContent: s}));
      }
    }
    const rows = data.traces.map((t) => {
      const marks = el('td');
      if (t.errorCount > 0) marks.append(el('span', {className: 'badge error', textContent: t.errorCount + ' error' + (t.errorCount > 1 ? 's' : '')}));
      if (t.authFailure) marks.append(el('span', {className: 'badge auth', textContent: 'auth failure'}));
      const tr = el('tr', {className: 'trace-row' + (t.errorCount > 0 ? ' mark-error' : '') + (t.authFailure ? ' mark-auth' : '')},
        el('td', {textContent: new Date(t.startTime).toLocaleTimeString()}),
        el('td', {textContent: t.rootName}),
        el('td', {textContent: t.services.join(', ')}),
        el('td', {textContent: t.durationMs.toFixed(1) + ' ms'}),
        el('td', {textContent: String(t.spanCount)}),
        marks,
        el('td', {textContent: [...t.userIds.map((u) => 'user ' + u), ...t.videoIds.map((v) => 'lesson ' + v)].join('\n')}));
      tr.dataset.traceId = t.traceId;
      if (t.traceId === selected) tr.classList.add('selected');
      tr.addEventListener('click', () => open(t.traceId));
      return tr;
    });
    $('traces').replaceChildren(...rows);
    $('trace-count').textContent = String(rows.length);
    const s = data.stats;
    $('stats').textContent = `${s.matching} matching of ${s.tracesRead} read · ${s.withErrors} with errors · ${s.withAuthFailures} with auth failures`;
    $('sources').replaceChildren(...data.sources.map((src) => el('div', {
      textContent: `${src.path}: ` + (src.ok ? `${src.filesRead} file(s), ${(src.bytesRead / 1024).toFixed(0)} KiB read` +
        (src.skippedLines ? `, ${src.skippedLines} line(s) skipped` : '') : (src.error || 'not read')),
    })));
  }

  async function open(traceId) {
    selected = traceId;
    document.querySelectorAll('.trace-row').forEach((r) => r.classList.toggle('selected', r.dataset.traceId === traceId));
    let t;
    try {
      t = await api('/api/trace-viewer/traces/' + traceId);
    } catch (e) {
      $('error').textContent = 'Could not open the trace: ' + e.message;
      return;
    }
    $('detail').hidden = false;
    $('detail-id').textContent = traceId;
    const link = $('open-in-grafana');
    link.hidden = !t.summary.grafanaUrl;
    if (t.summary.grafanaUrl) link.href = t.summary.grafanaUrl;
    const total = Math.max(t.summary.durationMs, 0.001);
    const pct = (ms) => (100 * ms / total).toFixed(3) + '%';
    const depth = {};
    const byId = Object.fromEntries(t.spans.map((s) => [s.spanId, s]));
    const depthOf = (s) => {
      if (depth[s.spanId] !== undefined) return depth[s.spanId];
      const p = s.parentSpanId && byId[s.parentSpanId];
      return (depth[s.spanId] = p ? depthOf(p) + 1 : 0);
    };
    const lines = t.spans.map((s) => {
      const bar = el('div', {className: 'span-bar' + (s.statusCode === 2 ? ' error' : ''), title: `${s.name} (${s.durationMs.toFixed(2)} ms)`});
      bar.dataset.spanId = s.spanId;
      bar.dataset.service = s.service;
      bar.style.left = pct(s.offsetMs);
      bar.style.width = pct(s.durationMs);
      const track = el('div', {className: 'span-track'}, bar);
      for (const e of s.events) {
        const bad = e.name === 'exception' || e.name === 'auth.failed' || e.name.includes('mismatch');
        const dot = el('div', {className: 'span-event' + (bad ? ' bad' : ''), title: `${e.name} at ${e.offsetMs.toFixed(1)} ms`});
        dot.style.left = pct(e.offsetMs);
        track.append(dot);
      }
      const label = el('div', {className: 'span-label', textContent: s.service + ' · ' + s.name});
      label.style.paddingLeft = (depthOf(s) * 0.9) + 'rem';
      const line = el('div', {className: 'span-line'}, label, track);
      line.addEventListener('click', () => {
        $('span-info').textContent = JSON.stringify({name: s.name, service: s.service, spanId: s.spanId,
          parentSpanId: s.parentSpanId, kind: s.kind, durationMs: s.durationMs, status: {code: s.statusCode, message: s.statusMessage},
          attributes: s.attributes, events: s.events}, null, 2);
      });
      return line;
    });
    $('waterfall').replaceChildren(...lines);
  }

  function schedule() {
    clearInterval(timer);
    if ($('auto-refresh').checked) timer = setInterval(load, 5000);
  }

  let debounce = null;
  for (const id of ['filter-video', 'filter-user', 'filter-limit']) {
    $(id).addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(load, 300); });
  }
  $('filter-service').addEventListener('change', load);
  $('filter-errors').addEventListener('change', load);
  $('auto-refresh').addEventListener('change', schedule);
  $('refresh').addEventListener('click', load);
  load();
  schedule();
})();
