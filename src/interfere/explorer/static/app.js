// The explorer page: state lives here, every computation is a request to the server (app.py).
"use strict";

const S = { info: null, bits: [], start: [], model: [], sim: [], wrong: null, generation: 0, diverged: null,
            query: null, headsOff: new Set(), playing: false, frames: [], fetching: null, flip: null,
            height: 0, width: 0, view: [0, 0], source: null };  // source: where the board came from
const SVG_MAX_SIDE = 32;  // larger boards are drawn on a canvas (thousands of SVG cells are slow)
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function api(path, body) {
  const res = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const data = await res.json();
  if (!res.ok) { status(data.error || `request failed (${res.status})`, true); throw new Error(data.error); }
  status("");
  return data;
}

const empty = () => Array.from({ length: S.height }, () => Array(S.width).fill(0));
const copy = (b) => b.map((r) => r.slice());
const inspectable = () => S.height * S.width <= S.info.max_inspect_cells;

// --- drawing ----------------------------------------------------------------------------------
// `view` [dr, dc] shifts what is drawn on the torus: display cell (r, c) shows board cell (r + dr, c + dc).
const at = (board, view, r, c) => board[(r + view[0]) % board.length][(c + view[1]) % board[0].length];

function drawBoard(el, board, opts = {}) {
  if (board.length > SVG_MAX_SIDE || board[0].length > SVG_MAX_SIDE) return drawCanvas(el, board, opts);
  const { wrong = null, classes = null, heat = null, vmax = 1, onClick = null, view = [0, 0] } = opts;
  const h = board.length, w = board[0].length, size = Math.min(280, 28 * w);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("width", size);
  svg.setAttribute("height", size * h / w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const r = (y + view[0]) % h, c = (x + view[1]) % w;
    const cell = document.createElementNS(SVG, "rect");
    Object.entries({ x, y, width: 1, height: 1, class: "cell" }).forEach(([k, v]) => cell.setAttribute(k, v));
    let fill = board[r][c] ? "var(--alive)" : "var(--dead)";
    if (heat) fill = heatColor(heat[r][c] / vmax);
    if (wrong && wrong[r][c]) fill = "var(--wrong)";
    if (classes && classes[r][c]) cell.classList.add(classes[r][c]);
    if (!(classes && classes[r][c])) cell.setAttribute("fill", fill);
    cell.dataset.row = r; cell.dataset.col = c;
    if (onClick) cell.addEventListener("click", () => onClick(r, c));
    svg.appendChild(cell);
  }
  if (S.query) {
    const q = document.createElementNS(SVG, "rect");
    const y = (S.query[0] - view[0] + h) % h, x = (S.query[1] - view[1] + w) % w;
    Object.entries({ x, y, width: 1, height: 1, class: "query" }).forEach(([k, v]) => q.setAttribute(k, v));
    svg.appendChild(q);
  }
  el.replaceChildren(svg);
}

function drawCanvas(el, board, { wrong = null, onClick = null, view = [0, 0] } = {}) {
  const h = board.length, w = board[0].length, px = Math.max(1, Math.floor(384 / Math.max(h, w)));
  const canvas = document.createElement("canvas");
  canvas.width = w * px; canvas.height = h * px; canvas.className = "cells";
  const ctx = canvas.getContext("2d"), css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  ctx.fillStyle = color("--dead"); ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const r = (y + view[0]) % h, c = (x + view[1]) % w;
    if (wrong && wrong[r][c]) ctx.fillStyle = color("--wrong");
    else if (board[r][c]) ctx.fillStyle = color("--alive");
    else continue;
    ctx.fillRect(x * px, y * px, px, px);
  }
  if (onClick) canvas.addEventListener("click", (e) => {
    const box = canvas.getBoundingClientRect();
    const x = Math.floor((e.clientX - box.left) / px), y = Math.floor((e.clientY - box.top) / px);
    onClick((y + view[0]) % h, (x + view[1]) % w);
  });
  el.replaceChildren(canvas);
}

