// The compiled graph as an SVG picture, laid out here (no Graphviz on the gateway's host, no
// subprocess per view): one column per node kind, in the order a request meets them, rows
// ordered by the mean row of each node's neighbours (two sweeps of the barycenter heuristic,
// which keeps most edges short and few crossing), edges as curves between columns.
import { s } from "./dom.js";

const COLUMNS = [
  ["entrypoint"], ["router", "tcp_router", "udp_router"], ["middleware"], ["service"], ["scaler", "proxy"],
];
const HEADS = ["entrypoints", "routers", "middlewares", "services", "scalers & proxies"];
const NODE_W = 190, NODE_H = 36, GAP_X = 70, GAP_Y = 14, PAD = 24, HEAD = 22;

export function column(kind) {
  return COLUMNS.findIndex((kinds) => kinds.includes(kind));
}

export function layout(graph) {
  const nodes = graph.nodes.filter((n) => column(n.kind) >= 0);
  const ids = new Set(nodes.map((n) => n.id));
  const edges = graph.edges.filter((e) => ids.has(e.src) && ids.has(e.dst) && e.src !== e.dst);
  const neighbours = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) {
    neighbours.get(e.src).push(e.dst);
    neighbours.get(e.dst).push(e.src);
  }
  const cols = COLUMNS.map((_, i) => nodes.filter((n) => column(n.kind) === i));
  cols.forEach((col) => col.sort((a, b) => a.name.localeCompare(b.name)));
  const row = new Map();
  const index = () => cols.forEach((col) => col.forEach((n, i) => row.set(n.id, i)));
  index();
  for (let sweep = 0; sweep < 2; sweep += 1) {
    cols.forEach((col) => {
      const mean = (n) => {
        const rows = neighbours.get(n.id).map((id) => row.get(id));
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : row.get(n.id);
      };
      const keyed = col.map((n) => [mean(n), n]);
      keyed.sort((a, b) => a[0] - b[0] || a[1].name.localeCompare(b[1].name));
      col.splice(0, col.length, ...keyed.map(([, n]) => n));
      index();
    });
  }
  const place = new Map();
  cols.forEach((col, c) => col.forEach((n, r) => place.set(n.id, {
    x: PAD + c * (NODE_W + GAP_X), y: PAD + HEAD + r * (NODE_H + GAP_Y), node: n,
  })));
  const width = PAD * 2 + COLUMNS.length * NODE_W + (COLUMNS.length - 1) * GAP_X;
  const height = PAD * 2 + HEAD + Math.max(1, ...cols.map((c) => c.length)) * (NODE_H + GAP_Y);
  return { place, edges, width, height, cols };
}

export function render(graph, isDown) {
  const { place, edges, width, height, cols } = layout(graph);
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "graph-svg", role: "img" });
  HEADS.forEach((title, c) => {
    if (cols[c].length) svg.append(s("text", { class: "colhead", x: PAD + c * (NODE_W + GAP_X), y: PAD + 10 }, title));
  });
  for (const e of edges) {
    let a = place.get(e.src), b = place.get(e.dst);
    if (a.x > b.x) [a, b] = [b, a];
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
    const mid = (x1 + x2) / 2;
    const d = a.x === b.x
      ? `M${a.x + NODE_W},${y1} C${a.x + NODE_W + 30},${y1} ${a.x + NODE_W + 30},${b.y + NODE_H / 2} ${a.x + NODE_W},${b.y + NODE_H / 2}`
      : `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
    svg.append(s("path", { class: "edge", d }, s("title", {}, `${e.src} → ${e.dst} (${e.label})`)));
  }
  for (const { x, y, node } of place.values()) {
    const internal = node.name.endsWith("@internal");
    const classes = ["node", node.kind, internal ? "internal" : "", isDown(node) ? "down" : ""].join(" ");
    const name = node.name.length > 26 ? `${node.name.slice(0, 25)}…` : node.name;
    const kind = node.attrs && node.attrs.type ? `${node.kind} · ${node.attrs.type}` : node.kind;
    svg.append(s("g", { class: classes, "data-id": node.id, transform: `translate(${x},${y})` },
      s("title", {}, node.id),
      s("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
      s("text", { class: "kind", x: 8, y: 13 }, internal ? `${kind} · built in` : kind),
      s("text", { x: 8, y: 29 }, name)));
  }
  return svg;
}
