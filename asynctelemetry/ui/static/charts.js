// Hand-drawn SVG charts for the asynctelemetry dashboard. No library, no build step.
// Every piece of text goes in with textContent: names come from remote spans and are never markup.
//
// Colours are classes (c0…c8, other) whose fills live in style.css, light and dark; a chart's
// legend is HTML below it (it wraps as text does, so it never clips) and holds every class the
// chart draws. Values show in one tooltip (#chart-tip) on hover and on keyboard focus: a chart
// is one tab stop, and the arrow keys move between its buckets or bars (a roving tabindex).
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const SLOTS = 9;  // c0…c8; "other" has its own grey
  const H = 200, RIGHT = 12, TOP = 10, BOTTOM = 26;
  let W = 640;  // drawn at the container's own width, so text keeps its size

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    const node = el("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    node.textContent = content;
    return node;
  }

  // -- the tooltip: one for the page, shown beside the hovered or focused element ----------
  function tipNode() {
    let node = document.getElementById("chart-tip");
    if (!node) {
      node = document.createElement("div");
      node.id = "chart-tip";
      node.setAttribute("role", "tooltip");
      node.hidden = true;
      (document.querySelector("main") || document.body).appendChild(node);
    }
    return node;
  }

  function showTip(target, lines, at) {
    const node = tipNode();
    node.replaceChildren();
    for (const line of lines) {
      const div = document.createElement("div");
      if (line.slot != null) {
        const swatch = document.createElement("span");
        swatch.className = "swatch " + slotClass(line.slot);
        div.appendChild(swatch);
      }
      div.append(line.text);
      node.appendChild(div);
    }
    node.hidden = false;
    const box = target.getBoundingClientRect();
    const x = at ? at.x : box.left + box.width / 2;
    const y = at ? at.y : box.top;
    const width = node.offsetWidth, height = node.offsetHeight;
    const left = Math.min(Math.max(4, x + 12), window.innerWidth - width - 4);
    const top = y - height - 8 >= 4 ? y - height - 8 : Math.min(y + 16, window.innerHeight - height - 4);
    node.style.left = left + "px";
    node.style.top = top + "px";
  }

  function hideTip() { tipNode().hidden = true; }

  // `items`: focusable SVG elements in reading order, each with .tipLines; one is a tab stop.
  function interactive(root, items) {
    items.forEach(function (item, i) {
      item.setAttribute("tabindex", i === 0 ? "0" : "-1");
      item.setAttribute("role", "img");
      item.setAttribute("aria-label", item.tipLines.map(function (l) { return l.text; }).join("; "));
      item.addEventListener("pointerenter", function (e) { showTip(item, item.tipLines, { x: e.clientX, y: e.clientY }); });
      item.addEventListener("pointermove", function (e) { showTip(item, item.tipLines, { x: e.clientX, y: e.clientY }); });
      item.addEventListener("pointerleave", hideTip);
      item.addEventListener("focus", function () { showTip(item, item.tipLines); });
      item.addEventListener("blur", hideTip);
      item.addEventListener("keydown", function (event) {
        const moves = { ArrowRight: i + 1, ArrowDown: i + 1, ArrowLeft: i - 1, ArrowUp: i - 1,
                        Home: 0, End: items.length - 1 };
        if (event.key === "Escape") { hideTip(); return; }
        if (!(event.key in moves)) return;
        event.preventDefault();
        const next = items[Math.min(Math.max(moves[event.key], 0), items.length - 1)];
        item.setAttribute("tabindex", "-1");
        next.setAttribute("tabindex", "0");
        next.focus();
      });
    });
  }

  function slotClass(slot) { return slot === "other" ? "other" : "c" + (slot % SLOTS); }

  function svg(container, height, label) {
    W = Math.max(Math.round(container.clientWidth) || 640, 320);
    container.replaceChildren();
    return el("svg", { viewBox: "0 0 " + W + " " + height, width: "100%",
                       preserveAspectRatio: "xMinYMin meet", role: "group",
                       "aria-label": label || "chart" }, container);
  }

  function empty(container, message) {
    const root = svg(container, 60, message || "no calls in this window");
    text(root, root.viewBox.baseVal.width / 2, 34, message || "no calls in this window", { "text-anchor": "middle",
      class: "muted" });
  }

  // The legend: HTML below the chart, one entry per series with its colour; wraps, never clips.
  function legend(container, entries) {
    const list = document.createElement("ul");
    list.className = "legend";
    for (const entry of entries) {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch " + slotClass(entry.slot);
      item.append(swatch, entry.name);
      item.title = entry.name;
      list.appendChild(item);
    }
    container.appendChild(list);
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function timeLabel(ms, spanMs) {
    const iso = new Date(ms).toISOString();
    return spanMs > 2 * 86400000 ? iso.slice(5, 10) + " " + iso.slice(11, 16) : iso.slice(11, 16);
  }

  // The widest of `labels` as drawn in `root` (the axis font), for a left margin that fits.
  function widest(root, labels) {
    let most = 0;
    for (const label of labels) {
      const probe = text(root, 0, -100, label, { class: "axis" });
      most = Math.max(most, probe.getComputedTextLength() || label.length * 6.6);
      probe.remove();
    }
    return most;
  }

  // `label` cut with "…" to fit `room` pixels as drawn in `node` (the full text in the tooltip).
  function fit(node, label, room) {
    node.textContent = label;
    if (node.getComputedTextLength() <= room) return false;
    let lo = 0, hi = label.length;
    while (lo < hi) {  // the longest prefix that fits with the ellipsis
      const mid = Math.ceil((lo + hi) / 2);
      node.textContent = label.slice(0, mid) + "…";
      if (node.getComputedTextLength() <= room) lo = mid; else hi = mid - 1;
    }
    node.textContent = label.slice(0, lo) + "…";
    return true;
  }

  // A time axis: value grid on the left (its labels measured), three time ticks below.
  function timeAxes(root, opts, max, format) {
    const labels = [0, 0.5, 1].map(function (f) { return format(max * f); });
    const left = Math.ceil(widest(root, labels)) + 10;
    const plotW = W - left - RIGHT, plotH = H - TOP - BOTTOM;
    const t0 = opts.since, t1 = opts.until, span = Math.max(t1 - t0, 1);
    const x = function (ms) { return left + (Math.min(Math.max(ms, t0), t1) - t0) / span * plotW; };
    const y = function (v) { return TOP + plotH - v / max * plotH; };
    const fracs = opts.whole && (max / 2) % 1 !== 0 ? [0, 1] : [0, 0.5, 1];
    for (const frac of fracs) {
      const gy = y(max * frac);
      el("line", { x1: left, x2: W - RIGHT, y1: gy, y2: gy, class: "grid" }, root);
      text(root, left - 4, gy + 4, format(max * frac), { "text-anchor": "end", class: "axis" });
    }
    [["start", t0], ["middle", t0 + span / 2], ["end", t1]].forEach(function (tick) {
      text(root, x(tick[1]), H - 8, timeLabel(tick[1], span), { "text-anchor": tick[0], class: "axis" });
    });
    return { x: x, y: y, top: TOP, height: plotH, span: span };
  }

  function bucketTitle(start, bucketMs) {
    return window.Format.time(start) + " – " + window.Format.time(start + bucketMs).slice(11) + " UTC";
  }

  // Hit areas, one per bucket: hover or focus shows every series' value in that bucket.
  function bucketHits(root, opts, axes, lines) {
    const hits = el("g", { class: "hits" }, root);
    const items = [];
    opts.starts.forEach(function (start, i) {
      const tip = lines(i);
      if (!tip) return;
      const left = axes.x(start), right = axes.x(start + opts.bucketMs);
      const rect = el("rect", { x: left, y: axes.top, width: Math.max(right - left, 2),
                                height: axes.height, class: "hit" }, hits);
      rect.tipLines = [{ text: bucketTitle(start, opts.bucketMs) }].concat(tip);
      items.push(rect);
    });
    interactive(root, items);
  }

  // Stacked bars over time. opts: {starts: [ms], bucketMs, since, until, label,
  // series: [{key, slot, values}], format: value → text, axisFormat}
  function stacked(container, opts) {
    const series = opts.series;
    if (!series.length || !opts.starts.length) { empty(container); return; }
    const root = svg(container, H, opts.label);
    const totals = opts.starts.map(function (_, i) {
      return series.reduce(function (sum, s) { return sum + (s.values[i] || 0); }, 0);
    });
    const max = niceMax(Math.max.apply(null, totals));
    const axes = timeAxes(root, opts, max, opts.axisFormat || opts.format);
    const bars = el("g", { class: "bars" }, root);
    opts.starts.forEach(function (start, i) {
      const left = axes.x(start), right = axes.x(start + opts.bucketMs);
      const width = Math.max(right - left - 1, 1);
      let base = 0;
      series.forEach(function (s) {
        const v = s.values[i] || 0;
        if (v <= 0) return;
        const top = axes.y(base + v), bottom = axes.y(base);
        el("rect", { x: left, y: top, width: width, height: Math.max(bottom - top, 0.5),
                     class: slotClass(s.slot) }, bars);
        base += v;
      });
    });
    bucketHits(root, opts, axes, function (i) {
      if (!(totals[i] > 0)) return null;
      return series.filter(function (s) { return s.values[i] > 0; }).map(function (s) {
        return { slot: s.slot, text: s.key + ": " + opts.format(s.values[i]) };
      });
    });
    legend(container, series.map(function (s) { return { name: s.key, slot: s.slot }; }));
  }

  // Lines over time, a dot per known value (a gap where a value is unknown).
  // opts: {starts, bucketMs, since, until, label, series: [{key, slot, values}], format, axisFormat}
  function lines(container, opts) {
    const series = opts.series;
    const known = [];
    series.forEach(function (s) { s.values.forEach(function (v) { if (v != null) known.push(v); }); });
    if (!series.length || !known.length) { empty(container, opts.emptyText); return; }
    const root = svg(container, H, opts.label);
    const max = niceMax(Math.max.apply(null, known));
    const axes = timeAxes(root, opts, max, opts.axisFormat || opts.format);
    const half = opts.bucketMs / 2;
    for (const s of series) {
      const cls = slotClass(s.slot);
      let d = "", pen = "M";
      s.values.forEach(function (v, i) {
        if (v == null) { pen = "M"; return; }
        d += pen + axes.x(opts.starts[i] + half).toFixed(1) + " " + axes.y(v).toFixed(1) + " ";
        pen = "L";
      });
      el("path", { d: d.trim(), class: "line " + cls }, root);
      s.values.forEach(function (v, i) {
        if (v == null) return;
        el("circle", { cx: axes.x(opts.starts[i] + half), cy: axes.y(v), r: 2.5, class: "dot " + cls }, root);
      });
    }
    bucketHits(root, opts, axes, function (i) {
      const here = series.filter(function (s) { return s.values[i] != null; });
      if (!here.length) return null;
      return here.map(function (s) { return { slot: s.slot, text: s.key + ": " + opts.format(s.values[i]) }; });
    });
    legend(container, series.map(function (s) { return { name: s.key, slot: s.slot }; }));
  }

  // Horizontal grouped bars. opts: {categories: [name], series: [{name, values}], format, label}
  function bars(container, opts) {
    const cats = opts.categories, series = opts.series;
    const all = [];
    series.forEach(function (s) { s.values.forEach(function (v) { if (v != null) all.push(v); }); });
    if (!cats.length || !all.length) { empty(container); return; }
    const rowH = 8 + 11 * series.length;
    const height = TOP + cats.length * rowH + 6;
    const root = svg(container, height, opts.label);
    const max = niceMax(Math.max.apply(null, all));
    const valueW = Math.ceil(widest(root, all.map(opts.format))) + 8;
    const labelW = Math.min(Math.ceil(widest(root, cats)) + 8, Math.round(W * 0.4));
    const plotW = Math.max(W - labelW - RIGHT - valueW, 40);
    const items = [];
    cats.forEach(function (cat, ci) {
      const top = TOP + ci * rowH;
      const name = text(root, labelW - 6, top + rowH / 2 + 3, cat, { "text-anchor": "end", class: "axis" });
      fit(name, cat, labelW - 8);
      const tip = [{ text: cat }];
      series.forEach(function (s, si) {
        const v = s.values[ci];
        if (v == null) return;
        const width = Math.max(v / max * plotW, 1);
        el("rect", { x: labelW, y: top + 3 + si * 11, width: width, height: 10, class: slotClass(si) }, root);
        text(root, labelW + width + 4, top + 12 + si * 11, opts.format(v), { class: "value" });
        tip.push({ slot: si, text: s.name + ": " + opts.format(v) });
      });
      const hit = el("rect", { x: 0, y: top, width: W - RIGHT, height: rowH, class: "hit" }, root);
      hit.tipLines = tip;
      items.push(hit);
    });
    interactive(root, items);
    legend(container, series.map(function (s, si) { return { name: s.name, slot: si }; }));
  }

  window.Charts = { stacked: stacked, lines: lines, bars: bars, empty: empty, SLOTS: SLOTS };
})();
