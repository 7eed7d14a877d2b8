// petrel's dashboard: polls the JSON API every two seconds and renders
// listeners, throughput (rates computed here from /api/v1/stats counters),
// clients (search, disconnect), certificates and retained messages. Every
// value from the broker (client ids, topics, payloads) is set as text, never
// as HTML. Errors go to the status line, not the console, so that an
// unreachable broker does not look like a bug in the page.
'use strict';

const REFRESH_MS = 2000;
const HISTORY_SECONDS = 300;

const state = {
  token: sessionStorage.getItem('petrel-token') || '',
  history: [],            // [{t, in, out}] counters as read
  clientPrefix: '',
  clientUser: '',
  clientsLimit: 100,
  retainedFilter: '#',
};

class NeedToken extends Error {}

async function api(method, path) {
  const headers = {};
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  const response = await fetch(path, { method, headers, cache: 'no-store' });
  if (response.status === 401) throw new NeedToken('this API needs a token');
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '–' : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fill(tableId, items, render) {
  const body = document.querySelector('#' + tableId + ' tbody');
  const rows = items.map((item) => {
    const tr = document.createElement('tr');
    render(tr, item);
    return tr;
  });
  body.replaceChildren(...rows);
}

function sumLastMinute(group) {
  return Object.values(group || {}).reduce((n, c) => n + c.last_minute, 0);
}

function daysClass(days) {
  if (days < 7) return 'bad';
  if (days < 30) return 'warn';
  return 'ok';
}

function renderListeners(listeners) {
  fill('listeners', listeners, (tr, l) => {
    tr.dataset.listener = l.name;
    cell(tr, l.name);
    cell(tr, l.type);
    cell(tr, l.bind + ':' + l.port);
    const why = l.state === 'accepting' ? 'accepting'
      : l.state + (l.last_accept_error ? ' (' + l.last_accept_error + ')' : '');
    cell(tr, why, l.state === 'accepting' ? 'ok' : 'bad');
    cell(tr, l.connections);
    cell(tr, l.accepts.last_minute);
    cell(tr, sumLastMinute(l.refusals));
    const failures = sumLastMinute(l.handshake_failures);
    cell(tr, failures, failures > 0 ? 'warn' : '');
    cell(tr, l.certificate ? l.certificate.days_until_expiry + ' days' : '–',
      l.certificate ? daysClass(l.certificate.days_until_expiry) : '');
  });
  const certs = listeners.filter((l) => l.certificate);
  fill('certificates', certs, (tr, l) => {
    const c = l.certificate;
    cell(tr, l.name);
    cell(tr, c.subject);
    cell(tr, c.not_after);
    cell(tr, c.days_until_expiry, daysClass(c.days_until_expiry));
    cell(tr, c.last_reload_error ? 'failed: ' + c.last_reload_error : (c.last_reload || 'never'),
      c.last_reload_error ? 'bad' : '');
  });
}

function renderClients(page) {
  fill('clients', page.items, (tr, c) => {
    tr.dataset.clientId = c.client_id;
    cell(tr, c.client_id);
    cell(tr, c.username);
    cell(tr, c.listener);
    cell(tr, c.protocol);
    cell(tr, c.peer);
    cell(tr, c.subscriptions);
    cell(tr, c.queued);
    cell(tr, c.inflight);
    cell(tr, c.connected_at);
    const td = document.createElement('td');
    const button = document.createElement('button');
    button.className = 'disconnect';
    button.textContent = 'Disconnect';
    button.addEventListener('click', () => disconnect(c.client_id));
    td.appendChild(button);
    tr.appendChild(td);
  });
  document.getElementById('clients-more').hidden = page.next === null;
}

function renderRetained(page) {
  fill('retained', page.items, (tr, m) => {
    tr.dataset.topic = m.topic;
    cell(tr, m.topic);
    cell(tr, m.qos);
    cell(tr, m.size);
    const text = m.payload !== null ? m.payload : 'base64: ' + m.payload_base64;
    cell(tr, text.length > 200 ? text.slice(0, 200) + '…' : text, 'payload');
  });
}

function sum(a) { return a.reduce((n, x) => n + x, 0); }

function renderStats(stats) {
  document.getElementById('version').textContent = 'petrel ' + stats.version;
  document.getElementById('summary').textContent = stats.clients_connected + ' clients, ' + stats.sessions
    + ' sessions, ' + stats.subscriptions + ' subscriptions, ' + stats.retained + ' retained';
  const now = performance.now() / 1000;
  state.history.push({ t: now, in: sum(stats.in.messages), out: sum(stats.out.messages) });
  while (state.history.length > 2 && now - state.history[0].t > HISTORY_SECONDS) state.history.shift();
  drawThroughput();
}

function rates() {
  const h = state.history;
  const out = [];
  for (let i = 1; i < h.length; i++) {
    const dt = h[i].t - h[i - 1].t;
    if (dt <= 0) continue;
    out.push({ t: h[i].t, in: (h[i].in - h[i - 1].in) / dt, out: (h[i].out - h[i - 1].out) / dt });
  }
  return out;
}

function drawThroughput() {
  const canvas = document.getElementById('throughput');
  const ctx = canvas.getContext('2d');
  const w = canvas.width;
  const hgt = canvas.height;
  ctx.clearRect(0, 0, w, hgt);
  const r = rates();
  if (r.length === 0) return;
  const now = r[r.length - 1].t;
  const max = Math.max(1, ...r.map((p) => Math.max(p.in, p.out)));
  const x = (t) => w - ((now - t) / HISTORY_SECONDS) * w;
  const y = (v) => hgt - 4 - (v / max) * (hgt - 20);
  for (const [key, colour] of [['in', '#1a73e8'], ['out', '#188038']]) {
    ctx.beginPath();
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    r.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.t), y(p[key])) : ctx.lineTo(x(p.t), y(p[key]))));
    ctx.stroke();
  }
  ctx.fillStyle = '#4a5560';
  ctx.fillText(Math.round(max) + ' msg/s', 4, 12);
  const last = r[r.length - 1];
  document.getElementById('rates').textContent =
    'now: ' + Math.round(last.in) + ' in/s, ' + Math.round(last.out) + ' out/s';
}

