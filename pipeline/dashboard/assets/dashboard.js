// mlink dashboard: one EventSource, one canvas per camera. No framework:
// the server sends complete events (state, result, stats) and this draws.
"use strict";

// Line styles of boxes by source, as in the legend (canvas setLineDash).
const DASH = { exact: [], predicted: [8, 5], reused: [2, 4], tracked: [10, 4, 2, 4] };
const COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];
const RECENT = 16; // results kept per camera, to draw a frame with its own

const models = [];            // configured models, in order
const colorOf = new Map();    // model -> colour
const cameras = new Map();    // camera id -> view
let lastStats = null;

function el(tag, attrs = {}, text = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

function setModels(list) {
  models.length = 0;
  (list || []).forEach((m, i) => { models.push(m); colorOf.set(m.name, COLORS[i % COLORS.length]); });
}

function view(id) {
  let v = cameras.get(id);
  if (v) return v;
  const node = document.getElementById("camera").content.firstElementChild.cloneNode(true);
  node.dataset.camera = id;
  node.querySelector(".name").textContent = id;
  document.getElementById("cameras").append(node);
  v = { id, node, canvas: node.querySelector("canvas"), recent: new Map(), latest: null,
        bitmap: null, frameSeq: 0, loading: false, again: false, rows: new Map() };
  v.ctx = v.canvas.getContext("2d");
  const body = node.querySelector("tbody");
  for (const m of models) {
    const tr = el("tr", { "data-model": m.name });
    const name = el("td");
    name.append(el("span", { class: "swatch", style: "background:" + colorOf.get(m.name) }), m.name);
    tr.append(name, el("td", { class: "value" }), el("td", { class: "src" }), el("td", { class: "num age" }), el("td", { class: "num ms" }));
    body.append(tr);
    v.rows.set(m.name, tr);
  }
  cameras.set(id, v);
  return v;
}

function applyState(st) {
  setModels(st.models);
  document.getElementById("cameras").replaceChildren();
  cameras.clear();
  for (const c of st.cameras || []) {
    const v = view(c.camera);
    if (c.result) applyResult(c.result);
    else if (c.frame) loadFrame(v);
  }
  if (st.stats) applyStats(st.stats);
}

function applyResult(ev) {
  const v = view(ev.camera);
  v.recent.set(ev.seq, ev);
  while (v.recent.size > RECENT) v.recent.delete(v.recent.keys().next().value);
  v.latest = ev;
  v.node.querySelector(".seq").textContent = "#" + ev.seq;
  v.node.dataset.seq = ev.seq;
  renderModels(v, ev);
  renderPlan(v, ev);
  if (ev.frame && ev.frame.seq !== v.frameSeq) loadFrame(v);
  else draw(v);
}

function fmtValue(m) {
  if (m.source === "error") return m.error || "error";
  if (m.source === "missing") return "—";
  const val = m.value || [];
  switch (m.type) {
    case "count": return String(val[0] ?? "");
    case "class": {
      const p = val.length ? Math.max(...val) : 0;
      return (m.label || "?") + " (" + p.toFixed(2) + ")";
    }
    case "boxes": return plural((m.boxes || []).length, "box", "boxes");
    case "lines": return plural((m.boxes || []).length, "segment", "segments");
    default: return val.map(x => (Math.round(x * 100) / 100).toString()).join(", ");
  }
}

function plural(n, one, many) {
  return n + " " + (n === 1 ? one : many);
}

function renderModels(v, ev) {
  for (const m of ev.models) {
    const tr = v.rows.get(m.model);
    if (!tr) continue;
    tr.querySelector(".value").textContent = fmtValue(m);
    const src = el("span", { class: "source " + m.source }, m.source);
    tr.querySelector(".src").replaceChildren(src);
    tr.dataset.source = m.source;
    tr.querySelector(".age").textContent = m.age_frames ? m.age_frames + " fr" : "0";
    tr.querySelector(".ms").textContent = m.infer_ms ? m.infer_ms.toFixed(1) : "";
  }
}

function list(name, xs) {
  return xs && xs.length ? " · " + name + ": " + xs.join(", ") : "";
}

function renderPlan(v, ev) {
  const p = ev.plan || {};
  let s = (p.policy || "plan") + (p.profiling ? " (profiling)" : "") + list("exact", p.exact) +
    list("predicted", p.predicted) + list("reused", p.reused) + list("tracked", p.tracked);
  const budget = lastStats && lastStats.budget_ms ? " / budget " + lastStats.budget_ms + " ms" : " (no budget)";
  s += " · model time " + (p.used_ms || 0).toFixed(1) + " ms" + budget;
  if (ev.partial) s += " · partial (" + (ev.reason || "?") + ")";
  v.node.querySelector(".plan").textContent = s;
}

function applyStats(st) {
  lastStats = st;
  let live = plural(st.clients, "viewer", "viewers");
  if (st.agreement !== undefined && st.agreement !== null) live += " · link agreement " + (st.agreement * 100).toFixed(1) + "%";
  live += " · budget " + (st.budget_ms ? st.budget_ms + " ms/frame" : "none");
  if (st.dropped) live += " · " + st.dropped + " updates missed";
  document.getElementById("live").textContent = live;
  for (const c of st.cameras || []) {
    const v = view(c.camera);
    let s = c.fps.toFixed(1) + " fps · latency p50 " + c.latency_p50_ms.toFixed(0) + " ms, p95 " + c.latency_p95_ms.toFixed(0) +
      " ms · " + c.results + " results, " + c.partial + " partial, " + c.lost + " lost";
    if (c.ingest_dropped !== undefined) s += ", " + c.ingest_dropped + " dropped at ingest";
    v.node.querySelector(".stats").textContent = s;
  }
}

// loadFrame fetches the camera's frame; one request at a time per camera,
// the newest asked for again if results came meanwhile.
async function loadFrame(v) {
  if (v.loading) { v.again = true; return; }
  v.loading = true;
  try {
    const res = await fetch("dashboard/frame/" + encodeURIComponent(v.id), { cache: "no-store" });
    if (res.ok) {
      const seq = Number(res.headers.get("Mlink-Seq"));
      const bmp = await createImageBitmap(await res.blob());
      if (v.bitmap) v.bitmap.close();
      v.bitmap = bmp;
      v.frameSeq = seq;
      draw(v);
    }
  } catch (e) {
    console.warn("frame of " + v.id + ": " + e);
  } finally {
    v.loading = false;
    if (v.again) { v.again = false; loadFrame(v); }
  }
}

// draw paints the frame and the boxes of its own result (or, if that is
// no longer kept, of the newest, said in the caption).
function draw(v) {
  const c = v.canvas, ctx = v.ctx;
  if (!v.bitmap) return;
  if (c.width !== v.bitmap.width || c.height !== v.bitmap.height) {
    c.width = v.bitmap.width;
    c.height = v.bitmap.height;
  }
  ctx.drawImage(v.bitmap, 0, 0);
  const res = v.recent.get(v.frameSeq) || v.latest;
  let cap = "frame #" + v.frameSeq;
  if (res && res.seq !== v.frameSeq) cap += " · boxes of #" + res.seq;
  v.node.querySelector(".caption").textContent = cap;
  if (!res) return;
  const W = c.width, H = c.height;
  ctx.lineWidth = Math.max(2, W / 320);
  ctx.font = Math.max(11, Math.round(W / 60)) + "px sans-serif";
  for (const m of res.models) {
    if (!m.boxes || !m.boxes.length || !(m.source in DASH)) continue;
    ctx.strokeStyle = ctx.fillStyle = colorOf.get(m.model) || "#fff";
    ctx.setLineDash(DASH[m.source].map(d => d * ctx.lineWidth / 2));
    for (const b of m.boxes) {
      ctx.beginPath();
      if (m.type === "lines") {
        ctx.moveTo(b.x1 * W, b.y1 * H);
        ctx.lineTo(b.x2 * W, b.y2 * H);
      } else {
        ctx.rect(b.x1 * W, b.y1 * H, (b.x2 - b.x1) * W, (b.y2 - b.y1) * H);
      }
      ctx.stroke();
      if (m.type !== "lines") ctx.fillText(b.class || m.model, b.x1 * W + 2, Math.max(12, b.y1 * H - 3));
    }
  }
  ctx.setLineDash([]);
}

function connect() {
  const conn = document.getElementById("conn");
  // Relative: the page works behind a proxy's path prefix too.
  const es = new EventSource("dashboard/events");
  es.onopen = () => { conn.textContent = "live"; conn.className = "conn on"; };
  es.onerror = () => { conn.textContent = "reconnecting…"; conn.className = "conn off"; };
  es.addEventListener("state", e => applyState(JSON.parse(e.data)));
  es.addEventListener("result", e => applyResult(JSON.parse(e.data)));
  es.addEventListener("stats", e => applyStats(JSON.parse(e.data)));
}

connect();
