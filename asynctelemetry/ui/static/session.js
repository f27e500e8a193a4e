// Conversations: captured content as chat messages (the call dialog and the session view), and
// the session view: one session's calls in time order, tokens and cost per turn, its totals and
// its traces (GET /api/sessions/{id}). User data reaches the DOM only through textContent.
//
//   Session.messages(parent, messages)  draw a call's messages (from the API's "messages")
//   Session.link(sessionId, text)       an <a> (showing text, else the id) to the view: the URL
//                                       key "conversation" (state.js), which app.js opens
//   Session.open(sessionId)             open the view in the detail dialog
"use strict";

window.Session = (function () {
  const PAGE = 50;  // turns per request; "more" reads the next page
  const ROLE_NAMES = { user: "user", assistant: "assistant", system: "system", tool: "tool" };

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = String(text);
    return node;
  }

  function board() { return window.Dashboard; }
  const F = window.Format;  // every figure is written by format.js

  // -- messages ------------------------------------------------------------------------------
  function part(p) {
    if (p.kind === "tool_call") {
      const box = el("div", "part tool-call");
      box.appendChild(el("div", "part-head", "tool call · " + (p.name || "?") + (p.id ? " · " + p.id : "")));
      if (p.text) box.appendChild(el("pre", "part-body", pretty(p.text)));
      return box;
    }
    if (p.kind === "tool_result") {
      const box = el("div", "part tool-result" + (p.error ? " part-error" : ""));
      const what = p.name || p.id || "tool";
      box.appendChild(el("div", "part-head", (p.error ? "tool error · " : "tool result · ") + what));
      box.appendChild(el("pre", "part-body", pretty(p.text || "")));
      return box;
    }
    if (p.kind === "reasoning") {
      const box = el("details", "part reasoning");
      box.appendChild(el("summary", null, "reasoning"));
      box.appendChild(el("p", "part-text", p.text || ""));
      return box;
    }
    if (p.kind === "other") return el("p", "part muted", p.text || "");
    return el("p", "part part-text", p.text || "");
  }

  // JSON arguments and results indented for reading; anything else as it is.
  function pretty(text) {
    if (!/^\s*[[{]/.test(text)) return text;
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (err) { return text; }
  }

  function message(m) {
    const role = ROLE_NAMES[m.role] ? m.role : "other";
    const box = el("div", "msg role-" + role);
    box.dataset.role = m.role;
    box.appendChild(el("div", "msg-role", m.role));
    for (const p of m.parts) box.appendChild(part(p));
    return box;
  }

  function messages(parent, list) {
    const box = el("div", "messages");
    for (const m of list) box.appendChild(message(m));
    parent.appendChild(box);
    return box;
  }

  // -- links ---------------------------------------------------------------------------------
  function link(sessionId, text) {
    const a = el("a", "session-link", text == null ? sessionId : text);
    a.title = "open the conversation of session " + sessionId;
    // The URL's "conversation" key opens the view (app.js); a real link: new tab, copy.
    return window.UrlState.link(a, { conversation: sessionId, call: null, trace: null });
  }

  // -- the view ------------------------------------------------------------------------------
  function key(m) { return m.role + "\u0000" + JSON.stringify(m.parts); }

  // A chat app sends the whole history again with every call: a turn shows only the messages
  // that follow what the turn before sent and got back.
  function fresh(list, seen) {
    const sent = list.filter(function (m) { return m.source !== "output"; });
    const got = list.filter(function (m) { return m.source === "output"; });
    let k = 0;
    while (k < sent.length && k < seen.length && key(sent[k]) === seen[k]) k += 1;
    return { shown: sent.slice(k).concat(got), repeated: k, seen: sent.concat(got).map(key) };
  }

  function turn(view, c) {
    const box = el("article", "turn status-" + (c.status === "ok" ? "ok" : "bad"));
    box.dataset.callId = c.call_id;
    const head = el("header", "turn-head");
    const call = el("a", "turn-call", F.time(c.timestamp, true));
    call.title = "every field of this call";
    window.UrlState.link(call, { call: c.call_id, trace: null, conversation: null });
    head.appendChild(call);
    const model = c.request_model == null ? c.model : c.request_model;
    head.appendChild(el("span", "turn-model", model));
    head.appendChild(el("span", "turn-status", c.status + (c.error_type ? " (" + c.error_type + ")" : "")));
    head.appendChild(el("span", "turn-figures", F.duration(c.duration_ms) + " · " +
      F.tokens(c.input_tokens, true) + " → " + F.tokens(c.output_tokens) + " · " + F.usd(c.cost_usd)));
    if (c.trace_id) {
      const t = el("a", "turn-trace", "trace");
      window.UrlState.link(t, { trace: c.trace_id, call: null, conversation: null });
      head.appendChild(t);
    }
    box.appendChild(head);
    if (c.error_message) box.appendChild(el("p", "turn-error", c.error_message));
    if (!c.messages || !c.messages.length) {
      box.appendChild(el("p", "muted", "content not captured"));
      view.uncaptured += 1;
    } else {
      const turnMessages = fresh(c.messages, view.seen);
      view.seen = turnMessages.seen;
      const k = turnMessages.repeated;
      if (k) box.appendChild(el("p", "muted repeated", k + " earlier message" + (k === 1 ? "" : "s") +
        " sent again (not repeated here)"));
      messages(box, turnMessages.shown);
    }
    return box;
  }

  function tracesTable(view, traces) {
    for (const t of traces) {
      if (view.traceIds.has(t.trace_id)) continue;
      view.traceIds.add(t.trace_id);
      const row = view.traces.tBodies[0].insertRow();
      row.className = "call" + (t.errors ? " status-bad" : "");
      row.tabIndex = 0;
      row.dataset.traceId = t.trace_id;
      for (const text of [F.time(t.started, true), t.root_name,
                          t.status === "error" ? t.errors + " error" + (t.errors === 1 ? "" : "s") : t.status,
                          F.duration(t.duration_ms), F.count(t.llm_calls), F.count(t.spans), F.usd(t.cost_usd)]) {
        row.appendChild(el("td", null, text));
      }
      for (const i of [3, 4, 5, 6]) row.cells[i].className = "num";
      const to = { trace: t.trace_id, call: null, conversation: null };
      row.addEventListener("click", function () { window.UrlState.set(to); });
      row.addEventListener("keydown", function (event) { if (event.key === "Enter") window.UrlState.set(to); });
    }
    view.tracesSection.hidden = view.traceIds.size === 0;
  }

  function totalsLine(t) {
    if (!t) return "";
    return F.count(t.calls) + " calls · " + F.count(t.errors) + " errors · " + F.tokens(t.input_tokens, true) +
      " in / " + F.tokens(t.output_tokens, true) + " out tokens · " + F.cost(t.cost_usd, t.unpriced_calls, t.calls) +
      " · p50 latency " + F.duration(t.p50_latency_ms);
  }

  async function load(view, after) {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (after) params.set("after", after);
    const answer = await board().api("/api/sessions/" + encodeURIComponent(view.id), params);
    view.totals.textContent = totalsLine(answer.totals);
    tracesTable(view, answer.traces);
    for (const c of answer.calls) view.turns.appendChild(turn(view, c));
    view.note.textContent = view.uncaptured ? view.uncaptured + " of these calls have no captured content " +
      "(the tracer or collector keeps prompts and answers only with capture_content=True)" : "";
    view.more.hidden = !answer.next;
    view.next = answer.next;
    view.root.dataset.turns = String(view.turns.children.length);
    view.root.dataset.complete = answer.next ? "false" : "true";
  }

  async function open(sessionId) {
    const root = el("section", "session-view");
    root.id = "session-view";
    root.dataset.sessionId = sessionId;
    const view = { id: sessionId, root: root, seen: [], uncaptured: 0, traceIds: new Set(), next: null };
    view.totals = el("p", "session-totals");
    view.totals.id = "session-totals";
    view.tracesSection = el("div", "session-traces");
    view.tracesSection.hidden = true;
    view.tracesSection.appendChild(el("h3", null, "Traces"));
    view.traces = el("table", "session-traces-table");
    const head = view.traces.createTHead().insertRow();
    for (const name of ["started (UTC)", "root", "status", "duration", "LLM calls", "steps", "cost"]) {
      head.appendChild(el("th", null, name));
    }
    view.traces.createTBody();
    view.tracesSection.appendChild(view.traces);
    view.turns = el("div", "turns");
    view.note = el("p", "muted session-note");
    view.more = el("button", "session-more", "more turns");
    view.more.type = "button";
    view.more.hidden = true;
    view.more.addEventListener("click", async function () {
      view.more.disabled = true;
      try { await load(view, view.next); } catch (err) { view.note.textContent = "cannot read more: " + err.message; }
      view.more.disabled = false;
    });
    root.append(view.totals, view.tracesSection, el("h3", null, "Conversation"), view.note, view.turns, view.more);
    try {
      await load(view, null);
    } catch (err) {
      board().say("cannot show the session: " + err.message, true);
      return;
    }
    board().openDialog("Session " + sessionId, function (body) { body.appendChild(root); });
  }

  return { messages: messages, link: link, open: open };
})();
