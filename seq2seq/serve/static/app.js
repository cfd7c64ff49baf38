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

const state = { health: null, models: [], model: null, results: [], selected: null, busy: false, noAttention: null };

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

// The model the page translates with: the one picked (GET /models), or the server's only one (/health).
function currentModel() {
  return state.models.find((m) => m.name === state.model) || state.health;
}

function applyModel() {
  const model = currentModel();
  $("model-info").textContent = describeModel(model);
  $("model-info").title = model.path || model.model || "";
  $("src-lang").textContent = language(model.src_lang);
  const examples = EXAMPLES[model.src_lang];
  $("example").hidden = !examples;
  if (examples) $("source").placeholder = examples.slice(0, 2).join("\n");
}

// GET /health: the decode defaults and limits; GET /models when the server serves several models.
async function loadServer() {
  try {
    const health = await api("health");
    state.health = health;
    const limits = health.limits || {};
    const beam = $("beam");
    if (limits.max_beam_size) beam.max = limits.max_beam_size;
    if (health.decode && health.decode.beam_size) beam.value = health.decode.beam_size;
    syncNbest();
    const several = Array.isArray(health.models) && health.models.length > 1;
    const listed = several ? await api("models") : { models: [] };
    state.models = listed.models || [];
    const select = $("model");
    select.replaceChildren();
    for (const m of state.models) {
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = m.src_lang && m.tgt_lang ? `${m.name} (${m.src_lang} → ${m.tgt_lang})` : m.name;
      option.selected = m.name === listed.default;
      select.append(option);
    }
    select.hidden = !several;
    $("model-label").hidden = !several;
    state.model = several ? select.value : null;
    applyModel();
    showError(null);
  } catch (err) {
    $("model-info").textContent = "server not reachable";
    showError(err);
  }
}

// --- translating ------------------------------------------------------------------------------

// At most as many candidates as the beam holds, and as the server sends (--max-n-best).
function syncNbest() {
  const limit = ((state.health && state.health.limits) || {}).max_n_best || Infinity;
  const most = Math.min(Math.max(1, Number($("beam").value) || 1), limit);
  const nbest = $("nbest");
  nbest.max = most;
  if (Number(nbest.value) > most) nbest.value = most;
}

function sourceLines() {
  return $("source").value.split("\n").map((s) => s.trim()).filter((s) => s.length > 0);
}

// The candidates of sentence `i` of a /translate reply, best first: {text, score, alignment, attention}.
// The reply holds one list of hypotheses per sentence ({text, score, alignment, attention}) when scores,
// alignments or attention were asked for; only the translations otherwise (docs/serving.md).
function candidates(reply, i) {
  const list = reply.hypotheses && reply.hypotheses[i].length ? reply.hypotheses[i] : [{ text: reply.translations[i] }];
  return list.map((c) => ({
    text: c.text,
    score: typeof c.score === "number" ? c.score : null,
    alignment: parseAlignment(c.alignment),
    attention: c.attention ? attentionOf(c.attention) : null,
  }));
}

// The attention of a hypothesis: the pieces of both sides ("</s>" last), weights[output piece][source
// piece], the words the alignment counts and each piece's word (null: "</s>", "<unk>").
function attentionOf(a) {
  return {
    src: a.src_pieces, tgt: a.tgt_pieces, weights: a.weights,
    srcWord: a.src_word_of_piece, tgtWord: a.tgt_word_of_piece, srcWords: a.src_words, tgtWords: a.tgt_words,
  };
}

// "0-0 1-2" (fast_align / Moses: source word i, output word j): a list of [i, j] pairs.
function parseAlignment(value) {
  if (typeof value !== "string") return null;
  return value.trim() ? value.trim().split(/\s+/).map((p) => p.split("-").map(Number)) : [];
}

