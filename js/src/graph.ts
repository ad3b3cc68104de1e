// The network graph: the anywidget front end of digits_widgets.ui.graph.GraphWidget.
// Layers are SVG boxes (class dw-graph-node, data-node-id), edges are paths with arrowheads; the wheel zooms
// around the pointer and a drag pans, both by changing the viewBox; a click shows the layer's details
// (and its activation statistics after inference) and syncs its id back to Python as `selected`.
import type { RenderProps } from "@anywidget/types";
import {
  type Direction, type GraphData, type GraphNode, type Layout, type NodeStats, LINE_HEIGHT, edgePath,
  layoutGraph, nodeLines, nodeSize, shapeText,
} from "./graph_layout";

interface GraphModel {
  graph: GraphData;
  direction: Direction;
  selected: string;
  stats: Record<string, NodeStats>;
  height: number;
}

interface View {
  x: number;
  y: number;
  w: number;
  h: number;
}

const SVG = "http://www.w3.org/2000/svg";
const MIN_SCALE = 0.6; // below this, text is unreadable: the first view then starts at the input instead
let instances = 0; // marker ids must differ between views of one page

const STYLE = `
.dw-graph{display:flex;flex-direction:column;font:12px sans-serif;color:var(--jp-ui-font-color1,#222)}
.dw-graph-bar{display:flex;gap:6px;align-items:center;margin-bottom:4px}
.dw-graph-bar button,.dw-graph-bar select{font:12px sans-serif}
.dw-graph-body{display:flex;gap:8px;min-height:0}
.dw-graph-svg{flex:1;min-width:0;border:1px solid var(--jp-border-color1,#ccc);border-radius:4px;
  background:var(--jp-layout-color1,#fff);cursor:grab;touch-action:none;user-select:none}
.dw-graph-svg.dw-dragging{cursor:grabbing}
.dw-graph-node{cursor:pointer}
.dw-graph-node rect{stroke-width:1.2}
.dw-graph-node text{fill:#222;font:11px sans-serif;pointer-events:none}
.dw-graph-node .dw-name{font-weight:bold}
.dw-graph-node .dw-stat-dot{display:none}
.dw-graph-node.dw-has-stats .dw-stat-dot{display:inline}
.dw-graph-node.dw-selected rect{stroke:#d9534f;stroke-width:3}
.dw-graph-node:focus{outline:none}
.dw-graph-node:focus rect{stroke-dasharray:3 2}
.dw-graph-edge{fill:none;stroke:#8a8a8a;stroke-width:1.3}
.dw-graph-edge.dw-active{stroke:#d9534f;stroke-width:2}
.dw-graph-details{width:260px;flex:none;overflow:auto;border:1px solid var(--jp-border-color1,#ccc);
  border-radius:4px;padding:6px 8px;background:var(--jp-layout-color1,#fff)}
.dw-graph-details table{border-collapse:collapse}
.dw-graph-details td{padding:1px 6px 1px 0;vertical-align:top}
.dw-graph-details pre{white-space:pre-wrap;word-break:break-word;font-size:11px;margin:4px 0;
  background:var(--jp-layout-color2,#f5f5f5);padding:4px}
`;

/** Box colours by what a layer does, after DIGITS' Caffe drawings: convolutions blue, pooling green... */
function palette(type: string): [string, string] {
  const t = type.toLowerCase();
  if (type === "Input") return ["#e6e6e6", "#555555"];
  if (t.includes("conv")) return ["#dbe9f6", "#337ab7"];
  if (t.includes("linear") || t.includes("embedding") || t === "lstm" || t === "gru") return ["#e8def3", "#7b4fa0"];
  if (t.includes("pool")) return ["#def0d8", "#3c763d"];
  if (/relu|sigmoid|tanh|softmax|gelu|elu|silu|mish|hardswish|prelu/.test(t)) return ["#fcf0d9", "#c77c02"];
  if (t.includes("norm") || t.includes("dropout")) return ["#eeeeee", "#777777"];
  return ["#fafafa", "#9a9a9a"]; // functional glue: cat, add, reshape...
}

