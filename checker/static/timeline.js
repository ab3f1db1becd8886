(function () {
'use strict';
const D = JSON.parse(document.getElementById('check-data').textContent);
const OPS = new Map(D.ops.map((o) => [o.id, o]));
const GROUP_OF = new Map();  // op id -> the checked group it is in
for (const p of D.partitions) for (const id of p.ops) GROUP_OF.set(id, p.i);
const STATUS = { failed: '✗ NOT linearizable', unchecked: '? not checked', linearizable: '✓ linearizable' };
const DPR = window.devicePixelRatio || 1;
const GUTTER = 64, RIGHT = 12, AXIS = 24, OVERVIEW = 34, FROW = 18;
// Fault intervals can be placed only on a real clock (see the module's docstring).
const FAULTS = D.timed ? D.faults : [];
const FLEVELS = FAULTS.reduce((m, f) => Math.max(m, f.lv + 1), 0);
const BIG = 1500, FIRST_WINDOW = 300;  // partitions above BIG ops open on their first FIRST_WINDOW ops
const C = {
  lin: ['#dbeafe', '#2563eb', '#1e3a8a'], other: ['#e5e7eb', '#9ca3af', '#374151'],
  failgroup: ['#fecaca', '#f87171', '#7f1d1d'],
  stuck: ['#fee2e2', '#dc2626', '#7f1d1d'], point: '#1d4ed8', grid: '#f1f5f9', lane: '#f8fafc',
};

// A duration; `timed` false: a count of record positions. The page's one home of this format.
function fmtTime(t, timed = D.timed) {
  if (!timed) return '#' + Math.round(t);
  const a = Math.abs(t);
  if (a < 1e3) return Math.round(t) + ' ns';
  if (a < 1e6) return (t / 1e3).toFixed(2) + ' µs';
  if (a < 1e9) return (t / 1e6).toFixed(3) + ' ms';
  return (t / 1e9).toFixed(3) + ' s';
}
// A point in time: seconds since the start of the test, the clock of the history, the faults
// table and results.json (durations use fmtTime's units). The static text gives points the
// same way (`at` in timeline_macros.html), so it reads without this script.
function fmtAt(t) {
  if (!D.timed) return '#' + Math.round(t);
  return (t / 1e9).toFixed(6) + ' s';
}
// How long a fault lasted: its times are seconds of a real clock, whatever the history's.
function lasted(f) { return fmtTime(Math.round((f.s1 - f.s0) * 1e9), true); }
function fmtTick(t, step, far) {
  if (!D.timed) return '#' + Math.round(t);
  const units = [[1e9, 's'], [1e6, 'ms'], [1e3, 'µs'], [1, 'ns']];
  const [div, name] = units.find(([d]) => far >= d) || units[3];  // the unit of the window's far end
  const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step / div) + 1e-9)));
  return (t / div).toFixed(digits) + ' ' + name;
}
function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}
function show(v) { return v === null || v === undefined ? 'nil' : JSON.stringify(v); }
function procCmp(a, b) {
  const x = Number(a), y = Number(b);
  if (!isNaN(x) && !isNaN(y)) return x - y;
  if (!isNaN(x)) return -1;
  if (!isNaN(y)) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
function plural(n, one, many) { return n + ' ' + (n === 1 ? one : many || one + 's'); }
function procName(p) { return isNaN(Number(p)) ? p : 'p' + p; }
let BY_NODE = false;  // lanes ordered by the node their process talked to (the "lanes by node" box)
function rgba(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + a + ')';
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// Time <-> x units: 'real' is time itself; 'rank' gives every distinct event the same width,
// which keeps the real-time order (all linearizability depends on) but drops the gaps.
class Scale {
  constructor(times, mode) {
    this.T = times; this.mode = mode;
    const n = times.length;
    this.gap = n > 1 ? (times[n - 1] - times[0]) / (n - 1) : 1;
    if (!(this.gap > 0)) this.gap = 1;
  }
  u(t) {
    if (this.mode === 'real') return t;
    const T = this.T, n = T.length;
    if (t <= T[0]) return (t - T[0]) / this.gap;
    if (t >= T[n - 1]) return n - 1 + (t - T[n - 1]) / this.gap;
    let lo = 0, hi = n - 1;
    while (hi - lo > 1) { const m = (lo + hi) >> 1; if (T[m] <= t) lo = m; else hi = m; }
    return lo + (t - T[lo]) / (T[hi] - T[lo]);
  }
  t(u) {
    if (this.mode === 'real') return u;
    const T = this.T, n = T.length;
    if (u <= 0) return T[0] + u * this.gap;
    if (u >= n - 1) return T[n - 1] + (u - n + 1) * this.gap;
    const i = Math.floor(u);
    return T[i] + (u - i) * (T[i + 1] - T[i]);
  }
}

// Linearization points inside each bar, increasing along the order: a valid order always leaves room.
function placePoints(order, times) {
  const rank = new Scale(times, 'rank');
  const endRank = times.length - 1 + 1.5;
  const pts = new Map();
  let prev = -Infinity;
  for (const it of order) {
    const lo = Math.max(prev, rank.u(it.op.c));
    const hi = it.op.r === null ? endRank : rank.u(it.op.r);
    const p = lo + Math.max(0.01, Math.min(0.5, (hi - lo) / 2));
    pts.set(it, rank.t(p));
    prev = p;
  }
  return pts;
}

// One group (or the minimal anomaly, or the whole run) laid out: lanes, roles, linearization points.
function buildView(ids, lin, states, stuck, extra) {
  const items = ids.map((id) => ({ op: OPS.get(id), lin: -1, pt: 0, stuck: null, state: null }))
    .filter((it) => it.op);
  const byId = new Map(items.map((it) => [it.op.id, it]));
  const nodeOf = new Map();
  for (const it of items) if (it.op.n && !nodeOf.has(it.op.p)) nodeOf.set(it.op.p, it.op.n);
  const nodeCmp = (a, b) => {
    const x = nodeOf.get(a) || '\uffff', y = nodeOf.get(b) || '\uffff';
    return x < y ? -1 : x > y ? 1 : 0;
  };
  const lanes = [...new Set(items.map((it) => it.op.p))].sort((a, b) =>
    (BY_NODE ? nodeCmp(a, b) : 0) || procCmp(a, b));
  const laneNodes = lanes.map((p) => nodeOf.get(p) || '');
  const laneOf = new Map(lanes.map((p, i) => [p, i]));
  const tset = new Set();
  for (const it of items) {
    it.lane = laneOf.get(it.op.p);
    tset.add(it.op.c);
    if (it.op.r !== null) tset.add(it.op.r);
  }
  const times = [...tset].sort((a, b) => a - b);
  if (!times.length) times.push(0);
  const order = (lin || []).map((id) => byId.get(id)).filter(Boolean);
  order.forEach((it, k) => { it.lin = k; it.state = states ? states[k] : null; });
  for (const s of stuck || []) { const it = byId.get(s.op); if (it) it.stuck = s; }
  for (const [it, pt] of placePoints(order, times)) it.pt = pt;
  const roles = extra && extra.roles;
  if (roles) for (const it of items) it.role = roles.get(it.op.id) || 'other';
  const byLane = lanes.map(() => []);
  for (const it of items) byLane[it.lane].push(it);
  const stuckLanes = new Set(items.filter((it) => it.stuck).map((it) => it.lane));
  for (const l of byLane) l.sort((a, b) => a.op.c - b.op.c);
  const stuckCount = items.filter((it) => it.stuck).length;
  const view = {
    items, byId, lanes, laneNodes, byLane, stuckLanes, stuckCount, times, order, stuck: stuck || [],
  };
  return Object.assign(view, extra || {});
}

// Porcupine's partial linearizations: for an op, the longest linearizable prefix found with it.
function partialOrder(view, id) {
  const P = view.partials;
  if (!P) return null;
  let k = P.best[String(id)];
  if (k === undefined) return [];
  const out = [];
  while (k >= 0) { const [op, parent] = P.nodes[k]; out.push(op); k = parent; }
  return out.reverse().map((i) => view.byId.get(i)).filter(Boolean);
}

function partView(i) {
  const part = D.partitions[i];
  const f = D.failure;
  if (f && f.partition === i) {
    return buildView(part.ops, f.longest, f.states, f.stuck,
      { index: i, failed: true, endState: f.state, partials: part.partials });
  }
  return buildView(part.ops, part.lin, part.states, [], { index: i, failed: false });
}

const tip = document.getElementById('tip');

function opInfo(it, view, box) {
  const o = it.op;
  box.replaceChildren();
  box.appendChild(el('h3', '', o.d));
  const kv = el('div', 'kv');
  const row = (k, v, cls) => {
    kv.appendChild(el('span', 'k', k));
    kv.appendChild(el('span', 'v ' + (cls || ''), v));
  };
  row('op', o.h + ' (its index in the history) · process ' + procName(o.p) + ' · ' + o.f);
  row('node', o.n || 'not recorded');
  if (view.whole) {
    row('group', String(GROUP_OF.get(o.id)) + ' · ' + STATUS[D.partitions[GROUP_OF.get(o.id)].status]);
  }
  row('input', show(o.i));
  row('output', o.r === null ? 'unknown' : show(o.o));
  if (o.r === null) row('time', 'invoked ' + fmtAt(o.c) + '; outcome unknown: took effect later, or never');
  else if (!D.timed) row('records', fmtAt(o.c) + ' → ' + fmtAt(o.r));
  else row('time', fmtAt(o.c) + ' → ' + fmtAt(o.r) + '  (' + fmtTime(o.r - o.c) + ')');
  if (it.lin >= 0) {
    row(view.failed ? 'prefix' : 'linearized', '#' + (it.lin + 1) + ' of ' + view.order.length);
    if (it.state !== null && it.state !== undefined) row('state after', it.state);
  } else if (!it.stuck) {
    row('linearized', view.failed ? 'not reached by the longest prefix' : (o.r === null ?
      'no: it took no effect' : 'no'));
  }
  const partial = view.partials ? partialOrder(view, o.id) : null;
  if (partial) {
    row('partial', partial.length ? 'the longest linearization found with this op has ' +
      plural(partial.length, 'op') + '; it is #' + (partial.indexOf(it) + 1) + ' (numbered in the timeline)' +
      (view.partials.complete ? '' : ' (search cut short: a longer one may exist)') :
      'in no partial linearization: it cannot be placed after any order of the ops before it',
    partial.length ? '' : 'bad');
  }
  if (it.stuck) {
    row('could not go', 'next after the longest prefix', 'bad');
    row('observed', it.stuck.observed, 'bad');
    row('expected', it.stuck.expected, 'good');
    if (view.endState !== undefined) row('in state', view.endState);
  }
  box.appendChild(kv);
}

function faultInfo(f, box) {
  box.replaceChildren();
  box.appendChild(el('h3', '', 'fault: ' + f.label));
  const kv = el('div', 'kv');
  const row = (k, v) => { kv.appendChild(el('span', 'k', k)); kv.appendChild(el('span', 'v', v)); };
  const secs = (s) => fmtAt(Math.round(s * 1e9));
  row('fault', f.fault);
  row('start', secs(f.s0) + (f.su ? ' (not recorded: in force from the beginning)' : ''));
  row('stop', f.s1 === null ? 'never stopped: in force until the end' : secs(f.s1));
  if (f.s1 !== null) row('lasted', f.s1 === f.s0 ? 'an instant' : lasted(f));
  row('value', JSON.stringify(f.v));
  box.appendChild(kv);
}

function placeTip(e) {
  tip.hidden = false;
  const tw = tip.offsetWidth, th = tip.offsetHeight;
  let x = e.clientX + 14, y = e.clientY + 14;
  if (x + tw > window.innerWidth - 8) x = e.clientX - tw - 14;
  if (y + th > window.innerHeight - 8) y = Math.max(8, e.clientY - th - 14);
  tip.style.left = x + 'px'; tip.style.top = y + 'px';
}

class Timeline {
  constructor(host, opts) {
    this.host = host; this.opts = opts; this.row = 34;
    this.mode = opts.mode; this.showLin = true; this.hover = null; this.selected = null;
    this.faulty = !opts.compact && FAULTS.length > 0; this.hoverFault = -1; this.bandsDrawn = 0;
    this.axis = host.appendChild(document.createElement('canvas'));
    if (this.faulty) {  // the bands' labels, above the lanes
      this.strip = host.appendChild(document.createElement('canvas'));
      this.strip.className = 'fault-strip';
    }
    this.scroller = host.appendChild(el('div', 'scroller'));
    this.canvas = this.scroller.appendChild(document.createElement('canvas'));
    this.canvas.tabIndex = 0;
    this.spacer = this.scroller.appendChild(el('div'));
    if (!opts.compact) {
      this.over = host.appendChild(document.createElement('canvas'));
      this.over.className = 'overview';
      this.bindOverview();
    }
    this.bind();
  }
  setView(view) {
    this.view = view; this.hover = null; this.selected = null;
    this.setMode(this.mode, true);
    this.activeOnly = !this.opts.compact && view.lanes.length * this.row > this.H;
    this.scroller.scrollTop = 0;
  }
  setMode(mode, fit) {
    const v = this.view;
    const keep = !fit && this.scale ? [this.scale.t(this.u0), this.scale.t(this.u1)] : null;
    this.mode = mode; this.hist = null;
    this.scale = new Scale(v.times, mode);
    let first = this.scale.u(v.times[0]), last = this.scale.u(v.times[v.times.length - 1]);
    if (this.faulty && mode === 'real') {  // the whole of every fault is in the full view
      for (const f of FAULTS) { first = Math.min(first, f.c); if (f.r !== null) last = Math.max(last, f.r); }
    }
    const span = Math.max(last - first, 1);
    this.pad = mode === 'real' ? span * 0.04 : 1.5;
    this.uMin = first - this.pad * 0.5; this.uMax = last + this.pad * 1.5; this.uEnd = last + this.pad;
    for (const it of v.items) {
      it.uc = this.scale.u(it.op.c);
      it.ur = it.op.r === null ? this.uEnd : this.scale.u(it.op.r);
      it.up = it.lin >= 0 ? this.scale.u(it.pt) : 0;
    }
    this.hoverPartial = null;
    for (const lane of v.byLane) {  // running max of bar ends: finds a window's first bar by bisection
      let m = -Infinity;
      for (const it of lane) { m = Math.max(m, it.ur); it.maxEnd = m; }
    }
    // Bands in x units; in event order a time falls between the events around it.
    const clampU = (u) => (mode === 'real' ? u : Math.min(Math.max(u, this.uMin), this.uMax));
    this.fu = this.faulty ? FAULTS.map((f) => [clampU(this.scale.u(f.c)),
      f.r === null ? this.uMax : clampU(this.scale.u(f.r))]) : [];
    if (keep) { this.u0 = this.scale.u(keep[0]); this.u1 = this.scale.u(keep[1]); } else this.fit(false);
    this.layout();
  }
  fit(draw) { this.u0 = this.uMin; this.u1 = this.uMax; if (draw !== false) this.draw(); }
  setPartial(it) {  // while an op of a failing group is hovered, its longest partial linearization
    const order = it && this.view.partials ? partialOrder(this.view, it.op.id) : null;
    if (!order || !order.length) { this.hoverPartial = null; return; }
    const pu = new Map();
    for (const [x, pt] of placePoints(order, this.view.times)) pu.set(x, this.scale.u(pt));
    this.hoverPartial = { order, pu, pts: new Set(order) };
  }
  start() {
    // A large partition opens on its first few hundred ops: the whole of it is only a blur.
    const v = this.view;
    if (v.items.length <= BIG) { this.fit(); return; }
    const calls = v.items.map((it) => it.uc).sort((a, b) => a - b);
    const a = calls[0], b = calls[FIRST_WINDOW];
    this.u0 = a - (b - a) * 0.02; this.u1 = b; this.clampWindow(); this.draw();
  }
  firstBar(lane) {  // first bar whose running end reaches the window
    let lo = 0, hi = lane.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (lane[m].maxEnd < this.u0) lo = m + 1; else hi = m; }
    return lo;
  }
  laneActive(lane) {
    // Something happens here in the window: a bar that is not just a crashed op running on.
    for (let i = this.firstBar(lane); i < lane.length && lane[i].uc <= this.u1; i++) {
      const it = lane[i];
      if (it.ur < this.u0) continue;
      if (it.op.r !== null || it.uc >= this.u0 || it.stuck) return true;
      if (it.lin >= 0 && it.up >= this.u0 && it.up <= this.u1) return true;
    }
    return false;
  }
  computeRows() {
    const v = this.view, n = v.lanes.length;
    const rows = [];
    for (let l = 0; l < n; l++) if (!this.activeOnly || this.laneActive(v.byLane[l])) rows.push(l);
    this.rowOf = new Int32Array(n).fill(-1);
    rows.forEach((l, r) => { this.rowOf[l] = r; });
    this.rows = rows;
    this.spacer.style.height = Math.max(0, rows.length * this.row + 6 - this.H) + 'px';
  }
  scrollToLane(lane) {
    this.computeRows();
    const r = this.rowOf[lane];
    if (r >= 0) this.scroller.scrollTop = Math.max(0, r * this.row - this.H / 3);
  }
  layout() {
    const W = Math.max(300, this.host.clientWidth - 2);
    const total = this.view.lanes.length * this.row + 6;
    const maxH = this.opts.compact ? total : Math.max(160, Math.min(window.innerHeight * 0.62, 640));
    const H = Math.min(total, maxH);
    this.W = W; this.H = H;
    this.size(this.axis, W, AXIS);
    if (this.strip) this.size(this.strip, W, FLEVELS * FROW + 4);
    this.size(this.canvas, W, H);
    this.scroller.style.height = H + 'px';
    this.spacer.style.height = (total - H) + 'px';
    if (this.over) this.size(this.over, W, OVERVIEW);
  }
  size(c, w, h) {
    c.width = Math.round(w * DPR); c.height = Math.round(h * DPR);
    c.style.width = w + 'px'; c.style.height = h + 'px';
  }
  x(u) { return GUTTER + (u - this.u0) / (this.u1 - this.u0) * (this.W - GUTTER - RIGHT); }
  uAt(x) { return this.u0 + (x - GUTTER) / (this.W - GUTTER - RIGHT) * (this.u1 - this.u0); }
  request() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }
  draw() {
    const began = performance.now();
    const v = this.view, ctx = this.canvas.getContext('2d');
    const W = this.W, H = this.H, row = this.row, top = this.scroller.scrollTop;
    ctx.setTransform(DPR, 0, 0, DPR, 0, 0);
    ctx.clearRect(0, 0, W, H);
    this.computeRows();
    const rows = this.rows;
    const first = Math.max(0, Math.floor(top / row));
    const last = Math.min(rows.length - 1, Math.floor((top + H) / row));
    for (let r = first; r <= last; r++) {
      if (r % 2) { ctx.fillStyle = C.lane; ctx.fillRect(0, r * row - top, W, row); }
    }
    const ticks = this.ticks();
    ctx.strokeStyle = C.grid; ctx.lineWidth = 1;
    for (const [u] of ticks) {
      const x = Math.round(this.x(u)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, H); ctx.stroke();
    }
    ctx.save();
    ctx.beginPath(); ctx.rect(GUTTER, 0, W - GUTTER, H); ctx.clip();
    if (this.faulty) this.drawBands(ctx, H);
    ctx.font = '11.5px system-ui, "DejaVu Sans", sans-serif';
    ctx.textBaseline = 'middle';
    const charW = ctx.measureText('abcdefghij0123456789').width / 20;
    let drawn = 0;
    this.later = [];
    for (let r = first; r <= last; r++) {
      const lane = v.byLane[rows[r]], y = r * row - top + 3;
      for (let i = this.firstBar(lane); i < lane.length && lane[i].uc <= this.u1; i++) {
        if (lane[i].ur < this.u0) continue;
        this.bar(ctx, lane[i], y, row - 15, charW);
        drawn++;
      }
    }
    for (const f of this.later) f();
    if (this.showLin) this.drawLin(ctx, top);
    if (v.failed) this.drawFrontier(ctx, H);
    ctx.restore();
    ctx.fillStyle = 'white'; ctx.fillRect(0, 0, GUTTER - 2, H);
    ctx.fillStyle = '#e5e7eb'; ctx.fillRect(GUTTER - 2, 0, 1, H);
    ctx.font = '600 12px system-ui, "DejaVu Sans", sans-serif'; ctx.textAlign = 'right';
    for (let r = first; r <= last; r++) {
      const l = rows[r], node = v.laneNodes[l], y = r * row - top;
      ctx.fillStyle = v.stuckLanes.has(l) ? C.stuck[1] : '#4338ca';
      ctx.font = '600 12px system-ui, "DejaVu Sans", sans-serif';
      ctx.fillText(procName(v.lanes[l]), GUTTER - 8, y + row / 2 - (node ? 7 : 3), GUTTER - 10);
      if (node) {
        ctx.font = '600 10.5px system-ui, "DejaVu Sans", sans-serif'; ctx.fillStyle = '#065f46';
        ctx.fillText(node, GUTTER - 8, y + row / 2 + 6, GUTTER - 10);
      }
      if (BY_NODE && r > 0 && v.laneNodes[rows[r - 1]] !== node) {  // where one node's lanes begin
        ctx.fillStyle = '#065f46'; ctx.fillRect(0, y, W, 1.5);
      }
    }
    ctx.textAlign = 'left';
    this.drawAxis(ticks);
    if (this.strip) this.drawStrip();
    if (this.over) this.drawOverview();
    this.drawn = drawn;
    this.drawMs = performance.now() - began;
    if (this.opts.onDraw) this.opts.onDraw(this);
  }
  bandX(k, x) {  // a band's pixel extent (x: this.x or this.ox), at least 2 px, kept near the canvas
    const [ua, ub] = this.fu[k], lo = -10, hi = this.W + 10;
    const a = Math.min(Math.max(x.call(this, ua), lo), hi);
    if (FAULTS[k].r === null) return [a, hi];  // never stopped: on past the end
    return [a, Math.min(Math.max(x.call(this, ub), a + 2, lo), hi)];
  }
  drawBands(ctx, H) {
    let n = 0;
    for (let k = 0; k < FAULTS.length; k++) {
      const f = FAULTS[k], [ua, ub] = this.fu[k];
      if (ub < this.u0 || ua > this.u1) continue;
      n++;
      const [a, b] = this.bandX(k, this.x), hot = k === this.hoverFault;
      ctx.fillStyle = rgba(f.color, hot ? 0.2 : 0.1); ctx.fillRect(a, 0, b - a, H);
      ctx.fillStyle = rgba(f.color, hot ? 0.9 : 0.5);
      ctx.fillRect(a, 0, 1.5, H);
      if (f.r !== null) ctx.fillRect(b - 1.5, 0, 1.5, H);
    }
    this.bandsDrawn = n;
  }
  drawStrip() {
    const ctx = this.strip.getContext('2d'), W = this.W, h = FLEVELS * FROW + 4;
    ctx.setTransform(DPR, 0, 0, DPR, 0, 0);
    ctx.fillStyle = 'white'; ctx.fillRect(0, 0, W, h);
    ctx.fillStyle = '#e5e7eb'; ctx.fillRect(0, h - 1, W, 1);
    ctx.font = '11px system-ui, "DejaVu Sans", sans-serif'; ctx.textBaseline = 'middle';
    ctx.fillStyle = '#6b7280'; ctx.fillText('faults', 8, h / 2);
    ctx.save();
    ctx.beginPath(); ctx.rect(GUTTER, 0, W - GUTTER, h); ctx.clip();
    ctx.font = '600 11px system-ui, "DejaVu Sans", sans-serif';
    const edge = new Array(FLEVELS).fill(W);  // where the next band of each row begins
    for (let k = FAULTS.length - 1; k >= 0; k--) {  // from the right: a label stops at the next band
      const f = FAULTS[k], [ua, ub] = this.fu[k], [a, b] = this.bandX(k, this.x);
      const limit = edge[f.lv];
      edge[f.lv] = a;
      if (ub < this.u0 || ua > this.u1) continue;
      const y = 2 + f.lv * FROW, hot = k === this.hoverFault;
      ctx.fillStyle = rgba(f.color, hot ? 0.34 : 0.2); ctx.fillRect(a, y, b - a, FROW - 2);
      ctx.fillStyle = f.color; ctx.fillRect(a, y, 2, FROW - 2);
      const x = Math.max(a, GUTTER) + 5, room = limit - x - 4;
      let text = f.label;
      if (room < 14) continue;
      if (ctx.measureText(text).width > room) {
        let lo = 0, hi = text.length;
        while (lo < hi) {
          const m = (lo + hi + 1) >> 1;
          if (ctx.measureText(text.slice(0, m) + '…').width <= room) lo = m; else hi = m - 1;
        }
        text = text.slice(0, lo) + '…';
      }
      ctx.fillStyle = f.ink; ctx.fillText(text, x, y + (FROW - 2) / 2 + 0.5);
    }
    ctx.restore();
  }
  faultAt(mx, x, level) {  // the narrowest band under mx (in the label strip: in that row), or -1
    let best = -1, width = Infinity;
    for (let k = 0; k < FAULTS.length; k++) {
      if (level !== undefined && FAULTS[k].lv !== level) continue;
      const [a, b] = this.bandX(k, x);
      if (mx >= Math.max(a, GUTTER) - 3 && mx <= b + 3 && b - a < width) { best = k; width = b - a; }
    }
    return best;
  }
  hoverBand(k, e) {
    if (k !== this.hoverFault) { this.hoverFault = k; this.request(); }
    if (k >= 0) { faultInfo(FAULTS[k], tip); placeTip(e); } else tip.hidden = true;
  }
  showFault(k) {
    const [a, b] = this.fu[k], w = Math.max(b - a, (this.uMax - this.uMin) / 40);
    this.u0 = a - w * 0.2; this.u1 = a + w * 1.2; this.clampWindow();
    this.hoverFault = k; this.draw();
  }
  bar(ctx, it, y, h, charW) {
    const o = it.op, hp = this.hoverPartial;
    const role = it.stuck ? 'stuck' : hp ? (hp.pts.has(it) ? 'lin' : 'other') :
      it.role || (it.lin >= 0 ? 'lin' : 'other');
    const [fill, stroke, ink] = C[role];
    const x0 = this.x(it.uc);
    let x1 = this.x(it.ur);
    if (x1 - x0 < 2) { x1 = x0 + 2; }
    const cx0 = Math.max(x0, GUTTER - 4), cx1 = Math.min(x1, this.W + 4);
    ctx.fillStyle = fill;
    ctx.fillRect(cx0, y, cx1 - cx0, h);
    if (o.r === null) {  // unknown outcome: hatched, dashed, fading toward the end
      ctx.fillStyle = hatch(ctx, stroke);
      ctx.fillRect(cx0, y, cx1 - cx0, h);
      ctx.setLineDash([4, 3]);
    }
    ctx.strokeStyle = stroke; ctx.lineWidth = it.stuck ? 2.2 : 1.2;
    if (it === this.hover || it === this.selected) { ctx.strokeStyle = '#111827'; ctx.lineWidth = 2.4; }
    ctx.strokeRect(cx0 + 0.5, y + 0.5, cx1 - cx0 - 1, h - 1);
    ctx.setLineDash([]);
    const room = cx1 - cx0 - 8;
    if (it.stuck) {
      this.later.push(() => this.stuckLabel(ctx, it, cx0, cx1, y, h, charW));  // on top of its neighbours
    } else if (room > 3 * charW) {
      let text = (o.n ? o.n + ' · ' : '') + o.d;
      const fit = Math.floor(room / charW);
      if (text.length > fit) text = text.slice(0, Math.max(1, fit - 1)) + '…';
      ctx.fillStyle = ink;
      ctx.font = (it.stuck ? '700 ' : '') + '11.5px system-ui, "DejaVu Sans", sans-serif';
      ctx.fillText(text, cx0 + 4, y + h / 2 + 0.5);
    }
  }
  stuckLabel(ctx, it, x0, x1, y, h, charW) {
    // The op a person came for: its label may run past the bar rather than be cut.
    const text = (it.op.n ? it.op.n + ' · ' : '') + it.op.d + '   ✗ expected ' + it.stuck.expected;
    ctx.font = '700 11.5px system-ui, "DejaVu Sans", sans-serif';
    const need = ctx.measureText(text).width + 10;
    if (need > x1 - x0) {  // one box for bar and label, so the label reads as part of the op
      x0 = Math.max(GUTTER, Math.min(x0, this.W - 4 - need));  // at the right edge it grows leftwards
      x1 = Math.max(x1, Math.min(x0 + need, this.W - 4));
      ctx.fillStyle = C.stuck[0]; ctx.strokeStyle = C.stuck[1]; ctx.lineWidth = 2.2;
      ctx.fillRect(x0, y, x1 - x0, h);
      ctx.strokeRect(x0 + 0.5, y + 0.5, x1 - x0 - 1, h - 1);
    }
    const w = x1 - x0;
    let shown = text;
    const fit = Math.floor((w - 8) / charW);
    if (ctx.measureText(text).width > w - 8 && shown.length > fit) {
      shown = shown.slice(0, Math.max(1, fit - 1)) + '…';
    }
    ctx.fillStyle = C.stuck[2];
    ctx.fillText(shown, x0 + 4, y + h / 2 + 0.5);
  }
  drawLin(ctx, top) {
    const hp = this.hoverPartial;
    const order = hp ? hp.order : this.view.order;
    const up = hp ? (it) => hp.pu.get(it) : (it) => it.up;
    if (!order.length) return;
    let lo = 0, hi = order.length;  // points increase along the order: bisect to the window
    while (lo < hi) { const m = (lo + hi) >> 1; if (up(order[m]) < this.u0) lo = m + 1; else hi = m; }
    let end = lo;
    while (end < order.length && up(order[end]) <= this.u1) end++;
    const a = Math.max(0, lo - 1), b = Math.min(order.length, end + 1);
    const labels = end - lo < (this.W - GUTTER) / 16;
    const yOf = (it) => this.rowOf[it.lane] * this.row - top + this.row - 10;  // under the bar's text
    ctx.strokeStyle = 'rgba(37, 99, 235, 0.45)'; ctx.lineWidth = 1.5;
    ctx.beginPath();
    let started = false;
    const lines = end - lo < (this.W - GUTTER) / 6;  // lines only where an eye can follow them
    for (let k = a; k < b && lines; k++) {
      const it = order[k];
      if (this.rowOf[it.lane] < 0) continue;  // a lane hidden as idle
      if (!started) ctx.moveTo(this.x(up(it)), yOf(it)); else ctx.lineTo(this.x(up(it)), yOf(it));
      started = true;
    }
    ctx.stroke();
    ctx.font = '600 10px system-ui, "DejaVu Sans", sans-serif'; ctx.textAlign = 'center';
    for (let k = lo; k < end; k++) {
      const it = order[k], x = this.x(up(it)), y = yOf(it);
      if (this.rowOf[it.lane] < 0) continue;
      if (!labels) {
        ctx.fillStyle = C.point; ctx.beginPath(); ctx.arc(x, y, 2.5, 0, 7); ctx.fill();
        continue;
      }
      const text = String(k + 1), w = Math.max(13, ctx.measureText(text).width + 7);
      ctx.fillStyle = 'white'; pill(ctx, x - w / 2 - 1, y - 7.5, w + 2, 15);
      ctx.fillStyle = C.point; pill(ctx, x - w / 2, y - 6.5, w, 13);
      ctx.fillStyle = 'white'; ctx.fillText(text, x, y + 0.5);
    }
    ctx.textAlign = 'left';
  }
  drawFrontier(ctx, H) {
    if (this.hoverPartial) return;
    const order = this.view.order;
    const u = order.length ? order[order.length - 1].up : this.uMin;
    const x = this.x(u) + (order.length ? 9 : 0);
    if (x < GUTTER || x > this.W) return;
    ctx.strokeStyle = C.stuck[1]; ctx.lineWidth = 1.5; ctx.setLineDash([5, 4]);
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, H); ctx.stroke(); ctx.setLineDash([]);
  }
  ticks() {
    const span = this.u1 - this.u0, n = Math.max(2, (this.W - GUTTER) / 120);
    if (this.mode === 'real') {
      const step = niceStep(span / n), out = [];
      const far = Math.max(Math.abs(this.u0), Math.abs(this.u1));
      for (let t = Math.ceil(this.u0 / step) * step; t <= this.u1; t += step) {
        out.push([t, fmtTick(t, step, far)]);
      }
      return out;
    }
    const step = Math.max(1, niceStep(span / n)), out = [];
    for (let u = Math.ceil(this.u0 / step) * step; u <= this.u1; u += step) {
      const t = this.scale.t(u);
      out.push([u, fmtTime(t)]);
    }
    return out;
  }
  drawAxis(ticks) {
    const ctx = this.axis.getContext('2d'), W = this.W;
    ctx.setTransform(DPR, 0, 0, DPR, 0, 0);
    ctx.fillStyle = '#f9fafb'; ctx.fillRect(0, 0, W, AXIS);
    ctx.fillStyle = '#e5e7eb'; ctx.fillRect(0, AXIS - 1, W, 1);
    ctx.font = '11px system-ui, "DejaVu Sans", sans-serif'; ctx.textBaseline = 'middle';
    ctx.fillStyle = '#6b7280';
    ctx.fillText(this.mode === 'real' ? 'time' : 'events', 8, AXIS / 2);
    for (const [u, label] of ticks) {
      const x = this.x(u);
      if (x < GUTTER || x > W - 20) continue;
      ctx.fillStyle = '#9ca3af'; ctx.fillRect(Math.round(x), AXIS - 6, 1, 5);
      ctx.fillStyle = '#374151'; ctx.textAlign = 'center'; ctx.fillText(label, x, AXIS / 2 - 1);
    }
    ctx.textAlign = 'left';
  }
  ox(u) { return GUTTER + (u - this.uMin) / (this.uMax - this.uMin) * (this.W - GUTTER - RIGHT); }
  drawOverview() {
    const ctx = this.over.getContext('2d'), W = this.W, v = this.view;
    ctx.setTransform(DPR, 0, 0, DPR, 0, 0);
    ctx.fillStyle = '#f9fafb'; ctx.fillRect(0, 0, W, OVERVIEW);
    for (let k = 0; k < this.fu.length; k++) {
      const f = FAULTS[k], [a, b] = this.bandX(k, this.ox);
      ctx.fillStyle = rgba(f.color, k === this.hoverFault ? 0.3 : 0.16); ctx.fillRect(a, 0, b - a, OVERVIEW);
      ctx.fillStyle = rgba(f.color, 0.85); ctx.fillRect(a, 0, b - a, 3);
    }
    if (!this.hist || this.histKey !== this.mode + W) {  // ops per pixel column, kept until resize
      const cols = new Float32Array(W);
      for (const it of v.items) { const x = Math.floor(this.ox(it.uc)); if (x >= 0 && x < W) cols[x]++; }
      this.hist = cols; this.histKey = this.mode + W;
    }
    const max = Math.max(1, ...this.hist);
    ctx.fillStyle = '#93c5fd';
    for (let x = 0; x < W; x++) {
      if (!this.hist[x]) continue;
      const h = 4 + (OVERVIEW - 10) * this.hist[x] / max;
      ctx.fillRect(x, OVERVIEW - h, 1, h);
    }
    ctx.fillStyle = C.stuck[1];
    for (const s of v.stuck) {
      const it = v.byId.get(s.op);
      if (it) ctx.fillRect(Math.round(this.ox(it.uc)) - 1, 0, 3, OVERVIEW);
    }
    const a = this.ox(this.u0), b = this.ox(this.u1);
    ctx.fillStyle = 'rgba(17, 24, 39, 0.08)';
    ctx.fillRect(GUTTER, 0, Math.max(0, a - GUTTER), OVERVIEW);
    ctx.fillRect(b, 0, Math.max(0, W - b), OVERVIEW);
    ctx.strokeStyle = '#1f2937'; ctx.lineWidth = 1.5;
    ctx.strokeRect(a, 1, Math.max(3, b - a), OVERVIEW - 2);
    ctx.font = '11px system-ui, "DejaVu Sans", sans-serif'; ctx.fillStyle = '#6b7280';
    ctx.textBaseline = 'middle'; ctx.fillText('overview', 8, OVERVIEW / 2);
  }
  clampWindow() {
    const full = this.uMax - this.uMin, minSpan = this.mode === 'real' ? full / 1e5 : 2;
    const span = Math.min(Math.max(this.u1 - this.u0, minSpan), full * 1.2);
    const u0 = Math.min(Math.max(this.u0, this.uMin - full * 0.1), this.uMax + full * 0.1 - span);
    this.u0 = u0; this.u1 = u0 + span;
  }
  zoom(factor, at) {
    const u = at === undefined ? (this.u0 + this.u1) / 2 : at;
    this.u0 = u - (u - this.u0) * factor; this.u1 = u + (this.u1 - u) * factor;
    this.clampWindow(); this.request();
  }
  itemAt(mx, my) {
    const r = Math.floor((my + this.scroller.scrollTop) / this.row);
    const inRow = (my + this.scroller.scrollTop) - r * this.row;
    if (mx < GUTTER || r < 0 || r >= this.rows.length) return null;
    if (inRow < 3 || inRow > this.row - 3) return null;
    const lane = this.rows[r];
    const u = this.uAt(mx), slack = (this.u1 - this.u0) / (this.W - GUTTER) * 2;
    const list = this.view.byLane[lane];
    let found = null;
    for (const it of list) {
      if (it.uc > u + slack) break;
      if (u <= it.ur + slack) found = it;
    }
    return found;
  }
  focus(id) {
    const it = this.view.byId.get(id);
    if (!it) return false;
    const span = Math.max(this.u1 - this.u0, 0);
    const w = Math.min(span, Math.max((it.ur - it.uc) * 6, this.mode === 'real' ? 1 : 12));
    const mid = (it.uc + Math.min(it.ur, it.uc + w)) / 2;
    this.u0 = mid - w / 2; this.u1 = mid + w / 2; this.clampWindow();
    this.scrollToLane(it.lane);
    this.selected = it; this.setPartial(it); this.draw();
    return true;
  }
  toFailure() {
    const v = this.view;
    if (!v.failed) return;
    const its = v.stuck.map((s) => v.byId.get(s.op)).filter(Boolean);
    const tail = v.order.slice(-4);
    if (!its.length) return;
    let a = Math.min(...its.map((i) => i.uc), ...tail.map((i) => i.uc));
    let b = Math.max(...its.map((i) => (i.op.r === null ? i.uc + 2 : i.ur)), ...tail.map((i) => i.up));
    const pad = Math.max((b - a) * 0.25, this.mode === 'real' ? 1 : 2);
    if (this.mode === 'rank' && b - a + 2 * pad < 30) { const mid = (a + b) / 2; a = mid - 15; b = mid + 15; }
    this.u0 = a - pad; this.u1 = b + pad; this.clampWindow();
    this.scrollToLane(Math.min(...its.map((i) => i.lane)));
    this.draw();
  }
  bind() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener('mousedown', (e) => {
      drag = { x: e.clientX, u0: this.u0, u1: this.u1, moved: false };
      c.classList.add('dragging');
    });
    window.addEventListener('mousemove', (e) => {
      if (drag) {
        const dx = e.clientX - drag.x;
        if (Math.abs(dx) > 3) drag.moved = true;
        const du = dx / (this.W - GUTTER - RIGHT) * (drag.u1 - drag.u0);
        this.u0 = drag.u0 - du; this.u1 = drag.u1 - du; this.clampWindow(); this.request();
        tip.hidden = true;
        return;
      }
      if (e.target !== c) return;
      const r = c.getBoundingClientRect();
      const it = this.itemAt(e.clientX - r.left, e.clientY - r.top);
      if (it !== this.hover) { this.hover = it; this.setPartial(it); this.request(); }
      if (it) {
        if (this.hoverFault >= 0) { this.hoverFault = -1; this.request(); }
        opInfo(it, this.view, tip); placeTip(e);
      } else if (this.faulty) this.hoverBand(this.faultAt(e.clientX - r.left, this.x), e);
      else tip.hidden = true;
    });
    window.addEventListener('mouseup', (e) => {
      if (!drag) return;
      const clicked = !drag.moved && e.target === c;
      drag = null; c.classList.remove('dragging');
      if (clicked) {
        const r = c.getBoundingClientRect();
        this.selected = this.itemAt(e.clientX - r.left, e.clientY - r.top);
        this.setPartial(this.selected);
        if (this.opts.onSelect) this.opts.onSelect(this.selected, this.view);
        const k = this.selected || !this.faulty ? -1 : this.faultAt(e.clientX - r.left, this.x);
        if (k >= 0 && this.opts.onFault) this.opts.onFault(FAULTS[k]);
        this.request();
      }
    });
    c.addEventListener('mouseleave', () => {
      tip.hidden = true;
      if (this.hover || this.hoverFault >= 0) {
        this.hover = null; this.hoverFault = -1; this.setPartial(this.selected); this.request();
      }
    });
    if (this.strip) {
      const s = this.strip, level = (e) => Math.floor((e.clientY - s.getBoundingClientRect().top - 2) / FROW);
      const at = (e) => this.faultAt(e.clientX - s.getBoundingClientRect().left, this.x, level(e));
      s.addEventListener('mousemove', (e) => this.hoverBand(at(e), e));
      s.addEventListener('mouseleave', () => this.hoverBand(-1));
      s.addEventListener('click', (e) => {
        const k = at(e);
        if (k >= 0 && this.opts.onFault) this.opts.onFault(FAULTS[k]);
      });
    }
    c.addEventListener('wheel', (e) => {
      const r = c.getBoundingClientRect();
      if (e.ctrlKey || e.metaKey || e.altKey) {
        e.preventDefault(); this.zoom(Math.exp(e.deltaY * 0.002), this.uAt(e.clientX - r.left));
      } else if (Math.abs(e.deltaX) > Math.abs(e.deltaY) || e.shiftKey) {
        e.preventDefault();
        const d = (e.shiftKey ? e.deltaY : e.deltaX) / (this.W - GUTTER) * (this.u1 - this.u0);
        this.u0 += d; this.u1 += d; this.clampWindow(); this.request();
      }
    }, { passive: false });
    c.addEventListener('dblclick', (e) => {
      const r = c.getBoundingClientRect();
      this.zoom(e.shiftKey ? 2 : 0.5, this.uAt(e.clientX - r.left));
    });
    c.addEventListener('keydown', (e) => {
      const span = this.u1 - this.u0;
      const keys = {
        ArrowLeft: () => { this.u0 -= span / 5; this.u1 -= span / 5; this.clampWindow(); this.request(); },
        ArrowRight: () => { this.u0 += span / 5; this.u1 += span / 5; this.clampWindow(); this.request(); },
        '+': () => this.zoom(0.6), '=': () => this.zoom(0.6), '-': () => this.zoom(1 / 0.6),
        '0': () => this.fit(), f: () => this.toFailure(),
      };
      if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
    });
    this.scroller.addEventListener('scroll', () => this.request());
  }
  bindOverview() {
    const o = this.over;
    let drag = null;
    const uOf = (e) => {
      const x = e.clientX - o.getBoundingClientRect().left;
      return this.uMin + (x - GUTTER) / (this.W - GUTTER - RIGHT) * (this.uMax - this.uMin);
    };
    o.addEventListener('mousedown', (e) => {
      const u = uOf(e), span = this.u1 - this.u0, edge = (this.uMax - this.uMin) / (this.W - GUTTER) * 5;
      if (Math.abs(u - this.u0) < edge) drag = { kind: 'left' };
      else if (Math.abs(u - this.u1) < edge) drag = { kind: 'right' };
      else {
        if (u < this.u0 || u > this.u1) {
          this.u0 = u - span / 2; this.u1 = u + span / 2; this.clampWindow();
        }
        drag = { kind: 'move', at: u, u0: this.u0 };
      }
      this.request();
      e.preventDefault();
    });
    window.addEventListener('mousemove', (e) => {
      if (!drag) {
        const x = e.clientX - o.getBoundingClientRect().left;
        if (e.target === o && this.faulty) this.hoverBand(this.faultAt(x, this.ox), e);
        return;
      }
      tip.hidden = true;
      const u = uOf(e);
      if (drag.kind === 'left') this.u0 = Math.min(u, this.u1 - 1e-9);
      else if (drag.kind === 'right') this.u1 = Math.max(u, this.u0 + 1e-9);
      else { const span = this.u1 - this.u0; this.u0 = drag.u0 + u - drag.at; this.u1 = this.u0 + span; }
      this.clampWindow(); this.request();
    });
    window.addEventListener('mouseup', () => { drag = null; });
    o.addEventListener('mouseleave', () => { if (this.faulty) this.hoverBand(-1); });
  }
}

