// The asynctelemetry dashboard: reads the JSON API under /api/ and draws the page.
// Data only ever reaches the DOM through textContent (names and attributes come from remote spans).
"use strict";

(function () {
  const $ = function (id) { return document.getElementById(id); };
  const PAGE = 100;          // calls in a page of the calls table
  const POLL_MS = 2000;      // live: look for new calls this often
  const FULL_MS = 30000;     // and redraw everything at least this often (the window slides)
  const TOP_SERIES = 8;      // stacked charts: this many keys, the rest is "other"
  const state = { newest: null, busy: false, again: false, lastFull: 0, models: new Set(), providers: new Set() };

  // -- formatting: the one module, format.js ------------------------------------------------
  const F = window.Format;
  const num = F.count, ms = F.duration, usd = F.usd, costOf = F.cost, pct = F.pct;
  function when(iso) { return F.time(iso, true); }
  function label(key) { return key == null ? "(none)" : String(key); }
  // The one key calls are grouped by: the model asked for, else the model that answered.
  function modelKey(c) { return c.request_model == null ? c.model : c.request_model; }
  function modelCell(row, c) {
    const td = cell(row, modelKey(c));
    if (c.model !== modelKey(c)) {  // the snapshot that answered, as detail
      const detail = document.createElement("span");
      detail.className = "detail";
      detail.textContent = c.model;
      td.append(" ", detail);
      td.title = "asked for " + modelKey(c) + ", answered by " + c.model;
    }
    return td;
  }

  // -- the state of the page: its URL (state.js) ---------------------------------------------
  const URL_KEYS = { window: "1h", since: null, until: null, model: null, provider: null, session: null,
                     status: null, stack: "request_model", user: null, agent: null, call: null, trace: null,
                     conversation: null, sort: "time", order: "desc", q: null, after: null,
                     error_type: null, error_message: null };
  for (const [k, v] of Object.entries(URL_KEYS)) window.UrlState.register(k, v);
  //: Keys whose change redraws the data (call and trace only open or close the dialog).
  const DATA_KEYS = new Set(["window", "since", "until", "model", "provider", "session", "status",
                             "stack", "user", "agent", "sort", "order", "q", "after", "error_type",
                             "error_message"]);
  const at = window.UrlState.get;
  // A filter changes: the calls table starts again at its first page.
  function filter(changes) { window.UrlState.set(Object.assign({ after: null }, changes)); }
  // An <a> to the page with `changes` applied (a real href: new tab, copy link).
  function anchor(text, changes, title) {
    const a = document.createElement("a");
    a.textContent = text;
    if (title) a.title = title;
    return window.UrlState.link(a, changes);
  }
  // The links of the page: a call, a trace (the dialog), a session (the filter).
  function toCall(id) { return { call: id, trace: null, conversation: null }; }
  function toTrace(id) { return { trace: id, call: null, conversation: null }; }
  function toSession(id) { return { session: id, after: null, call: null, trace: null }; }

  // The controls show the URL's state (on load, after every change, back and forward).
  function controlsFromUrl() {
    const since = at("since");
    const win = since ? "custom" : at("window");
    ensureOption($("window"), win);
    $("window").value = win;
    $("custom-range").hidden = win !== "custom";
    $("since").value = since ? localTime(since) : "";
    $("until").value = at("until") ? localTime(at("until")) : "";
    ensureOption($("model"), at("model"));
    $("model").value = at("model") || "";
    ensureOption($("provider"), at("provider"));
    $("provider").value = at("provider") || "";
    $("session").value = at("session") || "";
    $("status").value = at("status") || "";
    $("stack").value = at("stack");
    $("trace-user").value = at("user") || "";
    $("trace-agent").value = at("agent") || "";
    showErrorFilter();
    $("q").value = at("q") || "";
    sortHeaders();
  }
  function ensureOption(select, value) {
    if (!value || Array.from(select.options).some(function (o) { return o.value === value; })) return;
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value;
    select.appendChild(option);
  }
  // "2026-01-31T12:00:00Z" → "2026-01-31T12:00:00" (a datetime-local input, in UTC), and back.
  function localTime(iso) { return iso.replace(/Z$|\+00:00$/, "").slice(0, 19); }
  function isoTime(local) { return local ? (local.length === 16 ? local + ":00" : local) + "Z" : null; }

  // -- the query every request carries: the URL's window and filters -------------------------
  function query(extra) {
    const p = new URLSearchParams();
    if (at("since")) {
      p.set("since", at("since"));
      if (at("until")) p.set("until", at("until"));
    } else {
      p.set("window", at("window"));
    }
    for (const k of ["model", "provider", "session", "status", "error_type", "error_message"]) {
      if (at(k)) p.set(k, at(k));
    }
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    return p;
  }

  async function api(path, params) {
    const url = path + (params ? "?" + params.toString() : "");
    const response = await fetch(url, { credentials: "same-origin",
                                        headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function say(message, isError) {
    const node = $("state");
    node.textContent = message;
    node.className = isError ? "error" : "";
  }

  // -- rendering -----------------------------------------------------------------------------
  function cell(row, content, cls) {
    const td = document.createElement("td");
    td.textContent = content;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function headline(total) {
    $("h-calls").textContent = num(total.calls);
    $("h-cost").textContent = costOf(total.cost_usd, total.unpriced_calls, total.calls);
    $("h-errors").textContent = pct(total.error_rate);
    $("h-p50").textContent = ms(total.p50_latency_ms);
    $("h-p95").textContent = ms(total.p95_latency_ms);
    $("h-ttft").textContent = ms(total.p50_ttft_ms);
  }

  function topTable(table, groups, linkTo, opener) {
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const name of ["name", "calls", "errors", "error rate", "cost", "p50 latency"]) {
      const th = document.createElement("th");
      th.textContent = name;
      head.appendChild(th);
    }
    const body = table.createTBody();
    if (!groups.length) { cell(body.insertRow(), "no calls", "muted").colSpan = 6; return; }
    for (const g of groups.slice(0, 10)) {
      const row = body.insertRow();
      const name = cell(row, linkTo && g.key != null ? "" : label(g.key));
      if (linkTo && g.key != null) name.appendChild(anchor(label(g.key), linkTo(g.key), "filter on this"));
      if (opener && g.key != null) name.append(" ", opener(g.key));
      cell(row, num(g.calls), "num");
      cell(row, num(g.errors), "num");
      cell(row, pct(g.calls ? g.errors / g.calls : null), "num");
      cell(row, costOf(g.cost_usd, g.unpriced_calls, g.calls), "num");
      cell(row, ms(g.p50_latency_ms), "num");
    }
  }

  function setOptions(select, names, keep) {
    const sorted = Array.from(new Set(keep ? [...names, keep] : names)).sort();
    select.replaceChildren();
    const all = document.createElement("option");
    all.value = "";
    all.textContent = "all";
    select.appendChild(all);
    for (const name of sorted) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      select.appendChild(option);
    }
    select.value = keep || "";
  }

  // Colour slots (c0…c8): a key keeps the colour the page gave it (its rank by calls) in every
  // chart of one drawing; a chart's other keys take the slots left free.
  function slotsFor(shown, order) {
    const slots = new Map(), used = new Set();
    for (const key of shown) {
      const rank = order.indexOf(key);
      if (rank >= 0 && rank < window.Charts.SLOTS && !used.has(rank)) { slots.set(key, rank); used.add(rank); }
    }
    let free = 0;
    for (const key of shown) {
      if (slots.has(key)) continue;
      while (used.has(free)) free += 1;
      slots.set(key, free);
      used.add(free);
    }
    return slots;
  }

  // The page's keys by calls, largest first: the order colours are given in.
  function keyOrder(series) {
    const calls = new Map();
    for (const b of series.buckets) calls.set(label(b.key), (calls.get(label(b.key)) || 0) + (b.calls || 0));
    return Array.from(calls.keys()).sort(function (a, b) { return calls.get(b) - calls.get(a) || (a < b ? -1 : 1); });
  }

  function timeFrame(series) {
    const starts = Array.from(new Set(series.buckets.map(function (b) { return b.start; }))).sort();
    return {
      starts: starts,
      index: new Map(starts.map(function (s, i) { return [s, i]; })),
      frame: {
        starts: starts.map(function (s) { return Date.parse(s); }),
        bucketMs: series.bucket_seconds * 1000,
        since: Date.parse(series.query.since),
        until: Date.parse(series.query.until),
      },
    };
  }

  // One stacked series per key, the keys largest in `field` itself (not in calls: the models
  // that fail most are the ones the errors chart names), at most TOP_SERIES and "other".
  function stackSeries(series, field, order) {
    const t = timeFrame(series);
    const totals = new Map();
    for (const b of series.buckets) {
      const key = label(b.key);
      totals.set(key, (totals.get(key) || 0) + (b[field] || 0));
    }
    const keys = Array.from(totals.keys()).filter(function (k) { return totals.get(k) > 0; })
      .sort(function (a, b) { return totals.get(b) - totals.get(a) || (a < b ? -1 : 1); });
    const shown = keys.slice(0, TOP_SERIES);
    const slots = slotsFor(shown, order);
    const rows = new Map(shown.map(function (k) { return [k, new Array(t.starts.length).fill(0)]; }));
    if (keys.length > TOP_SERIES) rows.set("other", new Array(t.starts.length).fill(0));
    for (const b of series.buckets) {
      if (!(b[field] > 0)) continue;
      const key = rows.has(label(b.key)) && label(b.key) !== "other" ? label(b.key) : "other";
      rows.get(key)[t.index.get(b.start)] += b[field];
    }
    return Object.assign(t.frame, {
      series: Array.from(rows, function (entry) {
        return { key: entry[0], values: entry[1], slot: slots.has(entry[0]) ? slots.get(entry[0]) : "other" };
      }),
    });
  }

  // Error rate over time, a line per key with errors (the TOP_SERIES with most): errors / calls
  // of the key's calls in each bucket, unknown (a gap) where the key has no call.
  function errorRates(series, order) {
    const t = timeFrame(series);
    const errors = new Map();
    for (const b of series.buckets) errors.set(label(b.key), (errors.get(label(b.key)) || 0) + (b.errors || 0));
    const shown = Array.from(errors.keys()).filter(function (k) { return errors.get(k) > 0; })
      .sort(function (a, b) { return errors.get(b) - errors.get(a) || (a < b ? -1 : 1); }).slice(0, TOP_SERIES);
    const slots = slotsFor(shown, order);
    const rows = new Map(shown.map(function (k) { return [k, new Array(t.starts.length).fill(null)]; }));
    for (const b of series.buckets) {
      const row = rows.get(label(b.key));
      if (row && b.calls) row[t.index.get(b.start)] = b.errors / b.calls;
    }
    return Object.assign(t.frame, {
      series: Array.from(rows, function (entry) { return { key: entry[0], values: entry[1], slot: slots.get(entry[0]) }; }),
    });
  }

  // p50 and p95 latency and p50 TTFT of every call of each bucket (the store's percentiles).
  function latencies(whole) {
    const t = timeFrame(whole);
    const pick = function (field) {
      const values = new Array(t.starts.length).fill(null);
      for (const b of whole.buckets) values[t.index.get(b.start)] = b[field];
      return values;
    };
    return Object.assign(t.frame, {
      series: [
        { key: "p50 latency", values: pick("p50_latency_ms"), slot: 0 },
        { key: "p95 latency", values: pick("p95_latency_ms"), slot: 1 },
        { key: "p50 TTFT", values: pick("p50_ttft_ms"), slot: 2 },
      ],
    });
  }

  // Each chart is drawn in a task of its own (a week of buckets by model is thousands of
  // nodes): the page answers input between them.
  async function charts(series, whole, byModel, total) {
    const order = keyOrder(series);
    const C = window.Charts;
    C.stacked($("chart-cost"), Object.assign(stackSeries(series, "cost_usd", order),
      { format: usd, label: "Cost over time" }));
    await breathe();
    C.stacked($("chart-calls"), Object.assign(stackSeries(series, "calls", order),
      { format: num, axisFormat: F.compact, whole: true, label: "Calls over time" }));
    await breathe();
    C.stacked($("chart-errors"), Object.assign(stackSeries(series, "errors", order),
      { format: num, axisFormat: F.compact, whole: true, label: "Errors over time" }));
    await breathe();
    C.lines($("chart-error-rate"), Object.assign(errorRates(series, order),
      { format: pct, label: "Error rate over time", emptyText: "no errors in this window" }));
    await breathe();
    C.lines($("chart-latency-time"), Object.assign(latencies(whole),
      { format: ms, label: "Latency and TTFT over time" }));
    await breathe();
    const models = byModel.slice().sort(function (a, b) { return b.calls - a.calls; }).slice(0, 10);
    C.bars($("chart-latency"), {
      label: "Latency and TTFT per model",
      categories: models.map(function (g) { return label(g.key); }),
      series: [
        { name: "p50 latency", values: models.map(function (g) { return g.p50_latency_ms; }) },
        { name: "p95 latency", values: models.map(function (g) { return g.p95_latency_ms; }) },
        { name: "p50 TTFT", values: models.map(function (g) { return g.p50_ttft_ms; }) },
      ],
      format: ms,
    });
    C.bars($("chart-tokens"), {
      label: "Tokens by type",
      categories: total.calls ? ["input", "cached input", "output", "reasoning"] : [],
      series: [{ name: "tokens", values: [total.input_tokens, total.cached_input_tokens,
                                          total.output_tokens, total.reasoning_tokens] }],
      format: num,
    });
  }

  // The calls table's page: its sort, order, cursor and search, as /api/calls takes them.
  function callsParams(extra) {
    const p = { limit: String(PAGE) };
    for (const k of ["sort", "order", "after", "q"]) if (at(k) && at(k) !== URL_KEYS[k]) p[k] = at(k);
    return Object.assign(p, extra || {});
  }

  // Column heads that sort: a link each (the active one turns its order around).
  function sortHeaders() {
    for (const th of document.querySelectorAll("#calls th[data-sort]")) {
      const key = th.dataset.sort;
      const active = at("sort") === key;
      const order = active && at("order") === "desc" ? "asc" : "desc";
      th.setAttribute("aria-sort", active ? (at("order") === "desc" ? "descending" : "ascending") : "none");
      const text = th.dataset.label || (th.dataset.label = th.textContent);
      th.replaceChildren(anchor(text + (active ? (at("order") === "desc" ? " ▼" : " ▲") : ""),
        { sort: key, order: order, after: null }, "sort by " + text + (order === "desc" ? ", largest first" : ", smallest first")));
    }
  }

  // Below the table: the next page (keyset: new calls never shift it) and back to the first.
  function pager(next) {
    const nav = $("pager");
    nav.replaceChildren();
    if (at("after")) nav.append(anchor("« first page", { after: null }), " ");
    if (next) nav.appendChild(anchor("next page »", { after: next }, "the next " + PAGE + " calls"));
    nav.hidden = !nav.childNodes.length;
    const first = at("sort") === "time" && at("order") === "desc" && !at("after");
    $("calls-title").textContent = (at("q") ? "Calls found" : first ? "Recent calls" : "Calls") +
      (at("sort") !== "time" ? " by " + at("sort") : "") + (at("after") ? " (a later page)" : "");
  }

  // A filter or search that matched nothing: say so, with the closest values as links.
  function hintsLine(answer) {
    const node = $("hints");
    node.replaceChildren();
    const hints = answer.hints || {};
    for (const [field, close] of Object.entries(hints)) {
      const p = document.createElement("span");
      p.className = "hint-line";
      p.dataset.field = field;
      p.append("No calls of " + field + " “" + at(field) + "” in this window. ");
      if (close.length) {
        p.append("Did you mean ");
        close.forEach(function (name, i) {
          if (i) p.append(i === close.length - 1 ? " or " : ", ");
          p.appendChild(anchor(name, { [field]: name, after: null }, "filter on " + name));
        });
        p.append("?");
      }
      node.appendChild(p);
    }
    if (at("q") && !answer.calls.length && !at("after")) {
      const p = document.createElement("span");
      p.className = "hint-line";
      p.append("No call, trace, session or user “" + at("q") + "” in this window (search is exact). ");
      p.appendChild(anchor("clear the search", { q: null, after: null }));
      node.appendChild(p);
    }
    node.hidden = !node.childNodes.length;
  }

  // A row that opens something (a call, a trace, the page filtered to an error group) on click,
  // or on Enter when the row itself has the focus (Enter on a link inside follows the link).
  function openingRow(body, className, open) {
    const row = body.insertRow();
    row.className = className;
    row.tabIndex = 0;
    row.addEventListener("click", function () { open(); });
    row.addEventListener("keydown", function (event) { if (event.key === "Enter" && event.target === row) open(); });
    return row;
  }

  function callsTable(calls) {
    const body = $("calls").tBodies[0];
    body.replaceChildren();
    if (!calls.length) { cell(body.insertRow(), "no calls in this window", "muted").colSpan = 11; }
    for (const c of calls) {
      const row = openingRow(body, "call status-" + (c.status === "ok" ? "ok" : "bad"), function () {
        window.UrlState.set(toCall(c.call_id));
      });
      row.dataset.callId = c.call_id;
      cell(row, when(c.timestamp));
      modelCell(row, c);
      cell(row, label(c.provider));
      const sessionCell = cell(row, "");
      if (c.session_id != null) sessionCell.appendChild(window.Session.link(c.session_id));
      const status = cell(row, c.status + (c.error_type ? " (" + c.error_type + ")" : ""));
      if (c.error_message) status.title = c.error_message;
      cell(row, c.duration_ms == null ? "unknown" : ms(c.duration_ms), "num");
      cell(row, ms(c.ttft_ms), "num");
      cell(row, F.tokens(c.input_tokens, true) + " / " + F.tokens(c.output_tokens, true), "num");
      cell(row, usd(c.cost_usd), "num");  // "unknown" when not priced, never $0
      const traceCell = cell(row, "");
      if (c.trace_id) {
        const link = anchor("trace", toTrace(c.trace_id), "trace " + c.trace_id);
        link.className = "trace";
        traceCell.appendChild(link);
      }
      cell(row, "", "id").appendChild(anchor(c.call_id, toCall(c.call_id), "open this call"));
    }
  }

  // Errors grouped by type and message (/api/errors: the store groups every failed call of the
  // window); clicking a group (or Enter on it) filters the whole page to its calls.
  function errorsTable(groups) {
    const body = $("errors").tBodies[0];
    body.replaceChildren();
    if (!groups.length) { cell(body.insertRow(), "no errors in this window", "muted").colSpan = 6; }
    for (const g of groups) {
      const row = openingRow(body, "call error-group", function () { filter(errorFilter(g)); });
      cell(row, "").appendChild(anchor(g.error_type == null ? "(no type)" : g.error_type,
        Object.assign({ after: null }, errorFilter(g)), "show only these failed calls"));
      const message = cell(row, g.error_message || F.UNKNOWN);
      message.title = g.error_message || "";
      cell(row, num(g.calls), "num");
      cell(row, when(g.first_seen));
      cell(row, when(g.last_seen));
      cell(row, g.models.join(", "));
    }
  }

  // The page filtered to one error group (its failed calls: status, type and message in the
  // URL), or to every call again (null).
  function errorFilter(group) {
    if (!group) return { error_type: null, error_message: null, status: at("status") === "error" ? null : at("status") };
    return { status: "error", error_type: group.error_type || null, error_message: group.error_message || null };
  }

  function showErrorFilter() {
    const type = at("error_type"), message = at("error_message");
    $("error-filter").hidden = !(type || message);
    $("error-filter-text").textContent = type || message ? "Showing the calls that failed with " +
      (type || "any type") + (message ? ": " + message : "") + " " : "";
  }

  // -- the detail dialog ---------------------------------------------------------------------
  //: Fields holding an id of something the page can show: the value is a link to it.
  const ID_LINKS = { call_id: toCall, trace_id: toTrace, session_id: toSession };
  function fieldTable(entries) {
    const table = document.createElement("table");
    table.className = "fields";
    const body = table.createTBody();
    for (const [k, v] of entries) {
      const row = body.insertRow();
      cell(row, k, "key");
      if (k === "session_id" && typeof v === "string") cell(row, "").appendChild(window.Session.link(v));
      else if (typeof v === "string" && ID_LINKS[k]) cell(row, "").appendChild(anchor(v, ID_LINKS[k](v)));
      else cell(row, F.field(k, v));
    }
    return table;
  }

  function heading(parent, content) {
    const h = document.createElement("h3");
    h.textContent = content;
    parent.appendChild(h);
  }

  function openDialog(title, fill) {
    const body = $("detail-body");
    body.replaceChildren();
    $("detail-title").textContent = title;
    fill(body);
    if (!$("detail").open) $("detail").showModal();
  }

  // The dialog shows what the URL names (call= or trace=); closing it takes them out of the URL.
  let shown = null;  // "call:<id>" or "trace:<id>": what the dialog was last filled with
  function syncDialog() {
    const want = at("call") ? "call:" + at("call") : at("trace") ? "trace:" + at("trace")
      : at("conversation") ? "conversation:" + at("conversation") : null;
    if (want === null) {
      shown = null;
      if ($("detail").open) $("detail").close();
      return;
    }
    if (want === shown && $("detail").open) return;
    shown = want;
    if (at("call")) showCall(at("call"));
    else if (at("trace")) showTrace(at("trace"));
    else window.Session.open(at("conversation"));
  }

  async function showCall(callId) {
    try {
      const answer = await api("/api/calls/" + encodeURIComponent(callId));
      if (at("call") !== callId) return;  // the URL moved on while this was read
      const c = answer.call;
      openDialog("Call " + c.call_id, function (body) {
        const fields = Object.entries(c).filter(function (e) {
          return e[0] !== "attributes" && e[0] !== "content" && e[0] !== "messages";
        });
        body.appendChild(fieldTable(fields));
        heading(body, "Attributes");
        const attrs = Object.entries(c.attributes);
        if (attrs.length) body.appendChild(fieldTable(attrs));
        else { const p = document.createElement("p"); p.textContent = "none"; body.appendChild(p); }
        heading(body, "Content");
        const content = Object.entries(c.content);
        if (!content.length) {
          const p = document.createElement("p");
          p.className = "muted";
          p.textContent = "not captured (start the collector or tracer with capture_content=True)";
          body.appendChild(p);
        }
        if (c.messages && c.messages.length) window.Session.messages(body, c.messages);
        const raw = document.createElement("details");  // as stored, for what the messages leave out
        raw.className = "raw-content";
        const summary = document.createElement("summary");
        summary.textContent = "as stored";
        raw.appendChild(summary);
        for (const [k, v] of content) {
          const h = document.createElement("h4");
          h.textContent = k;
          const pre = document.createElement("pre");
          pre.textContent = String(v);
          raw.append(h, pre);
        }
        if (content.length) {
          raw.open = !(c.messages && c.messages.length);
          body.appendChild(raw);
        }
        if (c.trace_id) {
          const p = document.createElement("p");
          p.appendChild(anchor("show its trace", toTrace(c.trace_id)));
          body.appendChild(p);
        }
      });
    } catch (err) {
      say("cannot show the call: " + err.message, true);
    }
  }

  async function showTrace(traceId) {
    try {
      const answer = await api("/api/traces/" + encodeURIComponent(traceId));
      if (at("trace") !== traceId || at("call")) return;  // the URL moved on meanwhile
      openDialog("Trace " + traceId, function (body) { waterfall(body, answer); });
    } catch (err) {
      say("cannot show the trace: " + err.message, true);
    }
  }

  // The waterfall: each call or step a bar at its start and of its length on the trace's time
  // axis, nested under its parent; clicking a row shows its fields below.
  function waterfall(body, answer) {
    const t = answer.totals;
    if (t) {
      const p = document.createElement("p");
      p.className = "waterfall-totals";
      p.id = "waterfall-totals";
      p.textContent = ms(t.duration_ms) + " · " + num(t.llm_calls) + " LLM calls · " +
        num(t.steps) + " steps · " + num(t.input_tokens) + " in / " + num(t.output_tokens) +
        " out tokens · " + usd(t.cost_usd) + " · " + num(t.errors) + " errors";
      body.appendChild(p);
    }
    const total = (t && t.duration_ms) || 0;
    const table = document.createElement("table");
    table.className = "waterfall";
    const head = table.createTHead().insertRow();
    for (const name of ["step", "kind", "status", "ms", "timeline"]) {
      const th = document.createElement("th");
      th.textContent = name;
      head.appendChild(th);
    }
    const tbody = table.createTBody();
    const fields = document.createElement("div");
    fields.id = "waterfall-fields";
    for (const item of answer.waterfall) {
      const r = item.record;
      const row = tbody.insertRow();
      row.className = "step";
      row.tabIndex = 0;
      const name = cell(row, item.name);
      name.style.paddingLeft = (0.4 + 1.2 * Math.min(item.depth, 20)) + "em";
      cell(row, item.type === "call" ? (r.model + " · " + num(r.input_tokens) + "→" +
        num(r.output_tokens) + " tok · " + usd(r.cost_usd)) : (item.type + (r.tool_name ? " · " + r.tool_name : "")));
      cell(row, item.status === "ok" ? "ok" : (r.error_type || item.status));
      cell(row, ms(item.duration_ms), "num");
      const lane = cell(row, "", "bar-cell");
      const bar = document.createElement("div");
      bar.className = "bar kind-" + item.type + (item.status === "error" ? " status-error" : "");
      const left = total > 0 ? 100 * item.offset_ms / total : 0;
      const width = total > 0 ? 100 * (item.duration_ms || 0) / total : 100;
      bar.style.left = Math.min(100, Math.max(0, left)).toFixed(3) + "%";
      bar.style.width = Math.min(100 - Math.min(100, left), Math.max(0, width)).toFixed(3) + "%";
      bar.title = item.name + ": " + ms(item.duration_ms);
      lane.appendChild(bar);
      row.addEventListener("click", function () {
        for (const other of tbody.rows) other.classList.remove("selected");
        row.classList.add("selected");
        fields.replaceChildren();
        heading(fields, (item.type === "call" ? "Call " : "Step ") + item.name);
        fields.appendChild(fieldTable(Object.entries(r).filter(function (e) {
          return e[0] !== "attributes";
        })));
        if (r.attributes && Object.keys(r.attributes).length) {
          heading(fields, "Attributes");
          fields.appendChild(fieldTable(Object.entries(r.attributes)));
        }
      });
    }
    body.appendChild(table);
    if (answer.waterfall_complete === false) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "the trace has more steps: its first " + answer.waterfall.length + " are shown";
      body.appendChild(p);
    }
    body.appendChild(fields);
  }

  function tracesTable(traces) {
    const body = $("traces").tBodies[0];
    body.replaceChildren();
    if (!traces.length) { cell(body.insertRow(), "no traces in this window", "muted").colSpan = 9; return; }
    for (const t of traces) {
      const row = openingRow(body, "call" + (t.errors ? " status-bad" : ""), function () {
        window.UrlState.set(toTrace(t.trace_id));
      });
      row.dataset.traceId = t.trace_id;
      cell(row, when(t.started));
      cell(row, "").appendChild(anchor(t.root_name || t.trace_id, toTrace(t.trace_id), "trace " + t.trace_id));
      cell(row, t.status === "error" ? t.errors + " error" + (t.errors === 1 ? "" : "s") : t.status);
      cell(row, ms(t.duration_ms), "num");
      cell(row, num(t.llm_calls), "num");
      cell(row, num(t.spans), "num");
      cell(row, usd(t.cost_usd), "num");
      cell(row, t.user_id || F.UNKNOWN);
      const sessionCell = cell(row, t.session_id ? "" : F.UNKNOWN);
      if (t.session_id) sessionCell.appendChild(window.Session.link(t.session_id));
    }
  }

  function traceQuery() {
    const extra = { limit: "50" };
    if (at("user")) extra.user = at("user");
    if (at("agent")) extra.agent = at("agent");
    const p = query(extra);
    p.delete("model");  // traces are filtered by session, status, user and agent
    p.delete("provider");
    p.delete("error_type");
    p.delete("error_message");
    return p;
  }

  // -- refreshing ----------------------------------------------------------------------------
  // The end of a task: the browser lays out, paints and answers input before the next step of
  // a redraw (no main-thread task of a redraw holds the page long).
  function breathe() { return new Promise(function (resolve) { setTimeout(resolve, 0); }); }

  async function refresh() {
    if (state.busy) { state.again = true; return; }  // a change while drawing: draw again after
    state.busy = true;
    try {
      const asked = query(callsParams()).toString();
      const stack = at("stack");
      // The live poll compares the newest call: the table holds it on its first page by time.
      const newestShown = at("sort") === "time" && at("order") === "desc" && !at("after") && !at("q");
      const [byModel, bySession, byRoute, series, whole, recent, failed, traces, probe] = await Promise.all([
        api("/api/summary", query({ by: "request_model" })),
        api("/api/summary", query({ by: "session", total: "false", limit: "10" })),
        api("/api/summary", query({ by: "route", total: "false", limit: "10" })),
        api("/api/timeseries", query({ by: stack })),
        api("/api/timeseries", query()),  // every call of each bucket: its percentiles
        api("/api/calls", query(callsParams())),
        api("/api/errors", query({ limit: "20" })),
        api("/api/traces", traceQuery()),
        newestShown ? null : api("/api/calls", query({ limit: "1" })),
      ]);
      headline(byModel.total);
      await charts(series, whole, byModel.groups, byModel.total);
      await breathe();
      topTable($("top-model"), byModel.groups, function (key) { return { model: key, after: null }; });
      topTable($("top-session"), bySession.groups, toSession,
               function (key) { return window.Session.link(key, "conversation"); });
      topTable($("top-route"), byRoute.groups, null);
      for (const g of byModel.groups) if (g.key != null) state.models.add(g.key);
      for (const c of recent.calls) if (c.provider != null) state.providers.add(c.provider);
      if (stack === "provider") for (const b of series.buckets) if (b.key != null) state.providers.add(b.key);
      setOptions($("model"), state.models, at("model"));
      setOptions($("provider"), state.providers, at("provider"));
      await breathe();
      callsTable(recent.calls);
      pager(recent.next);
      hintsLine(recent);
      await breathe();
      errorsTable(failed.groups);
      tracesTable(traces.traces);
      const newest = (probe || recent).calls;
      state.newest = newest.length ? newest[0].call_id : null;
      state.lastFull = Date.now();
      say("updated " + new Date().toISOString().slice(11, 19) + " UTC" +
          ($("live").checked ? " · live" : ""), false);
      document.body.dataset.query = asked;  // what the page now shows (the tests wait on it)
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    } catch (err) {
      say(err.message, true);
    } finally {
      state.busy = false;
      if (state.again) { state.again = false; refresh(); }
    }
  }

  async function poll() {
    if (!$("live").checked || state.busy || document.hidden) return;
    if (Date.now() - state.lastFull >= FULL_MS) { await refresh(); return; }
    try {
      const recent = await api("/api/calls", query({ limit: "1" }));
      const newest = recent.calls.length ? recent.calls[0].call_id : null;
      if (newest !== state.newest) await refresh();
    } catch (err) {
      say(err.message, true);
    }
  }

  function start() {
    $("controls").addEventListener("submit", function (event) { event.preventDefault(); });
    $("window").addEventListener("change", function () {
      if ($("window").value !== "custom") {
        filter({ window: $("window").value, since: null, until: null });
        return;
      }
      const now = new Date();  // a custom range starts as the last hour
      filter({ window: null, since: isoTime(new Date(now.getTime() - 3600000).toISOString().slice(0, 19)),
               until: isoTime(now.toISOString().slice(0, 19)) });
    });
    const fields = { model: "model", provider: "provider", status: "status", session: "session",
                     "trace-user": "user", "trace-agent": "agent" };
    for (const [id, key] of Object.entries(fields)) {
      $(id).addEventListener("change", function () { filter({ [key]: $(id).value.trim() || null }); });
    }
    $("stack").addEventListener("change", function () { window.UrlState.set({ stack: $("stack").value }); });
    const find = function (event) {
      if (event) event.preventDefault();
      filter({ q: $("q").value.trim() || null });
    };
    $("find").addEventListener("submit", find);
    $("q").addEventListener("change", function () { find(null); });
    for (const id of ["since", "until"]) {
      $(id).addEventListener("change", function () { if ($(id).value) filter({ [id]: isoTime($(id).value) }); });
    }
    $("detail-close").addEventListener("click", function () { $("detail").close(); });
    $("detail").addEventListener("close", function () {
      if (at("call") || at("trace") || at("conversation")) {
        window.UrlState.set({ call: null, trace: null, conversation: null });
      }
    });
    window.UrlState.listen(function (names) {
      controlsFromUrl();
      if (Array.from(names).some(function (k) { return DATA_KEYS.has(k); })) refresh();
      if (names.has("call") || names.has("trace") || names.has("conversation")) syncDialog();
    });
    controlsFromUrl();
    $("error-filter-clear").addEventListener("click", function () { filter(errorFilter(null)); });
    refresh();
    syncDialog();
    setInterval(poll, POLL_MS);
  }

  // What the page's other scripts (session.js) draw with.
  window.Dashboard = {
    api: api, openDialog: openDialog, showCall: showCall, showTrace: showTrace, say: say,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
