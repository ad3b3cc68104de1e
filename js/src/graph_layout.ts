// Layered ("Sugiyama") layout of a network graph, and the label helpers that size its boxes. Pure functions,
// no DOM: unit-tested in js/test/graph_layout.test.ts and used by graph.ts to draw.
//
// Why hand-written: a network is a DAG from one input, a few hundred nodes at most (GoogLeNet ~150), so the
// classic steps are small: longest-path layering, dummy nodes on long edges (skip connections route around
// boxes), barycenter sweeps against crossings, and a simple "pull toward neighbours" placement that keeps
// chains straight. A layout library (dagre, elkjs) would be larger than everything else in the bundle.

export type Direction = "LR" | "TB";

export interface NodeStats {
  mean: number | null;
  std: number | null;
  histogram: number[];
  edges?: (number | null)[];
  shape?: number[];
}

/** A node of the JSON graph built by digits_widgets.ui.graph_trace.network_graph. */
export interface GraphNode {
  id: string;
  name: string;
  type: string;
  shape: number[] | null;
  params: number;
  detail: string;
  stats?: NodeStats | null;
}

export interface GraphEdge {
  source: string;
  target: string;
}

export interface GraphData {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export interface SizedNode {
  id: string;
  width: number;
  height: number;
}

/** A placed box: (x, y) is its top-left corner. */
export interface PlacedNode extends SizedNode {
  x: number;
  y: number;
  layer: number;
  order: number;
}

export interface RoutedEdge extends GraphEdge {
  points: [number, number][];
}

export interface Layout {
  nodes: Map<string, PlacedNode>;
  edges: RoutedEdge[];
  width: number;
  height: number;
  crossings: number;
}

export interface LayoutOptions {
  direction: Direction;
  layerGap?: number;
  nodeGap?: number;
  margin?: number;
}

/** A vertex of the layered graph: a real node, or a dummy that carries a long edge through a layer. */
interface Vertex {
  layer: number;
  cross: number; // extent across the flow (height in LR)
  flow: number; // extent along the flow (width in LR)
  dummy: boolean;
  preds: number[];
  succs: number[];
  pos: number; // centre on the cross axis
}

/** Edges that keep the graph acyclic: a depth-first search drops those that close a cycle. */
function acyclicEdges(ids: string[], edges: GraphEdge[]): GraphEdge[] {
  const out = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const e of edges) out.get(e.source)!.push(e.target);
  const state = new Map<string, number>(); // 1 = on the stack, 2 = done
  const back = new Set<string>();
  const visit = (id: string): void => {
    state.set(id, 1);
    for (const t of out.get(id)!) {
      if (state.get(t) === 1) back.add(`${id}\u0000${t}`);
      else if (!state.has(t)) visit(t);
    }
    state.set(id, 2);
  };
  for (const id of ids) if (!state.has(id)) visit(id);
  return edges.filter((e) => !back.has(`${e.source}\u0000${e.target}`));
}

/** Longest-path layering: every node one layer after its deepest predecessor; sources on layer 0. */
export function assignLayers(ids: string[], edges: GraphEdge[]): Map<string, number> {
  const preds = new Map<string, string[]>(ids.map((id) => [id, []]));
  const indeg = new Map<string, number>(ids.map((id) => [id, 0]));
  const succs = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const e of edges) {
    preds.get(e.target)!.push(e.source);
    succs.get(e.source)!.push(e.target);
    indeg.set(e.target, indeg.get(e.target)! + 1);
  }
  const layer = new Map<string, number>();
  const queue = ids.filter((id) => indeg.get(id) === 0);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i];
    layer.set(id, Math.max(0, ...preds.get(id)!.map((p) => layer.get(p)! + 1)));
    for (const t of succs.get(id)!) {
      indeg.set(t, indeg.get(t)! - 1);
      if (indeg.get(t) === 0) queue.push(t);
    }
  }
  return layer;
}

/** Edge crossings between consecutive layers for the given order (vertex index lists per layer). */
function crossings(layers: number[][], vertices: Vertex[]): number {
  let total = 0;
  for (let l = 0; l + 1 < layers.length; l++) {
    const index = new Map<number, number>();
    layers[l + 1].forEach((v, i) => index.set(v, i));
    const pairs: [number, number][] = [];
    layers[l].forEach((v, i) => vertices[v].succs.forEach((s) => pairs.push([i, index.get(s)!])));
    for (let a = 0; a < pairs.length; a++)
      for (let b = a + 1; b < pairs.length; b++)
        if ((pairs[a][0] - pairs[b][0]) * (pairs[a][1] - pairs[b][1]) < 0) total++;
  }
  return total;
}

