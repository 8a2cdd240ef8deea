// turnout's dashboard. Reads /v1/dashboard/events (one summary a second), /v1/dashboard/config,
// /v1/router/outcomes and /v1/route with the admin key, which lives in this tab's sessionStorage only.
// Every value from the server is written with textContent: a record's fields may hold a caller's text.
"use strict";

const KEY_ITEM = "turnout-admin-key";
const $ = (id) => document.getElementById(id);
let streamAbort = null;
let chart = null;
let chartModels = "";

function authHeaders() {
  const key = sessionStorage.getItem(KEY_ITEM);
  return key ? { authorization: "Bearer " + key } : {};
}

async function api(path, init = {}) {
  const response = await fetch(path, { ...init, headers: { ...authHeaders(), ...(init.headers || {}) } });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  return { status: response.status, body };
}

function usd(x) { return x == null ? "–" : "$" + Number(x).toFixed(6); }
function secs(x) { return x == null ? "–" : (x * 1000).toFixed(1) + " ms"; }
function pct(x) { return x == null ? "–" : (x * 100).toFixed(1) + " %"; }

function cell(row, text, attrs = {}) {
  const td = document.createElement("td");
  td.textContent = text == null ? "–" : String(text);
  for (const [k, v] of Object.entries(attrs)) td.setAttribute(k, v);
  row.appendChild(td);
  return td;
}

function fill(tableId, rows, build) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    build(tr, r);
    body.appendChild(tr);
  }
}

function setValue(id, value, text) {
  const el = $(id);
  el.dataset.value = value == null ? "" : String(value);
  el.textContent = text;
}

// ----- the live summary ---------------------------------------------------------------------------------
function renderSummary(s) {
  setValue("requests-total", s.requests.total, String(s.requests.total));
  setValue("requests-rate", s.requests.per_second, s.requests.per_second == null ? "–" : s.requests.per_second.toFixed(2));
  setValue("errors-total", s.errors.requests, String(s.errors.requests));
  setValue("cost-total", s.cost.total_usd, usd(s.cost.total_usd));
  const b = s.cost.baseline;
  setValue("cost-baseline", b.baseline_usd, usd(b.baseline_usd));
  setValue("cost-saved", b.saved_usd, usd(b.saved_usd));
  $("baseline-note").textContent = b.available ? `over ${b.records} recorded requests` : "records unavailable";
  setValue("cache-hit-rate", s.cache.hit_rate, pct(s.cache.hit_rate));
  $("cache-note").textContent = `${s.cache.hit} hits, ${s.cache.miss} misses`;
  $("generation").textContent = "config generation " + s.config.generation;
  $("generation").dataset.value = String(s.config.generation);
  const rejected = $("rejected");
  rejected.hidden = !s.config.rejected;
  rejected.textContent = s.config.rejected ? "reload rejected: " + s.config.rejected.first : "";
  renderModels(s.models);
  renderBudgets(s.budgets);
  renderDecisionCounts(s.decisions);
  renderChart(s.series);
}

function renderModels(models) {
  const errors = [];
  fill("models", Object.entries(models), (tr, [name, m]) => {
    tr.dataset.model = name;
    cell(tr, name);
    cell(tr, m.requests, { "data-field": "requests" });
    cell(tr, m.errors, { "data-field": "errors" });
    cell(tr, usd(m.cost_usd), { "data-field": "cost_usd" });
    cell(tr, m.tokens.prompt, { "data-field": "prompt_tokens" });
    cell(tr, m.tokens.completion, { "data-field": "completion_tokens" });
    cell(tr, secs(m.latency_s.p50)); cell(tr, secs(m.latency_s.p95)); cell(tr, secs(m.latency_s.p99));
    cell(tr, secs(m.ttft_s.p50)); cell(tr, secs(m.ttft_s.p95));
    cell(tr, m.breaker || "–", { "data-field": "breaker", class: m.breaker === "closed" ? "" : "bad" });
    cell(tr, m.in_flight);
    for (const [code, n] of Object.entries(m.upstream_errors)) errors.push(`${name}: ${n} × ${code}`);
  });
  $("upstream-errors").textContent = errors.length ? "Upstream errors — " + errors.join(", ") : "";
}

function limitText(x) { return x ? `${+x.used.toFixed(6)} / ${x.limit}` : "–"; }

