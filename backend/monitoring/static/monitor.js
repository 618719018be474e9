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
    renderModels(w.models || []);
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

  // CTR per (experiment, variant, model version); older monitors publish no "models" key.
  function renderModels(models) {
    const body = $("model-table").querySelector("tbody");
    body.replaceChildren();
    if (models.length === 0) {
      const tr = document.createElement("tr");
      const td = text("no events carry a model version"); td.colSpan = 6; td.className = "muted";
      tr.appendChild(td); body.appendChild(tr);
      return;
    }
    models.forEach((m) => {
      const tr = document.createElement("tr");
      tr.dataset.model = (m.experiment || "-") + "/" + (m.variant || "-") + "/" + m.model_version;
      [m.experiment || "-", m.variant || "-", m.model_version, String(m.impressions),
        String(m.clicks), fmt(m.ctr, 4)].forEach((c) => tr.appendChild(text(c)));
      body.appendChild(tr);
    });
  }

  function loadAlerts() {
    fetch(api + "/alerts?limit=10", { headers: withKey({}) }).then((r) => r.json()).then((page) => {
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

  // With API keys on, the stream needs one. EventSource cannot send a header, so with a key the
  // stream is read with fetch; the key (asked for on 401/403, or given as /monitor#key=...)
  // stays in this tab's sessionStorage. A fragment never reaches the server; it is removed at
  // once. Without keys on the API, the page uses EventSource as before (the browser reconnects).
  const KEY = "recflow-api-key";
  const given = new URLSearchParams(window.location.hash.slice(1)).get("key");
  if (given) {
    sessionStorage.setItem(KEY, given);
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  function withKey(headers) {
    const k = sessionStorage.getItem(KEY);
    if (k) headers["X-API-Key"] = k;
    return headers;
  }
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function askKey(message) {
    let form = $("key-form");
    if (!form) {
      form = document.createElement("form");
      form.id = "key-form";
      form.innerHTML = '<p id="key-message"></p><label>API key <input id="key-input" ' +
        'type="password" autocomplete="off" size="40"></label> <button type="submit">Use this key</button>';
      document.body.insertBefore(form, document.body.children[1]);
    }
    $("key-message").textContent = message;
    form.hidden = false;
    form.onsubmit = (e) => {
      e.preventDefault();
      sessionStorage.setItem(KEY, $("key-input").value.trim());
      form.hidden = true;
      start();
    };
  }

  function dispatch(block) {
    let event = "message";
    const data = [];
    block.split("\n").forEach((line) => {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    });
    if (data.length === 0) return true;
    const body = JSON.parse(data.join("\n"));
    if (event === "snapshot") render(body);
    else if (event === "waiting") {
      $("state").textContent = "no monitor";
      $("state").className = "state-other";
      $("status").textContent = body.error;
    } else if (event === "end") {
      $("status").textContent += " (stream ended)";
      return false;
    }
    return true;
  }

  async function follow() {
    const url = api + "/stream?max_s=" + encodeURIComponent(maxS);
    for (;;) {
      let resp;
      try {
        resp = await fetch(url, { headers: withKey({ Accept: "text/event-stream" }), cache: "no-store" });
      } catch (err) {
        $("status").textContent = "stream interrupted; reconnecting";
        await sleep(5000);
        continue;
      }
      if (resp.status === 401 || resp.status === 403) {
        const body = await resp.json().catch(() => ({ error: "this page needs an API key" }));
        needKey(body.error);
        return;
      }
      if (!resp.ok || !resp.body) {
        $("status").textContent = "stream unavailable (HTTP " + resp.status + "); retrying";
        await sleep(5000);
        continue;
      }
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            if (!dispatch(block)) { reader.cancel(); return; }
          }
        }
      } catch (err) {
        // the connection dropped: reconnect below
      }
      $("status").textContent = "stream interrupted; reconnecting";
      await sleep(5000);
    }
  }

  function needKey(message) {
    $("state").textContent = "needs a key";
    $("state").className = "state-other";
    askKey(message);
  }

  function listen() {
    const source = new EventSource(api + "/stream?max_s=" + encodeURIComponent(maxS));
    ["snapshot", "waiting", "end"].forEach((name) => {
      source.addEventListener(name, (e) => {
        if (!dispatch("event: " + name + "\ndata: " + e.data)) source.close();
      });
    });
    source.onerror = () => { $("status").textContent = "stream interrupted; reconnecting"; };
  }

  // With a stored key, read the stream with it (a 401 or 403 asks again). Without one, one
  // request tells whether the API wants a key at all.
  function start() {
    if (sessionStorage.getItem(KEY)) { follow(); return; }
    fetch(api + "/alerts?limit=1").then((r) => {
      if (r.status === 401 || r.status === 403) {
        return r.json().then((b) => needKey(b.error), () => needKey("this page needs an API key"));
      }
      listen();
    }).catch(() => listen());
  }

  start();
})();