/** Barycenter sweeps, down then up, keeping the order with the fewest crossings. */
function orderLayers(layers: number[][], vertices: Vertex[], sweeps = 8): number {
  let best = layers.map((l) => [...l]);
  let bestCount = crossings(layers, vertices);
  for (let s = 0; s < sweeps && bestCount > 0; s++) {
    const down = s % 2 === 0;
    const range = down ? layers.map((_, i) => i).slice(1) : layers.map((_, i) => i).slice(0, -1).reverse();
    for (const l of range) {
      const ref = new Map<number, number>();
      layers[down ? l - 1 : l + 1].forEach((v, i) => ref.set(v, i));
      const keyed = layers[l].map((v, i) => {
        const nbrs = down ? vertices[v].preds : vertices[v].succs;
        const key = nbrs.length ? nbrs.reduce((a, n) => a + ref.get(n)!, 0) / nbrs.length : i;
        return { v, key, i };
      });
      keyed.sort((a, b) => a.key - b.key || a.i - b.i);
      layers[l] = keyed.map((k) => k.v);
    }
    const count = crossings(layers, vertices);
    if (count < bestCount) {
      bestCount = count;
      best = layers.map((l) => [...l]);
    }
  }
  best.forEach((l, i) => (layers[i] = l));
  return bestCount;
}

/** Cross-axis centres: pack each layer, then pull nodes toward their neighbours without overlaps. */
function placeAcross(layers: number[][], vertices: Vertex[], gap: number): void {
  const sep = (a: Vertex, b: Vertex) => (a.cross + b.cross) / 2 + (a.dummy || b.dummy ? gap / 2 : gap);
  for (const layer of layers) {
    layer.forEach((v, i) => {
      vertices[v].pos = i === 0 ? 0 : vertices[layer[i - 1]].pos + sep(vertices[layer[i - 1]], vertices[v]);
    });
  }
  for (let pass = 0; pass < 6; pass++) {
    const down = pass % 2 === 0;
    const order = down ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const layer of order) {
      const desired = layer.map((v) => {
        const nbrs = down ? vertices[v].preds : vertices[v].succs;
        return nbrs.length ? nbrs.reduce((a, n) => a + vertices[n].pos, 0) / nbrs.length : vertices[v].pos;
      });
      // Push right where a box would overlap its left neighbour, then shift the whole layer back so that,
      // on average, boxes sit where their neighbours want them: separations are kept by the uniform shift.
      const pos = desired.slice();
      for (let i = 1; i < pos.length; i++)
        pos[i] = Math.max(pos[i], pos[i - 1] + sep(vertices[layer[i - 1]], vertices[layer[i]]));
      const shift = desired.reduce((a, d, i) => a + d - pos[i], 0) / pos.length;
      layer.forEach((v, i) => (vertices[v].pos = pos[i] + shift));
    }
  }
}