function centreOn(board) {  // the view that puts the live cells' circular mean in the middle of the torus
  const h = board.length, w = board[0].length;
  let sr = 0, cr = 0, sc = 0, cc = 0;
  board.forEach((row, r) => row.forEach((v, c) => {
    if (!v) return;
    sr += Math.sin(2 * Math.PI * r / h); cr += Math.cos(2 * Math.PI * r / h);
    sc += Math.sin(2 * Math.PI * c / w); cc += Math.cos(2 * Math.PI * c / w);
  }));
  if (!sr && !cr && !sc && !cc) return [0, 0];
  const mean = (s, c, n) => Math.round((Math.atan2(s, c) / (2 * Math.PI)) * n + n) % n;
  return [(mean(sr, cr, h) - Math.floor(h / 2) + h) % h, (mean(sc, cc, w) - Math.floor(w / 2) + w) % w];
}

function heatColor(t) {  // white -> deep blue, like the figures' sequential map read on a light page
  t = Math.max(0, Math.min(1, t));
  const a = [251, 250, 247], b = [29, 53, 87];
  return `rgb(${a.map((x, i) => Math.round(x + (b[i] - x) * t)).join(",")})`;
}

function drawBars(values, names) {
  const w = 18 * 9, h = 46, svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h + 12);
  const vmax = Math.max(0.05, ...values);
  values.forEach((v, i) => {
    const bar = document.createElementNS(SVG, "rect");
    const bh = h * v / vmax;
    Object.entries({ x: i * 9 + 1, y: h - bh, width: 7, height: bh,
                     fill: i < 9 ? "var(--accent)" : "var(--birth)" }).forEach(([k, x]) => bar.setAttribute(k, x));
    const tip = document.createElementNS(SVG, "title");
    tip.textContent = `${names[i]} (bit ${S.bits[i]}): ${v.toFixed(3)}`;
    bar.appendChild(tip);
    svg.appendChild(bar);
  });
  const label = document.createElementNS(SVG, "text");
  Object.entries({ x: 0, y: h + 10, "font-size": 8, fill: "#777" }).forEach(([k, v]) => label.setAttribute(k, v));
  label.textContent = `S0…S8 | B0…B8   max ${vmax.toFixed(2)}`;
  svg.appendChild(label);
  return svg;
}

function render() {
  $("generation").textContent = S.generation;
  $("divergence").textContent = S.diverged === null ? "model and simulator agree"
    : `first divergence at generation ${S.diverged}`;
  S.view = $("follow").checked ? centreOn(S.sim) : [0, 0];
  drawBoard($("board-model"), S.model, { wrong: S.wrong, onClick: clickCell, view: S.view });
  drawBoard($("board-sim"), S.sim, { onClick: clickCell, view: S.view });
  if (S.flip) drawBoard($("board-flip"), S.model, { classes: S.flip, view: S.view });
  else drawBoard($("board-flip"), S.model, { onClick: clickCell, view: S.view });
  document.querySelectorAll("#bit-toggles button").forEach((b, i) => b.classList.toggle("on", !!S.bits[i]));
}

// --- state changes ---------------------------------------------------------------------------
function setBoard(board) {
  S.start = copy(board); S.model = copy(board); S.sim = copy(board);
  S.generation = 0; S.wrong = null; S.diverged = null; S.flip = null;
  render();
  refreshInspection();
}

function setBits(bits) {
  S.bits = bits.slice();
  api("/api/rule", { text: ruleString(bits) }).then((r) => { $("rule-current").textContent = r.rule; });
  S.flip = null;
  render();
  refreshInspection();
}

function ruleString(bits) {
  const on = (off) => bits.slice(off, off + 9).map((b, c) => (b ? c : "")).join("");
  return `B${on(9)}/S${on(0)}`;
}

