// Plots: the demo's charts (score vs KV with its crowded low-KV corner, loss curves, perplexity by
// position) and the training curves render to SVG with every text inside the canvas and no two
// texts overlapping; the checker itself catches overlaps and clipping on hand-made SVGs.
import t from "tap";
import { linePanelsSpec, labelProblems, perplexityByPositionSpec, placeLabels, renderSvg, scatterSpec, svgTextBoxes } from "../src/index.js";

const demoPoints = [
  { x: 1, y: 0.4125, label: "teacher", group: "teacher" },
  { x: 17 / 32, y: 0.4071, label: "53.1%", group: "SVD init (X-EcoMLA)" },
  { x: 9 / 32, y: 0.4052, label: "28.1%", group: "SVD init (X-EcoMLA)" },
  { x: 5 / 32, y: 0.3983, label: "15.6%", group: "SVD init (X-EcoMLA)" },
  { x: 3 / 32, y: 0.3979, label: "9.4%", group: "SVD init (X-EcoMLA)" },
  { x: 5 / 32, y: 0.3861, label: "15.6% random", group: "random init" },
];

t.test("the checker finds overlaps, clipping, rotated and nested texts", async (t) => {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100"><g transform="translate(10,10)">` +
    `<text text-anchor="start" transform="translate(0,20)" font-size="10px">15.6%</text>` +
    `<text text-anchor="start" transform="translate(10,22)" font-size="10px">9.4%</text>` +
    `<text text-anchor="middle" transform="translate(185,50)" font-size="10px">teacher</text>` +
    `<text text-anchor="middle" transform="translate(5,60) rotate(-90) translate(0,-2)" font-size="10px">score</text>` +
    `<text opacity="0" transform="translate(0,20)" font-size="10px">hidden</text></g></svg>`;
  const { boxes } = svgTextBoxes(svg);
  t.same(boxes.map((b) => b.text), ["15.6%", "9.4%", "teacher", "score"], "hidden texts are not drawn");
  t.same({ ...boxes[0], y0: +boxes[0]!.y0.toFixed(6), y1: +boxes[0]!.y1.toFixed(6) }, { text: "15.6%", x0: 10, x1: 50, y0: 22.1, y1: 32.1 }, "box of a start-anchored text: 0.8 em per character, ascent 0.79 em");
  const rotated = boxes[3]!;
  t.same([rotated.x0, rotated.x1, rotated.y0, rotated.y1].map((v) => +v.toFixed(6)), [15 - 7.9 - 2, 15 + 2.1 - 2, 70 - 20, 70 + 20].map((v) => +v.toFixed(6)), "rotate(-90): the box stands upright");
  const problems = labelProblems(svg);
  t.equal(problems.length, 2, problems.join("\n"));
  t.match(problems.join("\n"), /"teacher" .* leaves the 200×100 canvas/);
  t.match(problems.join("\n"), /"15\.6%" .* overlaps "9\.4%"/);
});

t.test("placeLabels keeps labels inside, off the markers and apart", async (t) => {
  const pts = [{ x: 90, y: 50, text: "15.6%" }, { x: 80, y: 51, text: "9.4%" }, { x: 398, y: 5, text: "teacher" }];
  const placed = placeLabels(pts, 400, 300);
  t.ok(placed.every((p) => p !== null));
  const boxes = placed.map((p) => p!.box);
  for (const b of boxes) t.ok(b.x0 >= 0 && b.y0 >= 0 && b.x1 <= 400 && b.y1 <= 300, `inside: ${JSON.stringify(b)}`);
  t.notOk(boxes[0]!.x0 < boxes[1]!.x1 && boxes[1]!.x0 < boxes[0]!.x1 && boxes[0]!.y0 < boxes[1]!.y1 && boxes[1]!.y0 < boxes[0]!.y1, "15.6% and 9.4% apart");
  t.equal(placed[2]!.align, "right", "a label at the right edge goes to the left of its point");
});

t.test("the demo's plots: no label overlaps or leaves the canvas", async (t) => {
  const score = await renderSvg(scatterSpec({ title: "Average score vs KV-cache size (tiny-llama, X-EcoMLA)", xTitle: "KV cache, fraction of the teacher's", yTitle: "average score (acc_norm / acc)", xFormat: ".0%", points: demoPoints, lineGroups: ["teacher", "SVD init (X-EcoMLA)"] }));
  t.same(labelProblems(score), []);
  const texts = svgTextBoxes(score).boxes.map((b) => b.text);
  for (const l of demoPoints.map((p) => p.label)) t.ok(texts.includes(l), `label "${l}" drawn`);
  t.ok(texts.includes("random init") && texts.includes("SVD init (X-EcoMLA)"), "groups in the legend");

  const steps = (scale: number) => Array.from({ length: 50 }, (_, i) => [i + 1, scale * Math.exp(-i / 12) + 0.3] as const);
  const loss = await renderSvg(linePanelsSpec({ title: "Distillation loss (forward KL) per step", xTitle: "optimizer step", panels: [{ yTitle: "training loss (forward KL)", series: ["mla-53.1%", "mla-28.1%", "mla-15.6%", "mla-9.4%", "random-15.6%"].map((name, k) => ({ name, points: steps(1 + k) })) }] }));
  t.same(labelProblems(loss), []);

  const ppl = await renderSvg(perplexityByPositionSpec({ models: ["teacher", "mla-15.6%", "random-15.6%"].map((name, k) => ({ name, perplexity: Array.from({ length: 128 }, (_, i) => (40 + 30 * k) / Math.log(i + 3)) })) }));
  t.same(labelProblems(ppl), []);
  t.match(ppl, /perplexity/);
});

t.test("training curves: two panels, an empty one says so; still no overlaps", async (t) => {
  const svg = await renderSvg(linePanelsSpec({
    title: "ecomla distill: runs/a-rather-long-output-directory-name/student", xTitle: "optimizer step",
    panels: [
      { yTitle: "loss", series: [{ name: "train loss", points: [[1, 3.1], [2, 2.5], [3, 2.2]] }, { name: "validation loss", points: [[3, 2.4]] }] },
      { yTitle: "KL (nats/token)", series: [{ name: "validation KL(teacher ‖ student)", points: [] }] },
    ],
  }));
  t.same(labelProblems(svg), []);
  t.match(svg, /no KL \(nats\/token\) yet/);
  t.match(svg, /validation KL\(teacher ‖ student\)/);
});
