// phone-agent console: sign-in, the live calls table, a call's transcript and latency chart, and
// metrics charts, and the softphone's panel (softphone.js). Vanilla JS, no build. Served under a strict CSP: no inline code or styles, and
// untrusted data (numbers, transcripts) only ever goes into the page as text (textContent), never
// as HTML. The event stream is read with fetch() because EventSource cannot send the bearer token.
'use strict';

const TOKEN_KEY = 'phone-agent-token';
const LIVE = new Set(['queued', 'ringing', 'in-progress']);
const MAX_SAMPLES = 60;
const POLL_MS = 5000;
const OUTCOMES = ['paused', 'resumed', 'interrupted'];
// Latency chart segments: each ends at a cumulative figure (ms from the end of the caller's speech).
const STAGES = [
  ['end_of_turn', 'end of turn', (l) => l.end_of_turn_ms],
  ['recognition', 'recognition', (l) => l.stt_final_ms],
  ['dialogue', 'dialogue', (l) => l.first_text_ms],
  ['synthesis', 'synthesis', (l) => l.first_audio_ms],
  ['heard', 'first audio heard', (l) => l.first_heard_ms ?? l.first_sent_ms],
];

const state = {
  calls: new Map(), // id → CallView (without transcript)
  rows: new Map(), // id → {sig, tr}: rendered table rows
  lastTurn: new Map(), // id → {speaker, text} of its latest turn event
  callId: null, // the call the detail view shows
  feed: null, // AbortController of the event stream
  lastEventId: null,
  queue: new Set(), // call ids to re-fetch
  inflight: new Set(),
  samples: [],
  metricsTimer: null,
  metricsGen: 0,
  renderPending: false,
  noticeTimer: null,
  pumpTimer: null,
};

// ---- DOM helpers ----------------------------------------------------------------------------

const $ = (selector) => document.querySelector(selector);
const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value != null && value !== false) el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child != null && child !== false) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}
const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
const svg = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

// ---- Formatting -----------------------------------------------------------------------------