/** Lay out boxes of the given sizes; edges whose ends are unknown, or that loop, are ignored. */
export function layoutGraph(nodes: SizedNode[], edges: GraphEdge[], options: LayoutOptions): Layout {
  const lr = options.direction === "LR";
  // Top down, boxes are wide and short: a short arrow between layers reads as well and saves height.
  const { direction, layerGap = lr ? 40 : 20, nodeGap = lr ? 16 : 20, margin = 10 } = options;
  const ids = [...new Set(nodes.map((n) => n.id))];
  const known = new Set(ids);
  const seen = new Set<string>();
  const valid = edges.filter((e) => {
    const key = `${e.source}\u0000${e.target}`;
    const ok = known.has(e.source) && known.has(e.target) && e.source !== e.target && !seen.has(key);
    seen.add(key);
    return ok;
  });
  const dag = acyclicEdges(ids, valid);
  const layerOf = assignLayers(ids, dag);
  const size = new Map(nodes.map((n) => [n.id, n]));
  const index = new Map<string, number>();
  const vertices: Vertex[] = ids.map((id, i) => {
    index.set(id, i);
    const n = size.get(id)!;
    return { layer: layerOf.get(id)!, cross: lr ? n.height : n.width, flow: lr ? n.width : n.height,
      dummy: false, preds: [], succs: [], pos: 0 };
  });
  // Long edges become chains of dummies, one per layer crossed, so they bend around boxes.
  const chains: number[][] = dag.map((e) => {
    const chain = [index.get(e.source)!];
    for (let l = vertices[chain[0]].layer + 1; l < layerOf.get(e.target)!; l++) {
      vertices.push({ layer: l, cross: 0, flow: 0, dummy: true, preds: [], succs: [], pos: 0 });
      chain.push(vertices.length - 1);
    }
    chain.push(index.get(e.target)!);
    for (let i = 0; i + 1 < chain.length; i++) {
      vertices[chain[i]].succs.push(chain[i + 1]);
      vertices[chain[i + 1]].preds.push(chain[i]);
    }
    return chain;
  });
  const layerCount = Math.max(0, ...vertices.map((v) => v.layer + 1));
  const layers: number[][] = Array.from({ length: layerCount }, () => []);
  vertices.forEach((v, i) => layers[v.layer].push(i));
  const count = orderLayers(layers, vertices);
  placeAcross(layers, vertices, nodeGap);

  // Along the flow: each layer as thick as its thickest box.
  const thickness = layers.map((l) => Math.max(0, ...l.map((v) => vertices[v].flow)));
  const start: number[] = [];
  thickness.reduce((at, t, l) => ((start[l] = at), at + t + layerGap), margin);
  const low = Math.min(0, ...vertices.map((v) => v.pos - v.cross / 2));
  const centre = (v: number): [number, number] => {
    const flow = start[vertices[v].layer] + thickness[vertices[v].layer] / 2;
    const cross = vertices[v].pos - low + margin;
    return lr ? [flow, cross] : [cross, flow];
  };
  const placed = new Map<string, PlacedNode>();
  let width = 0;
  let height = 0;
  ids.forEach((id, i) => {
    const [cx, cy] = centre(i);
    const n = size.get(id)!;
    const order = layers[vertices[i].layer].indexOf(i);
    placed.set(id, { id, width: n.width, height: n.height, x: cx - n.width / 2, y: cy - n.height / 2,
      layer: vertices[i].layer, order });
    width = Math.max(width, cx + n.width / 2 + margin);
    height = Math.max(height, cy + n.height / 2 + margin);
  });
  const port = (id: string, out: boolean): [number, number] => {
    const p = placed.get(id)!;
    if (lr) return [out ? p.x + p.width : p.x, p.y + p.height / 2];
    return [p.x + p.width / 2, out ? p.y + p.height : p.y];
  };
  const routed: RoutedEdge[] = dag.map((e, k) => ({
    source: e.source,
    target: e.target,
    points: [port(e.source, true), ...chains[k].slice(1, -1).map(centre), port(e.target, false)],
  }));
  const dagKeys = new Set(dag.map((e) => `${e.source}\u0000${e.target}`));
  for (const e of valid) {
    if (!dagKeys.has(`${e.source}\u0000${e.target}`))
      routed.push({ source: e.source, target: e.target, points: [port(e.source, true), port(e.target, false)] });
  }
  return { nodes: placed, edges: routed, width, height, crossings: count };
}

/** An SVG path through the points: straight runs joined by curves that leave and enter along the flow. */
export function edgePath(points: [number, number][], direction: Direction): string {
  if (points.length === 0) return "";
  const r = (v: number) => Math.round(v * 10) / 10;
  let d = `M${r(points[0][0])},${r(points[0][1])}`;
  for (let i = 1; i < points.length; i++) {
    const [x0, y0] = points[i - 1];
    const [x1, y1] = points[i];
    const c1: [number, number] = direction === "LR" ? [(x0 + x1) / 2, y0] : [x0, (y0 + y1) / 2];
    const c2: [number, number] = direction === "LR" ? [(x0 + x1) / 2, y1] : [x1, (y0 + y1) / 2];
    d += ` C${r(c1[0])},${r(c1[1])} ${r(c2[0])},${r(c2[1])} ${r(x1)},${r(y1)}`;
  }
  return d;
}

/** "64×32×32" for an output shape without the batch; "scalar" for []; "" when unknown. */
export function shapeText(shape: number[] | null | undefined): string {
  if (!shape) return "";
  return shape.length ? shape.join("×") : "scalar";
}

/** 950 → "950", 25050 → "25k", 1234 → "1.2k", 5983802 → "6.0M": parameter counts that fit in a box. */
export function compactCount(n: number): string {
  const units: [number, string][] = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [scale, suffix] of units) {
    if (n >= scale) {
      const v = n / scale;
      return `${v < 10 ? v.toFixed(1) : Math.round(v)}${suffix}`;
    }
  }
  return `${n}`;
}

/** Keep the end of a long module path ("…inception_4e.branch3.1.0"): the leaf part says the most. Cut at a
 * dot when one is near, so the kept part starts with a whole path component. */
export function shortName(name: string, max = 26): string {
  if (name.length <= max) return name;
  const tail = name.slice(name.length - max + 1);
  const dot = tail.indexOf(".");
  return dot > 0 && dot < 8 ? `…${tail.slice(dot + 1)}` : `…${tail}`;
}

