// The page at `/` of `seq2seq serve` (docs/serving.md): plain JavaScript, no build step, nothing
// loaded from elsewhere. It calls this server's JSON API (GET /health, GET /models, POST /translate)
// and draws the translations, the n-best candidates with their scores, and the attention of the
// chosen candidate as a heat map with its word alignment.
"use strict";

const $ = (id) => document.getElementById(id);

const EXAMPLES = {
  de: ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau mit einem roten Hut liest ein Buch."],
  en: ["A man is riding a bike.", "Two dogs are playing in the snow.", "A woman in a red hat is reading a book."],
  fr: ["Un homme fait du vélo.", "Deux chiens jouent dans la neige."],
  cs: ["Muž jede na kole.", "Dva psi si hrají ve sněhu."],
};
const LANGUAGES = { de: "German", en: "English", fr: "French", cs: "Czech" };
// The heat map's colour ramp (weight 0 to 1), light to dark blue.
const RAMP = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
const EOS = "</s>";

const state = { health: null, model: null, results: [], selected: null, busy: false };

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// One call to the server: the parsed JSON reply, or an ApiError holding the server's one-line error.
async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  let reply;
  try {
    reply = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `the server did not answer (${err.message}): is seq2seq serve still running?`);
  }
  let data = null;
  try {
    data = await reply.json();
  } catch (err) {
    data = null;
  }
  if (!reply.ok) {
    throw new ApiError(reply.status, data && typeof data.error === "string" ? data.error : reply.statusText);
  }
  return data;
}

function showError(err) {
  const box = $("error");
  box.replaceChildren();
  if (!err) {
    box.hidden = true;
    return;
  }
  const head = document.createElement("strong");
  head.textContent = err.status ? `The server refused the request (${err.status}):` : "Error:";
  box.append(head, " ", err.message);
  box.hidden = false;
}

function setStatus(text) {
  $("status").textContent = text;
}

// --- the model: /health and /models -----------------------------------------------------------

function language(code) {
  return (code && LANGUAGES[code]) || code || "source";
}

function describeModel(health) {
  const pair = health.src_lang && health.tgt_lang ? `${health.src_lang} → ${health.tgt_lang}` : "";
  return [pair, health.engine, health.device, health.precision].filter(Boolean).join(" · ");
}

function applyHealth(health) {
  state.health = health;
  $("model-info").textContent = describeModel(health);
  $("model-info").title = health.model || "";
  $("src-lang").textContent = language(health.src_lang);
  const limits = health.limits || {};
  const beam = $("beam");
  if (limits.max_beam_size) beam.max = limits.max_beam_size;
  if (health.decode && health.decode.beam_size && !beam.dataset.touched) beam.value = health.decode.beam_size;
  syncNbest();
  $("example").hidden = !EXAMPLES[health.src_lang];
  const examples = EXAMPLES[health.src_lang];
  if (examples) $("source").placeholder = examples.slice(0, 2).join("\n");
}

async function loadModels() {
  let models = [];
  try {
    const reply = await api("models");
    models = Array.isArray(reply) ? reply : (reply && reply.models) || [];
  } catch (err) {
    models = []; // a server without /models serves one model
  }
  const select = $("model");
  select.replaceChildren();
  for (const m of models) {
    const option = document.createElement("option");
    option.value = typeof m === "string" ? m : m.name;
    const info = typeof m === "string" ? "" : describeModel(m);
    option.textContent = info ? `${option.value} (${info})` : option.value;
    select.append(option);
  }
  const several = models.length > 1;
  select.hidden = !several;
  $("model-label").hidden = !several;
  state.model = several ? select.value : null;
}

async function loadHealth() {
  try {
    const path = state.model ? `health?model=${encodeURIComponent(state.model)}` : "health";
    applyHealth(await api(path));
    showError(null);
  } catch (err) {
    $("model-info").textContent = "server not reachable";
    showError(err);
  }
}

// --- translating ------------------------------------------------------------------------------

function syncNbest() {
  const beam = Math.max(1, Number($("beam").value) || 1);
  const nbest = $("nbest");
  nbest.max = beam;
  if (Number(nbest.value) > beam) nbest.value = beam;
}

function sourceLines() {
  return $("source").value.split("\n").map((s) => s.trim()).filter((s) => s.length > 0);
}

// The candidates of sentence `i` from a /translate reply: [{text, score, src, tgt, weights, alignment}].
function candidates(reply, i) {
  const nbest = reply.n_best ? reply.n_best[i] : null;
  const list = Array.isArray(nbest) && nbest.length ? nbest : [reply.translations[i]];
  return list.map((entry, k) => {
    const c = typeof entry === "string" ? { translation: entry } : entry;
    const attention = c.attention || (k === 0 && reply.attention ? reply.attention[i] : null);
    const alignment = c.alignment !== undefined ? c.alignment : k === 0 && reply.alignments ? reply.alignments[i] : null;
    const score = c.score !== undefined ? c.score : k === 0 && reply.scores ? reply.scores[i] : null;
    return {
      text: c.translation !== undefined ? c.translation : c.text,
      score: typeof score === "number" ? score : null,
      src: attention ? attention.src_tokens || attention.source : null,
      tgt: attention ? attention.tgt_tokens || attention.target : null,
      weights: attention ? attention.weights || attention.matrix : null,
      alignment: parseAlignment(alignment),
    };
  });
}

