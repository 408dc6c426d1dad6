import { MAX_RECORDED_EVENTS } from './recorder.ts';

/**
 * The inspector page: one self-contained HTML document (no network, no hosted viewer).
 * The browser replays trace events up to a cursor to derive the actor tree, each actor's
 * current state and the message sequence, so live views and recorded traces share one path
 * and stepping backwards is just a smaller cursor.
 */
export const INSPECTOR_PAGE = String.raw`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Talos inspector</title>
<style>
  :root { --bg:#0f1419; --panel:#171d24; --line:#2a3440; --text:#d6dde6; --dim:#7d8a99; --accent:#4fb3ff; --active:#ffb454; --ok:#7fd962; --bad:#ff6b6b; }
  * { box-sizing: border-box; }
  body { margin:0; font:13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; background:var(--bg); color:var(--text); }
  header { display:flex; gap:16px; align-items:center; padding:8px 14px; border-bottom:1px solid var(--line); background:var(--panel); }
  header h1 { font-size:15px; margin:0; color:var(--accent); }
  #mode { color:var(--dim); }
  #current { color:var(--dim); min-width:360px; }
  main { display:grid; grid-template-columns: 260px 1fr 440px; height: calc(100vh - 92px); }
  section { overflow:auto; border-right:1px solid var(--line); padding:10px; }
  h2 { font-size:12px; text-transform:uppercase; letter-spacing:.08em; color:var(--dim); margin:4px 0 8px; }
  ul.tree { list-style:none; padding-left:14px; margin:0; } ul.tree.root { padding-left:0; }
  .actor { cursor:pointer; padding:2px 4px; border-radius:3px; white-space:nowrap; }
  .actor.selected { background:#24313f; }
  .state { color:var(--active); }
  .card { border:1px solid var(--line); border-radius:6px; margin-bottom:12px; background:var(--panel); overflow-x:auto; }
  .card svg { display:block; }
  .card h3 { margin:0; padding:6px 10px; font-size:12px; border-bottom:1px solid var(--line); display:flex; justify-content:space-between; }
  .details { padding:6px 10px; color:var(--dim); }
  svg text { fill:var(--text); font:12px ui-monospace, monospace; }
  .node rect { fill:#1e2731; stroke:#3a4756; rx:6; }
  .node.active rect { fill:#3a2a10; stroke:var(--active); stroke-width:2; }
  .node.final rect { stroke-dasharray:4 2; }
  .edge path { stroke:#556273; fill:none; marker-end:url(#arrow); }
  .edge text { fill:var(--dim); font-size:10px; }
  .seq line.life { stroke:#2f3b48; stroke-dasharray:3 3; }
  .seq .msg line { stroke:var(--accent); marker-end:url(#arrow2); }
  .seq .msg text { font-size:10px; }
  footer { display:flex; gap:10px; align-items:center; padding:8px 14px; border-top:1px solid var(--line); background:var(--panel); }
  button { background:#24313f; color:var(--text); border:1px solid var(--line); border-radius:4px; padding:3px 10px; cursor:pointer; font:inherit; }
  input[type=range] { flex:1; }
</style></head>
<body>
<header><h1>Talos inspector</h1><span id="mode">connecting…</span><span style="flex:1"></span>
  <label>open trace <input id="file" type="file" accept=".jsonl,.trace,.json"></label></header>
<main>
  <section><h2>actors</h2><ul id="tree" class="tree root"></ul></section>
  <section id="machines"><h2>state machines</h2><div id="cards"></div></section>
  <section><h2>messages</h2><svg id="seq" class="seq" width="420" height="40"></svg></section>
</main>
<footer>
  <button id="back" title="step back">◀</button><button id="fwd" title="step forward">▶</button>
  <button id="live">follow live</button>
  <input id="cursor" type="range" min="0" max="0" value="0"><span id="pos">0 / 0</span><span id="current"></span>
</footer>
<script>
const NS = 'http://www.w3.org/2000/svg';
// drawings has no prototype: a trace's machine name ("constructor", "__proto__") must find nothing.
let events = [], drawings = Object.create(null), cursor = 0, follow = true, selected = null;
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, text) => { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; return e; };

function derive(upto) {
  const actors = new Map(), messages = [];
  for (const e of events.slice(0, upto)) {
    if (e.kind === 'actor') actors.set(e.actor, { ...e, value: null, status: 'active', details: null });
    else if (e.kind === 'state') { const a = actors.get(e.actor); if (a) { a.value = e.value; a.status = e.status; if (e.details) a.details = e.details; } }
    else if (e.kind === 'message' || e.kind === 'fault') messages.push(e);
  }
  return { actors, messages };
}
const stateText = (v) => v == null ? '' : typeof v === 'string' ? v : Object.keys(v).length === 0 ? '' : JSON.stringify(v);
function activeIds(machine, value) {
  const out = [];
  const walk = (p, v) => { if (typeof v === 'string') out.push(p + '.' + v); else if (v && typeof v === 'object') for (const k in v) { out.push(p + '.' + k); walk(p + '.' + k, v[k]); } };
  walk(machine, value); return out;
}
function label(a) { return (a.systemId || a.machine || a.name || 'actor') + ' ' + a.actor; }
// Invoked promises and callbacks (one per operation) are shown only while they run.
const visible = (a) => a.machine || a.status === 'active';

function renderTree(actors) {
  const tree = $('tree'); tree.replaceChildren();
  const kids = new Map();
  for (const a of actors.values()) { if (!visible(a)) continue; const p = a.parent && actors.has(a.parent) ? a.parent : ''; kids.set(p, [...(kids.get(p) || []), a]); }
  const build = (parent, ul) => { for (const a of kids.get(parent) || []) {
    const li = document.createElement('li'); const span = document.createElement('div');
    span.className = 'actor' + (a.actor === selected ? ' selected' : ''); span.dataset.actor = a.actor;
    span.textContent = label(a) + ' '; const st = document.createElement('span'); st.className = 'state'; st.textContent = stateText(a.value); span.append(st);
    span.onclick = () => { selected = a.actor; render(); };
    li.append(span); const sub = document.createElement('ul'); sub.className = 'tree'; build(a.actor, sub); li.append(sub); ul.append(li); } };
  build('', tree);
}

function drawMachineSvg(d, active) {
  const svg = el('svg', { width: d.width, height: d.height, 'data-machine': d.machine });
  const defs = el('defs'); const m = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto' });
  m.append(el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#556273' })); defs.append(m); svg.append(defs);
  const pos = Object.fromEntries(d.states.map((s) => [s.id, s]));
  for (const e of d.edges) { const s = pos[e.source], t = pos[e.target]; if (!s || !t) continue;
    const g = el('g', { class: 'edge' }); let path, lx, ly;
    if (s === t) { const x = s.x + s.w - 14, y = s.y; path = 'M' + x + ',' + y + ' c 10,-26 30,-12 14,6'; lx = x + 18; ly = y - 14; }
    else { const x1 = s.x + s.w, y1 = s.y + s.h / 2, x2 = t.x, y2 = t.y + t.h / 2;
      if (x2 > x1) { path = 'M' + x1 + ',' + y1 + ' C ' + (x1 + 30) + ',' + y1 + ' ' + (x2 - 30) + ',' + y2 + ' ' + x2 + ',' + y2; }
      else { const bx1 = s.x + s.w / 2, by1 = s.y + s.h, bx2 = t.x + t.w / 2, by2 = t.y + t.h; path = 'M' + bx1 + ',' + by1 + ' C ' + bx1 + ',' + (by1 + 40) + ' ' + bx2 + ',' + (by2 + 40) + ' ' + bx2 + ',' + by2; }
      lx = (x1 + x2) / 2; ly = (y1 + y2) / 2 - 4; }
    g.append(el('path', { d: path }), el('text', { x: lx, y: ly, 'text-anchor': s === t ? 'start' : 'middle' }, e.label)); svg.append(g); }
  for (const s of d.states) { const g = el('g', { class: 'node' + (active.includes(s.id) ? ' active' : '') + (s.final ? ' final' : ''), 'data-state': s.id });
    g.append(el('rect', { x: s.x, y: s.y, width: s.w, height: s.h }), el('text', { x: s.x + s.w / 2, y: s.y + s.h / 2 + 4, 'text-anchor': 'middle' }, s.label)); svg.append(g); }
  return svg;
}

function renderCards(actors) {
  const cards = $('cards'); cards.replaceChildren();
  const list = [...actors.values()].filter((a) => a.machine && drawings[a.machine]);
  list.sort((a, b) => (a.actor === selected ? -1 : b.actor === selected ? 1 : 0));
  for (const a of list) {
    const card = document.createElement('div'); card.className = 'card'; card.dataset.actor = a.actor; card.dataset.machine = a.machine;
    const h = document.createElement('h3'); h.textContent = label(a); const st = document.createElement('span'); st.className = 'state'; st.textContent = stateText(a.value) + (a.status !== 'active' ? ' (' + a.status + ')' : ''); h.append(st);
    card.append(h, drawMachineSvg(drawings[a.machine], activeIds(a.machine, a.value)));
    if (a.details) { const d = document.createElement('div'); d.className = 'details'; d.textContent = Object.entries(a.details).map(([k, v]) => k + ': ' + v).join('   '); card.append(d); }
    cards.append(card);
  }
}

function renderSequence(actors, messages) {
  const svg = $('seq'); svg.replaceChildren();
  const recent = messages.slice(-60);
  const lanes = []; const laneOf = (id) => { if (id === undefined) id = '(outside)'; let i = lanes.indexOf(id); if (i < 0) { lanes.push(id); i = lanes.length - 1; } return i; };
  for (const m of recent) { if (m.kind === 'message') { laneOf(m.from); laneOf(m.to); } else laneOf(m.target); }
  const W = Math.max(420, lanes.length * 110), X = (i) => 55 + i * 110, H = 40 + recent.length * 22;
  svg.setAttribute('width', W); svg.setAttribute('height', H);
  const defs = el('defs'); const mk = el('marker', { id: 'arrow2', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto' });
  mk.append(el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#4fb3ff' })); defs.append(mk); svg.append(defs);
  lanes.forEach((id, i) => { const a = actors.get(id); svg.append(el('text', { x: X(i), y: 14, 'text-anchor': 'middle' }, a ? (a.systemId || a.machine || id) : id)); svg.append(el('line', { class: 'life', x1: X(i), y1: 20, x2: X(i), y2: H })); });
  recent.forEach((m, r) => { const y = 36 + r * 22; const g = el('g', { class: 'msg' });
    if (m.kind === 'fault') { g.append(el('text', { x: X(laneOf(m.target)), y, fill: '#ff6b6b', 'text-anchor': 'middle' }, '⚡ ' + m.fault)); }
    else { const a = X(laneOf(m.from)), b = X(laneOf(m.to));
      if (a === b) g.append(el('path', { d: 'M' + a + ',' + (y - 6) + ' h 24 v 8 h -20', stroke: '#4fb3ff', fill: 'none' }));
      else g.append(el('line', { x1: a, y1: y, x2: b, y2: y }));
      g.append(el('text', { x: (a + b) / 2 + (a === b ? 40 : 0), y: y - 4, 'text-anchor': 'middle' }, m.type)); }
    svg.append(g); });
}

function describeEvent(e, actors) {
  const name = (id) => { const a = actors.get(id); return a ? label(a) : id || '(outside)'; };
  if (e.kind === 'actor') return 'new actor ' + name(e.actor);
  if (e.kind === 'state') return name(e.actor) + ' -> ' + stateText(e.value) + (e.status !== 'active' ? ' (' + e.status + ')' : '');
  if (e.kind === 'message') return name(e.from) + ' -> ' + name(e.to) + ': ' + e.type;
  return 'fault ' + e.fault + (e.target ? ' at ' + name(e.target) : '');
}

function render() {
  cursor = Math.max(0, Math.min(cursor, events.length));
  const { actors, messages } = derive(cursor);
  if (!selected || !actors.has(selected)) selected = [...actors.keys()][0] || null;
  renderTree(actors); renderCards(actors); renderSequence(actors, messages);
  $('cursor').max = events.length; $('cursor').value = cursor; $('pos').textContent = cursor + ' / ' + events.length;
  $('current').textContent = cursor > 0 ? describeEvent(events[cursor - 1], actors) : '';
}
$('back').onclick = () => { follow = false; cursor--; render(); };
$('fwd').onclick = () => { follow = false; cursor++; render(); };
$('live').onclick = () => { follow = true; cursor = events.length; render(); };
$('cursor').oninput = (e) => { follow = false; cursor = Number(e.target.value); render(); };
document.addEventListener('keydown', (e) => { if (e.key === 'ArrowLeft') $('back').click(); if (e.key === 'ArrowRight') $('fwd').click(); });

function load(data) { events = data.events; drawings = Object.assign(Object.create(null), data.drawings); cursor = follow ? events.length : cursor; $('mode').textContent = data.mode === 'live' ? 'live' : 'trace: ' + (data.header && data.header.source || ''); render(); }
$('file').onchange = async (e) => { const f = e.target.files[0]; if (!f) return;
  const res = await fetch('/api/decode-trace', { method: 'POST', body: await f.text() }); const data = await res.json();
  if (data.error) { $('mode').textContent = 'could not open trace: ' + data.error; return; }
  if (source) source.close(); follow = false; cursor = 0; load(data); };
let source = null;
fetch('/api/snapshot').then((r) => r.json()).then((data) => { load(data); if (data.mode === 'live') {
  source = new EventSource('/api/stream');
  source.addEventListener('drawing', (m) => { const d = JSON.parse(m.data); drawings[d.machine] = d; });
  source.onmessage = (m) => { events.push(JSON.parse(m.data)); if (events.length > MAX_EVENTS) compact(); if (follow) cursor = events.length; scheduleRender(); };
} else { follow = false; cursor = 0; render(); } });
// Same bound and compaction as the recorder (compactEvents in recorder.ts, keep the two in step):
// past the bound, keep the newest events and, from older history, only live actors' announcement
// and latest state (a quarter of the room at most), then the newest history in full.
const MAX_EVENTS = ${MAX_RECORDED_EVENTS}, KEEP = Math.floor(MAX_EVENTS * 0.75);
function compact() {
  const end = events.length - Math.floor(KEEP / 2), last = new Map(), keep = new Uint8Array(end);
  let kept = events.length - end, live = 0;
  for (let i = 0; i < end; i++) if (events[i].kind === 'state') last.set(events[i].actor, i);
  for (let i = end - 1; i >= 0 && live < Math.max(1, Math.floor(KEEP / 4)); i--) {
    const e = events[i]; if (e.kind !== 'actor') continue;
    const s = last.get(e.actor); if (s !== undefined && events[s].status !== 'active') continue;
    live++; keep[i] = 1; kept++; if (s !== undefined) { keep[s] = 1; kept++; } }
  for (let i = end - 1; i >= 0 && kept < KEEP; i--) if (!keep[i]) { keep[i] = 1; kept++; }
  let before = 0; for (let i = 0; i < Math.min(cursor, end); i++) before += keep[i];
  cursor = cursor <= end ? before : before + cursor - end;
  events = events.filter((e, i) => i >= end || keep[i] === 1);
}
let pending = false; function scheduleRender() { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; render(); }); } }
</script></body></html>`;