function fmtDuration(ms) {
  if (ms == null || !Number.isFinite(ms)) return '—';
  const total = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, '0')}`;
}

function fmtTime(ms) {
  if (ms == null) return '—';
  const date = new Date(ms);
  return date.toDateString() === new Date().toDateString()
    ? date.toLocaleTimeString()
    : date.toLocaleString();
}

function fmtNum(value, digits = 2) {
  if (value == null || !Number.isFinite(value)) return '—';
  return String(Number(value.toFixed(digits)));
}

const fmtMs = (seconds) => (seconds == null ? '—' : `${Math.round(seconds * 1000)} ms`);
const text = (value) => (value == null || value === '' ? '—' : String(value));

// ---- API ------------------------------------------------------------------------------------

const token = () => sessionStorage.getItem(TOKEN_KEY);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body?.error?.message) return body.error.message;
  } catch {
    // not JSON
  }
  return `${response.status} ${response.statusText}`.trim();
}

// A JSON request with the bearer token; a 401 signs out. Throws ApiError with the server's message.
async function api(path, { method = 'GET', body } = {}) {
  const bearer = token();
  if (!bearer) throw new ApiError(401, 'Not signed in.');
  const headers = { Authorization: `Bearer ${bearer}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (!response.ok) {
    const message = await errorMessage(response);
    if (response.status === 401) signOut(message);
    throw new ApiError(response.status, message);
  }
  const raw = await response.text();
  try {
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function notify(message, error = false) {
  const notice = $('#notice');
  notice.textContent = message;
  notice.classList.toggle('error', error);
  clearTimeout(state.noticeTimer);
  state.noticeTimer = setTimeout(() => {
    notice.textContent = '';
    notice.classList.remove('error');
  }, 10000);
}

// Report an error unless it signed out (then the sign-in view says why).
const report = (err) => err.status === 401 || notify(err.message, true);

// ---- Sign-in --------------------------------------------------------------------------------

async function onSignIn(event) {
  event.preventDefault();
  const input = $('#token');
  const error = $('#signin-error');
  const value = input.value.trim();
  error.textContent = '';
  if (!value) {
    error.textContent = 'Enter a token.';
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, value);
  try {
    await api('/api/calls?limit=1');
  } catch (err) {
    if (err.status !== 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      error.textContent = err.message;
    }
    return; // a 401 already signed out and showed its message
  }
  input.value = '';
  signedIn();
}

function signedIn() {
  startFeed();
  route();
}

function signOut(message = '') {
  sessionStorage.removeItem(TOKEN_KEY);
  softphone.hangUp();
  state.feed?.abort();
  state.feed = null;
  state.lastEventId = null;
  stopMetrics();
  state.calls.clear();
  state.rows.clear();
  state.lastTurn.clear();
  state.queue.clear();
  state.callId = null;
  state.samples = [];
  $('#calls tbody').replaceChildren();
  $('#signin-error').textContent = message;
  setFeedState(false);
  route();
  $('#token').focus();
}

// ---- Routing --------------------------------------------------------------------------------

function show(view) {
  document.body.dataset.view = view;
  for (const name of ['signin', 'calls', 'call', 'metrics']) {
    $(`#${name}-view`).hidden = name !== view;
  }
  $('#nav').hidden = view === 'signin';
  for (const link of document.querySelectorAll('#nav a[data-nav]')) {
    const active = link.dataset.nav === view || (view === 'call' && link.dataset.nav === 'calls');
    link.classList.toggle('active', active);
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function route() {
  stopMetrics();
  if (!token()) {
    state.callId = null;
    show('signin');
    return;
  }
  const hash = location.hash;
  const match = /^#\/calls\/([^/]+)$/.exec(hash);
  if (match) {
    show('call');
    openCall(decodeURIComponent(match[1]));
    return;
  }
  state.callId = null;
  if (hash === '#/metrics') {
    show('metrics');
    startMetrics();
  } else {
    show('calls');
    renderCalls();
    loadCalls();
  }
}

// ---- Calls ----------------------------------------------------------------------------------

// Keep the newer of two versions of a call (a list page can race an event's re-fetch).
function upsert(call) {
  const { transcript, extraction, ...summary } = call;
  const known = state.calls.get(call.id);
  if (known && known.updated_at > summary.updated_at) return;
  if (Array.isArray(transcript) && transcript.length && !state.lastTurn.has(call.id)) {
    const last = transcript[transcript.length - 1];
    state.lastTurn.set(call.id, { speaker: last.speaker, text: last.text });
  }
  state.calls.set(call.id, summary);
  scheduleRender();
}

async function loadCalls() {
  try {
    const page = await api('/api/calls?limit=50');
    for (const call of page?.calls ?? []) upsert(call);
  } catch (err) {
    report(err);
  }
}

function scheduleRender() {
  if (state.renderPending) return;
  state.renderPending = true;
  requestAnimationFrame(() => {
    state.renderPending = false;
    renderCalls();
  });
}

function liveSince(call) {
  return LIVE.has(call.status) ? call.answered_at ?? call.started_at ?? null : null;
}

function durationText(call) {
  const since = liveSince(call);
  if (since != null) return fmtDuration(Date.now() - since);
  return LIVE.has(call.status) ? '—' : fmtDuration(call.duration_ms);
}

function callRow(call) {
  const live = LIVE.has(call.status);
  const since = liveSince(call);
  const turn = state.lastTurn.get(call.id);
  return h('tr', { 'data-call-id': call.id, 'data-status': call.status },
    h('td', { class: 'call' },
      h('a', { class: 'open', href: `#/calls/${encodeURIComponent(call.id)}` }, call.call_sid || call.id)),
    h('td', { class: 'status' }, h('span', { class: 'pill' }, call.status)),
    h('td', { class: 'direction' }, call.direction),
    h('td', { class: 'from' }, text(call.from)),
    h('td', { class: 'to' }, text(call.to)),
    h('td', { class: 'created' }, fmtTime(call.created_at)),
    h('td', { class: 'duration', 'data-since': since }, durationText(call)),
    h('td', { class: 'last-turn', 'data-speaker': turn?.speaker, title: turn?.text }, turn?.text ?? ''),
    h('td', { class: 'actions' }, live && [
      h('button', { type: 'button', class: 'hangup' }, 'Hang up'),
      h('button', { type: 'button', class: 'transfer' }, 'Transfer'),
    ]));
}

function byLiveThenNewest(a, b) {
  const live = Number(LIVE.has(b.status)) - Number(LIVE.has(a.status));
  return live || b.created_at - a.created_at;
}

// Rows are rebuilt only when their call changed and moved only when out of place, so a button
// under the pointer survives unrelated updates.
function renderCalls() {
  const tbody = $('#calls tbody');
  const calls = [...state.calls.values()].sort(byLiveThenNewest);
  calls.forEach((call, index) => {
    const sig = JSON.stringify([call, state.lastTurn.get(call.id)]);
    let entry = state.rows.get(call.id);
    if (!entry || entry.sig !== sig) {
      const tr = callRow(call);
      if (entry) entry.tr.replaceWith(tr);
      entry = { sig, tr };
      state.rows.set(call.id, entry);
    }
    const at = tbody.children[index];
    if (at !== entry.tr) tbody.insertBefore(entry.tr, at ?? null);
  });
  const live = calls.filter((call) => LIVE.has(call.status)).length;
  $('#calls-summary').textContent = `${live} live · ${calls.length} shown`;
}

async function hangup(id, button) {
  button.disabled = true;
  try {
    await api(`/api/calls/${encodeURIComponent(id)}/hangup`, { method: 'POST' });
    notify(`Hang-up requested for ${id}.`);
  } catch (err) {
    report(err);
  } finally {
    button.disabled = false;
  }
}

async function transfer(id, button) {
  const to = window.prompt('Transfer the call to (E.164, e.g. +14155550123):', '');
  if (to == null || !to.trim()) return;
  button.disabled = true;
  try {
    await api(`/api/calls/${encodeURIComponent(id)}/transfer`, { method: 'POST', body: { to: to.trim() } });
    notify(`Transfer requested for ${id}.`);
  } catch (err) {
    report(err);
  } finally {
    button.disabled = false;
  }
}

function onCallsClick(event) {
  const button = event.target.closest('button');
  const id = button?.closest('tr')?.dataset.callId;
  if (!id) return;
  if (button.classList.contains('hangup')) hangup(id, button);
  else if (button.classList.contains('transfer')) transfer(id, button);
}

// Live durations tick once a second.
function tick() {
  for (const el of document.querySelectorAll('[data-since]')) {
    el.textContent = fmtDuration(Date.now() - Number(el.dataset.since));
  }
}

// ---- Re-fetching calls (at most 4 at once, never the same call twice at once) ----------------

function queueRefresh(id) {
  state.queue.add(id);
  pump();
}

// Re-fetches started in the last second: at most REFRESHES_PER_SECOND, well inside the API's
// per-client read limit however busy the server is (a call's events meanwhile coalesce into one
// re-fetch, the queue being a set).
const REFRESHES_PER_SECOND = 4;
const recentRefreshes = [];

function pump() {
  for (const id of state.queue) {
    if (state.inflight.size >= 4) return;
    if (state.inflight.has(id)) continue;
    const now = Date.now();
    while (recentRefreshes.length && now - recentRefreshes[0] >= 1000) recentRefreshes.shift();
    if (recentRefreshes.length >= REFRESHES_PER_SECOND) {
      clearTimeout(state.pumpTimer);
      state.pumpTimer = setTimeout(pump, 1000 - (now - recentRefreshes[0]));
      return;
    }
    recentRefreshes.push(now);
    state.queue.delete(id);
    state.inflight.add(id);
    refreshCall(id).finally(() => {
      state.inflight.delete(id);
      pump();
    });
  }
}

async function refreshCall(id) {
  let call;
  try {
    call = await api(`/api/calls/${encodeURIComponent(id)}`);
  } catch (err) {
    if (id === state.callId) report(err);
    return;
  }
  if (!call || !token()) return;
  upsert(call);
  if (id === state.callId && document.body.dataset.view === 'call') renderCall(call);
}

// ---- Call detail ----------------------------------------------------------------------------

const FACTS = ['call-sid', 'call-direction', 'call-from', 'call-to', 'call-agent', 'call-answered-by',
  'call-created', 'call-ended', 'call-duration', 'call-end-reason'];

function openCall(id) {
  if (state.callId !== id) {
    state.callId = id;
    $('#call-id').textContent = id;
    $('#call-status').textContent = '…';
    for (const fact of FACTS) $(`#${fact}`).textContent = '';
    $('#call-duration').removeAttribute('data-since');
    $('#transcript').replaceChildren();
    $('#extraction').replaceChildren();
    $('#latency-chart').replaceChildren();
  }
  queueRefresh(id);
}

function renderCall(call) {
  $('#call-id').textContent = call.id;
  const status = $('#call-status');
  status.textContent = call.status;
  status.dataset.status = call.status;
  $('#call-sid').textContent = text(call.call_sid);
  $('#call-direction').textContent = text(call.direction);
  $('#call-from').textContent = text(call.from);
  $('#call-to').textContent = text(call.to);
  $('#call-agent').textContent = text(call.agent);
  $('#call-answered-by').textContent = text(call.answered_by) + (call.machine ? ' (machine)' : '');
  $('#call-created').textContent = fmtTime(call.created_at);
  $('#call-ended').textContent = fmtTime(call.ended_at);
  $('#call-end-reason').textContent = text(call.end_reason);
  const duration = $('#call-duration');
  const since = liveSince(call);
  if (since != null) duration.dataset.since = since;
  else duration.removeAttribute('data-since');
  duration.textContent = durationText(call);
  const turns = Array.isArray(call.transcript) ? call.transcript : [];
  $('#transcript').replaceChildren(...turns.map(turnItem));
  renderExtraction(call.extraction);
  drawLatency($('#latency-chart'), turns);
}

function turnItem(turn) {
  const agent = turn.speaker === 'agent';
  const classes = ['turn', agent ? 'agent' : 'caller'];
  if (turn.interrupted) classes.push('interrupted');
  const said = String(turn.text ?? '');
  const heard = turn.heard == null ? null : String(turn.heard);
  const body = h('span', { class: 'text' });
  const prefix = heard?.trimEnd();
  if (agent && turn.interrupted && heard != null && said.startsWith(prefix)) {
    const rest = said.slice(prefix.length);
    body.append(prefix, rest && h('s', { title: 'not heard' }, rest));
  } else {
    body.append(said);
  }
  const voiceToVoice = agent ? turn.latencies?.first_heard_ms ?? turn.latencies?.first_sent_ms : null;
  return h('li', { class: classes.join(' '), 'data-turn': turn.n },
    h('span', { class: 'at' }, fmtDuration(turn.start_ms)),
    h('span', { class: 'speaker' }, agent ? 'agent' : 'caller'),
    body,
    turn.interrupted && heard != null && h('span', { class: 'heard' }, `heard: ${heard}`),
    voiceToVoice != null && h('span', { class: 'latency', title: 'voice to voice' }, `${voiceToVoice} ms`));
}

function renderExtraction(extraction) {
  const dl = $('#extraction');
  if (!extraction) {
    dl.classList.add('empty');
    dl.replaceChildren('no extraction');
    return;
  }
  dl.classList.remove('empty');
  const consent = extraction.consent_to_follow_up;
  const entries = [
    ['Intent', extraction.intent],
    ['Name', extraction.name],
    ['Phone', extraction.phone],
    ['Consent to follow up', consent == null ? null : consent ? 'yes' : 'no'],
    ['Next step', extraction.next_step],
  ];
  dl.replaceChildren(...entries.flatMap(([label, value]) => [h('dt', {}, label), h('dd', {}, text(value))]));
}

// A "nice" axis: a maximum at or above `value` and a tick step of 1, 2 or 5 × 10^k.
function scale(value, ticks = 5) {
  const top = value > 0 && Number.isFinite(value) ? value : 1;
  const raw = top / ticks;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const m = raw / pow;
  const step = (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * pow;
  return { max: Math.ceil(top / step - 1e-9) * step, step };
}

function drawLatency(chart, turns) {
  const bars = [];
  for (const turn of turns) {
    if (turn.speaker !== 'agent' || !turn.latencies) continue;
    const segments = [];
    let at = 0;
    for (const [name, label, figure] of STAGES) {
      const end = figure(turn.latencies);
      if (end == null) continue;
      if (end > at) segments.push({ name, label, from: at, to: end });
      at = Math.max(at, end);
    }
    if (segments.length) bars.push({ n: turn.n, segments, total: at });
  }
  const W = 640, L = 44, R = 14, T = 4, ROW = 18, BAR = 12, AXIS = 20;
  if (!bars.length) {
    chart.setAttribute('viewBox', `0 0 ${W} 24`);
    chart.replaceChildren(svg('text', { x: 0, y: 16, class: 'empty' }, 'no latency measured yet'));
    return;
  }
  const height = T + bars.length * ROW + AXIS;
  chart.setAttribute('viewBox', `0 0 ${W} ${height}`);
  const { max, step } = scale(Math.max(...bars.map((bar) => bar.total)));
  const x = (ms) => L + (ms / max) * (W - L - R);
  const bottom = T + bars.length * ROW;
  const nodes = [];
  for (let ms = 0; ms <= max + 1e-9; ms += step) {
    const last = ms + step > max + 1e-9;
    nodes.push(
      svg('line', { class: 'grid', x1: x(ms), x2: x(ms), y1: T, y2: bottom }),
      svg('text', { class: 'tick', x: x(ms), y: bottom + 14, 'text-anchor': last ? 'end' : 'middle' },
        last ? `${fmtNum(ms, 0)} ms` : fmtNum(ms, 0)));
  }
  bars.forEach((bar, i) => {
    const y = T + i * ROW + (ROW - BAR) / 2;
    nodes.push(svg('g', { class: 'bar', 'data-turn': bar.n },
      svg('text', { class: 'label', x: L - 6, y: y + BAR - 2, 'text-anchor': 'end' }, `#${bar.n}`),
      bar.segments.map((seg) => svg('rect', {
        class: `stage stage-${seg.name}`,
        x: x(seg.from), y, width: Math.max(0.5, x(seg.to) - x(seg.from)), height: BAR,
      }, svg('title', {}, `turn ${bar.n} · ${seg.label}: ${seg.to - seg.from} ms (${seg.from}–${seg.to} ms)`)))));
  });
  chart.replaceChildren(...nodes);
}

// ---- Event stream ---------------------------------------------------------------------------

function setFeedState(live) {
  const el = $('#feed-state');
  el.textContent = live ? 'live' : 'reconnecting';
  el.dataset.state = live ? 'live' : 'reconnecting';
}

function startFeed() {
  state.feed?.abort();
  state.feed = new AbortController();
  runFeed(state.feed.signal);
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
});

async function runFeed(signal) {
  let delay = 1000;
  while (!signal.aborted) {
    try {
      const headers = { Authorization: `Bearer ${token()}`, Accept: 'text/event-stream' };
      if (state.lastEventId != null) headers['Last-Event-ID'] = state.lastEventId;
      const response = await fetch('/api/events', { headers, signal, cache: 'no-store' });
      if (response.status === 401) {
        signOut(await errorMessage(response));
        return;
      }
      if (response.status === 400) state.lastEventId = null; // an id this server no longer knows
      if (!response.ok || !response.body) throw new Error(await errorMessage(response));
      setFeedState(true);
      delay = 1000;
      await readEvents(response.body);
    } catch {
      // ended or failed: reconnect below
    }
    if (signal.aborted) return;
    setFeedState(false);
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 10000);
  }
}

// The text/event-stream wire format: lines of `field: value`, a blank line ends a record.
async function readEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let name = '';
  let data = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      let line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (data.length) onFeedEvent(name || 'message', data.join('\n'));
        name = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue; // comment / keep-alive
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? '' : line.slice(colon + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'data') data.push(val);
      else if (field === 'event') name = val;
      else if (field === 'id' && !val.includes('\0')) state.lastEventId = val;
    }
  }
}

