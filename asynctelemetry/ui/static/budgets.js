// Budgets and alerts on the dashboard: /api/budgets every 15 s; hidden when there is nothing.
// Data only ever reaches the DOM through textContent.
"use strict";

(function () {
  const $ = function (id) { return document.getElementById(id); };
  const EVERY_MS = 15000;

  const F = window.Format;
  const usd = F.usd;
  function when(iso) { return F.time(iso); }
  function cell(row, text, cls) {
    const td = row.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function bar(row, used, name) {
    const td = row.insertCell();
    const meter = document.createElement("meter");
    meter.min = 0; meter.max = 1; meter.low = 0.5; meter.high = 0.8; meter.optimum = 0;
    meter.value = Math.min(used, 1);
    meter.setAttribute("aria-label", name + " used");
    const text = document.createElement("span");
    text.textContent = " " + F.number(100 * used, 0) + "%";
    td.append(meter, text);
  }

  function budgets(rows) {
    const body = $("budgets").tBodies[0];
    body.replaceChildren();
    for (const b of rows) {
      const row = body.insertRow();
      if (b.used >= 1) row.className = "error";
      cell(row, b.name);
      cell(row, b.key == null ? "(all)" : b.key);
      cell(row, b.window_start.startsWith("1970-01-01") ? "ever" : when(b.window_start));
      bar(row, b.used, b.name);
      cell(row, usd(b.spent_usd), "num");
      cell(row, usd(b.reserved_usd), "num");
      cell(row, usd(b.remaining_usd), "num");
      cell(row, usd(b.limit_usd), "num");
    }
    $("budgets-section").hidden = rows.length === 0;
  }

  function alerts(data) {
    $("alerts-section").hidden = data == null;
    if (data == null) return;
    const firing = data.firing.map(function (f) {
      return f.alert + (f.key == null ? "" : " [" + f.key + "]");
    });
    $("alerts-firing").textContent = firing.length
      ? "Firing now: " + firing.join(", ")
      : "No alert firing (" + data.rules.length + " rules).";
    $("alerts-firing").className = firing.length ? "error" : "";
    const body = $("alerts").tBodies[0];
    body.replaceChildren();
    for (const e of data.history) {
      const row = body.insertRow();
      cell(row, when(e.at));
      cell(row, e.alert);
      cell(row, e.key == null ? "" : e.key);
      cell(row, e.state, e.state === "firing" ? "error" : "");
      cell(row, F.number(e.value, 4), "num");
    }
  }

  async function refresh() {
    try {
      const response = await fetch("/api/budgets", { credentials: "same-origin",
                                                      headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const body = await response.json();
      budgets(body.budgets);
      alerts(body.alerts);
    } catch (err) {
      // The main view reports connection trouble; this panel keeps what it showed.
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    refresh();
    setInterval(refresh, EVERY_MS);
  });
})();