function svgEl<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function html<K extends keyof HTMLElementTagNameMap>(tag: K, text = "", className = ""): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text) e.textContent = text;
  if (className) e.className = className;
  return e;
}

function fmt(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "n/a" : Number(v).toPrecision(4);
}

/** A 20-bin histogram as bars, with the value range underneath. */
function histogram(stats: NodeStats): SVGSVGElement {
  const w = 220;
  const h = 60;
  const svg = svgEl("svg", { width: w, height: h + 14, class: "dw-graph-hist" });
  const counts = stats.histogram ?? [];
  const top = Math.max(1, ...counts);
  const bw = counts.length ? w / counts.length : w;
  counts.forEach((c, i) => {
    const bh = (c / top) * h;
    svg.append(svgEl("rect", { x: i * bw + 0.5, y: h - bh, width: Math.max(1, bw - 1), height: bh, fill: "#337ab7" }));
  });
  const edges = stats.edges ?? [];
  if (edges.length >= 2) {
    const lo = svgEl("text", { x: 0, y: h + 11, "font-size": 10, fill: "currentColor" });
    lo.textContent = fmt(edges[0]);
    const hi = svgEl("text", { x: w, y: h + 11, "font-size": 10, "text-anchor": "end", fill: "currentColor" });
    hi.textContent = fmt(edges[edges.length - 1]);
    svg.append(lo, hi);
  }
  return svg;
}

function details(panel: HTMLElement, graph: GraphData, node: GraphNode | undefined, stats: NodeStats | undefined) {
  panel.replaceChildren();
  if (!node) {
    const total = graph.nodes.reduce((a, n) => a + (n.params || 0), 0);
    panel.append(html("div", `${graph.nodes.length} nodes, ${total.toLocaleString("en-US")} parameters.`),
      html("div", "Click a layer to see its details."));
    return;
  }
  panel.append(html("b", node.name));
  const table = html("table");
  const rows: [string, string][] = [["Type", node.type], ["Output shape", shapeText(node.shape) || "n/a"],
    ["Parameters", (node.params || 0).toLocaleString("en-US")]];
  if (stats) rows.push(["Mean", fmt(stats.mean)], ["Std", fmt(stats.std)]);
  for (const [k, v] of rows) {
    const tr = html("tr");
    tr.append(html("td", k), html("td", v));
    table.append(tr);
  }
  panel.append(table, html("pre", node.detail));
  if (stats) panel.append(html("div", "Activations"), histogram(stats));
}