function pill(ctx, x, y, w, h) {
  ctx.beginPath();
  if (ctx.roundRect) ctx.roundRect(x, y, w, h, h / 2); else ctx.rect(x, y, w, h);
  ctx.fill();
}

const patterns = new Map();
function hatch(ctx, color) {
  if (patterns.has(color)) return patterns.get(color);
  const p = document.createElement('canvas');
  p.width = p.height = 8;
  const g = p.getContext('2d');
  g.strokeStyle = color; g.globalAlpha = 0.45; g.lineWidth = 1.5;
  g.beginPath();
  g.moveTo(0, 8); g.lineTo(8, 0); g.moveTo(-2, 2); g.lineTo(2, -2); g.moveTo(6, 10); g.lineTo(10, 6);
  g.stroke();
  const pat = ctx.createPattern(p, 'repeat');
  patterns.set(color, pat);
  return pat;
}

function summarize(node, t) {
  const v = t.view;
  node.dataset.byNode = String(BY_NODE);
  node.dataset.nodeOrder = v.laneNodes.join(' ');
  const unknown = v.items.filter((it) => it.op.r === null).length;
  const attrs = {
    partition: v.index === undefined ? '' : v.index, ops: v.items.length, bars: v.items.length,
    drawn: t.drawn, lanes: v.lanes.length, rows: t.rows.length, stuck: v.stuckCount,
    linearized: v.order.length, unknown, mode: t.mode, ms: t.drawMs.toFixed(1),
  };
  if (!t.opts.compact) { attrs.faults = D.faults.length; attrs.faultBands = t.bandsDrawn; }
  for (const [k, val] of Object.entries(attrs)) node.dataset[k] = String(val);
  return attrs;
}