function onFeedEvent(name, raw) {
  if (name === 'gap') {
    // Events were missed: reload what is shown.
    loadCalls();
    if (state.callId) queueRefresh(state.callId);
    return;
  }
  let event;
  try {
    event = JSON.parse(raw);
  } catch {
    return;
  }
  if (typeof event?.call_id !== 'string') return;
  if (event.kind === 'turn' && typeof event.data?.text === 'string') {
    state.lastTurn.set(event.call_id, { speaker: event.data.speaker, text: event.data.text });
  }
  queueRefresh(event.call_id);
}

// ---- Metrics --------------------------------------------------------------------------------

// OpenMetrics / Prometheus text: [{name, labels, value}].
function parseMetrics(body) {
  const out = [];
  for (const line of body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    const pairs = /([a-zA-Z_]\w*)\s*=\s*"((?:[^"\\]|\\.)*)"/g;
    let pair;
    while ((pair = pairs.exec(match[2] || ''))) {
      labels[pair[1]] = pair[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: match[1], labels, value: parseValue(match[3]) });
  }
  return out;
}

function parseValue(raw) {
  if (raw === '+Inf' || raw === 'Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  return Number(raw);
}

function readSample(series, health) {
  const sum = (name, keep = () => true) => series
    .filter((m) => m.name === name && keep(m.labels) && Number.isFinite(m.value))
    .reduce((total, m) => total + m.value, 0);
  const buckets = series
    .filter((m) => m.name === 'phone_agent_turn_latency_seconds_bucket' && m.labels.stage === 'first_heard')
    .map((m) => ({ le: parseValue(m.labels.le), count: m.value }))
    .sort((a, b) => a.le - b.le);
  const barge = {};
  for (const outcome of OUTCOMES) barge[outcome] = sum('phone_agent_barge_ins_total', (l) => l.outcome === outcome);
  return {
    t: Date.now(),
    ended: sum('phone_agent_calls_ended_total'),
    live: typeof health?.live_calls === 'number' ? health.live_calls : null,
    buckets,
    barge,
    faults: sum('phone_agent_engine_faults_total'),
  };
}

// A counter's increase, or null when it went down (the server restarted).
const delta = (before, after) => (after >= before ? after - before : null);

// The q-quantile of cumulative buckets, interpolated linearly within its bucket.
function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  if (!(total > 0)) return null;
  const rank = q * total;
  let lower = 0, below = 0;
  for (const { le, count } of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return lower;
      return count > below ? lower + (le - lower) * ((rank - below) / (count - below)) : le;
    }
    lower = le;
    below = count;
  }
  return lower;
}

