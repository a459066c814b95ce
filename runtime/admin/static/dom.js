// Tiny DOM helpers. Text always goes in as text nodes: nothing from the API is parsed as HTML.
const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key === "className" ? "class" : key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

// A table: columns are [heading, cell(row) -> node|text, "num"?]; `key(row)` names each row.
export function table(columns, rows, key, empty = "none") {
  const head = h("tr", {}, columns.map(([title, , cls]) => h("th", { class: cls }, title)));
  const body = rows.length
    ? rows.map((row) => h("tr", key(row), columns.map(([, cell, cls]) => h("td", { class: cls }, cell(row)))))
    : [h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty))];
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
}

export function fmt(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

export function health(up) {
  const word = up ? "up" : "down";
  return h("span", { class: "health", "data-health": word }, word);
}