// -- wiring -------------------------------------------------------------------------------
const defaultMode = D.timed ? 'real' : 'rank';
const minimalHost = document.getElementById('minimal-timeline');
let mini = null;
if (minimalHost && D.failure && D.failure.minimal) {
  const f = D.failure;
  const summary = minimalHost.parentNode.insertBefore(el('div', 'summary'), minimalHost.nextSibling);
  summary.id = 'minimal-summary';
  mini = new Timeline(minimalHost, { compact: true, mode: 'rank', onDraw: (t) => {
    const a = summarize(summary, t);
    summary.textContent = plural(a.ops, 'operation') + ' on ' + plural(a.lanes, 'process', 'processes') +
      ', in event order: ' + a.linearized + ' linearized, ' + a.stuck + ' stuck. Hover for details.';
  } });
  mini.setView(buildView(f.minimal, f.minimal_longest, f.minimal_states, f.minimal_stuck,
    { failed: true, endState: f.minimal_state, partials: f.minimal_partials }));
  mini.draw();
}

const select = document.getElementById('partition');
const summary = document.getElementById('view-summary');
const details = document.getElementById('details');
const main = new Timeline(document.getElementById('main-timeline'), {
  compact: false, mode: defaultMode,
  onDraw: (t) => {
    const a = summarize(summary, t), lo = t.scale.t(t.u0), hi = t.scale.t(t.u1);
    summary.textContent = 'group ' + a.partition + ': ' + a.ops + ' operations on ' + a.lanes +
      ' processes · ' + a.linearized + (t.view.failed ? ' in the longest linearizable prefix · ' :
      ' linearized · ') + a.stuck + ' stuck · ' + a.unknown + ' unknown outcome · showing ' +
      fmtAt(Math.max(lo, 0)) + ' – ' + fmtAt(hi) + ' (' + a.drawn + ' drawn)' + (!D.faults.length ? '' :
      ' · ' + plural(D.faults.length, 'fault interval') + (FAULTS.length ? ', ' + a.faultBands + ' in view' :
        ' (not drawn: no timestamps)'));
  },
  onSelect: (it, view) => {
    if (it) { opInfo(it, view, details); details.classList.add('on'); }
  },
  onFault: (f) => { faultInfo(f, details); details.classList.add('on'); },
});
const order = D.partitions.map((p) => p.i);
const rankOf = { failed: 0, unchecked: 1, linearizable: 2 };
order.sort((a, b) => rankOf[D.partitions[a].status] - rankOf[D.partitions[b].status] || a - b);
for (const i of order) {
  const p = D.partitions[i];
  const status = STATUS[p.status];
  select.appendChild(new Option('group ' + i + (p.label ? ' (' + p.label + ')' : '') + ' · ' + p.ops.length +
    ' ops · ' + status, String(i)));
}
const toFailure = document.getElementById('to-failure');
const activeOnly = document.getElementById('active-only');
activeOnly.addEventListener('change', () => { main.activeOnly = activeOnly.checked; main.draw(); });
function choose(i) {
  select.value = String(i);
  main.setView(partView(i));
  toFailure.disabled = !main.view.failed;
  details.classList.remove('on'); details.textContent = 'Click an operation to keep its details here.';
  activeOnly.checked = main.activeOnly;
  if (main.view.failed && main.view.items.length > 40) main.toFailure(); else main.start();
}
select.addEventListener('change', () => choose(Number(select.value)));
document.getElementById('fit').addEventListener('click', () => main.fit());
document.getElementById('zoom-in').addEventListener('click', () => main.zoom(0.6));
document.getElementById('zoom-out').addEventListener('click', () => main.zoom(1 / 0.6));
toFailure.addEventListener('click', () => main.toFailure());
document.getElementById('show-lin').addEventListener('change', (e) => {
  main.showLin = e.target.checked; if (mini) mini.showLin = e.target.checked;
  main.draw(); if (mini) mini.draw();
});
for (const r of document.querySelectorAll('input[name=mode]')) {
  r.checked = r.value === defaultMode;
  if (!D.timed && r.value === 'real') {
    r.disabled = true; r.parentNode.title = 'this history has no timestamps: only the order of events';
  }
  r.addEventListener('change', () => { if (r.checked) { main.setMode(r.value, false); main.draw(); } });
}
if (order.length) choose(order[0]);