function clickCell(r, c) {
  if ($("edit").checked && S.generation === 0) {
    const b = copy(S.start);
    b[r][c] = 1 - b[r][c];
    S.query = [r, c];
    setBoard(b);
  } else {
    S.query = [r, c];
    render();
    refreshInspection();
  }
}

function advance(model, sim, wrong) {
  S.model = model; S.sim = sim; S.generation += 1; S.wrong = wrong; S.flip = null;
  if (S.diverged === null && wrong.some((row) => row.some((x) => x))) S.diverged = S.generation;
}

async function step() {
  const r = await api("/api/step", { bits: S.bits, model_board: S.model, sim_board: S.sim });
  advance(r.model, r.simulator, r.wrong);
  render();
  refreshInspection();
}

function fetchFrames() {  // the next generations, computed by the server in one request while the page plays
  const last = S.frames.length ? S.frames[S.frames.length - 1] : { model: S.model, sim: S.sim };
  const gens = Math.min(S.info.max_gens, Number($("speed").value));
  S.fetching = api("/api/run", { bits: S.bits, model_board: last.model, sim_board: last.sim, gens })
    .then((r) => { r.model.forEach((m, i) => S.frames.push({ model: m, sim: r.simulator[i], wrong: r.wrong[i] })); })
    .finally(() => { S.fetching = null; });
  return S.fetching;
}

async function tick() {
  if (!S.playing) return;
  const started = performance.now();
  if (!S.frames.length) await (S.fetching || fetchFrames());
  if (!S.playing) return;
  const frame = S.frames.shift();
  advance(frame.model, frame.sim, frame.wrong);
  render();
  if (S.frames.length < Number($("speed").value) / 2 && !S.fetching) fetchFrames();
  setTimeout(() => tick().catch(stopPlaying), Math.max(0, 1000 / Number($("speed").value) - (performance.now() - started)));
}

function stopPlaying() {
  S.playing = false; S.frames = []; $("play").textContent = "play";
  refreshInspection();
}

function play() {
  if (S.playing) return stopPlaying();
  S.playing = true; S.frames = []; $("play").textContent = "pause";
  tick().catch(stopPlaying);
}

async function refreshInspection() {
  if (!S.query || S.playing) return;
  if (!inspectable()) {
    $("attention").textContent = `Attention is shown for boards up to 32x32 (the hooked forward); this one is ` +
      `${S.height}x${S.width}.`;
    return;
  }
  $("query-cell").textContent = `(${S.query[0]}, ${S.query[1]})`;
  const body = { bits: S.bits, board: S.model, row: S.query[0], col: S.query[1] };
  const att = await api("/api/attention", body);
  drawAttention(att.layers);
  await headsOff();
  await showRoute(body);
}

// The clicked cell's case and the route that case takes in this model (the lookup map: computed once, by the
// server, the first time a cell is clicked), with the heads on the route marked.
async function showRoute(body) {
  if (!S.info.routes) return;
  if (!S.routeReady) status("computing the lookup map (once: every rule bit flipped, every slot patched) ...");
  const r = await api("/api/route", body);
  S.routeReady = true;
  const where = r.enters === "rule" ? `stays in the rule tokens up to layer ${r.layer}`
    : `enters the ${r.enters} by layer ${r.layer}`;
  const pct = (x) => `${Math.round(100 * x)}%`;
  const relays = r.relays.map(([n, x]) => `${n} (${pct(x)})`).join(", ");
  const lookedUp = r.kind === "redundant" ? `computed twice, by ${r.lookups.join(" and by ")} (either alone enough)`
    : r.kind === "shared" ? `looked up by ${r.lookups.join(", ")} together (no one of them alone)`
    : `looked up by ${r.lookup || "no slot or set of slots (not located)"}`;
  $("route").textContent = `Case ${r.case} (${r.alive ? "alive" : "dead"}, ${r.count} live neighbours): the flip of ` +
    `its rule bit ${where}; ${lookedUp}` +
    (relays ? `; relayed by ${relays}` : "") + (r.readout.length ? `; the last MLP: ${r.readout[0][0]} (carries ${Math.round(100 * r.readout[0][1])}% of the flips)` : "") + "." +
    variablesText(r.variables);
  const onRoute = new Set([...r.lookups, ...r.relays.map((x) => x[0])].filter(Boolean)
    .filter((n) => n.endsWith("@targets") || n.endsWith("@board")).map((n) => n.split("@")[0]));
  document.querySelectorAll("#attention .head").forEach((box) => box.classList.toggle("route", onRoute.has(box.dataset.head)));
}

