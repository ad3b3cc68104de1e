import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type GraphEdge, type GraphNode, type Layout, type PlacedNode, FONT_PX, MIN_READABLE_SCALE, READABLE_PX,
  assignLayers, compactCount, edgePath, estimateWidth, firstView, fitScale, layoutGraph, nodeLabel, nodeLines,
  nodeSize, shapeText, shortName,
} from "../src/graph_layout";

const box = (id: string) => ({ id, width: 100, height: 40 });
const edge = (source: string, target: string): GraphEdge => ({ source, target });

function overlap(a: PlacedNode, b: PlacedNode): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

function assertNoOverlaps(layout: Layout): void {
  const nodes = [...layout.nodes.values()];
  for (let i = 0; i < nodes.length; i++)
    for (let j = i + 1; j < nodes.length; j++)
      assert.ok(!overlap(nodes[i], nodes[j]), `${nodes[i].id} overlaps ${nodes[j].id}`);
  for (const n of nodes) {
    assert.ok(n.x >= 0 && n.y >= 0, `${n.id} inside the drawing`);
    assert.ok(n.x + n.width <= layout.width && n.y + n.height <= layout.height, `${n.id} inside the drawing`);
  }
}

const centreY = (n: PlacedNode) => n.y + n.height / 2;
const centreX = (n: PlacedNode) => n.x + n.width / 2;

test("a chain runs left to right on one straight line (LR)", () => {
  const ids = ["input", "conv", "relu", "fc"];
  const layout = layoutGraph(ids.map(box), [edge("input", "conv"), edge("conv", "relu"), edge("relu", "fc")],
    { direction: "LR" });
  const nodes = ids.map((id) => layout.nodes.get(id)!);
  nodes.slice(1).forEach((n, i) => {
    assert.ok(n.x >= nodes[i].x + nodes[i].width, `${n.id} right of ${nodes[i].id}`);
    assert.equal(centreY(n), centreY(nodes[0]));
  });
  assert.deepEqual(nodes.map((n) => n.layer), [0, 1, 2, 3]);
  assertNoOverlaps(layout);
});

test("a chain runs top down in TB", () => {
  const layout = layoutGraph(["a", "b", "c"].map(box), [edge("a", "b"), edge("b", "c")], { direction: "TB" });
  const [a, b, c] = ["a", "b", "c"].map((id) => layout.nodes.get(id)!);
  assert.ok(a.y + a.height <= b.y && b.y + b.height <= c.y);
  assert.equal(centreX(a), centreX(c));
});

test("a diamond puts its branches side by side, between the fork and the join", () => {
  const edges = [edge("a", "b"), edge("a", "c"), edge("b", "d"), edge("c", "d")];
  const layout = layoutGraph(["a", "b", "c", "d"].map(box), edges, { direction: "LR" });
  const [a, b, c, d] = ["a", "b", "c", "d"].map((id) => layout.nodes.get(id)!);
  assert.deepEqual([a.layer, b.layer, c.layer, d.layer], [0, 1, 1, 2]);
  assert.equal(b.x, c.x);
  assert.notEqual(b.y, c.y);
  assert.ok(a.x + a.width <= b.x && b.x + b.width <= d.x);
  // The fork and the join sit between their branches.
  assert.ok(Math.min(centreY(b), centreY(c)) <= centreY(a) && centreY(a) <= Math.max(centreY(b), centreY(c)));
  assert.equal(layout.crossings, 0);
  assertNoOverlaps(layout);
  assert.equal(layout.edges.length, 4);
});

test("a skip connection goes around the boxes it spans (residual block)", () => {
  const edges = [edge("x", "conv1"), edge("conv1", "relu"), edge("relu", "conv2"), edge("conv2", "add"),
    edge("x", "add")];
  const layout = layoutGraph(["x", "conv1", "relu", "conv2", "add"].map(box), edges, { direction: "LR" });
  assert.equal(layout.nodes.get("add")!.layer, 4);
  const skip = layout.edges.find((e) => e.source === "x" && e.target === "add")!;
  assert.equal(skip.points.length, 2 + 3); // ports plus one bend per layer crossed
  for (const [px, py] of skip.points.slice(1, -1)) {
    for (const n of layout.nodes.values()) {
      const inside = px > n.x && px < n.x + n.width && py > n.y && py < n.y + n.height;
      assert.ok(!inside, `the skip edge passes through ${n.id}`);
    }
  }
  assertNoOverlaps(layout);
});

test("barycenter ordering removes a crossing the input order has", () => {
  // Layer 1 listed as (c, d) but wired a→d, b→c: reordering to (d, c) uncrosses it.
  const edges = [edge("a", "d"), edge("b", "c"), edge("c", "e"), edge("d", "e")];
  const layout = layoutGraph(["a", "b", "c", "d", "e"].map(box), edges, { direction: "TB" });
  assert.equal(layout.crossings, 0);
  assertNoOverlaps(layout);
});

