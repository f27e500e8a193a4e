// The dashboard's one way to write a figure: every number the page shows goes through here.
// Unknown (null, undefined, NaN) is never written as 0: costs read "unknown", other figures "—".
"use strict";

(function () {
  const UNKNOWN = "—";
  const EN = "en-US";
  // One formatter per shape, made once: toLocaleString makes a new one per number (tens of
  // microseconds each, thousands of numbers per redraw).
  const WHOLE = new Intl.NumberFormat(EN, { maximumFractionDigits: 0 });
  const CENTS = new Intl.NumberFormat(EN, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const DECIMALS = {};
  function decimals(digits) {
    return DECIMALS[digits] || (DECIMALS[digits] = new Intl.NumberFormat(EN, { maximumFractionDigits: digits }));
  }

  function known(v) { return v != null && Number.isFinite(Number(v)); }

  // A count: "1,234,567"; fractions rounded to the nearest whole.
  function count(v) { return known(v) ? WHOLE.format(Math.round(v)) : UNKNOWN; }

  // A number with at most `digits` decimals and separators: "1,234.57".
  function number(v, digits) {
    if (!known(v)) return UNKNOWN;
    return decimals(digits == null ? 2 : digits).format(Number(v));
  }

  // Three significant digits below 1,000, separators above: "0.0123", "78.2", "13,297".
  function sig3(v) {
    const a = Math.abs(v);
    if (a >= 1000 || a === 0) return WHOLE.format(Math.round(v));
    const decimals = Math.min(Math.max(2 - Math.floor(Math.log10(a)), 0), 12);
    return v.toFixed(decimals);
  }

  // A short number for an axis: "950", "12.5k", "3.4M".
  function compact(v) {
    if (!known(v)) return UNKNOWN;
    const a = Math.abs(v);
    if (a < 1000) return a >= 10 || a === Math.round(a) ? String(Math.round(v * 10) / 10) : sig3(v);
    for (const [size, unit] of [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]]) {
      if (a >= size) return String(+(v / size).toPrecision(3)) + unit;
    }
    return String(v);
  }

  // A duration given in milliseconds: "0.42 ms", "781.6 ms" → "782 ms", "13.3 s", "2 min 13 s",
  // "1 h 02 min".
  function duration(v) {
    if (!known(v)) return UNKNOWN;
    const a = Math.abs(v);
    if (a < 1000) return sig3(v) + " ms";
    if (a < 10000) return (v / 1000).toFixed(2) + " s";
    if (a < 60000) return (v / 1000).toFixed(1) + " s";
    const sign = v < 0 ? "-" : "";
    const s = Math.round(a / 1000);
    if (s < 3600) return sign + Math.floor(s / 60) + " min " + (s % 60) + " s";
    const m = Math.round(s / 60);
    return sign + WHOLE.format(Math.floor(m / 60)) + " h " + String(m % 60).padStart(2, "0") + " min";
  }

  // US dollars: "$0", "$0.000123", "$0.750", "$4.50", "$1,234.50"; unknown is "unknown".
  function usd(v) {
    if (!known(v)) return "unknown";
    if (v === 0) return "$0";
    const sign = v < 0 ? "-" : "";
    const a = Math.abs(v);
    if (a >= 1) return sign + "$" + CENTS.format(a);
    if (a < 1e-8) return sign + "<$0.00000001";
    return sign + "$" + sig3(a);
  }

  // The cost of calls of which some may be unpriced: never "$0" for what is not known.
  function cost(v, unpriced, calls) {
    if (calls && unpriced >= calls) return "unknown";
    return unpriced ? usd(v) + " + " + count(unpriced) + " unpriced" : usd(v);
  }

  // Tokens: "1,234 tok" (`bare`: without the unit, for columns whose head names it).
  function tokens(v, bare) {
    if (!known(v)) return UNKNOWN;
    return count(v) + (bare ? "" : " tok");
  }

  // A ratio as a percentage: 0.0123 → "1.23%", 0.25 → "25.0%".
  function pct(v) {
    if (!known(v)) return UNKNOWN;
    return (100 * v).toFixed(Math.abs(v) < 0.1 ? 2 : 1) + "%";
  }

  // An ISO time as UTC, to the second (`ms`: to the millisecond): "2026-12-07 17:05:13".
  function time(iso, ms) {
    if (iso == null || iso === "") return UNKNOWN;
    const parsed = typeof iso === "number" ? new Date(iso) : new Date(iso);
    if (Number.isNaN(parsed.getTime())) return String(iso);
    return parsed.toISOString().replace("T", " ").slice(0, ms ? 23 : 19);
  }

  // A value of a field named `key` (a call's or a step's), written for people: durations,
  // costs, tokens, times by their name; anything else as it is.
  function field(key, v) {
    if (v == null) return UNKNOWN;
    if (typeof v === "number") {
      if (/_ms$/.test(key)) return duration(v);
      if (/(^|_)cost(_usd)?$|_usd$/.test(key)) return usd(v);
      if (/tokens$/.test(key)) return tokens(v);
      if (/rate$/.test(key)) return pct(v);
      return Number.isInteger(v) ? count(v) : number(v, 6);
    }
    if (typeof v === "string" && /(^|_)(timestamp|time|at|start|started|end|ended|since|until)$/.test(key) &&
        /^\d{4}-\d\d-\d\dT/.test(v)) return time(v, true) + " UTC";
    if (typeof v === "object") return JSON.stringify(v, null, 2);
    return String(v);
  }

  window.Format = {
    UNKNOWN: UNKNOWN, count: count, number: number, compact: compact, duration: duration,
    usd: usd, cost: cost, tokens: tokens, pct: pct, time: time, field: field,
  };
})();