// The whole run: every op of every group against the faults, failing groups marked.
const wholeHost = document.getElementById('whole-timeline');
const wholeSummary = document.getElementById('whole-summary');
let whole = null;
function wholeView() {
  const roles = new Map(), role = { failed: 'failgroup', linearizable: 'lin', unchecked: 'other' };
  for (const p of D.partitions) for (const id of p.ops) roles.set(id, role[p.status]);
  const f = D.failure;
  return buildView(D.ops.map((o) => o.id), null, null, f ? f.stuck : [], { whole: true, roles });
}
if (wholeHost) {
  whole = new Timeline(wholeHost, {
    compact: false, mode: defaultMode,
    onDraw: (t) => {
      const a = summarize(wholeSummary, t);
      const failing = D.partitions.filter((p) => p.status === 'failed');
      wholeSummary.dataset.groups = String(D.partitions.length);
      wholeSummary.dataset.failingOps = String(failing.reduce((n, p) => n + p.ops.length, 0));
      wholeSummary.textContent = a.ops + ' operations of ' + plural(D.partitions.length, 'group') +
        ' on ' + plural(a.lanes, 'process', 'processes') + (failing.length ? ' · failing: group ' +
        failing.map((p) => p.i).join(', ') : '') + ' · showing ' + fmtAt(Math.max(t.scale.t(t.u0), 0)) +
        ' – ' + fmtAt(t.scale.t(t.u1)) + ' (' + a.drawn + ' drawn)';
    },
    onSelect: (it) => {
      if (!it) return;
      choose(GROUP_OF.get(it.op.id));
      if (main.focus(it.op.id)) { opInfo(main.selected, main.view, details); details.classList.add('on'); }
    },
    onFault: (f) => { faultInfo(f, details); details.classList.add('on'); },
  });
  whole.setView(wholeView());
  whole.activeOnly = false;
  whole.fit();
}
const byNode = document.getElementById('by-node');
byNode.addEventListener('change', (e) => {
  BY_NODE = e.target.checked;
  choose(main.view.index);
  if (whole) { whole.setView(wholeView()); whole.activeOnly = false; whole.fit(); }
  if (mini) { mini.setView(buildView(D.failure.minimal, D.failure.minimal_longest, D.failure.minimal_states,
    D.failure.minimal_stuck, { failed: true, endState: D.failure.minimal_state,
      partials: D.failure.minimal_partials })); mini.draw(); }
});
// Clicking an op named in the static text shows it in the main timeline.
for (const node of document.querySelectorAll('[data-op]')) {
  node.addEventListener('click', () => {
    const id = Number(node.dataset.op);
    if (D.failure && main.view.index !== D.failure.partition) choose(D.failure.partition);
    if (main.focus(id)) {
      opInfo(main.selected, main.view, details); details.classList.add('on');
      document.getElementById('history').scrollIntoView({ behavior: 'smooth' });
    }
  });
}
// The faults table gives durations in seconds; shown in the units of the tooltips.
for (const cell of document.querySelectorAll('tr[data-fault] td.lasted')) {
  cell.textContent = lasted(D.faults[Number(cell.parentNode.dataset.fault)]);
}
// A row of the faults table shows its band in the main timeline.
for (const node of document.querySelectorAll('tr[data-fault]')) {
  if (!FAULTS.length) break;
  node.addEventListener('click', () => {
    const k = Number(node.dataset.fault);
    main.showFault(k);
    faultInfo(FAULTS[k], details); details.classList.add('on');
    document.getElementById('history').scrollIntoView({ behavior: 'smooth' });
  });
}
// "#lanes=node" in the address opens the page with the lanes grouped by node; "#op=N" on the
// operation with history index N, selected, with its longest partial linearization drawn.
if (/(^|[#&])lanes=node(&|$)/.test(location.hash)) {
  byNode.checked = true; byNode.dispatchEvent(new Event('change'));
}
const linked = /(?:^|[#&])op=(\d+)(?:&|$)/.exec(location.hash);
if (linked) {
  const o = D.ops.find((x) => x.h === Number(linked[1]));
  if (o) {
    choose(GROUP_OF.get(o.id));
    if (main.focus(o.id)) {
      opInfo(main.selected, main.view, details); details.classList.add('on');
      summary.dataset.selected = String(o.h);
      summary.dataset.partial = String(main.hoverPartial ? main.hoverPartial.order.length : 0);
    }
  }
}
let resizeTimer = 0;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const t of [main, mini, whole]) if (t) { t.layout(); t.hist = null; t.draw(); }
  }, 100);
});
document.body.dataset.rendered = 'yes';
})();