test("layering ignores unknown ends and survives a cycle", () => {
  const layers = assignLayers(["a", "b", "c"], [edge("a", "b"), edge("b", "c"), edge("a", "c")]);
  assert.deepEqual([...layers.entries()], [["a", 0], ["b", 1], ["c", 2]]);
  const layout = layoutGraph(["a", "b"].map(box), [edge("a", "b"), edge("b", "a"), edge("a", "zz"), edge("a", "a")],
    { direction: "LR" });
  assert.equal(layout.nodes.size, 2);
  assert.equal(layout.edges.length, 2);
  assertNoOverlaps(layout);
});

test("edgePath starts and ends at the given points", () => {
  const d = edgePath([[0, 0], [50, 20], [100, 20]], "LR");
  assert.match(d, /^M0,0 C25,0 25,20 50,20 C75,20 75,20 100,20$/);
  assert.equal(edgePath([], "TB"), "");
});

test("labels: shapes, parameter counts and long names", () => {
  assert.equal(shapeText([64, 32, 32]), "64×32×32");
  assert.equal(shapeText([]), "scalar");
  assert.equal(shapeText(null), "");
  assert.equal(compactCount(950), "950");
  assert.equal(compactCount(1234), "1.2k");
  assert.equal(compactCount(25050), "25k");
  assert.equal(compactCount(5983802), "6.0M");
  const short = shortName("features.inception_4e.branch3.1.0", 20);
  assert.ok(short.length <= 20);
  assert.equal(short, "…branch3.1.0", "cut at a dot: the kept part starts with a whole component");
  assert.equal(shortName("a_very_long_module_name_without_dots", 12), "…ithout_dots");
  assert.equal(shortName("conv1"), "conv1");
  const node = { id: "c", name: "conv1", type: "Conv2d", shape: [20, 24, 24], params: 520, detail: "" };
  assert.deepEqual(nodeLines(node), ["conv1 Conv2d", "20×24×24 · 520 params"]);
  // a type that only repeats the name is not said twice
  assert.deepEqual(nodeLabel({ ...node, name: "features.relu", type: "relu", params: 0 }),
    { name: "features.relu", type: "", info: "20×24×24" });
  assert.equal(nodeLabel({ ...node, name: "input", type: "Input" }).type, "");
  const size = nodeSize(node);
  assert.ok(size.width >= estimateWidth("20×24×24 · 520 params", false) && size.width <= 260 && size.height > 0);
});

const node = (name: string, type: string): GraphNode =>
  ({ id: name, name, type, shape: [64, 32, 32], params: 1234, detail: "" });

test("boxes are as wide as the measured labels", () => {
  const wide = nodeSize(node("conv1", "Conv2d"), (t) => t.length * 20);
  const narrow = nodeSize(node("conv1", "Conv2d"), (t) => t.length * 5);
  assert.ok(wide.width > narrow.width);
  assert.ok(narrow.width >= 5 * "64×32×32 · 1.2k params".length, "the longer line decides");
  assert.equal(wide.width, 260, "capped");
  assert.equal(wide.height, narrow.height);
});

/** A chain of n boxes, as LeNet-like networks are. */
function chain(n: number, direction: "LR" | "TB"): Layout {
  const nodes = Array.from({ length: n }, (_, i) => node(`layer${i}`, "Conv2d"));
  const edges = nodes.slice(1).map((m, i) => edge(nodes[i].id, m.id));
  return layoutGraph(nodes.map((m) => ({ id: m.id, ...nodeSize(m) })), edges, { direction });
}

test("first view: a LeNet-sized chain shows whole and readable top down in a notebook-wide view", () => {
  const layouts = { LR: chain(13, "LR"), TB: chain(13, "TB") };
  const v = firstView(layouts, 660, 720);
  assert.equal(v.direction, "TB");
  assert.ok(v.whole);
  assert.ok(v.scale * FONT_PX >= READABLE_PX, `labels ${v.scale * FONT_PX} px`);
  const t = layouts.TB;
  assert.ok(t.width * v.scale <= 660 && t.height * v.scale <= 720, "every node inside the view");
  assert.ok(Math.max(t.width * v.scale / 660, t.height * v.scale / 720) > 0.99, "as large as fits");
});

test("first view: a short network goes left to right when that fits as large, and is not blown up", () => {
  const layouts = { LR: chain(3, "LR"), TB: chain(3, "TB") };
  const v = firstView(layouts, 1200, 720);
  assert.equal(v.direction, "LR");
  assert.ok(v.whole && v.scale <= 1.25);
  assert.equal(firstView({ TB: layouts.TB }, 1200, 720).direction, "TB", "a chosen direction is kept");
});

test("first view: a very deep network stays readable and scrolls instead of shrinking", () => {
  const layouts = { LR: chain(150, "LR"), TB: chain(150, "TB") };
  const v = firstView(layouts, 660, 720);
  assert.equal(v.direction, "TB", "a notebook scrolls down more naturally than sideways");
  assert.ok(!v.whole);
  assert.equal(v.scale, MIN_READABLE_SCALE);
  assert.ok(fitScale(layouts.TB.width, layouts.TB.height, 660, 720) < MIN_READABLE_SCALE);
  assert.ok(MIN_READABLE_SCALE * FONT_PX >= 11);
});
