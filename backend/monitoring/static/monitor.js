// Recflow live monitor: reads the SSE stream and draws inline SVG charts. No build step.
"use strict";
(function () {
  const params = new URLSearchParams(window.location.search);
  const win = params.get("window") || "1m";
  const maxS = params.get("max_s") || "3600";
  const api = "/api/v1/monitoring";
  const POINTS = 120;
  const COLORS = ["#1a73e8", "#d93025", "#188038", "#f9ab00", "#9334e6", "#e8710a"];
  const series = { rate: [], lag: [], ctr: {} };
  let updates = 0;

  const $ = (id) => document.getElementById(id);
  const fmt = (x, d) => (x === null || x === undefined ? "-" : Number(x).toFixed(d));
  $("window").textContent = win;
  document.querySelectorAll(".win").forEach((el) => { el.textContent = win; });

  function push(arr, v) { arr.push(v); if (arr.length > POINTS) arr.shift(); }

  function polyline(values, max, color) {
    const pts = values.map((v, i) => {
      const x = values.length > 1 ? (i / (POINTS - 1)) * 300 : 0;
      const y = 98 - (max > 0 && v !== null ? (v / max) * 94 : 0);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    return '<polyline fill="none" stroke-width="1.5" stroke="' + color + '" points="' + pts.join(" ") + '"/>';
  }

  function draw(id, lines) {
    let max = 0;
    lines.forEach((l) => l.values.forEach((v) => { if (v !== null && v > max) max = v; }));
    const label = '<text x="2" y="10" font-size="9" fill="#667">max ' + fmt(max, max < 1 ? 4 : 0) + "</text>";
    $(id).innerHTML = lines.map((l) => polyline(l.values, max * 1.1, l.color)).join("") + label;
  }

  function text(cell) { const td = document.createElement("td"); td.textContent = cell; return td; }

  function render(snap) {
    const w = snap.windows[win];
    if (!w) { $("status").textContent = "the monitor has no " + win + " window"; return; }
    updates += 1;
    document.body.dataset.updates = String(updates);
    const mon = snap.monitor;
    $("state").textContent = mon.state + (snap.stale ? " (stale)" : "");
    $("state").className = mon.state === "running" && !snap.stale ? "state-running" : "state-other";
    $("updated").textContent = new Date(snap.generated_at_ms).toLocaleTimeString();
    $("status").textContent = mon.error || ("coverage " + w.coverage_s + " s of " + w.span_s + " s");
    $("rate").textContent = fmt(w.rate_per_s.total, 1);
    $("events").textContent = String(w.events);
    $("users").textContent = String(w.distinct_users);
    $("latency").textContent = fmt(w.latency_p50_s, 3) + " s / " + fmt(w.latency_p99_s, 3) + " s";
    $("lag").textContent = snap.lag.total === null ? "unknown" : String(snap.lag.total);
    $("consumed").textContent = String(snap.totals.consumed);
    $("invalid").textContent = String(snap.totals.invalid);
    $("proc-rate").textContent = fmt(snap.processing.events_per_s, 0);

    push(series.rate, w.rate_per_s.total);
    push(series.lag, snap.lag.total);
    const seen = new Set();
    const body = $("ctr-table").querySelector("tbody");
    body.replaceChildren();
    w.variants.forEach((v) => {
      const key = v.experiment + "/" + v.variant;
      seen.add(key);
      if (!series.ctr[key]) series.ctr[key] = new Array(series.rate.length - 1).fill(null);
      const tr = document.createElement("tr");
      tr.dataset.variant = key;
      [v.experiment, v.variant, String(v.impressions), String(v.clicks), fmt(v.ctr, 4)]
        .forEach((c) => tr.appendChild(text(c)));
      body.appendChild(tr);
      push(series.ctr[key], v.ctr);
    });
    Object.keys(series.ctr).forEach((k) => { if (!seen.has(k)) push(series.ctr[k], null); });
    const keys = Object.keys(series.ctr).sort();
    draw("rate-chart", [{ values: series.rate, color: COLORS[0] }]);
    draw("lag-chart", [{ values: series.lag, color: COLORS[1] }]);
    draw("ctr-chart", keys.map((k, i) => ({ values: series.ctr[k], color: COLORS[i % COLORS.length] })));
    $("ctr-legend").innerHTML = "";
    keys.forEach((k, i) => {
      const s = document.createElement("span");
      s.style.color = COLORS[i % COLORS.length];
      s.textContent = "\u25A0 " + k;
      $("ctr-legend").appendChild(s);
    });
    if (updates === 1 || updates % 5 === 0) loadAlerts();
  }

  function loadAlerts() {
    fetch(api + "/alerts?limit=10").then((r) => r.json()).then((page) => {
      const body = $("alerts").querySelector("tbody");
      body.replaceChildren();
      if (!page.items || page.items.length === 0) {
        const tr = document.createElement("tr");
        const td = text("none"); td.colSpan = 4; td.className = "muted";
        tr.appendChild(td); body.appendChild(tr);
        return;
      }
      page.items.forEach((a) => {
        const tr = document.createElement("tr");
        tr.className = "alert";
        [new Date(a.fired_at).toLocaleTimeString(), a.rule, a.message, a.open ? "open" : "resolved"]
          .forEach((c) => tr.appendChild(text(c)));
        body.appendChild(tr);
      });
    }).catch((err) => { $("status").textContent = "alerts unavailable: " + err; });
  }

  const source = new EventSource(api + "/stream?max_s=" + encodeURIComponent(maxS));
  source.addEventListener("snapshot", (e) => render(JSON.parse(e.data)));
  source.addEventListener("waiting", (e) => {
    const body = JSON.parse(e.data);
    $("state").textContent = "no monitor";
    $("state").className = "state-other";
    $("status").textContent = body.error;
  });
  source.addEventListener("end", () => { source.close(); $("status").textContent += " (stream ended)"; });
  source.onerror = () => { $("status").textContent = "stream interrupted; reconnecting"; };
})();