// "0-0 1-2" (fast_align / Moses: source word i, output word j) or [[0, 0], [1, 2]]: a list of pairs.
function parseAlignment(value) {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") {
    return value.trim() ? value.trim().split(/\s+/).map((p) => p.split("-").map(Number)) : [];
  }
  return value.map((p) => (typeof p === "string" ? p.split("-").map(Number) : p));
}

async function translate() {
  if (state.busy) return;
  const sentences = sourceLines();
  if (!sentences.length) {
    showError(new ApiError(0, "type a sentence to translate first (one per line)."));
    return;
  }
  syncNbest();
  const body = {
    sentences,
    beam_size: Number($("beam").value),
    n_best: Number($("nbest").value),
    attention: true,
    alignments: true,
  };
  if (state.model) body.model = state.model;
  state.busy = true;
  $("translate").disabled = true;
  setStatus("translating…");
  const started = performance.now();
  try {
    const reply = await api("translate", body);
    const ms = Math.round(performance.now() - started);
    state.results = sentences.map((source, i) => ({ source, candidates: candidates(reply, i) }));
    showError(null);
    renderResults();
    select(0, 0);
    const n = sentences.length;
    setStatus(`${n} sentence${n === 1 ? "" : "s"} in ${ms} ms`);
  } catch (err) {
    showError(err);
    setStatus("");
  } finally {
    state.busy = false;
    $("translate").disabled = false;
  }
}

// --- the results ------------------------------------------------------------------------------

function formatScore(score) {
  return score === null ? "" : score.toFixed(2).replace("-", "−");
}

function renderResults() {
  const list = $("results");
  list.replaceChildren();
  state.results.forEach((result, i) => {
    const item = document.createElement("li");
    item.className = "result";
    const source = document.createElement("div");
    source.className = "source";
    source.textContent = result.source;
    const cands = document.createElement("ol");
    cands.className = "candidates";
    result.candidates.forEach((c, k) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = k === 0 ? "candidate best" : "candidate";
      button.dataset.sentence = i;
      button.dataset.candidate = k;
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = c.text || "(empty)";
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = formatScore(c.score);
      if (c.score !== null) score.title = "score: log-probability, normalised for length";
      button.append(text, score);
      button.addEventListener("click", () => select(i, k));
      li.append(button);
      cands.append(li);
    });
    item.append(source, cands);
    list.append(item);
  });
  $("results-card").hidden = false;
}

function select(i, k) {
  state.selected = [i, k];
  for (const b of document.querySelectorAll(".candidate")) {
    const on = Number(b.dataset.sentence) === i && Number(b.dataset.candidate) === k;
    b.classList.toggle("selected", on);
    b.setAttribute("aria-pressed", on ? "true" : "false");
  }
  renderAttention(state.results[i], i, k);
}

// --- the heat map -----------------------------------------------------------------------------

// The word each piece belongs to (SentencePiece: "▁" starts a word); null for the end-of-sentence mark.
function wordIndex(pieces) {
  let word = -1;
  return pieces.map((p) => {
    if (p === EOS) return null;
    if (word < 0 || p.startsWith("▁")) word += 1;
    return word;
  });
}

function words(pieces) {
  const out = [];
  const index = wordIndex(pieces);
  pieces.forEach((p, n) => {
    if (index[n] === null) return;
    out[index[n]] = (out[index[n]] || "") + p.replace(/^▁/, "");
  });
  return out;
}

// A piece as a header cell: the "▁" word mark dropped (a line separates words instead), a piece that
// continues a word marked, the end-of-sentence mark named.
function pieceHeader(piece, starts, tag) {
  const th = document.createElement(tag);
  const label = document.createElement("span");
  if (piece === EOS) {
    label.className = "eos";
    label.textContent = "end";
    th.title = "the end-of-sentence mark </s>";
  } else {
    const text = piece.replace(/^▁/, "");
    label.className = starts ? "piece" : "piece cont";
    label.textContent = text || "␣";
    th.title = starts ? `"${text}" starts a word` : `"${text}" continues the word before it`;
  }
  th.append(label);
  return th;
}

function heatColour(w) {
  const x = Math.min(1, Math.max(0, w)) * (RAMP.length - 1);
  const lo = Math.min(RAMP.length - 2, Math.floor(x));
  const t = x - lo;
  const rgb = RAMP[lo].map((v, n) => Math.round(v + t * (RAMP[lo + 1][n] - v)));
  return `rgb(${rgb.join(", ")})`;
}