/** What a box says: its name (bold), its type when the name does not already say it, and "shape · params". */
export interface NodeLabel {
  name: string;
  type: string;
  info: string;
}

export function nodeLabel(node: GraphNode): NodeLabel {
  const parts = [shapeText(node.shape)];
  if (node.params > 0) parts.push(`${compactCount(node.params)} params`);
  const last = node.name.split(".").pop() ?? node.name;
  const same = (a: string) => a.toLowerCase() === node.type.toLowerCase();
  const type = same(last) || same(node.name) ? "" : node.type; // "relu" of type relu, "input" of type Input
  return { name: shortName(node.name), type, info: parts.filter(Boolean).join(" · ") };
}

/** The text lines of a box: "name type" and "shape · params" (the second only when known). */
export function nodeLines(node: GraphNode): string[] {
  const l = nodeLabel(node);
  return [l.type ? `${l.name} ${l.type}` : l.name, l.info].filter(Boolean);
}

/** Label text size in SVG units; at scale 1 it is this many pixels on screen. */
export const FONT_PX = 13;
export const LINE_HEIGHT = 16;
export const PAD_X = 8;
export const PAD_Y = 4;
const MIN_WIDTH = 64;
const MAX_WIDTH = 260;

/** Width in SVG units of a text at FONT_PX; graph.ts measures with a canvas, tests use the estimate. */
export type Measure = (text: string, bold: boolean) => number;
export const estimateWidth: Measure = (text, bold) => text.length * FONT_PX * (bold ? 0.62 : 0.56);

/** A box just big enough for its two lines (name and type; shape and parameters). */
export function nodeSize(node: GraphNode, measure: Measure = estimateWidth): { width: number; height: number } {
  const l = nodeLabel(node);
  const first = measure(l.name, true) + (l.type ? measure(` ${l.type}`, false) : 0);
  const longest = Math.max(first, l.info ? measure(l.info, false) : 0);
  return {
    width: Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, Math.ceil(longest + 2 * PAD_X))),
    height: 2 * LINE_HEIGHT + 2 * PAD_Y,
  };
}

// ---------------------------------------------------------------- the first view

/** Labels are never drawn below this many pixels on screen when the graph is first shown (11 px, plus a
 * hair so rounding cannot take it under). */
export const READABLE_PX = 11.2;
export const MIN_READABLE_SCALE = READABLE_PX / FONT_PX;
const MAX_FIRST_SCALE = 1.25; // a three-box network is not blown up to poster size

export interface Fitted {
  direction: Direction;
  scale: number;
  /** true: the whole network is inside the view; false: it is shown readable and the view scrolls. */
  whole: boolean;
}

/** The largest scale at which a drawing of ``width`` x ``height`` fits a view ``viewWidth`` wide and at
 * most ``maxHeight`` tall. */
export function fitScale(width: number, height: number, viewWidth: number, maxHeight: number): number {
  return Math.min(viewWidth / Math.max(width, 1), maxHeight / Math.max(height, 1));
}

/**
 * The first view of a graph, as a person expects it in a notebook: the whole network, as large as fits
 * (up to 1.25x), in the view's width and up to ``maxHeight`` tall; the view is then as tall as the drawing.
 * When the whole network only fits with labels under READABLE_PX (a very deep network), readability wins: it
 * is shown at the smallest readable scale from its input end, and the view scrolls to the rest ("Fit" still
 * shows it whole, small). ``direction`` "auto" takes the direction that fits at the larger scale (left to
 * right on a tie, as it is the shorter view; top down when neither fits readable, since a notebook scrolls
 * down more naturally than sideways).
 */
export function firstView(layouts: Partial<Record<Direction, { width: number; height: number }>>,
  viewWidth: number, maxHeight: number): Fitted {
  const options = (["LR", "TB"] as Direction[]).filter((d) => layouts[d]);
  const scales = options.map((d) => fitScale(layouts[d]!.width, layouts[d]!.height, viewWidth, maxHeight));
  let pick = 0;
  if (options.length === 2) {
    const [lr, tb] = scales;
    if (Math.max(lr, tb) < MIN_READABLE_SCALE) pick = 1;
    else pick = tb > lr * 1.001 && lr < MAX_FIRST_SCALE ? 1 : 0;
  }
  const fit = scales[pick];
  const whole = fit >= MIN_READABLE_SCALE;
  return { direction: options[pick], scale: whole ? Math.min(fit, MAX_FIRST_SCALE) : MIN_READABLE_SCALE, whole };
}
