// The dartup dashboard. Everything the server sends is data: it goes into
// the page as text (textContent, Text nodes, attribute values), never as
// markup. Two Server-Sent Event streams feed it: api/stream (a snapshot a
// second, lifecycle events) and api/logs (the chosen app's log tail).
'use strict';

(() => {
  const token = document.querySelector('meta[name="dartup-token"]').content;
  const HISTORY = 60;        // samples kept per instance for the sparklines
  const MAX_EVENTS = 100;    // events listed
  const MAX_LOG_LINES = 1000; // log lines kept in the pane
  const SVG = 'http://www.w3.org/2000/svg';

  const $ = (sel) => document.querySelector(sel);
  const history = new Map(); // "app.index" -> {cpu: [], mem: []}
  let known = new Set();     // app names, for the log chooser

  // el makes an element with attributes and children (strings become text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function human(ms) {
    if (!(ms >= 0)) return '';
    const s = Math.floor(ms / 1000);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm';
    if (s < 48 * 3600) return Math.floor(s / 3600) + 'h';
    return Math.floor(s / 86400) + 'd';
  }

  function bytes(n) {
    if (!n) return '0';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
  }

  function toast(text, bad) {
    const t = $('#toast');
    t.textContent = text;
    t.className = bad ? 'bad show' : 'show';
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.className = ''; }, 6000);
  }

  // sparkline draws values (oldest first) as a small SVG line.
  function sparkline(values, label) {
    const w = 60, h = 16;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('width', w);
    svg.setAttribute('height', h);
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.setAttribute('class', 'spark');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
    const max = Math.max(...values, 1e-9);
    const step = w / (HISTORY - 1);
    const off = HISTORY - values.length;
    const pts = values.map((v, i) => `${((off + i) * step).toFixed(1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`);
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', pts.join(' '));
    svg.append(line);
    return svg;
  }

  function remember(key, cpu, mem) {
    let h = history.get(key);
    if (!h) { h = { cpu: [], mem: [], seen: 0 }; history.set(key, h); }
    h.cpu.push(cpu || 0);
    h.mem.push(mem || 0);
    if (h.cpu.length > HISTORY) { h.cpu.shift(); h.mem.shift(); }
    return h;
  }

  // post runs a dashboard action with the page's token.
  async function post(app, action, body) {
    try {
      const res = await fetch(`api/apps/${encodeURIComponent(app)}/${action}`, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-Dartup-Token': token },
        body: JSON.stringify(body || {}),
      });
      const out = await res.json().catch(() => ({}));
      if (!res.ok) {
        toast(`${action} ${app}: ${out.errorMessage || res.status}`, true);
        return;
      }
      toast(`${action} ${app}: done`);
    } catch (err) {
      toast(`${action} ${app}: ${err}`, true);
    }
  }

  function button(app, action, label, onClick) {
    const b = el('button', { type: 'button', 'data-app': app, 'data-action': action }, label);
    b.addEventListener('click', onClick || (() => post(app, action)));
    return b;
  }

  // killButton asks for a second click within 4 s before it kills.
  function killButton(app) {
    const b = button(app, 'kill', 'kill', () => {
      if (b.dataset.armed === '1') {
        b.dataset.armed = '';
        b.textContent = 'kill';
        post(app, 'kill');
        return;
      }
      b.dataset.armed = '1';
      b.textContent = 'really kill?';
      setTimeout(() => { b.dataset.armed = ''; b.textContent = 'kill'; }, 4000);
    });
    return b;
  }

  function scaleControl(app, desired) {
    const input = el('input', { type: 'number', min: 1, max: 1024, value: Math.max(desired, 1), 'data-app': app, 'aria-label': `instances of ${app}`, class: 'scale' });
    const go = button(app, 'scale', 'scale', () => {
      const n = Number(input.value);
      if (!Number.isInteger(n) || n < 1 || n > 1024) { toast('instances must be a number from 1 to 1024', true); return; }
      post(app, 'scale', { instances: n });
    });
    return el('span', { class: 'scaler' }, input, go);
  }

  // Apps rows are kept across snapshots (by name), so that a number typed
  // into a scale box survives the next update.
  const appRows = new Map();

  function appRow(a) {
    let r = appRows.get(a.name);
    if (!r || r.kind !== a.kind) {
      const cells = { state: el('td'), running: el('td'), message: el('td', { class: 'msg' }) };
      const actions = el('td', { class: 'actions' },
        button(a.name, 'restart', 'restart'), killButton(a.name), button(a.name, 'start', 'start'),
        a.kind === 'daemon' ? scaleControl(a.name, a.desired) : null,
        button(a.name, 'logs', 'logs', () => follow(a.name)));
      const tr = el('tr', { 'data-app': a.name }, el('td', { class: 'name' }, a.name), el('td', {}, a.kind),
        cells.state, cells.running, cells.message, actions);
      r = { tr, cells, kind: a.kind };
      appRows.set(a.name, r);
    }
    r.cells.state.textContent = a.state;
    r.cells.state.className = 'state-' + a.state;
    r.cells.running.textContent = a.kind === 'lambda' ? `${a.running} warm` : `${a.running}/${a.desired}`;
    r.cells.message.textContent = a.message || '';
    return r.tr;
  }

  function renderApps(apps) {
    const body = $('#apps tbody');
    const names = new Set(apps.map((a) => a.name));
    for (const name of appRows.keys()) if (!names.has(name)) appRows.delete(name);
    // Rows are moved only when out of place: a focused scale box keeps
    // its focus.
    const rows = apps.map(appRow);
    if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'no apps yet: dartup push …')));
    rows.forEach((tr, i) => { if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null); });
    while (body.children.length > rows.length) body.lastElementChild.remove();
    updateChooser(apps.map((a) => a.name));
  }

  function renderInstances(list, more, now) {
    const live = new Set();
    const rows = list.map((i) => {
      const key = `${i.app}.${i.instance}`;
      live.add(key);
      const h = remember(key, i.cpu, i.memory);
      const up = i.started_at && i.state === 'running' ? human(now - Date.parse(i.started_at)) : '';
      return el('tr', { 'data-instance': key, 'data-pid': i.pid || '' },
        el('td', {}, i.app), el('td', {}, i.instance), el('td', {}, i.node),
        el('td', { class: 'state-' + i.state }, i.state + (i.ready ? ' ✓' : '')),
        el('td', { class: 'pid' }, i.pid || ''), el('td', {}, up), el('td', {}, i.restarts),
        el('td', { class: 'num' }, (i.cpu || 0).toFixed(1) + '% ', sparkline(h.cpu, `cpu of ${key}`)),
        el('td', { class: 'num' }, bytes(i.memory) + ' ', sparkline(h.mem, `memory of ${key}`)),
        el('td', { class: 'msg' }, i.last_error || ''));
    });
    for (const key of history.keys()) if (!live.has(key)) history.delete(key);
    $('#instances tbody').replaceChildren(...rows);
    $('#more-instances').textContent = more ? `(${more} more not shown)` : '';
  }

  function renderLambdas(list) {
    $('#lambdas tbody').replaceChildren(...list.map((l) => el('tr', { 'data-lambda': l.name },
      el('td', {}, l.name), el('td', { class: 'num' }, l.invocations), el('td', { class: 'num' }, l.errors),
      el('td', { class: 'num' }, l.cold_starts), el('td', { class: 'num' }, l.throttled), el('td', { class: 'num' }, l.timeouts),
      el('td', { class: 'num' }, l.p50_ms.toFixed(1) + ' ms'), el('td', { class: 'num' }, l.p99_ms.toFixed(1) + ' ms'),
      el('td', { class: 'num' }, l.warm), el('td', { class: 'num' }, l.nodes))));
  }

  function renderNodes(list) {
    $('#nodes tbody').replaceChildren(...list.map((n) => el('tr', { 'data-node': n.id },
      el('td', {}, n.name && n.name !== n.id ? `${n.id} (${n.name})` : n.id),
      el('td', { class: n.alive ? 'state-alive' : 'state-error' }, n.alive ? 'yes' : 'no'),
      el('td', {}, human(n.heartbeat_ms) + ' ago'),
      el('td', { class: 'num' }, n.max_instances ? `${n.instances}/${n.max_instances}` : n.instances),
      el('td', { class: 'num' }, n.lambdas), el('td', { class: 'num' }, n.load1.toFixed(2)),
      el('td', {}, n.draining ? 'draining' : ''), el('td', {}, n.version), el('td', { class: 'msg' }, n.labels || ''))));
  }

  function onSnapshot(s) {
    const now = Date.parse(s.time);
    $('#server').textContent = s.server;
    $('#updated').textContent = 'updated ' + new Date(now).toLocaleTimeString();
    const p = $('#problem');
    p.hidden = !s.error;
    p.textContent = s.error || '';
    renderApps(s.apps);
    renderInstances(s.instances, s.more_instances, now);
    renderLambdas(s.lambdas);
    renderNodes(s.nodes);
  }

  function onEvent(e) {
    const list = $('#events');
    const when = new Date(Date.parse(e.time)).toLocaleTimeString();
    const who = e.instance >= 0 ? `${e.app}.${e.instance}` : e.app;
    list.prepend(el('li', { class: 'kind-' + e.kind.replace(/[^a-z-]/g, '') },
      el('time', {}, when), ' ', el('b', {}, who), ' ', e.kind, e.message ? ': ' + e.message : '', e.node ? ` (${e.node})` : ''));
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  }

  // RETRY_MS is how long a stream waits before it opens again after the
  // browser gave it up: an EventSource reconnects by itself when a stream
  // breaks, but not after an answer other than 200 (503 when the server
  // has its most streams open, 502 from a proxy while it restarts).
  const RETRY_MS = 5000;

  // stream opens url as an EventSource with listeners (event name ->
  // handler), and opens it again RETRY_MS after the browser gave up on it,
  // until stop() is called. onState gets 'live' or 'down'.
  function stream(url, listeners, onState) {
    let es = null, timer = null, stopped = false;
    const open = () => {
      es = new EventSource(url);
      es.addEventListener('open', () => onState('live'));
      es.addEventListener('error', () => {
        onState('down');
        if (es.readyState === EventSource.CLOSED && !stopped) timer = setTimeout(open, RETRY_MS);
      });
      for (const [name, fn] of Object.entries(listeners)) es.addEventListener(name, fn);
    };
    open();
    return { stop() { stopped = true; clearTimeout(timer); es.close(); } };
  }

  function connect() {
    const conn = $('#conn');
    stream('api/stream', {
      snapshot: (m) => onSnapshot(JSON.parse(m.data)),
      event: (m) => onEvent(JSON.parse(m.data)),
    }, (state) => { conn.textContent = state === 'live' ? 'live' : 'reconnecting…'; conn.dataset.state = state; });
  }

  // The log pane.
  let logSource = null;
  let paused = false;

  function updateChooser(names) {
    const sel = $('#log-app');
    const now = new Set(names);
    if (now.size === known.size && names.every((n) => known.has(n))) return;
    known = now;
    const chosen = sel.value;
    sel.replaceChildren(el('option', { value: '' }, 'choose an app'), ...names.map((n) => el('option', { value: n }, n)));
    sel.value = now.has(chosen) ? chosen : '';
  }

  function logState(text, state) {
    const s = $('#log-state');
    s.textContent = text;
    s.dataset.state = state;
  }

  function appendLine(text, cls) {
    const pane = $('#logs');
    const atEnd = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 4;
    pane.append(el('span', { class: cls }, text + '\n'));
    while (pane.childElementCount > MAX_LOG_LINES) pane.firstElementChild.remove();
    if (atEnd && !paused) pane.scrollTop = pane.scrollHeight;
  }

  function follow(app) {
    if (logSource) { logSource.stop(); logSource = null; }
    $('#log-app').value = app;
    $('#logs').replaceChildren();
    if (!app) { logState('', 'off'); return; }
    logState('connecting…', 'connecting');
    logSource = stream('api/logs?app=' + encodeURIComponent(app), {
      line: (m) => {
        if (paused) return;
        const l = JSON.parse(m.data);
        appendLine(`${l.app}.${l.instance} ${l.stream === 'err' ? '!' : '|'} ${l.line}`, 'stream-' + (l.stream === 'err' ? 'err' : 'out'));
      },
      dropped: (m) => appendLine(`… ${JSON.parse(m.data).count} lines left out (more than the dashboard forwards)`, 'note'),
      failed: (m) => logState('failed: ' + JSON.parse(m.data).error, 'down'),
    }, (state) => logState(state === 'live' ? `following ${app}` : 'reconnecting…', state));
  }

  $('#log-app').addEventListener('change', (e) => follow(e.target.value));
  $('#log-pause').addEventListener('click', (e) => {
    paused = !paused;
    e.target.textContent = paused ? 'resume' : 'pause';
  });
  $('#log-clear').addEventListener('click', () => $('#logs').replaceChildren());
  connect();
})();
