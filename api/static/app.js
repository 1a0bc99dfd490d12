// The chat page: asks POST /ask with stream:true and shows the answer as it streams in.
// Server-Sent Events are read from a fetch() body (EventSource cannot POST or send headers).
// Citations [n] become buttons; clicking one shows the passage and where it comes from.
"use strict";

const KEY_STORAGE = "rag-api-key";
const MODE_STORAGE = "rag-answer-mode";
const HISTORY_TURNS = 6;           // messages of earlier conversation sent for follow-ups
const MARKER = /\[(\d{1,3})\]/g;

const $ = (id) => document.getElementById(id);
const state = { history: [], busy: false, controller: null, statusTimer: null };

// --- small helpers --------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function apiKey() { return localStorage.getItem(KEY_STORAGE) || ""; }

function headers(extra = {}) {
  const h = { ...extra };
  const key = apiKey();
  if (key) h["Authorization"] = `Bearer ${key}`;
  return h;
}

function errorText(body, status) {
  if (body && typeof body.error === "string") return body.error;
  if (body && body.error && body.error.message) return body.error.message;
  return `The server answered with status ${status}.`;
}

function formatMs(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

function whereLabel(item) {
  const parts = [];
  if (item.page) parts.push(`p. ${item.page}`);
  if (item.section) parts.push(item.section);
  return parts.join(" · ");
}

// --- server status --------------------------------------------------------------------------

async function refreshStatus() {
  clearTimeout(state.statusTimer);
  const status = $("status");
  let next = 30000;
  try {
    const response = await fetch("/health", { cache: "no-store" });
    const body = await response.json();
    status.dataset.state = body.status;
    // The server's answer mode, until the person picks one here.
    if (body.answer_mode && localStorage.getItem(MODE_STORAGE) === null) {
      $("answer-mode").value = body.answer_mode;
    }
    if (body.status === "ready") {
      const docs = body.index && body.index.documents;
      status.textContent = docs !== undefined ? `ready · ${docs} documents` : "ready";
      status.title = `Model: ${body.model}`;
    } else {
      status.textContent = body.status === "loading" ? "loading models…" : body.status.replace("_", " ");
      status.title = body.error || "";
      next = 3000;
    }
  } catch (err) {
    status.dataset.state = "error";
    status.textContent = "server unreachable";
    next = 5000;
  }
  state.statusTimer = setTimeout(refreshStatus, next);
}

// --- Server-Sent Events over fetch ---------------------------------------------------------

async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { type, data: JSON.parse(data.join("\n")) };
    }
  }
}

// --- rendering an answer --------------------------------------------------------------------

// One assistant message: its DOM and what it knows about its passages and citations.
class AnswerView {
  constructor(question) {
    this.question = question;
    this.passages = [];
    this.citations = null;   // set when the answer is complete
    this.span = null;        // the short answer's place in its passage, and the sentence around it
    this.text = "";
    this.textNode = el("div", { class: "answer waiting" }, "Searching the documents…");
    this.extra = el("div", { class: "extra" });
    this.item = el("li", { class: "msg assistant" }, el("div", { class: "bubble" }, this.textNode, this.extra));
    $("messages").append(this.item);
  }

  // The passage behind marker n: the checked citation once known, else the n-th passage shown to the model.
  source(n) {
    if (this.citations) {
      const citation = this.citations.find((c) => c.number === n);
      if (!citation) return null;
      const passage = this.passages.find((p) => p.id === citation.chunk_id);
      return { ...citation, text: passage ? passage.text : citation.snippet };
    }
    const passage = this.passages[n - 1];
    return passage ? { number: n, source: passage.source, page: passage.page, section: passage.section, text: passage.text } : null;
  }

  renderText(pending) {
    const node = this.textNode;
    node.className = "answer" + (pending ? " pending" : "");
    node.replaceChildren();
    let last = 0;
    for (const match of this.text.matchAll(MARKER)) {
      node.append(this.text.slice(last, match.index));
      const n = Number(match[1]);
      if (this.source(n)) {
        node.append(el("button", { type: "button", class: "cite", dataset: { n: String(n) },
          title: "Show the passage", onclick: (e) => this.open(n, e.currentTarget) }, `[${n}]`));
      } else {
        node.append(match[0]);
      }
      last = match.index + match[0].length;
    }
    node.append(this.text.slice(last));
  }