function renderAttention(result, i, k) {
  const c = result.candidates[k];
  const card = $("attention-card");
  const table = $("heatmap");
  table.replaceChildren();
  $("alignment").replaceChildren();
  card.hidden = false;
  const where = state.results.length > 1 ? `Sentence ${i + 1}, candidate ${k + 1}` : `Candidate ${k + 1}`;
  $("attention-caption").textContent = `${where}: “${c.text}”`;
  if (!c.weights || !c.src || !c.tgt) {
    $("attention-caption").textContent += " (this server sent no attention for it)";
    return;
  }
  const srcWord = wordIndex(c.src);
  const tgtWord = wordIndex(c.tgt);
  const aligned = new Set((c.alignment || []).map(([s, t]) => `${s}-${t}`));
  const isAligned = (r, col) => r >= 0 && col >= 0 && r < c.tgt.length && col < c.src.length &&
    srcWord[col] !== null && tgtWord[r] !== null && aligned.has(`${srcWord[col]}-${tgtWord[r]}`);
  const startsWord = (index, n) => n > 0 && index[n] !== index[n - 1];

  const head = document.createElement("tr");
  const corner = document.createElement("th");
  corner.className = "corner";
  corner.append(Object.assign(document.createElement("span"), { textContent: "output ↓  source →" }));
  head.append(corner);
  c.src.forEach((p, col) => {
    const th = pieceHeader(p, col === 0 || c.src[col].startsWith("▁"), "th");
    th.scope = "col";
    th.dataset.col = col;
    if (startsWord(srcWord, col)) th.classList.add("wb-left");
    head.append(th);
  });
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  c.tgt.forEach((p, r) => {
    const row = document.createElement("tr");
    const th = pieceHeader(p, r === 0 || p.startsWith("▁"), "th");
    th.scope = "row";
    th.dataset.row = r;
    if (startsWord(tgtWord, r)) row.classList.add("wb-top");
    row.append(th);
    c.src.forEach((s, col) => {
      const w = (c.weights[r] || [])[col] || 0;
      const td = document.createElement("td");
      td.style.backgroundColor = heatColour(w);
      if (w > 0.55) td.classList.add("dark");
      if (startsWord(srcWord, col)) td.classList.add("wb-left");
      td.textContent = w >= 0.05 ? w.toFixed(2).replace(/^0/, "") : "";
      td.title = `${p.replace(/^▁/, "")} ← ${s.replace(/^▁/, "")}: ${w.toFixed(3)}`;
      td.dataset.row = r;
      td.dataset.col = col;
      if (isAligned(r, col)) {
        td.classList.add("aligned");
        const edges = [];
        if (!isAligned(r - 1, col)) edges.push("inset 0 2px 0 var(--align)");
        if (!isAligned(r + 1, col)) edges.push("inset 0 -2px 0 var(--align)");
        if (!isAligned(r, col - 1)) edges.push("inset 2px 0 0 var(--align)");
        if (!isAligned(r, col + 1)) edges.push("inset -2px 0 0 var(--align)");
        td.style.boxShadow = edges.join(", ");
      }
      row.append(td);
    });
    tbody.append(row);
  });
  table.append(thead, tbody);
  renderAlignment(c);
}

function renderAlignment(c) {
  const box = $("alignment");
  if (!c.alignment) return;
  const src = words(c.src);
  const tgt = words(c.tgt);
  const title = document.createElement("strong");
  title.textContent = "Alignment: ";
  box.append(title);
  const pairs = [...c.alignment].sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  pairs.forEach(([s, t], n) => {
    const pair = document.createElement("span");
    pair.className = "pair";
    pair.textContent = `${src[s] ?? s} → ${tgt[t] ?? t}`;
    pair.title = `${s}-${t}: source word ${s + 1}, output word ${t + 1}`;
    if (n) box.append(" ");
    box.append(pair);
  });
  const raw = document.createElement("code");
  raw.className = "raw";
  raw.textContent = c.alignment.map(([s, t]) => `${s}-${t}`).join(" ");
  box.append(" ", raw);
}

function highlight(event, on) {
  const cell = event.target.closest("td");
  if (!cell) return;
  const table = $("heatmap");
  const row = table.querySelector(`th[data-row="${cell.dataset.row}"]`);
  const col = table.querySelector(`th[data-col="${cell.dataset.col}"]`);
  for (const th of [row, col]) if (th) th.classList.toggle("hover", on);
}

// --- start ------------------------------------------------------------------------------------

function start() {
  $("translate").addEventListener("click", translate);
  $("source").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      translate();
    }
  });
  $("beam").addEventListener("input", () => {
    $("beam").dataset.touched = "1";
    syncNbest();
  });
  $("example").addEventListener("click", () => {
    const examples = state.health && EXAMPLES[state.health.src_lang];
    if (examples) $("source").value = examples.join("\n");
  });
  $("model").addEventListener("change", () => {
    state.model = $("model").value;
    loadHealth();
  });
  $("heatmap").addEventListener("mouseover", (event) => highlight(event, true));
  $("heatmap").addEventListener("mouseout", (event) => highlight(event, false));
  loadModels().then(loadHealth).then(() => document.body.classList.add("ready"));
}

document.addEventListener("DOMContentLoaded", start);
