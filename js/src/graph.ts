// The network graph: the anywidget front end of digits_widgets.ui.graph.GraphWidget.
// Layers are SVG boxes (class dw-graph-node, data-node-id), edges are paths with arrowheads. The drawing sits
// in a scrolling view: it first shows fitted to the view with readable labels (graph_layout.firstView), the
// wheel scrolls as everywhere in a notebook, Ctrl+wheel (a pinch) and the +/- buttons zoom, a drag pans, Fit
// shows the whole network however small. A click shows the layer's details (and its activation statistics
// after inference) and syncs its id back to Python as `selected`.
import type { RenderProps } from "@anywidget/types";
import {
  type Direction, type GraphData, type GraphNode, type Layout, type Measure, type NodeStats, FONT_PX,
  LINE_HEIGHT, PAD_Y, edgePath, firstView, fitScale, layoutGraph, nodeLabel, nodeSize, shapeText,
} from "./graph_layout";

type DirectionChoice = Direction | "auto";

interface GraphModel {
  graph: GraphData;
  direction: DirectionChoice;
  selected: string;
  stats: Record<string, NodeStats>;
  height: number;
}

const SVG = "http://www.w3.org/2000/svg";
const MIN_SCALE = 0.05;
const MAX_SCALE = 4;
let instances = 0; // marker ids must differ between views of one page

const STYLE = `
.dw-graph{display:flex;flex-direction:column;font:12px sans-serif;color:var(--jp-ui-font-color1,#222)}
.dw-graph-bar{display:flex;gap:6px;align-items:center;margin-bottom:4px}
.dw-graph-bar button,.dw-graph-bar select{font:12px sans-serif}
.dw-graph-zoom{color:var(--jp-ui-font-color2,#666);min-width:3.5em}
.dw-graph-body{display:flex;gap:8px;min-height:0;align-items:flex-start}
.dw-graph-view{flex:0 1 auto;min-width:0;overflow:auto;scrollbar-gutter:stable;
  border:1px solid var(--jp-border-color1,#ccc);border-radius:4px;background:var(--jp-layout-color1,#fff);
  cursor:grab;user-select:none}
.dw-graph-view.dw-dragging{cursor:grabbing}
.dw-graph-svg{display:block;margin:0 auto}
.dw-graph-node{cursor:pointer}
.dw-graph-node rect{stroke-width:1.2}
.dw-graph-node text{fill:#222;font:${FONT_PX}px sans-serif;pointer-events:none}
.dw-graph-node .dw-name{font-weight:bold}
.dw-graph-node .dw-type{fill:#555}
.dw-graph-node .dw-stat-dot{display:none}
.dw-graph-node.dw-has-stats .dw-stat-dot{display:inline}
.dw-graph-node.dw-selected rect{stroke:#d9534f;stroke-width:3}
.dw-graph-node:focus{outline:none}
.dw-graph-node:focus rect{stroke-dasharray:3 2}
.dw-graph-edge{fill:none;stroke:#8a8a8a;stroke-width:1.3}
.dw-graph-edge.dw-active{stroke:#d9534f;stroke-width:2}
.dw-graph-details{width:240px;flex:none;max-height:inherit;overflow:auto;
  border:1px solid var(--jp-border-color1,#ccc);border-radius:4px;padding:6px 8px;
  background:var(--jp-layout-color1,#fff);box-sizing:border-box}
.dw-graph-details table{border-collapse:collapse}
.dw-graph-details td{padding:1px 6px 1px 0;vertical-align:top}
.dw-graph-details pre{white-space:pre-wrap;word-break:break-word;font-size:11px;margin:4px 0;
  background:var(--jp-layout-color2,#f5f5f5);padding:4px}
`;