  retrieval(event) {
    this.passages = event.passages || [];
    this.query = event.query;
    this.textNode.textContent = "Writing the answer…";
  }

  token(text) {
    this.text += text;
    this.renderText(true);
  }

  done(answer) {
    this.passages = answer.passages || this.passages;
    this.citations = answer.citations || [];
    this.text = answer.answer;
    this.span = answer.answer_span || null;
    this.evidence = answer.evidence || null;
    this.renderText(false);
    if (!answer.answerable) this.item.classList.add("refusal");

    const extra = [];
    if (this.span && this.evidence) {
      // The short answer first; the sentence it was read from under it.
      const n = this.evidence.passage;
      extra.push(el("div", { class: "evidence" }, el("span", { class: "evidence-label" }, "From the source: "),
        el("q", {}, this.evidence.text), " ",
        el("button", { type: "button", class: "cite", dataset: { n: String(n) }, title: "Show the passage",
          onclick: (e) => this.open(n, e.currentTarget) }, `[${n}]`)));
    }
    if (answer.reasoning && answer.reasoning.length) {
      // A multi-hop answer: each hop's question and finding, collapsed under the answer.
      const steps = el("ol", { class: "steps" });
      for (const hop of answer.reasoning) {
        const found = hop.value || hop.finding;
        const n = hop.citation;
        steps.append(el("li", {}, el("span", { class: "step-question" }, hop.question), " → ",
          found ? el("span", { class: "step-finding" }, found) : el("span", { class: "step-missing" }, "nothing found"),
          " ", n && this.source(n) ? el("button", { type: "button", class: "cite", dataset: { n: String(n) },
            title: "Show the passage", onclick: (e) => this.open(n, e.currentTarget) }, `[${n}]`) : null));
      }
      extra.push(el("details", { class: "reasoning" },
        el("summary", {}, `How this was found: ${answer.reasoning.length} steps`), steps));
    } else if (answer.query && answer.query.trim() !== this.question.trim()) {   // a hop's query is in its step
      extra.push(el("div", { class: "query-note" }, "Searched for: ", el("q", {}, answer.query)));
    }
    if (this.citations.length) {
      const list = el("ol", { class: "sources", "aria-label": "Sources" });
      for (const c of this.citations) {
        const where = whereLabel(c);
        list.append(el("li", {}, el("button", { type: "button", class: "source-link", dataset: { n: String(c.number) },
          onclick: (e) => this.open(c.number, e.currentTarget) },
          el("span", { class: "num" }, `[${c.number}]`), el("span", { class: "file" }, c.source),
          where ? el("span", { class: "where" }, where) : null)));
      }
      extra.push(list);
    }
    const t = answer.timings_ms || {};
    // Stages that did not run (no rewrite without history, no reranker) are left out.
    const parts = Object.entries(t).filter(([k, v]) => k !== "total" && v >= 0.5).map(([k, v]) => `${k} ${formatMs(v)}`);
    if (t.total !== undefined) parts.push(`total ${formatMs(t.total)}`);
    if (parts.length) extra.push(el("div", { class: "timings" }, parts.join(" · ")));
    this.extra.replaceChildren(...extra);
  }

  fail(message) {
    this.item.classList.add("failed");
    this.textNode.className = "answer";
    this.textNode.textContent = message;
  }

  open(n, button) {
    const item = this.source(n);
    if (!item) return;
    document.querySelectorAll(".cite.active").forEach((b) => b.classList.remove("active"));
    if (button && button.classList.contains("cite")) button.classList.add("active");
    $("passage-title").textContent = `Source [${n}]`;
    const meta = $("passage-meta");
    meta.replaceChildren(el("dt", {}, "File"), el("dd", { class: "passage-file" }, item.source || "?"));
    if (item.page) meta.append(el("dt", {}, "Page"), el("dd", {}, String(item.page)));
    if (item.section) meta.append(el("dt", {}, "Section"), el("dd", {}, item.section));
    const text = item.text || "";
    const span = this.span && this.span.passage === n && this.passageText(n) === text ? this.span : null;
    if (span) {
      // The answer's words marked where they stand in the passage.
      $("passage-text").replaceChildren(text.slice(0, span.start), el("mark", { class: "answer-span" },
        text.slice(span.start, span.end)), text.slice(span.end));
    } else {
      $("passage-text").textContent = text;
    }
    $("passage").hidden = false;
  }

