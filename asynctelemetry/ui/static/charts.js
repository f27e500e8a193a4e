// Hand-drawn SVG charts for the asynctelemetry dashboard. No library, no build step.
// Every piece of text goes in with textContent: names come from remote spans and are never markup.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#1f6feb", "#e36209", "#2da44e", "#a371f7", "#d1242f", "#0598bc",
                   "#bf8700", "#cf2d9c", "#57606a"];
  const OTHER = "#afb8c1";
  const H = 200, LEFT = 60, RIGHT = 10, TOP = 10, BOTTOM = 26;
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

  function tip(node, content) {
    const title = el("title", {}, node);
    title.textContent = content;
  }

  function svg(container, height) {
    W = Math.max(Math.round(container.clientWidth) || 640, 320);
    container.replaceChildren();
    return el("svg", { viewBox: "0 0 " + W + " " + height, width: "100%",
                       preserveAspectRatio: "xMinYMin meet", role: "img" }, container);
  }

  function empty(container, message) {
    const root = svg(container, 60);
    text(root, root.viewBox.baseVal.width / 2, 34, message || "no calls in this window", { "text-anchor": "middle",
      class: "muted" });
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function color(index, key) {
    return key === "other" ? OTHER : PALETTE[index % PALETTE.length];
  }

  function legend(root, names, y) {
    let x = LEFT;
    names.forEach(function (name, i) {
      el("rect", { x: x, y: y - 9, width: 10, height: 10, fill: color(i, name) }, root);
      const label = name.length > 28 ? name.slice(0, 27) + "…" : name;
      const node = text(root, x + 14, y, label, { class: "legend" });
      tip(node, name);
      x += 24 + label.length * 6.6;
      if (x > W - 60) { x = LEFT; y += 14; }
    });
  }

  function timeLabel(ms, spanMs) {
    const d = new Date(ms);
    const iso = d.toISOString();
    return spanMs > 2 * 86400000 ? iso.slice(5, 10) + " " + iso.slice(11, 16) : iso.slice(11, 16);
  }

  // Stacked bars over time. opts: {starts: [ms], bucketMs, since, until, series: [{key, values}],
  // format: value → text}
  function stacked(container, opts) {
    const series = opts.series;
    if (!series.length || !opts.starts.length) { empty(container); return; }
    const legendRows = Math.ceil(series.length / 4);
    const height = H + 14 * legendRows;
    const root = svg(container, height);
    const plotW = W - LEFT - RIGHT, plotH = H - TOP - BOTTOM;
    const t0 = opts.since, t1 = opts.until, span = Math.max(t1 - t0, 1);
    const totals = opts.starts.map(function (_, i) {
      return series.reduce(function (sum, s) { return sum + (s.values[i] || 0); }, 0);
    });
    const max = niceMax(Math.max.apply(null, totals));
    const x = function (ms) { return LEFT + (Math.min(Math.max(ms, t0), t1) - t0) / span * plotW; };
    const y = function (v) { return TOP + plotH - v / max * plotH; };
    const fracs = opts.whole && (max / 2) % 1 !== 0 ? [0, 1] : [0, 0.5, 1];
    for (const frac of fracs) {
      const gy = y(max * frac);
      el("line", { x1: LEFT, x2: W - RIGHT, y1: gy, y2: gy, class: "grid" }, root);
      text(root, LEFT - 4, gy + 4, opts.format(max * frac), { "text-anchor": "end", class: "axis" });
    }
    [["start", t0], ["middle", t0 + span / 2], ["end", t1]].forEach(function (tick) {
      text(root, x(tick[1]), H - 8, timeLabel(tick[1], span), { "text-anchor": tick[0],
        class: "axis" });
    });
    const bars = el("g", { class: "bars" }, root);
    opts.starts.forEach(function (start, i) {
      const left = x(start), right = x(start + opts.bucketMs);
      const width = Math.max(right - left - 1, 1);
      let base = 0;
      series.forEach(function (s, si) {
        const v = s.values[i] || 0;
        if (v <= 0) return;
        const top = y(base + v), bottom = y(base);
        const rect = el("rect", { x: left, y: top, width: width, height: Math.max(bottom - top, 0.5),
                                  fill: color(si, s.key) }, bars);
        tip(rect, new Date(start).toISOString().slice(0, 19) + "Z  " + s.key + ": " +
            opts.format(v));
        base += v;
      });
    });
    legend(root, series.map(function (s) { return s.key; }), H + 10);
  }

  // Horizontal grouped bars. opts: {categories: [name], series: [{name, values}], format}
  function bars(container, opts) {
    const cats = opts.categories, series = opts.series;
    const all = [];
    series.forEach(function (s) { s.values.forEach(function (v) { if (v != null) all.push(v); }); });
    if (!cats.length || !all.length) { empty(container); return; }
    const rowH = 8 + 11 * series.length;
    const labelW = Math.min(170, Math.round(W * 0.3));
    const height = TOP + cats.length * rowH + 20 + 14;
    const root = svg(container, height);
    const max = niceMax(Math.max.apply(null, all));
    const plotW = W - labelW - RIGHT - 60;
    cats.forEach(function (cat, ci) {
      const top = TOP + ci * rowH;
      const label = cat.length > 22 ? cat.slice(0, 21) + "…" : cat;
      tip(text(root, labelW - 6, top + rowH / 2 + 3, label, { "text-anchor": "end",
        class: "axis" }), cat);
      series.forEach(function (s, si) {
        const v = s.values[ci];
        if (v == null) return;
        const width = Math.max(v / max * plotW, 1);
        const rect = el("rect", { x: labelW, y: top + 3 + si * 11, width: width, height: 10,
                                  fill: color(si, s.name) }, root);
        tip(rect, cat + " " + s.name + ": " + opts.format(v));
        text(root, labelW + width + 4, top + 12 + si * 11, opts.format(v), { class: "value" });
      });
    });
    if (series.length > 1) legend(root, series.map(function (s) { return s.name; }), height - 6);
  }

  window.Charts = { stacked: stacked, bars: bars, empty: empty };
})();