function render({ model, el }: RenderProps<GraphModel>): () => void {
  const uid = `dw-graph-${++instances}`;
  const root = html("div", "", "dw-graph");
  const style = html("style", STYLE);
  const bar = html("div", "", "dw-graph-bar");
  const dir = html("select");
  for (const [v, label] of [["LR", "Left to right"], ["TB", "Top down"]]) {
    const o = html("option", label);
    o.value = v;
    dir.append(o);
  }
  const fitBtn = html("button", "Fit");
  const zoomIn = html("button", "+");
  const zoomOut = html("button", "−");
  fitBtn.title = "Show the whole network";
  bar.append(dir, fitBtn, zoomIn, zoomOut);
  const body = html("div", "", "dw-graph-body");
  const svg = svgEl("svg", { class: "dw-graph-svg", preserveAspectRatio: "xMidYMid meet" });
  const panel = html("div", "", "dw-graph-details");
  body.append(svg, panel);
  root.append(style, bar, body);
  el.append(root);

  let layout: Layout | null = null;
  let touched = false; // the user zoomed or panned: a resize must not take their view away
  let view: View = { x: 0, y: 0, w: 1, h: 1 };
  const groups = new Map<string, SVGGElement>();
  const paths: { el: SVGPathElement; source: string; target: string }[] = [];

  const setView = (v: View) => {
    view = v;
    svg.setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
  };
  const aspect = () => (svg.clientWidth > 0 && svg.clientHeight > 0 ? svg.clientHeight / svg.clientWidth : 0.6);

  /** The whole graph, or (when that would be unreadably small) its input end at a readable scale. */
  const fit = (whole: boolean) => {
    if (!layout) return;
    const a = aspect();
    const pxW = svg.clientWidth || 800;
    let w = Math.max(layout.width, layout.height / a, 1);
    if (!whole && pxW / w < MIN_SCALE) {
      w = pxW / MIN_SCALE;
      const h = w * a;
      const lr = model.get("direction") === "LR";
      setView(lr ? { x: 0, y: (layout.height - h) / 2, w, h } : { x: (layout.width - w) / 2, y: 0, w, h });
      return;
    }
    const h = w * a;
    setView({ x: (layout.width - w) / 2, y: (layout.height - h) / 2, w, h });
  };

  const zoomAt = (factor: number, cx: number, cy: number) => {
    touched = true;
    const w = Math.min(Math.max(view.w * factor, 40), 200000);
    const f = w / view.w;
    setView({ x: cx - (cx - view.x) * f, y: cy - (cy - view.y) * f, w, h: view.h * f });
  };
  const toSvg = (clientX: number, clientY: number): [number, number] => {
    const m = svg.getScreenCTM();
    if (!m) return [view.x + view.w / 2, view.y + view.h / 2];
    const p = new DOMPoint(clientX, clientY).matrixTransform(m.inverse());
    return [p.x, p.y];
  };

  const highlight = () => {
    const sel = model.get("selected");
    const stats = model.get("stats") ?? {};
    groups.forEach((g, id) => {
      g.classList.toggle("dw-selected", id === sel);
      g.classList.toggle("dw-has-stats", id in stats);
    });
    for (const p of paths) p.el.classList.toggle("dw-active", p.source === sel || p.target === sel);
    const graph = model.get("graph");
    const node = graph.nodes?.find((n) => n.id === sel);
    details(panel, graph, node, node ? (stats[node.id] ?? node.stats ?? undefined) : undefined);
  };
  const select = (id: string) => {
    model.set("selected", id);
    model.save_changes();
    highlight();
  };

  const draw = () => {
    const graph = model.get("graph") ?? { nodes: [], edges: [] };
    const direction = model.get("direction") === "TB" ? "TB" : "LR";
    dir.value = direction;
    const nodes = graph.nodes ?? [];
    layout = layoutGraph(nodes.map((n) => ({ id: n.id, ...nodeSize(n) })), graph.edges ?? [], { direction });
    svg.replaceChildren();
    groups.clear();
    paths.length = 0;
    const defs = svgEl("defs");
    const marker = svgEl("marker", { id: `${uid}-arrow`, viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(svgEl("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8a8a8a" }));
    defs.append(marker);
    svg.append(defs);
    const edgeLayer = svgEl("g");
    for (const e of layout.edges) {
      const p = svgEl("path", { class: "dw-graph-edge", d: edgePath(e.points, direction),
        "marker-end": `url(#${uid}-arrow)` });
      paths.push({ el: p, source: e.source, target: e.target });
      edgeLayer.append(p);
    }
    const nodeLayer = svgEl("g");
    for (const n of nodes) {
      const box = layout.nodes.get(n.id);
      if (!box || groups.has(n.id)) continue;
      const [fill, stroke] = palette(n.type);
      const g = svgEl("g", { class: "dw-graph-node", "data-node-id": n.id, tabindex: 0, role: "button",
        transform: `translate(${box.x},${box.y})` });
      const title = svgEl("title");
      title.textContent = `${n.name} (${n.type})`;
      g.append(title, svgEl("rect", { width: box.width, height: box.height, rx: 5, fill, stroke }),
        svgEl("circle", { class: "dw-stat-dot", cx: box.width - 7, cy: 7, r: 3.5, fill: "#337ab7" }));
      nodeLines(n).forEach((line, i) => {
        const t = svgEl("text", { x: box.width / 2, y: 6 + LINE_HEIGHT * (i + 0.8), "text-anchor": "middle",
          class: i === 0 ? "dw-name" : "" });
        t.textContent = line;
        g.append(t);
      });
      g.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          select(n.id);
        }
      });
      groups.set(n.id, g);
      nodeLayer.append(g);
    }
    svg.append(edgeLayer, nodeLayer);
    touched = false;
    fit(false);
    highlight();
  };

  // Pan by dragging anywhere; a press that does not move is a click (on a node: select it; elsewhere: clear).
  let press: { x: number; y: number; view: View; node: string | null; moved: boolean } | null = null;
  const onDown = (ev: PointerEvent) => {
    if (ev.button !== 0) return;
    const g = (ev.target as Element).closest?.(".dw-graph-node");
    press = { x: ev.clientX, y: ev.clientY, view, node: g?.getAttribute("data-node-id") ?? null, moved: false };
  };
  const onMove = (ev: PointerEvent) => {
    if (!press) return;
    const dx = ev.clientX - press.x;
    const dy = ev.clientY - press.y;
    if (!press.moved && Math.hypot(dx, dy) < 4) return;
    if (!press.moved) {
      press.moved = true;
      touched = true;
      svg.setPointerCapture?.(ev.pointerId);
      svg.classList.add("dw-dragging");
    }
    const rect = svg.getBoundingClientRect();
    const scale = Math.max(press.view.w / (rect.width || 1), press.view.h / (rect.height || 1));
    setView({ ...press.view, x: press.view.x - dx * scale, y: press.view.y - dy * scale });
  };
  const onUp = (ev: PointerEvent) => {
    if (!press) return;
    if (!press.moved) select(press.node ?? "");
    if (svg.hasPointerCapture?.(ev.pointerId)) svg.releasePointerCapture(ev.pointerId);
    svg.classList.remove("dw-dragging");
    press = null;
  };
  const onWheel = (ev: WheelEvent) => {
    ev.preventDefault();
    const [cx, cy] = toSvg(ev.clientX, ev.clientY);
    zoomAt(Math.exp(Math.max(-1, Math.min(1, ev.deltaY * 0.0015))), cx, cy);
  };
  svg.addEventListener("pointerdown", onDown);
  svg.addEventListener("pointermove", onMove);
  svg.addEventListener("pointerup", onUp);
  svg.addEventListener("pointercancel", onUp);
  svg.addEventListener("wheel", onWheel, { passive: false });
  fitBtn.addEventListener("click", () => {
    fit(true);
    touched = true;
  });
  zoomIn.addEventListener("click", () => zoomAt(1 / 1.25, view.x + view.w / 2, view.y + view.h / 2));
  zoomOut.addEventListener("click", () => zoomAt(1.25, view.x + view.w / 2, view.y + view.h / 2));
  dir.addEventListener("change", () => {
    model.set("direction", dir.value as Direction);
    model.save_changes();
  });

  const resize = () => (svg.style.height = `${Math.max(120, model.get("height") || 480)}px`);
  const onHeight = () => {
    resize();
    fit(false);
  };
  resize();
  draw();
  // The view may be attached after render: fit again once the SVG has a real size.
  const observer = typeof ResizeObserver === "undefined" ? null : new ResizeObserver(() => {
    if (!touched) fit(false);
  });
  observer?.observe(svg);
  model.on("change:graph", draw);
  model.on("change:direction", draw);
  model.on("change:selected", highlight);
  model.on("change:stats", highlight);
  model.on("change:height", onHeight);
  return () => {
    observer?.disconnect();
    model.off("change:graph", draw);
    model.off("change:direction", draw);
    model.off("change:selected", highlight);
    model.off("change:stats", highlight);
    model.off("change:height", onHeight);
  };
}

export default { render };