function renderBudgets(budgets) {
  fill("budgets", budgets.keys, (tr, k) => {
    tr.dataset.key = k.name;
    cell(tr, k.name);
    cell(tr, limitText(k.rpm), { "data-field": "rpm" });
    cell(tr, limitText(k.tpm), { "data-field": "tpm" });
    cell(tr, limitText(k.budget_usd_day), { "data-field": "budget_usd_day" });
    cell(tr, limitText(k.budget_usd_month), { "data-field": "budget_usd_month" });
  });
}

function renderDecisionCounts(decisions) {
  for (const tr of $("decisions").querySelectorAll("tbody tr")) {
    const d = decisions[tr.dataset.decision] || { requests: 0, cost_usd: 0 };
    tr.querySelector('[data-field="requests"]').textContent = String(d.requests);
    tr.querySelector('[data-field="cost_usd"]').textContent = usd(d.cost_usd);
  }
}

const COLOURS = ["#2b7bb9", "#d9822b", "#3a9a4a", "#b93a3a", "#7a52b3", "#8c6d3f", "#c05aa0", "#6b6b6b"];

function renderChart(series) {
  if (typeof uPlot === "undefined") return;
  const models = [...new Set(series.flatMap((p) => Object.keys(p.models)))].sort();
  const data = [series.map((p) => p.t), ...models.map((m) => series.map((p) => p.models[m] || 0))];
  const el = $("mix-chart");
  if (chart && chartModels === models.join("\u0000")) { chart.setData(data); return; }
  if (chart) chart.destroy();
  chartModels = models.join("\u0000");
  chart = new uPlot({
    width: Math.max(el.clientWidth, 300), height: 220,
    series: [{}, ...models.map((m, i) => ({ label: m, stroke: COLOURS[i % COLOURS.length], width: 2 }))],
    axes: [{}, { label: "req/s" }],
    scales: { x: { time: true } },
  }, data, el);
}