// The bucket counts observed between two samples, or null after a reset.
function bucketDelta(before, after) {
  const old = new Map(before.map((b) => [b.le, b.count]));
  const out = [];
  for (const b of after) {
    const d = delta(old.get(b.le) ?? 0, b.count);
    if (d == null) return null;
    out.push({ le: b.le, count: d });
  }
  return out;
}

function intervals(samples) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const minutes = (b.t - a.t) / 60000;
    const ended = delta(a.ended, b.ended);
    const buckets = bucketDelta(a.buckets, b.buckets);
    const barge = {};
    for (const outcome of OUTCOMES) barge[outcome] = delta(a.barge[outcome], b.barge[outcome]);
    out.push({
      callsPerMin: ended == null || minutes <= 0 ? null : ended / minutes,
      p50: buckets && quantile(buckets, 0.5),
      p95: buckets && quantile(buckets, 0.95),
      barge,
      faults: delta(a.faults, b.faults),
    });
  }
  return out;
}

function startMetrics() {
  const gen = ++state.metricsGen;
  pollMetrics(gen);
}

function stopMetrics() {
  state.metricsGen++;
  clearTimeout(state.metricsTimer);
  state.metricsTimer = null;
}

async function fetchText(path) {
  const bearer = token();
  const response = await fetch(path, {
    headers: bearer ? { Authorization: `Bearer ${bearer}` } : {},
    cache: 'no-store',
  });
  if (!response.ok) throw new Error(`${path}: ${await errorMessage(response)}`);
  return response.text();
}

