// The explorer page: state lives here, every computation is a request to the server (app.py).
"use strict";

const S = { info: null, bits: [], start: [], model: [], sim: [], wrong: null, generation: 0, diverged: null,
            query: null, headsOff: new Set(), playing: null, flip: null };
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

const empty = () => Array.from({ length: S.info.height }, () => Array(S.info.width).fill(0));
const copy = (b) => b.map((r) => r.slice());

// --- drawing ----------------------------------------------------------------------------------
function drawBoard(el, board, { wrong = null, classes = null, heat = null, vmax = 1, onClick = null } = {}) {
  const h = board.length, w = board[0].length, size = Math.min(280, 28 * w);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("width", size);
  svg.setAttribute("height", size * h / w);
  for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) {
    const cell = document.createElementNS(SVG, "rect");
    Object.entries({ x: c, y: r, width: 1, height: 1, class: "cell" }).forEach(([k, v]) => cell.setAttribute(k, v));
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
    Object.entries({ x: S.query[1], y: S.query[0], width: 1, height: 1, class: "query" })
      .forEach(([k, v]) => q.setAttribute(k, v));
    svg.appendChild(q);
  }
  el.replaceChildren(svg);
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
  drawBoard($("board-model"), S.model, { wrong: S.wrong, onClick: clickCell });
  drawBoard($("board-sim"), S.sim, { onClick: clickCell });
  if (S.flip) drawBoard($("board-flip"), S.model, { classes: S.flip });
  else drawBoard($("board-flip"), S.model, { onClick: clickCell });
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

async function step() {
  const r = await api("/api/step", { bits: S.bits, model_board: S.model, sim_board: S.sim });
  S.model = r.model; S.sim = r.simulator; S.generation += 1; S.wrong = r.wrong; S.flip = null;
  if (S.diverged === null && r.wrong.some((row) => row.some((x) => x))) S.diverged = S.generation;
  render();
  refreshInspection();
}

function play() {
  if (S.playing) { clearInterval(S.playing); S.playing = null; $("play").textContent = "play"; return; }
  $("play").textContent = "pause";
  S.playing = setInterval(() => step().catch(() => play()), 350);
}

async function refreshInspection() {
  if (!S.query) return;
  $("query-cell").textContent = `(${S.query[0]}, ${S.query[1]})`;
  const body = { bits: S.bits, board: S.model, row: S.query[0], col: S.query[1] };
  const att = await api("/api/attention", body);
  drawAttention(att.layers);
  await headsOff();
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

// --- start-up ---------------------------------------------------------------------------------
async function init() {
  S.info = await api("/api/info");
  $("provenance").textContent = `run ${S.info.run_id} · step ${S.info.step} · ` +
    `${S.info.height}x${S.info.width} · ${S.info.n_layers} layers x ${S.info.n_heads} heads`;
  const named = $("named-rule");
  Object.entries(S.info.named_rules).forEach(([name, r]) => named.add(new Option(`${name} (${r.rule})`, name)));
  named.addEventListener("change", () => setBits(S.info.named_rules[named.value].bits));
  S.info.patterns.forEach((p) => $("pattern").add(new Option(p, p)));
  $("pattern").addEventListener("change", async () => setBoard((await api(`/api/pattern/${$("pattern").value}`)).board));
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
    setBoard(empty().map((row) => row.map(() => (Math.random() < d ? 1 : 0))));
  });
  $("clear").addEventListener("click", () => setBoard(empty()));
  $("step").addEventListener("click", () => step());
  $("play").addEventListener("click", play);
  $("reset").addEventListener("click", () => setBoard(S.start));
  $("flip").addEventListener("click", () => flip());
  S.bits = S.info.named_rules["Conway's Life"].bits.slice();
  $("rule-current").textContent = "B3/S23";
  setBoard((await api("/api/pattern/glider")).board);
}

init().catch((err) => status(`could not start: ${err.message}`, true));