// Where the clicked cell's variables live (the causal abstraction the explorer was started with, if any).
function variablesText(variables) {
  if (!variables) return "";
  const parts = Object.entries(variables).map(([v, at]) => at ? `${v} at ${at.site} (rank ${at.rank})` : `${v}: no site`);
  return ` Its variables (causal abstraction): ${parts.join("; ")}.`;
}

function drawAttention(layers) {
  const root = $("attention");
  root.replaceChildren();
  layers.forEach((heads, l) => {
    const row = document.createElement("div");
    row.className = "layer";
    const label = document.createElement("div");
    label.className = "label"; label.textContent = `L${l}`;
    row.appendChild(label);
    heads.forEach((head, h) => {
      const name = `L${l}H${h}`, box = document.createElement("div");
      box.className = "head" + (S.headsOff.has(name) ? " off" : "");
      box.dataset.head = name;
      const title = document.createElement("div");
      title.className = "title";
      const boardMass = head.board.flat().reduce((a, b) => a + b, 0);
      const ruleMass = head.rule.reduce((a, b) => a + b, 0);
      title.innerHTML = `<span><b>${name}</b> board ${boardMass.toFixed(2)} · rule ${ruleMass.toFixed(2)}</span>`;
      const toggle = document.createElement("button");
      toggle.textContent = S.headsOff.has(name) ? "on" : "off";
      toggle.title = "mean-ablate this head";
      toggle.addEventListener("click", () => {
        if (S.headsOff.has(name)) S.headsOff.delete(name); else S.headsOff.add(name);
        refreshInspection();
      });
      title.appendChild(toggle);
      const map = document.createElement("div");
      map.className = "board attention-map";
      drawBoard(map, head.board, { heat: head.board, vmax: Math.max(1e-6, ...head.board.flat()) });
      box.append(title, map, drawBars(head.rule, S.info.bit_names));
      row.appendChild(box);
    });
    root.appendChild(row);
  });
}

async function headsOff() {
  if (!S.headsOff.size) { $("heads-off-result").textContent = ""; return; }
  const r = await api("/api/heads_off", { bits: S.bits, board: S.model, heads: [...S.headsOff] });
  const clean = await api("/api/heads_off", { bits: S.bits, board: S.model, heads: [] });
  $("heads-off-result").innerHTML = `With ${[...S.headsOff].join(", ")} off: next-board accuracy ` +
    `<b>${(100 * r.accuracy).toFixed(1)}%</b> (all heads on: ${(100 * clean.accuracy).toFixed(1)}%).`;
}

async function flip() {
  const bit = Number($("flip-bit").value);
  const r = await api("/api/flip", { bits: S.bits, board: S.model, bit });
  S.flip = r.changed.map((row, i) => row.map((ch, j) => {
    const gov = r.governed[i][j];
    return ch && gov ? "both" : ch ? "changed" : gov ? "governed" : null;
  }));
  const fmt = (x) => (x === null ? "n/a" : x.toFixed(2));
  $("flip-result").textContent = `${r.bit}: precision ${fmt(r.precision)}, recall ${fmt(r.recall)}`;
  render();
}