async function pollMetrics(gen) {
  const [metrics, health] = await Promise.allSettled([fetchText('/metrics'), fetchText('/health')]);
  if (gen !== state.metricsGen) return;
  if (metrics.status === 'fulfilled') {
    let healthJson = null;
    try {
      healthJson = health.status === 'fulfilled' ? JSON.parse(health.value) : null;
    } catch {
      // not JSON: no live count this time
    }
    state.samples.push(readSample(parseMetrics(metrics.value), healthJson));
    if (state.samples.length > MAX_SAMPLES) state.samples.splice(0, state.samples.length - MAX_SAMPLES);
    drawMetrics();
  } else {
    notify(metrics.reason?.message ?? 'metrics unavailable', true);
  }
  state.metricsTimer = setTimeout(() => pollMetrics(gen), POLL_MS);
}

function drawMetrics() {
  const steps = intervals(state.samples);
  const last = steps[steps.length - 1];
  const pick = (f) => steps.map(f);
  const lines = (id, series, fmt) => drawLines($(id), series, fmt);
  const current = (id, parts) => $(id).replaceChildren(
    ...parts.map(([cls, label], i) => h('span', { class: cls }, i ? ` · ${label}` : label)));

  lines('#chart-calls', [{ cls: 's0', values: pick((s) => s.callsPerMin) }], (v) => fmtNum(v, 1));
  current('#current-calls', [['s0', last ? `${fmtNum(last.callsPerMin, 1)} /min` : '—']]);

  const live = state.samples.map((s) => s.live);
  lines('#chart-live', [{ cls: 's0', values: live }], (v) => fmtNum(v, 0));
  current('#current-live', [['s0', fmtNum(live[live.length - 1], 0)]]);

  lines('#chart-latency', [
    { cls: 's0', values: pick((s) => s.p50) },
    { cls: 's1', values: pick((s) => s.p95) },
  ], fmtMs);
  current('#current-latency', [['s0', `p50 ${fmtMs(last?.p50)}`], ['s1', `p95 ${fmtMs(last?.p95)}`]]);

  lines('#chart-barge-ins', OUTCOMES.map((outcome, i) => ({
    cls: `s${i}`, values: pick((s) => s.barge[outcome]),
  })), (v) => fmtNum(v, 1));
  current('#current-barge-ins', OUTCOMES.map((outcome, i) => [`s${i}`, `${outcome} ${fmtNum(last?.barge[outcome], 0)}`]));

  lines('#chart-errors', [{ cls: 's2', values: pick((s) => s.faults) }], (v) => fmtNum(v, 1));
  current('#current-errors', [['s2', fmtNum(last?.faults, 0)]]);
}