  passageText(n) {
    const citation = this.citations && this.citations.find((c) => c.number === n);
    const passage = citation ? this.passages.find((p) => p.id === citation.chunk_id) : this.passages[n - 1];
    return passage ? passage.text : null;
  }
}

// --- asking ---------------------------------------------------------------------------------

function setBusy(busy) {
  state.busy = busy;
  const send = $("send");
  send.textContent = busy ? "Stop" : "Ask";
  send.classList.toggle("stop", busy);
}

async function ask(question) {
  $("intro").hidden = true;
  $("messages").append(el("li", { class: "msg user" }, el("div", { class: "bubble" }, question)));
  const view = new AnswerView(question);
  view.item.scrollIntoView({ behavior: "smooth", block: "end" });
  setBusy(true);
  state.controller = new AbortController();
  let finished = false;
  try {
    const response = await fetch("/ask", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", "Accept": "text/event-stream" }),
      body: JSON.stringify({
        question, stream: true, history: state.history.slice(-HISTORY_TURNS),
        answer_mode: $("answer-mode").value,
      }),
      signal: state.controller.signal,
    });
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (e) { /* not JSON */ }
      if (response.status === 401) {
        $("key-box").open = true;
        $("status").dataset.state = "unauthorized";
        $("status").textContent = "API key needed";
      }
      view.fail(errorText(body, response.status));
      return;
    }
    for await (const event of readEvents(response)) {
      if (event.type === "retrieval") view.retrieval(event.data);
      else if (event.type === "token") view.token(event.data.text || "");
      else if (event.type === "done") {
        view.done(event.data.answer);
        finished = true;
        state.history.push({ role: "user", content: question }, { role: "assistant", content: event.data.answer.answer });
      } else if (event.type === "error") {
        view.fail(event.data.error);
        finished = true;
      }
    }
    if (!finished) view.fail("The answer was cut off; ask again.");
  } catch (err) {
    if (err.name === "AbortError") {
      if (view.text) view.renderText(false); else view.fail("Stopped.");
    } else {
      view.fail(`The server could not be reached (${err.message}).`);
    }
  } finally {
    setBusy(false);
    state.controller = null;
    view.item.scrollIntoView({ behavior: "smooth", block: "end" });
  }
}

function submit() {
  if (state.busy) {
    if (state.controller) state.controller.abort();
    return;
  }
  const box = $("question");
  const question = box.value.trim();
  if (!question) { box.focus(); return; }
  box.value = "";
  ask(question);
}

// --- wiring ---------------------------------------------------------------------------------

function init() {
  $("ask-form").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  $("question").addEventListener("keydown", (e) => {
    // Enter sends, Shift+Enter is a new line; never while an input method is composing (Chinese).
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submit();
    }
  });
  for (const button of document.querySelectorAll(".example")) {
    button.addEventListener("click", () => { $("question").value = button.textContent; submit(); });
  }
  $("new-chat").addEventListener("click", () => {
    state.history = [];
    $("messages").replaceChildren();
    $("passage").hidden = true;
    $("intro").hidden = false;
  });
  $("passage-close").addEventListener("click", () => {
    $("passage").hidden = true;
    document.querySelectorAll(".cite.active").forEach((b) => b.classList.remove("active"));
  });
  const kept = localStorage.getItem(MODE_STORAGE);          // else the server's, set by refreshStatus
  if (kept && [...$("answer-mode").options].some((o) => o.value === kept)) $("answer-mode").value = kept;
  $("answer-mode").addEventListener("change", (e) => localStorage.setItem(MODE_STORAGE, e.target.value));
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    localStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    $("key-box").open = false;
    refreshStatus();
  });
  $("key-clear").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORAGE);
    $("api-key").value = "";
  });
  refreshStatus();
  $("question").focus();
}

document.addEventListener("DOMContentLoaded", init);