// --- patterns and sizes ------------------------------------------------------------------------
function placePattern(r) {
  if (r.bits) { S.bits = r.bits.slice(); $("rule-current").textContent = r.rule; }
  $("rle-name").textContent = r.name ? `${r.name}${r.rule ? ` (${r.rule})` : ""}` : "";
  S.query = null;
  setBoard(r.board);
}

async function loadPattern(name) {
  S.source = { name };
  placePattern(await api(`/api/pattern/${name}?height=${S.height}&width=${S.width}`));
}

async function loadRLE(text) {
  stopPlaying();
  S.source = { text };
  placePattern(await api("/api/rle", { text, height: S.height, width: S.width }));
}

async function setSize(side) {
  stopPlaying();
  S.height = side; S.width = side; S.query = null;
  try {
    if (S.source && S.source.name) await loadPattern(S.source.name);
    else if (S.source && S.source.text) await loadRLE(S.source.text);
    else setBoard(empty());
  } catch (err) {  // e.g. the pattern does not fit: the status line says so, the board is empty
    setBoard(empty());
  }
}

// --- start-up ---------------------------------------------------------------------------------
async function init() {
  S.info = await api("/api/info");
  S.height = S.info.height; S.width = S.info.width;
  $("provenance").textContent = `run ${S.info.run_id} · step ${S.info.step} · ` +
    (S.info.size_free ? "size-free (any board size)" : `${S.info.height}x${S.info.width}`) +
    ` · ${S.info.n_layers} layers x ${S.info.n_heads} heads`;
  S.info.sides.forEach((s) => $("size").add(new Option(`${s}x${s}`, s, s === S.height, s === S.height)));
  $("size").disabled = !S.info.size_free;
  $("size").addEventListener("change", () => setSize(Number($("size").value)));
  const named = $("named-rule");
  Object.entries(S.info.named_rules).forEach(([name, r]) => named.add(new Option(`${name} (${r.rule})`, name)));
  named.addEventListener("change", () => setBits(S.info.named_rules[named.value].bits));
  S.info.patterns.forEach((p) => $("pattern").add(new Option(p, p, p === "glider", p === "glider")));
  $("pattern").addEventListener("change", () => loadPattern($("pattern").value));
  S.info.bit_names.forEach((name, i) => {
    const b = document.createElement("button");
    b.textContent = name;
    if (i >= 9) b.classList.add("birth");
    b.addEventListener("click", () => { const bits = S.bits.slice(); bits[i] = 1 - bits[i]; setBits(bits); });
    $("bit-toggles").appendChild(b);
    $("flip-bit").add(new Option(name, i));
  });
  $("rule-set").addEventListener("click", async () => setBits((await api("/api/rule", { text: $("rule-text").value })).bits));
  $("density").addEventListener("input", () => { $("density-value").textContent = $("density").value; });
  $("soup").addEventListener("click", () => {
    const d = Number($("density").value);
    S.source = null;
    setBoard(empty().map((row) => row.map(() => (Math.random() < d ? 1 : 0))));
  });
  $("clear").addEventListener("click", () => { S.source = null; setBoard(empty()); });
  $("rle-load").addEventListener("click", () => loadRLE($("rle-text").value));
  $("rle-file").addEventListener("change", async () => {
    const file = $("rle-file").files[0];
    if (file) { $("rle-text").value = await file.text(); await loadRLE($("rle-text").value); }
  });
  $("follow").addEventListener("change", render);
  $("step").addEventListener("click", () => step());
  $("play").addEventListener("click", play);
  $("reset").addEventListener("click", () => { stopPlaying(); setBoard(S.start); });
  $("flip").addEventListener("click", () => flip());
  S.bits = S.info.named_rules["Conway's Life"].bits.slice();
  $("rule-current").textContent = "B3/S23";
  await loadPattern("glider");
}

init().catch((err) => status(`could not start: ${err.message}`, true));