// A small line chart of the last MAX_SAMPLES points, newest on the right; null is a gap.
function drawLines(chart, series, fmt) {
  const W = 300, H = 96, L = 44, R = 4, T = 6, B = 6;
  chart.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const values = series.flatMap((s) => s.values).filter((v) => v != null && Number.isFinite(v));
  const { max } = scale(Math.max(0, ...values), 2);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const nodes = [
    svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(max), y2: y(max) }),
    svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(max / 2), y2: y(max / 2) }),
    svg('line', { class: 'axis', x1: L, x2: W - R, y1: y(0), y2: y(0) }),
    svg('text', { class: 'tick', x: L - 4, y: y(max) + 4, 'text-anchor': 'end' }, fmt(max)),
    svg('text', { class: 'tick', x: L - 4, y: y(0), 'text-anchor': 'end' }, fmt(0)),
  ];
  if (!values.length) {
    nodes.push(svg('text', { class: 'empty', x: (L + W) / 2, y: H / 2, 'text-anchor': 'middle' }, 'waiting for data'));
  }
  for (const { cls, values: points } of series) {
    const offset = MAX_SAMPLES - points.length;
    const x = (i) => L + ((i + offset) / (MAX_SAMPLES - 1)) * (W - L - R);
    let d = '';
    points.forEach((v, i) => {
      if (v == null || !Number.isFinite(v)) return;
      const joined = i > 0 && points[i - 1] != null && Number.isFinite(points[i - 1]);
      d += `${joined ? 'L' : 'M'}${x(i).toFixed(1)} ${y(v).toFixed(1)}`;
      const alone = !joined && !(points[i + 1] != null && Number.isFinite(points[i + 1]));
      if (alone) nodes.push(svg('circle', { class: `dot ${cls}`, cx: x(i), cy: y(v), r: 1.8 }));
    });
    if (d) nodes.push(svg('path', { class: `line ${cls}`, d }));
  }
  chart.replaceChildren(...nodes);
}