function setStatus(text, isError) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.className = isError ? 'error' : '';
}

function showLogin() {
  document.getElementById('login').hidden = false;
  setStatus('a token is needed', true);
}

function clientsPath() {
  const q = new URLSearchParams({ limit: String(state.clientsLimit) });
  if (state.clientPrefix) q.set('prefix', state.clientPrefix);
  if (state.clientUser) q.set('user', state.clientUser);
  return '/api/v1/clients?' + q.toString();
}

async function refresh() {
  try {
    const [stats, listeners, clients, retained] = await Promise.all([
      api('GET', '/api/v1/stats'),
      api('GET', '/api/v1/listeners'),
      api('GET', clientsPath()),
      api('GET', '/api/v1/retained?' + new URLSearchParams({ filter: state.retainedFilter, limit: '100' })),
    ]);
    renderStats(stats);
    renderListeners(listeners.items);
    renderClients(clients);
    renderRetained(retained);
    setStatus('updated ' + new Date().toLocaleTimeString(), false);
  } catch (e) {
    if (e instanceof NeedToken) showLogin();
    else setStatus(String(e.message || e), true);
  }
}

async function disconnect(clientId) {
  if (!window.confirm('Disconnect ' + clientId + '? (MQTT 5 clients get DISCONNECT 0x98)')) return;
  try {
    await api('DELETE', '/api/v1/clients/' + encodeURIComponent(clientId));
    setStatus('disconnected ' + clientId, false);
  } catch (e) {
    setStatus('could not disconnect ' + clientId + ': ' + (e.message || e), true);
  }
  refresh();
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.token = document.getElementById('token').value.trim();
    sessionStorage.setItem('petrel-token', state.token);
    document.getElementById('login').hidden = true;
    refresh();
  });
  document.getElementById('client-search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.clientPrefix = document.getElementById('client-prefix').value;
    state.clientUser = document.getElementById('client-user').value;
    state.clientsLimit = 100;
    refresh();
  });
  document.getElementById('clients-more').addEventListener('click', () => {
    state.clientsLimit = Math.min(1000, state.clientsLimit + 100);
    refresh();
  });
  document.getElementById('retained-search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.retainedFilter = document.getElementById('retained-filter').value || '#';
    refresh();
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
});