/** Text widths as the browser draws them (a canvas with the labels' font), so boxes fit their labels. */
function canvasMeasure(): Measure {
  const ctx = document.createElement("canvas").getContext("2d");
  const cache = new Map<string, number>();
  return (text, bold) => {
    const key = `${bold ? "b" : "n"}${text}`;
    let w = cache.get(key);
    if (w === undefined) {
      if (ctx) {
        ctx.font = `${bold ? "bold " : ""}${FONT_PX}px sans-serif`;
        w = ctx.measureText(text).width;
      } else {
        w = text.length * FONT_PX * (bold ? 0.62 : 0.56);
      }
      cache.set(key, w);
    }
    return w;
  };
}

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
  for (const [v, label] of [["auto", "Auto"], ["LR", "Left to right"], ["TB", "Top down"]]) {
    const o = html("option", label);
    o.value = v;
    dir.append(o);
  }
  dir.title = "Auto: the direction that shows the network larger";
  const fitBtn = html("button", "Fit");
  const zoomIn = html("button", "+");
  const zoomOut = html("button", "−");
  const zoomText = html("span", "", "dw-graph-zoom");
  fitBtn.title = "Show the whole network";
  zoomIn.title = zoomOut.title = "Zoom (or Ctrl + wheel)";
  bar.append(dir, fitBtn, zoomIn, zoomOut, zoomText);
  const body = html("div", "", "dw-graph-body");
  const view = html("div", "", "dw-graph-view");
  const svg = svgEl("svg", { class: "dw-graph-svg" });
  const panel = html("div", "", "dw-graph-details");
  view.append(svg);
  body.append(view, panel);
  root.append(style, bar, body);
  el.append(root);

  const measure = canvasMeasure();
  let layout: Layout | null = null;
  let scale = 1;
  let touched = false; // the user zoomed, panned or pressed Fit: a resize must not take their view away
  let fittedWidth = 0; // the view width the first view was fitted to
  const groups = new Map<string, SVGGElement>();
  const paths: { el: SVGPathElement; source: string; target: string }[] = [];

  const maxHeight = () => Math.max(120, model.get("height") || 720);
  /** The width the drawing can have: the body less the details panel, the gap, the view's borders and its
   * scrollbar gutter (always reserved, so this does not change when a scrollbar comes or goes). The view is
   * only as wide as the drawing, so the details sit right beside it. */
  const viewWidth = () => {
    const frame = view.offsetWidth - view.clientWidth;
    const free = body.clientWidth - panel.offsetWidth - 8 - frame;
    return free > 0 ? free : Math.max(200, (el.clientWidth || 900) - 260);
  };

  const setScale = (s: number) => {
    if (!layout) return;
    scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, s));
    svg.setAttribute("width", String(Math.max(1, Math.floor(layout.width * scale))));
    svg.setAttribute("height", String(Math.max(1, Math.floor(layout.height * scale))));
    zoomText.textContent = `${Math.round(scale * 100)}%`;
  };

  /** Zoom keeping the drawing's point under (px, py), in the view's pixels, where it is. */
  const zoomAt = (factor: number, px: number, py: number) => {
    touched = true;
    // the drawing is centred (margin auto) while narrower than the view
    const left = () => Math.max(0, (view.clientWidth - (layout?.width ?? 0) * scale) / 2);
    const x = (view.scrollLeft + px - left()) / scale;
    const y = (view.scrollTop + py) / scale;
    setScale(scale * factor);
    view.scrollLeft = x * scale + left() - px;
    view.scrollTop = y * scale - py;
  };
  const zoomCentre = (factor: number) => zoomAt(factor, view.clientWidth / 2, view.clientHeight / 2);

  const fitWhole = () => {
    if (!layout) return;
    touched = true;
    setScale(fitScale(layout.width, layout.height, viewWidth(), maxHeight()));
    view.scrollLeft = view.scrollTop = 0;
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

  const nodeGroup = (n: GraphNode, box: { x: number; y: number; width: number; height: number }) => {
    const [fill, stroke] = palette(n.type);
    const g = svgEl("g", { class: "dw-graph-node", "data-node-id": n.id, tabindex: 0, role: "button",
      transform: `translate(${box.x},${box.y})` });
    const title = svgEl("title");
    title.textContent = `${n.name} (${n.type})`;
    g.append(title, svgEl("rect", { width: box.width, height: box.height, rx: 5, fill, stroke }),
      svgEl("circle", { class: "dw-stat-dot", cx: box.width - 6, cy: 6, r: 3.5, fill: "#337ab7" }));
    const label = nodeLabel(n);
    const baseline = (i: number) => PAD_Y + LINE_HEIGHT * i + (LINE_HEIGHT + FONT_PX * 0.7) / 2;
    const first = svgEl("text", { x: box.width / 2, y: baseline(0), "text-anchor": "middle" });
    const name = svgEl("tspan", { class: "dw-name" });
    name.textContent = label.name;
    first.append(name);
    if (label.type) {
      const type = svgEl("tspan", { class: "dw-type" });
      type.textContent = ` ${label.type}`;
      first.append(type);
    }
    g.append(first);
    if (label.info) {
      const info = svgEl("text", { x: box.width / 2, y: baseline(1), "text-anchor": "middle" });
      info.textContent = label.info;
      g.append(info);
    }
    g.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        select(n.id);
      }
    });
    return g;
  };

  /** Lay out (in the chosen direction, or the one that fits best), draw, and show the first view. */
  const draw = () => {
    const graph = model.get("graph") ?? { nodes: [], edges: [] };
    const choice: DirectionChoice = model.get("direction") ?? "auto";
    dir.value = choice;
    const nodes = graph.nodes ?? [];
    const sized = nodes.map((n) => ({ id: n.id, ...nodeSize(n, measure) }));
    const wanted: Direction[] = choice === "auto" ? ["LR", "TB"] : [choice];
    const layouts: Partial<Record<Direction, Layout>> = {};
    for (const d of wanted) layouts[d] = layoutGraph(sized, graph.edges ?? [], { direction: d });
    const width = viewWidth();
    const first = firstView(layouts, width, maxHeight());
    const direction = first.direction;
    layout = layouts[direction]!;
    dir.title = choice === "auto" ? `Auto: ${direction === "LR" ? "left to right" : "top down"} fits best` : "";
    svg.replaceChildren();
    groups.clear();
    paths.length = 0;
    svg.setAttribute("viewBox", `0 0 ${layout.width} ${layout.height}`);
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
      const g = nodeGroup(n, box);
      groups.set(n.id, g);
      nodeLayer.append(g);
    }
    svg.append(edgeLayer, nodeLayer);
    touched = false;
    fittedWidth = body.clientWidth;
    setScale(first.scale);
    view.scrollLeft = view.scrollTop = 0; // the input end first
    highlight();
  };

  // Pan by dragging anywhere; a press that does not move is a click (on a node: select it; elsewhere: clear).
  let press: { x: number; y: number; left: number; top: number; node: string | null; moved: boolean } | null = null;
  const onDown = (ev: PointerEvent) => {
    if (ev.button !== 0) return;
    const g = (ev.target as Element).closest?.(".dw-graph-node");
    press = { x: ev.clientX, y: ev.clientY, left: view.scrollLeft, top: view.scrollTop,
      node: g?.getAttribute("data-node-id") ?? null, moved: false };
  };
  const onMove = (ev: PointerEvent) => {
    if (!press) return;
    const dx = ev.clientX - press.x;
    const dy = ev.clientY - press.y;
    if (!press.moved && Math.hypot(dx, dy) < 4) return;
    if (!press.moved) {
      press.moved = true;
      touched = true;
      view.setPointerCapture?.(ev.pointerId);
      view.classList.add("dw-dragging");
    }
    view.scrollLeft = press.left - dx;
    view.scrollTop = press.top - dy;
  };
  const onUp = (ev: PointerEvent) => {
    if (!press) return;
    if (!press.moved) select(press.node ?? "");
    if (view.hasPointerCapture?.(ev.pointerId)) view.releasePointerCapture(ev.pointerId);
    view.classList.remove("dw-dragging");
    press = null;
  };
  // The plain wheel scrolls (the view, then the notebook, as a person expects); Ctrl + wheel zooms.
  const onWheel = (ev: WheelEvent) => {
    if (!ev.ctrlKey && !ev.metaKey) return;
    ev.preventDefault();
    const r = view.getBoundingClientRect();
    zoomAt(Math.exp(-Math.max(-1, Math.min(1, ev.deltaY * 0.0015))), ev.clientX - r.left - view.clientLeft,
      ev.clientY - r.top - view.clientTop);
  };
  view.addEventListener("pointerdown", onDown);
  view.addEventListener("pointermove", onMove);
  view.addEventListener("pointerup", onUp);
  view.addEventListener("pointercancel", onUp);
  view.addEventListener("wheel", onWheel, { passive: false });
  fitBtn.addEventListener("click", fitWhole);
  zoomIn.addEventListener("click", () => zoomCentre(1.25));
  zoomOut.addEventListener("click", () => zoomCentre(1 / 1.25));
  dir.addEventListener("change", () => {
    model.set("direction", dir.value as DirectionChoice);
    model.save_changes();
  });

  const resize = () => {
    view.style.maxHeight = `${maxHeight()}px`;
    body.style.maxHeight = `${maxHeight()}px`;
  };
  const onHeight = () => {
    resize();
    draw();
  };
  resize();
  draw();
  // The view may be attached after render, or the notebook resized: fit again to a new width, unless the
  // user has set a view of their own. Height changes (the view follows the drawing) are not a reason.
  const observer = typeof ResizeObserver === "undefined" ? null : new ResizeObserver(() => {
    if (!touched && body.clientWidth > 0 && Math.abs(body.clientWidth - fittedWidth) > 1) draw();
  });
  observer?.observe(body);
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
