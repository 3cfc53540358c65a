// The dashboard of `pickllm serve` (GET /ui): reads GET /v1/stats (version 1) every few
// seconds and draws plain SVG, no library; the decision explorer reads GET /v1/decisions. The
// browser sends the credentials it used for /ui.
"use strict";

const REFRESH_MS = 3000;
const MAX_ROWS = 100; // contexts listed at once: the page stays light with thousands
const WINDOW = 50; // decisions per point of the share-over-time series
const COLORS = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777"];
const SVG = "http://www.w3.org/2000/svg";

const state = { router: null, context: null, stats: null };

function $(id) { return document.getElementById(id); }

function svgNode(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function percent(x) { return x === null || x === undefined ? "-" : (100 * x).toFixed(1) + "%"; }
function number(x, digits) { return x === null || x === undefined ? "-" : x.toFixed(digits); }
function pair(a, b, digits) { return number(a, digits) + " / " + number(b, digits); }

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

// Horizontal bars, one per model, each with its value written beside it.
function bars(svg, models, values) {
  svg.replaceChildren();
  const rowHeight = 26, labelWidth = 130, barWidth = 220;
  svg.setAttribute("viewBox", `0 0 ${labelWidth + barWidth + 70} ${rowHeight * models.length + 6}`);
  models.forEach((model, i) => {
    const value = values[model] ?? 0;
    const y = 4 + i * rowHeight;
    svg.appendChild(svgNode("text", { x: labelWidth - 6, y: y + 15, "text-anchor": "end", "font-size": 12 }, model));
    svg.appendChild(svgNode("rect", { x: labelWidth, y, width: barWidth, height: 18, fill: "#eef0f3" }));
    svg.appendChild(svgNode("rect", {
      x: labelWidth, y, width: Math.max(0, Math.min(1, value)) * barWidth, height: 18,
      fill: COLORS[i % COLORS.length], "data-model": model, "data-value": value, class: "bar",
    }));
    svg.appendChild(svgNode("text", { x: labelWidth + barWidth + 6, y: y + 15, "font-size": 12, class: "value", "data-model": model }, percent(value)));
  });
}

// Each model's probability at each sample (x: the context's decisions so far), with a dashed
// vertical line at each detected change.
function probabilityHistory(svg, models, samples, changes) {
  svg.replaceChildren();
  const width = 420, height = 180, left = 34, bottom = 20;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const plotWidth = width - left - 8, plotHeight = height - bottom - 8;
  for (const tick of [0, 0.5, 1]) {
    const y = 8 + (1 - tick) * plotHeight;
    svg.appendChild(svgNode("line", { x1: left, x2: width - 8, y1: y, y2: y, stroke: "#dde1e6" }));
    svg.appendChild(svgNode("text", { x: left - 4, y: y + 4, "text-anchor": "end", "font-size": 10 }, tick.toFixed(1)));
  }
  if (samples.length === 0) return;
  const first = samples[0].decisions, last = samples[samples.length - 1].decisions;
  const span = Math.max(1, last - first);
  const xOf = (decisions) => left + ((decisions - first) / span) * plotWidth;
  svg.appendChild(svgNode("text", { x: left, y: height - 4, "font-size": 10 }, `decision ${first}`));
  svg.appendChild(svgNode("text", { x: width - 8, y: height - 4, "text-anchor": "end", "font-size": 10 }, `decision ${last}`));
  for (const change of changes) {
    const x = xOf(Math.min(last, Math.max(first, change.decisions))).toFixed(1);
    svg.appendChild(svgNode("line", {
      x1: x, x2: x, y1: 8, y2: 8 + plotHeight, stroke: "#dc2626", "stroke-dasharray": "4 3",
      class: "change", "data-decisions": change.decisions,
    }));
  }
  models.forEach((model, m) => {
    const coordinates = samples.map((s) =>
      `${xOf(s.decisions).toFixed(1)},${(8 + (1 - s.probabilities[model]) * plotHeight).toFixed(1)}`);
    svg.appendChild(svgNode("polyline", {
      points: coordinates.join(" "), fill: "none", stroke: COLORS[m % COLORS.length], "stroke-width": 2,
      "data-model": model, "data-last": samples[samples.length - 1].probabilities[model], class: "series",
    }));
  });
}

// Each model's share of the decisions in a rolling window, over the recent decisions.
function history(svg, models, recent) {
  svg.replaceChildren();
  const width = 420, height = 180, left = 34, bottom = 20;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const plotWidth = width - left - 8, plotHeight = height - bottom - 8;
  for (const tick of [0, 0.5, 1]) {
    const y = 8 + (1 - tick) * plotHeight;
    svg.appendChild(svgNode("line", { x1: left, x2: width - 8, y1: y, y2: y, stroke: "#dde1e6" }));
    svg.appendChild(svgNode("text", { x: left - 4, y: y + 4, "text-anchor": "end", "font-size": 10 }, tick.toFixed(1)));
  }
  const points = Math.max(0, recent.length - WINDOW + 1);
  svg.appendChild(svgNode("text", { x: width - 8, y: height - 4, "text-anchor": "end", "font-size": 10 },
    `last ${recent.length} decisions`));
  if (points === 0) {
    svg.appendChild(svgNode("text", { x: left + 8, y: height / 2, "font-size": 11, fill: "#6b7280" },
      `fewer than ${WINDOW} decisions yet`));
    return;
  }
  models.forEach((model, m) => {
    let count = 0;
    for (let i = 0; i < WINDOW - 1; i++) count += recent[i] === model ? 1 : 0;
    const coordinates = [];
    for (let i = 0; i < points; i++) {
      count += recent[i + WINDOW - 1] === model ? 1 : 0;
      const x = left + (points === 1 ? plotWidth : (i / (points - 1)) * plotWidth);
      coordinates.push(`${x.toFixed(1)},${(8 + (1 - count / WINDOW) * plotHeight).toFixed(1)}`);
      count -= recent[i] === model ? 1 : 0;
    }
    svg.appendChild(svgNode("polyline", {
      points: coordinates.join(" "), fill: "none", stroke: COLORS[m % COLORS.length], "stroke-width": 2,
      "data-model": model, class: "series",
    }));
  });
}

function modelRows(tbody, models, stats, breakers) {
  tbody.replaceChildren();
  for (const model of models) {
    const s = stats[model];
    const row = document.createElement("tr");
    row.dataset.model = model;
    cell(row, model);
    if (breakers) cell(row, breakers[model].replace("_", "-"), "state-" + breakers[model]);
    cell(row, String(s.decisions));
    cell(row, percent(s.share));
    cell(row, number(s.reward_avg, 3));
    cell(row, number(s.accuracy_avg, 3));
    cell(row, pair(s.cost_p50, s.cost_p99, 5));
    cell(row, pair(s.latency_p50, s.latency_p99, 2));
    tbody.appendChild(row);
  }
}

function card(label, value, id) {
  const div = document.createElement("div");
  div.className = "card";
  div.id = id;
  div.append(label);
  const b = document.createElement("b");
  b.textContent = value;
  div.appendChild(b);
  return div;
}

function renderRouter() {
  const router = state.stats.routers[state.router];
  const shares = Object.fromEntries(router.models.map((m) => [m, router.totals[m].share ?? 0]));
  const tracked = router.contexts_tracked;
  $("summary").replaceChildren(
    card("decisions", String(router.decisions), "card-decisions"),
    card("pending feedback", String(router.pending_feedback), "card-pending"),
    card("budget spent", router.budget_spent_usd === null ? "no budget" : "$" + router.budget_spent_usd.toFixed(4), "card-budget"),
    card("contexts converged", `${router.contexts_converged} of ${tracked}`, "card-converged"),
    card("open breakers", String(Object.values(router.breakers).filter((s) => s !== "closed").length), "card-breakers"),
    card("changes detected", String(router.changes), "card-changes"),
  );
  renderClusters(router.prompt_contexts);
  bars($("share-chart"), router.models, shares);
  modelRows($("models").tBodies[0], router.models, router.totals, router.breakers);
  renderContexts(router);
}

function renderContexts(router) {
  const filter = $("filter").value.trim().toLowerCase();
  const names = Object.keys(router.contexts).filter((c) => !filter || c.toLowerCase().includes(filter));
  names.sort((a, b) => router.contexts[b].decisions - router.contexts[a].decisions || (a < b ? -1 : 1));
  const tbody = $("contexts").tBodies[0];
  const rows = document.createDocumentFragment();
  for (const name of names.slice(0, MAX_ROWS)) {
    const c = router.contexts[name];
    const row = document.createElement("tr");
    row.dataset.context = name;
    if (name === state.context) row.className = "selected";
    cell(row, name);
    cell(row, String(c.decisions));
    cell(row, c.leader);
    cell(row, percent(c.probabilities[c.leader]));
    cell(row, c.converged ? "yes" : "no");
    cell(row, String(c.changes));
    row.addEventListener("click", () => select(name));
    rows.appendChild(row);
  }
  tbody.replaceChildren(rows);
  $("contexts-count").textContent = `(${Object.keys(router.contexts).length} tracked)`;
  $("contexts-more").textContent = names.length > MAX_ROWS
    ? `showing the ${MAX_ROWS} busiest of ${names.length}: filter to find others` : "";
}

// The router's prompt clusters, when its contexts come from the prompts.
function renderClusters(found) {
  $("clusters-section").hidden = !found;
  if (!found) return;
  $("clusters-note").textContent = found.fitted
    ? `(${found.clusters.length} clusters from ${found.warmup_prompts} prompts)`
    : found.fit_error
      ? `(the fit failed, all prompts in one context: ${found.fit_error})`
      : found.fitting
        ? `(fitting on ${found.warmup_prompts} prompts)`
        : `(warming up: ${found.warmup_prompts} prompts so far)`;
  const tbody = $("clusters").tBodies[0];
  tbody.replaceChildren();
  for (const cluster of found.clusters) {
    const row = document.createElement("tr");
    row.dataset.context = cluster.context;
    cell(row, cluster.context);
    cell(row, String(cluster.size));
    cell(row, cluster.terms.join(", "), "terms");
    tbody.appendChild(row);
  }
}

function short(id) { return id.length > 20 ? id.slice(0, 8) + "…" + id.slice(-6) : id; }
function clock(seconds) { return new Date(seconds * 1000).toLocaleTimeString(); }

function renderRecent(decisions) {
  const tbody = $("recent-decisions").tBodies[0];
  tbody.replaceChildren();
  for (const d of decisions) {
    const last = d.attempts[d.attempts.length - 1];
    const row = document.createElement("tr");
    row.dataset.decision = d.id;
    cell(row, clock(d.time));
    cell(row, short(d.id));
    cell(row, d.model ?? "-");
    cell(row, percent(last.probability));
    cell(row, String(d.attempts.length));
    cell(row, d.status);
    cell(row, number(last.accuracy, 3));
    cell(row, number(last.reward, 3));
    row.addEventListener("click", () => explore(d.id));
    tbody.appendChild(row);
  }
}

function renderDecision(d) {
  $("explorer").hidden = false;
  $("explorer").dataset.decision = d.id;
  $("explorer-summary").textContent =
    `${d.router} · context ${d.context} · ${new Date(d.time * 1000).toLocaleString()} · ${d.status}` +
    (d.model ? ` · answered by ${d.model}` : "");
  const models = Object.keys(d.probabilities);
  bars($("decision-chart"), models, d.probabilities);
  const tbody = $("attempts").tBodies[0];
  tbody.replaceChildren();
  d.attempts.forEach((a, i) => {
    const row = document.createElement("tr");
    row.dataset.model = a.model;
    cell(row, String(i + 1));
    cell(row, a.model);
    cell(row, percent(a.probability));
    cell(row, a.error ? `${a.outcome} (${a.error})` : a.outcome);
    cell(row, number(a.latency, 3));
    cell(row, number(a.cost, 6));
    cell(row, a.settled ?? "-");
    cell(row, number(a.accuracy, 3));
    cell(row, number(a.reward, 3));
    tbody.appendChild(row);
  });
}

async function explore(id) {
  $("decision-id").value = id;
  $("explorer-error").hidden = true;
  try {
    const response = await fetch(`v1/decisions/${encodeURIComponent(id)}`, { credentials: "same-origin", cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
    renderDecision(body.decision);
  } catch (error) {
    $("explorer").hidden = true;
    $("explorer-error").hidden = false;
    $("explorer-error").textContent = String(error.message || error);
  }
}

async function fetchJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function renderDetail() {
  if (state.context === null) return;
  const query = `router=${encodeURIComponent(state.router)}&context=${encodeURIComponent(state.context)}`;
  const detail = (await fetchJSON(`v1/stats?${query}`)).routers[state.router];
  const c = detail.contexts[state.context];
  if (!c) return;
  $("detail").hidden = false;
  $("detail-name").textContent = state.context;
  bars($("probability-chart"), detail.models, c.probabilities);
  history($("history-chart"), detail.models, c.recent);
  probabilityHistory($("probability-history"), detail.models, c.samples, c.last_changes);
  $("samples-note").textContent = `(a sample every ${c.sample_every} decisions; ${c.changes} detected change${c.changes === 1 ? "" : "s"})`;
  modelRows($("context-models").tBodies[0], detail.models, c.models, null);
  const listed = await fetchJSON(`v1/decisions?${query}&limit=20`);
  renderRecent(listed.decisions);
}

function select(context) {
  state.context = context;
  renderContexts(state.stats.routers[state.router]);
  renderDetail().catch(showError);
}

function showError(error) {
  $("error").hidden = false;
  $("error").textContent = String(error.message || error);
}

async function refresh() {
  try {
    state.stats = await fetchJSON("v1/stats");
    const names = Object.keys(state.stats.routers);
    const picker = $("router");
    if (picker.options.length !== names.length) {
      picker.replaceChildren(...names.map((n) => new Option(n, n)));
    }
    if (state.router === null || !names.includes(state.router)) state.router = names[0] ?? null;
    picker.value = state.router;
    if (state.router !== null) {
      renderRouter();
      await renderDetail();
    }
    $("error").hidden = true;
    $("updated").textContent = "updated " + new Date(state.stats.time * 1000).toLocaleTimeString();
    const worker = state.stats.worker;
    $("workers").dataset.answered = String(worker.answered.length);
    $("workers").textContent = worker.workers === 1 ? "1 worker"
      : `${worker.workers} workers, ${worker.answered.length} merged` +
        (worker.missing.length ? ` (${worker.missing.length} did not answer)` : "");
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (error) {
    showError(error);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("router").addEventListener("change", (event) => {
    state.router = event.target.value;
    state.context = null;
    $("detail").hidden = true;
    renderRouter();
  });
  $("filter").addEventListener("input", () => renderContexts(state.stats.routers[state.router]));
  $("lookup").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("decision-id").value.trim();
    if (id) explore(id);
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
});