async function follow() {
  streamAbort = new AbortController();
  const signal = streamAbort.signal;
  while (!signal.aborted) {
    const opened = Date.now();
    try {
      const response = await fetch("/v1/dashboard/events", { headers: authHeaders(), signal });
      if (response.status === 401) { showLogin("the admin key was refused"); return; }
      if (response.status !== 200) throw new Error("HTTP " + response.status);
      $("conn").textContent = "live";
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
      // the server ends each stream after a while (so that it can shut down): open the next one at once
      if (Date.now() - opened > 5000) continue;
    } catch (err) {
      if (signal.aborted) return;
    }
    $("conn").textContent = "reconnecting";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function handleEvent(text) {
  let event = "message", data = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (event === "summary") renderSummary(JSON.parse(data));
  else if (event === "error") showLogin(JSON.parse(data).error.message);
}

// ----- the config: decisions and warnings ---------------------------------------------------------------
async function loadConfig() {
  const { status, body } = await api("/v1/dashboard/config");
  if (status !== 200) return;
  fill("decisions", body.decisions, (tr, d) => {
    tr.dataset.decision = d.name;
    cell(tr, d.priority); cell(tr, d.name); cell(tr, d.rule);
    cell(tr, d.models.join(", ") + (d.fallbacks.length ? " (then " + d.fallbacks.join(", ") + ")" : ""));
    cell(tr, d.algorithm.name);
    cell(tr, d.plan ? d.plan.name : "–");
    cell(tr, d.plugins.map((p) => p.name).join(", ") || "–");
    cell(tr, "–", { "data-field": "requests" });
    cell(tr, "–", { "data-field": "cost_usd" });
  });
  const list = $("warnings");
  list.replaceChildren();
  for (const w of body.warnings) {
    const li = document.createElement("li");
    li.textContent = `${w.path}: ${w.message}`;
    list.appendChild(li);
  }
  options("f-decision", body.decisions.map((d) => d.name));
  options("f-model", Object.keys(body.models));
}

function options(id, names) {
  const select = $(id);
  select.replaceChildren(new Option("any", ""), ...names.map((n) => new Option(n, n)));
}

// ----- recent requests and one record -------------------------------------------------------------------
async function loadRecent() {
  const q = new URLSearchParams({ limit: "50" });
  if ($("f-decision").value) q.set("decision", $("f-decision").value);
  if ($("f-model").value) q.set("model", $("f-model").value);
  if ($("f-key").value.trim()) q.set("tenant", $("f-key").value.trim());
  const { status, body } = await api("/v1/router/outcomes?" + q);
  if (status !== 200) return;
  fill("recent", body.data, (tr, o) => {
    tr.dataset.request = o.request_id;
    tr.tabIndex = 0;
    cell(tr, new Date(o.time * 1000).toLocaleTimeString());
    cell(tr, o.request_id.slice(0, 12));
    cell(tr, o.tenant); cell(tr, o.decision); cell(tr, o.model); cell(tr, o.status);
    cell(tr, usd(o.cost_usd)); cell(tr, secs(o.latency_s));
    const top = Object.entries(o.signals).sort((a, b) => b[1] - a[1])[0];
    cell(tr, top ? `${top[0]} ${top[1]}` : "–");
    cell(tr, o.feedback ? (o.feedback.thumbs || o.feedback.rating || o.feedback.label || "yes") : "–");
    tr.addEventListener("click", () => openRecord(o.request_id));
  });
}

async function openRecord(id) {
  const { status, body } = await api("/v1/router/outcomes/" + encodeURIComponent(id));
  if (status !== 200) return;
  $("record").hidden = false;
  $("record-id").textContent = id;
  const dl = $("record-fields");
  dl.replaceChildren();
  for (const [k, v] of Object.entries(body)) {
    if (v == null || k === "features") continue;
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = typeof v === "object" ? JSON.stringify(v) : String(v);
    dd.dataset.field = k;
    dl.append(dt, dd);
  }
}

// ----- try a prompt -------------------------------------------------------------------------------------
async function tryPrompt(event) {
  event.preventDefault();
  $("try-error").textContent = "";
  const prompt = $("try-prompt").value;
  const { status, body } = await api("/v1/route", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "auto", messages: [{ role: "user", content: prompt }] }),
  });
  if (status !== 200) {
    $("try-result").hidden = true;
    $("try-error").textContent = body && body.error ? body.error.message : "HTTP " + status;
    return;
  }
  $("try-result").hidden = false;
  $("try-decision").textContent = body.decision;
  $("try-model").textContent = body.model;
  $("try-reason").textContent = body.reason || "";
  fill("try-signals", body.signals, (tr, s) => { cell(tr, s.name); cell(tr, s.score); cell(tr, s.matched ? "yes" : "no"); });
  fill("try-candidates", body.candidates, (tr, c) => { cell(tr, c.model); cell(tr, c.score); });
  const matched = body.decisions.map((d) => `${d.name} (${d.priority}) ${d.matched ? "matched" : "no"}`);
  const extra = [`decisions: ${matched.join(", ") || "none"}`, `algorithm ${body.algorithm}`,
    `plugins: ${body.plugins.join(", ") || "none"}`];
  if (body.plan) extra.push("plan: " + JSON.stringify(body.plan));
  extra.push(`routed in ${body.elapsed_us} µs`);
  $("try-extra").textContent = extra.join(" · ");
}

// ----- the key --------------------------------------------------------------------------------------------
function showLogin(message) {
  if (streamAbort) streamAbort.abort();
  $("board").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("conn").textContent = "not connected";
  $("login-error").textContent = message || "";
}

async function open() {
  const { status, body } = await api("/v1/dashboard/summary");
  if (status === 401) { showLogin(sessionStorage.getItem(KEY_ITEM) ? "the admin key was refused" : ""); return; }
  if (status !== 200) { showLogin(body && body.error ? body.error.message : "HTTP " + status); return; }
  $("login").hidden = true;
  $("board").hidden = false;
  $("logout").hidden = !sessionStorage.getItem(KEY_ITEM);
  await loadConfig();
  renderSummary(body);
  await loadRecent();
  follow();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY_ITEM, $("admin-key").value);
    $("admin-key").value = "";
    open();
  });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY_ITEM); showLogin(""); });
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); loadRecent(); });
  $("try-form").addEventListener("submit", tryPrompt);
  window.addEventListener("resize", () => {
    if (chart) chart.setSize({ width: Math.max($("mix-chart").clientWidth, 300), height: 220 });
  });
  open();
});
