// The a3s-gateway dashboard: reads the admin JSON API and the live feed of the same address.
import { LineChart } from "./chart.js";
import { fmt, h, health, table } from "./dom.js";
import { render as renderGraph } from "./graph.js";

const API = "/api/gateway";
const state = {
  sample: null, // the last `sample` event of the live feed
  events: [], // the last state changes, newest first
  cache: new Map(), // endpoint -> JSON, refreshed on state changes and every few seconds
  graphGeneration: -1,
};
const charts = {
  rate: new LineChart("chart-rate", "Requests per second", ["requests/s", "5xx/s"], "/s"),
  latency: new LineChart("chart-latency", "Latency of the services (worst)", ["p50", "p99"], "ms"),
};

async function get(path) {
  const response = await fetch(API + path, { headers: { accept: "application/json" }, cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  const data = await response.json();
  state.cache.set(path, data);
  return data;
}

function cached(path) {
  return state.cache.get(path);
}

// ------------------------------------------------------------------ live numbers from samples

function live(group, name) {
  const s = state.sample;
  return (s && s[group] && s[group][name]) || null;
}

// Rates summed, latencies the worst, over a group; `own` leaves out the built-in services
// (the dashboard's own feed is a long stream: its duration is not a latency).
function sumOver(group, own = false) {
  const members = (state.sample && state.sample[group]) || {};
  const total = { rate: 0, errors: 0, p50: null, p99: null };
  for (const [name, m] of Object.entries(members)) {
    if (own && name.endsWith("@internal")) continue;
    total.rate += m.rate;
    total.errors += m.errors;
    if (m.p50_ms !== null) total.p50 = Math.max(total.p50 ?? 0, m.p50_ms);
    if (m.p99_ms !== null) total.p99 = Math.max(total.p99 ?? 0, m.p99_ms);
  }
  return total;
}

function sampled(url) {
  return (state.sample && state.sample.backends.find((x) => x.url === url)) || null;
}

function backendUp(url, fallback) {
  const b = sampled(url);
  return b ? b.healthy : fallback;
}

// A backend's time to the response head over its last exchanges: the live sample's (redrawn
// every second), else the one /services gave.
function backendLatency(b) {
  const live = sampled(b.url);
  return (live && live.latency) || b.latency || {};
}

// ------------------------------------------------------------------ pages

const PAGES = {
  overview: { load: ["/health", "/routes", "/services", "/graph"], draw: overview },
  routers: { load: ["/routes"], draw: routers },
  services: { load: ["/services"], draw: services },
  scalers: { load: ["/scalers"], draw: scalers },
  rollouts: { load: ["/rollouts"], draw: rollouts },
  graph: { load: ["/graph", "/services"], draw: graphPage },
  live: { load: [], draw: livePage },
};

function card(label, value, id) {
  return h("div", { class: "card", id }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

function rateCells(group, name) {
  const m = live(group, name);
  return {
    rate: m ? fmt(m.rate) : "–",
    errors: m ? fmt(m.errors_total, 0) : "–",
    requests: m ? fmt(m.requests, 0) : "–",
  };
}

function overview() {
  const healthDoc = cached("/health") || {};
  const routes = cached("/routes") || [];
  const svcs = cached("/services") || [];
  const graph = cached("/graph") || { nodes: [] };
  const total = sumOver("entrypoints");
  const middlewares = graph.nodes.filter((n) => n.kind === "middleware");
  const entrypoints = Object.entries(healthDoc.entrypoints || {});
  return [
    h("h1", {}, "Overview"),
    h("div", { class: "cards" },
      card("status", healthDoc.status || "–", "card-status"),
      card("generation", fmt(healthDoc.generation), "card-generation"),
      card("reloads", fmt(healthDoc.reloads), "card-reloads"),
      card("requests/s", fmt(total.rate), "card-rate"),
      card("in flight", fmt(state.sample ? state.sample.in_flight : healthDoc.in_flight), "card-inflight")),
    h("div", { class: "charts" }, charts.rate.mount(), charts.latency.mount()),
    h("h2", {}, "Entrypoints"),
    table([
      ["name", (e) => e[0]],
      ["address", (e) => h("code", {}, e[1].address)],
      ["requests/s", (e) => rateCells("entrypoints", e[0]).rate, "num"],
      ["5xx", (e) => rateCells("entrypoints", e[0]).errors, "num"],
      ["requests", (e) => fmt(e[1].requests, 0), "num"],
      ["connections", (e) => fmt(e[1].connections, 0), "num"],
    ], entrypoints, (e) => ({ "data-name": e[0] })),
    h("h2", {}, "Routers"),
    table([
      ["name", (r) => [r.name, r.internal ? [" ", h("span", { class: "tag" }, "built in")] : null]],
      ["service", (r) => r.service],
      ["requests/s", (r) => rateCells("routers", r.name).rate, "num"],
      ["5xx", (r) => rateCells("routers", r.name).errors, "num"],
    ], routes, (r) => ({ "data-name": r.name })),
    h("h2", {}, "Services"),
    table([
      ["name", (v) => v.name],
      ["status", (v) => v.kind === "internal" ? h("span", { class: "tag" }, "built in") : health(v.status === "up")],
      ["backends", (v) => fmt(v.backends.length), "num"],
      ["requests/s", (v) => rateCells("services", v.name).rate, "num"],
      ["5xx", (v) => rateCells("services", v.name).errors, "num"],
    ], svcs, (v) => ({ "data-name": v.name })),
    h("h2", {}, "Middlewares"),
    table([
      ["name", (m) => m.name],
      ["type", (m) => h("code", {}, (m.attrs && m.attrs.type) || "")],
      ["used by", (m) => routes.filter((r) => r.middlewares.includes(m.name)).map((r) => r.name).join(", ") || "–"],
      ["requests/s", (m) => fmt(routes.filter((r) => r.middlewares.includes(m.name))
        .reduce((sum, r) => sum + ((live("routers", r.name) || {}).rate || 0), 0)), "num"],
    ], middlewares, (m) => ({ "data-name": m.name })),
  ];
}

function chain(r) {
  const parts = [];
  for (const m of r.middlewares) parts.push(h("span", { class: "mw" }, m), h("span", { class: "arrow" }, "→"));
  parts.push(h("span", { class: "svc" }, r.service));
  return h("span", { class: "chain" }, parts);
}

function routers() {
  const routes = cached("/routes") || [];
  return [
    h("h1", {}, "Routers"),
    table([
      ["name", (r) => r.name],
      ["rule", (r) => h("code", {}, r.rule)],
      ["priority", (r) => fmt(r.priority), "num"],
      ["entrypoints", (r) => r.entrypoints.join(", ")],
      ["chain", chain],
      ["requests/s", (r) => rateCells("routers", r.name).rate, "num"],
      ["p99 ms", (r) => fmt((live("routers", r.name) || {}).p99_ms), "num"],
    ], routes, (r) => ({ "data-name": r.name })),
  ];
}

function services() {
  const svcs = (cached("/services") || []).filter((v) => v.kind !== "internal");
  return [
    h("h1", {}, "Services"),
    ...svcs.flatMap((v) => {
      const m = live("services", v.name);
      return [
        h("h2", { "data-service": v.name }, `${v.name} `, health(v.status === "up"),
          h("span", { class: "muted" }, `  ${v.strategy || v.kind}${v.scaled ? ", scaled" : ""}`,
            m ? ` · ${fmt(m.rate)} req/s · p50 ${fmt(m.p50_ms)} ms · p99 ${fmt(m.p99_ms)} ms` : "")),
        table([
          ["backend", (b) => h("code", {}, b.url)],
          ["health", (b) => health(backendUp(b.url, b.healthy))],
          ["revision", (b) => b.revision || "–"],
          ["weight", (b) => fmt(b.weight), "num"],
          ["in flight", (b) => fmt(b.in_flight), "num"],
          ["connections", (b) => fmt(b.open_connections), "num"],
          ["p50 ms", (b) => fmt(backendLatency(b).p50_ms), "num"],
          ["p99 ms", (b) => fmt(backendLatency(b).p99_ms), "num"],
        ], v.backends, (b) => ({
          "data-backend": b.url,
          "data-health": backendUp(b.url, b.healthy) ? "up" : "down",
          "data-p99": backendLatency(b).p99_ms ?? "",
        }),
        v.scaled ? "no backend in rotation (scaled to zero, or revisions: see Rollouts)" : "no backend"),
      ];
    }),
  ];
}

function scalers() {
  const list = cached("/scalers") || [];
  return [
    h("h1", {}, "Scalers"),
    table([
      ["name", (x) => x.name],
      ["executor", (x) => h("code", {}, x.executor)],
      ["desired", (x) => fmt(x.replicas.desired ?? x.asked), "num"],
      ["ready", (x) => fmt((x.replicas.ready || []).length), "num"],
      ["buffered", (x) => fmt(x.buffer.queued), "num"],
      ["in flight", (x) => fmt(x.buffer.in_flight), "num"],
      ["cold starts", (x) => fmt(x.buffer.activations), "num"],
      ["panic", (x) => (x.autoscaler && x.autoscaler.panic ? "yes" : "no")],
    ], list, (x) => ({ "data-name": x.name }), "no scaled service"),
  ];
}

function rollouts() {
  const list = cached("/rollouts") || [];
  return [
    h("h1", {}, "Rollouts"),
    table([
      ["service", (x) => x.service],
      ["from → to", (x) => `${x.rollout.from_ ?? x.rollout.from} → ${x.rollout.to}`],
      ["phase", (x) => x.rollout.phase],
      ["step", (x) => fmt(x.rollout.step), "num"],
      ["percentage", (x) => {
        const bar = h("span");
        bar.style.width = `${x.rollout.percentage}%`; // CSSOM, which the CSP allows
        return [h("div", { class: "bar" }, bar), `${fmt(x.rollout.percentage)} %`];
      }],
      ["error rate", (x) => `${fmt(100 * ((x.stats[x.rollout.to] || {}).recent_error_rate || 0), 2)} %`, "num"],
      ["p99 ms", (x) => fmt((x.stats[x.rollout.to] || {}).recent_p99_ms), "num"],
      ["reason", (x) => x.rollout.reason || "–"],
    ], list, (x) => ({ "data-name": x.service }), "no rollout"),
  ];
}

function graphPage() {
  const graph = cached("/graph");
  const svcs = new Map((cached("/services") || []).map((v) => [v.name, v]));
  if (!graph) return [h("h1", {}, "Graph")];
  const isDown = (n) => n.kind === "service" && svcs.has(n.name) && svcs.get(n.name).status === "down";
  return [
    h("h1", {}, `Graph (generation ${graph.generation})`),
    h("p", { class: "muted" }, "The compiled IR, as `a3s-gateway graph --dot` describes it; hover a box or an edge for its id."),
    h("div", { class: "graph" }, renderGraph(graph, isDown)),
  ];
}

function livePage() {
  return [
    h("h1", {}, "Live"),
    h("div", { class: "charts" }, charts.rate.mount(), charts.latency.mount()),
    h("h2", {}, "State changes"),
    h("div", { class: "events", id: "events" }, h("ul", {}, state.events.length
      ? state.events.map((e) => h("li", { "data-event": e.name },
        h("span", { class: "name" }, e.name), h("span", { class: "muted" }, new Date(e.data.time * 1000).toLocaleTimeString()),
        " ", describe(e), e.data.worker === undefined ? "" : h("span", { class: "muted" }, ` · worker ${e.data.worker}`)))
      : h("li", { class: "muted" }, "nothing yet: reloads, health flips, scaling and rollout steps appear here"))),
  ];
}

function describe(e) {
  const d = e.data;
  switch (e.name) {
    case "health": return `${d.service}: ${d.url} is ${d.healthy ? "up" : "down"}`;
    case "agent_state": return `${d.service}: ${d.url} ${d.previous} → ${d.state}`;
    case "reload": return `${d.result}, generation ${d.generation}${d.error ? `: ${d.error}` : ""}`;
    case "scale": return `${d.service}: desired ${d.previous ?? "–"} → ${d.desired}${d.cold_start ? " (cold start)" : ""}`;
    case "replicas": return `${d.service}: ${d.ready} ready`;
    case "rollout": return `${d.service}: ${d.phase}, step ${d.step} at ${d.percentage}% ${d.reason || ""}`;
    default: return JSON.stringify(d);
  }
}

// ------------------------------------------------------------------ routing and refresh

let current = "overview";
let drawing = Promise.resolve();

function pageName() {
  const name = (location.hash.replace(/^#\/?/, "") || "overview").split("?")[0];
  return PAGES[name] ? name : "overview";
}

async function show(reload = true) {
  current = pageName();
  const page = PAGES[current];
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === current);
  try {
    if (reload) await Promise.all(page.load.map(get));
    const main = document.getElementById("main");
    main.replaceChildren(h("section", { id: `page-${current}`, "data-page": current }, page.draw()));
  } catch (err) {
    document.getElementById("main").replaceChildren(h("p", { class: "error" }, `Cannot read the admin API: ${err.message}`));
  }
}

function refresh(reload = true) {
  drawing = drawing.then(() => show(reload));
  return drawing;
}

function setStatus() {
  const doc = cached("/health");
  const el = document.getElementById("status");
  const status = doc ? doc.status : "error";
  el.dataset.status = status;
  el.textContent = `gateway: ${status}`;
}

function connect() {
  const feed = new EventSource(`${API}/live`);
  const pill = document.getElementById("feed");
  feed.onopen = () => { pill.dataset.feed = "open"; pill.textContent = "live feed: open"; };
  feed.onerror = () => { pill.dataset.feed = "closed"; pill.textContent = "live feed: reconnecting"; };
  feed.addEventListener("sample", (message) => {
    const sample = JSON.parse(message.data);
    state.sample = sample;
    const total = sumOver("entrypoints");
    const served = sumOver("services", true);
    charts.rate.push(sample.time, [total.rate, total.errors]);
    charts.latency.push(sample.time, [served.p50, served.p99]);
    if (current !== "graph" && current !== "live") refresh(false);
  });
  for (const name of ["reload", "health", "agent_state", "scale", "replicas", "rollout"]) {
    feed.addEventListener(name, (message) => {
      state.events.unshift({ name, data: JSON.parse(message.data) });
      state.events.length = Math.min(state.events.length, 200);
      get("/health").then(setStatus).catch(() => {});
      refresh(true);
    });
  }
}

window.addEventListener("hashchange", () => refresh(true));
get("/health").then(setStatus).catch(setStatus);
refresh(true);
connect();
// The JSON pages (buffers, in-flight counts) move between state changes too.
setInterval(() => { if (current !== "live") refresh(true); get("/health").then(setStatus).catch(setStatus); }, 5000);
