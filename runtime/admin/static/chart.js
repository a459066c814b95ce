// A live line chart in SVG: the last `window` points of one or more series, y axis from 0.
import { h, s } from "./dom.js";

export class LineChart {
  constructor(id, title, names, unit, window = 60) {
    this.id = id;
    this.title = title;
    this.names = names;
    this.unit = unit;
    this.window = window;
    this.points = []; // [{t, values: [..]}]
    this.count = 0; // points ever pushed (the browser test watches it advance)
    this.el = null;
  }

  push(t, values) {
    this.points.push({ t, values });
    if (this.points.length > this.window) this.points.shift();
    this.count += 1;
    if (this.el && this.el.isConnected) this.draw();
  }

  mount() {
    const legend = this.names.map((name, i) => h("span", {}, h("span", { class: `swatch s${i}` }), name));
    this.svg = s("svg", { viewBox: "0 0 600 180", preserveAspectRatio: "none", role: "img" });
    this.el = h("div", { class: "chart", id: this.id },
      h("div", { class: "title" }, this.title), h("div", { class: "legend" }, legend), this.svg);
    this.draw();
    return this.el;
  }

  draw() {
    const svg = this.svg;
    const W = 600, H = 180, left = 44, bottom = 16, top = 8;
    svg.replaceChildren();
    this.el.setAttribute("data-points", String(this.count));
    const last = this.points.length ? this.points[this.points.length - 1].values : [];
    this.el.setAttribute("data-last", last.map((v) => (v === null ? "" : String(v))).join(","));
    const all = this.points.flatMap((p) => p.values.filter((v) => v !== null));
    const max = niceMax(Math.max(1e-9, ...all));
    const x = (i) => left + ((W - left - 4) * i) / Math.max(1, this.window - 1);
    const y = (v) => top + (H - top - bottom) * (1 - v / max);
    for (let k = 0; k <= 4; k += 1) {
      const v = (max * k) / 4;
      svg.append(s("line", { class: "grid", x1: left, x2: W, y1: y(v), y2: y(v) }));
      svg.append(s("text", { class: "axis", x: left - 4, y: y(v) + 3, "text-anchor": "end" }, label(v, this.unit)));
    }
    const offset = this.window - this.points.length;
    this.names.forEach((_, i) => {
      let d = "";
      this.points.forEach((p, j) => {
        const v = p.values[i];
        if (v === null || v === undefined) return;
        d += `${d ? "L" : "M"}${x(offset + j).toFixed(1)},${y(v).toFixed(1)}`;
      });
      if (d) svg.append(s("path", { class: `series s${i}`, d }));
    });
    svg.append(s("text", { class: "axis", x: left, y: H - 3 }, `last ${this.window}s`));
  }
}

function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function label(v, unit) {
  const text = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${text}${unit}`;
}