// ---- Softphone -------------------------------------------------------------------------------

const softphone = new Softphone({
  open: () => api('/api/softphone', { method: 'POST' }),
  onChange: showSoftphone,
});

// The softphone panel: its state, voice-to-voice latency as heard here, and the recording.
function showSoftphone(phone) {
  const panel = $('#softphone');
  panel.hidden = false;
  panel.dataset.state = phone.state;
  const states = { connecting: 'connecting…', live: 'on a call with the agent', ended: 'call ended' };
  $('#softphone-state').textContent =
    [states[phone.state] || phone.state, phone.detail].filter(Boolean).join(': ');
  const p50 = phone.percentile(50);
  $('#softphone-latency').textContent = p50 == null
    ? ''
    : `voice-to-voice p50 ${Math.round(p50)} ms · p95 ${Math.round(phone.percentile(95))} ms ` +
      `(${phone.latencies.length} answers)`;
  const link = $('#softphone-recording');
  if (phone.recording && !link.href.startsWith('blob:')) {
    link.href = URL.createObjectURL(phone.recording);
  } else if (!phone.recording && link.href) {
    URL.revokeObjectURL(link.href);
    link.removeAttribute('href');
  }
  link.hidden = !phone.recording;
  $('#softphone-start').disabled = phone.state === 'connecting' || phone.state === 'live';
}

// ---- Start ----------------------------------------------------------------------------------

function init() {
  $('#signin').addEventListener('submit', onSignIn);
  $('#signout').addEventListener('click', () => signOut());
  $('#calls').addEventListener('click', onCallsClick);
  $('#softphone-start').addEventListener('click', () => softphone.start());
  $('#softphone-hangup').addEventListener('click', () => softphone.hangUp());
  window.addEventListener('hashchange', route);
  setInterval(tick, 1000);
  setFeedState(false);
  if (token()) signedIn();
  else route();
}

init();