async function translate() {
  if (state.busy) return;
  const sentences = sourceLines();
  if (!sentences.length) {
    showError(new ApiError(0, "type a sentence to translate first (one per line)."));
    return;
  }
  syncNbest();
  const limit = ((state.health && state.health.limits) || {}).max_attention_sentences;
  const attention = !limit || sentences.length <= limit; // the server sends attention for that many at most
  state.noAttention = attention ? null : `the server sends attention for up to ${limit} sentences a request`;
  const body = {
    sentences,
    beam_size: Number($("beam").value),
    n_best: Number($("nbest").value),
    scores: true,
    alignments: true,
    attention,
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

// A piece as a header cell: the "▁" word mark dropped (lines separate the words instead), a piece that
// continues a word marked with "-", the end-of-sentence mark and special pieces named.
function pieceHeader(piece, word, starts) {
  const th = document.createElement("th");
  const label = document.createElement("span");
  const text = piece.replace(/^▁/, "");
  if (piece === EOS) {
    label.className = "special";
    label.textContent = "end";
    th.title = "the end-of-sentence mark </s>";
  } else if (word === null || word === undefined) {
    label.className = "special";
    label.textContent = piece;
    th.title = `${piece}: a special piece, in no word`;
  } else {
    label.className = starts ? "piece" : "piece cont";
    label.textContent = text || "␣";
    th.title = starts ? `"${text}" starts word ${word + 1}` : `"${text}" continues word ${word + 1}`;
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

// Whether piece n starts a word (its word differs from the piece before it's).
function starts(index, n) {
  return index[n] !== null && index[n] !== undefined && (n === 0 || index[n] !== index[n - 1]);
}

function renderAttention(result, i, k) {
  const c = result.candidates[k];
  const a = c.attention;
  const table = $("heatmap");
  table.replaceChildren();
  $("alignment").replaceChildren();
  $("attention-card").hidden = false;
  const where = state.results.length > 1 ? `Sentence ${i + 1}, candidate ${k + 1}` : `Candidate ${k + 1}`;
  $("attention-caption").textContent = `${where}: “${c.text}”`;
  $("attention-body").hidden = !a;
  if (!a) {
    $("attention-caption").textContent += state.noAttention ? ` (${state.noAttention})` : " (no attention sent)";
    return;
  }
  const pairOf = (r, col) => {
    const s = a.srcWord[col];
    const t = a.tgtWord[r];
    return s !== null && s !== undefined && t !== null && t !== undefined ? `${s}-${t}` : null;
  };
  const aligned = new Set((c.alignment || []).map(([s, t]) => `${s}-${t}`));
  const inPair = (r, col, pair) => r >= 0 && col >= 0 && r < a.tgt.length && col < a.src.length &&
    pairOf(r, col) === pair;

  const head = document.createElement("tr");
  const corner = document.createElement("th");
  corner.className = "corner";
  corner.textContent = "output ↓ source →";
  head.append(corner);
  a.src.forEach((p, col) => {
    const th = pieceHeader(p, a.srcWord[col], starts(a.srcWord, col));
    th.scope = "col";
    th.dataset.col = col;
    if (col > 0 && starts(a.srcWord, col)) th.classList.add("wb-left");
    head.append(th);
  });
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  a.tgt.forEach((p, r) => {
    const row = document.createElement("tr");
    const th = pieceHeader(p, a.tgtWord[r], starts(a.tgtWord, r));
    th.scope = "row";
    th.dataset.row = r;
    if (r > 0 && starts(a.tgtWord, r)) row.classList.add("wb-top");
    row.append(th);
    a.src.forEach((s, col) => {
      const w = (a.weights[r] || [])[col] || 0;
      const td = document.createElement("td");
      td.style.backgroundColor = heatColour(w);
      if (w > 0.55) td.classList.add("dark");
      if (col > 0 && starts(a.srcWord, col)) td.classList.add("wb-left");
      td.textContent = w >= 0.05 ? w.toFixed(2).replace(/^0/, "") : "";
      td.title = `${p.replace(/^▁/, "")} ← ${s.replace(/^▁/, "")}: ${w.toFixed(3)}`;
      td.dataset.row = r;
      td.dataset.col = col;
      const pair = pairOf(r, col);
      if (pair !== null && aligned.has(pair)) { // outline each aligned word pair's block of pieces
        td.classList.add("aligned");
        const edges = [];
        if (!inPair(r - 1, col, pair)) edges.push("inset 0 2px 0 var(--align)");
        if (!inPair(r + 1, col, pair)) edges.push("inset 0 -2px 0 var(--align)");
        if (!inPair(r, col - 1, pair)) edges.push("inset 2px 0 0 var(--align)");
        if (!inPair(r, col + 1, pair)) edges.push("inset -2px 0 0 var(--align)");
        td.style.boxShadow = edges.join(", ");
      }
      row.append(td);
    });
    tbody.append(row);
  });
  table.append(thead, tbody);
  renderAlignment(c.alignment, a);
}

function renderAlignment(alignment, a) {
  const box = $("alignment");
  if (!alignment) return;
  const title = document.createElement("strong");
  title.textContent = "Alignment: ";
  box.append(title);
  alignment.forEach(([s, t], n) => {
    const pair = document.createElement("span");
    pair.className = "pair";
    pair.textContent = `${a.srcWords[s] ?? s} → ${a.tgtWords[t] ?? t}`;
    pair.title = `${s}-${t}: source word ${s + 1}, output word ${t + 1}`;
    if (n) box.append(" ");
    box.append(pair);
  });
  const raw = document.createElement("code");
  raw.className = "raw";
  raw.title = "the same alignment as fast_align and Moses write it: source word i - output word j, from 0";
  raw.textContent = alignment.map(([s, t]) => `${s}-${t}`).join(" ");
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
  $("beam").addEventListener("input", syncNbest);
  $("example").addEventListener("click", () => {
    const examples = state.health && EXAMPLES[currentModel().src_lang];
    if (examples) $("source").value = examples.join("\n");
  });
  $("model").addEventListener("change", () => {
    state.model = $("model").value;
    applyModel();
  });
  $("heatmap").addEventListener("mouseover", (event) => highlight(event, true));
  $("heatmap").addEventListener("mouseout", (event) => highlight(event, false));
  loadServer().then(() => document.body.classList.add("ready"));
}

document.addEventListener("DOMContentLoaded", start);
