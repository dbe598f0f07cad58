// Row kernels, one workgroup per row with a shared-memory tree reduction: reduceLastAxis, softmax
// fwd/bwd, RMSNorm fwd/bwd; plus sumToShape (one invocation per output element). Inputs larger
// than a storage binding are walked in chunks of rows (sumToShape: boxes of the input, adding
// into outputs an earlier box started), each operand bound as a window: `xOff` is the skew of the
// (rows, cols) operands, `rowOff` that of the per-row ones.
import { ShapeError, type ReduceOp } from "@ecomla/core";
import {
  type Launcher, Params, WGSL_BITS, boxSpan, chunks, entry1d, entryRows, grid1d, gridRows, rowsPerChunk, spanBudget, splitBoxes, storage, uniform, wgslGroupReductions, window,
} from "./common.js";

/** Call `fn(firstRow, rowCount)` for chunks of rows whose (rows, cols) f32 operands fit a binding. */
function forRowChunks(l: Launcher, kernel: string, rows: number, cols: number, fn: (row0: number, count: number) => void): void {
  for (const [row0, count] of chunks(rows, rowsPerChunk(l, kernel, cols * 4))) fn(row0, count);
}

/** The window of rows [row0, row0 + count) of a (rows, cols) f32 operand. */
function rowWindow(l: Launcher, buffer: GPUBuffer, row0: number, count: number, cols: number, write = false) {
  return window(l, buffer, 4, row0 * cols, count * cols, write);
}

/** Lanes per row workgroup. */
const ROW_WG = 256;

/** WGSL: workgroup sum and NaN-propagating max over the lanes (call from uniform control flow). */
const WGSL_REDUCE = /* wgsl */ `
fn maxN(a: f32, b: f32) -> f32 { return select(max(a, b), nanF(), isNanF(a) || isNanF(b)); }
${wgslGroupReductions(ROW_WG, "maxN")}
`;

/** WGSL prelude of a row kernel. */
const ROW_PRELUDE = `${WGSL_BITS}${WGSL_REDUCE}`;

/**
 * WGSL per reduce op (keyed by core's op table, so a new op is a compile error here): the lane
 * accumulator's start and step (`acc`, value `v`), the workgroup reduction, and the row's result
 * from the group `total`.
 */
const REDUCE_WGSL: Record<ReduceOp, { init: string; step: string; group: "groupSum" | "groupMax"; result: string }> = {
  sum: { init: "0.0", step: "acc + v", group: "groupSum", result: "total" },
  max: { init: "negInf()", step: "maxN(acc, v)", group: "groupMax", result: "total" },
  mean: { init: "0.0", step: "acc + v", group: "groupSum", result: "total / f32(p.cols)" },
  sumsq: { init: "0.0", step: "acc + v * v", group: "groupSum", result: "total" },
};

/** out[r] = reduce(x[r, :]). */
export function reduceLastAxis(l: Launcher, op: ReduceOp, x: GPUBuffer /* (rows, cols) */, out: GPUBuffer /* (rows) */, rows: number, cols: number): void {
  if (rows === 0) return;
  const r = REDUCE_WGSL[op];
  const source = () => /* wgsl */ `
${ROW_PRELUDE}
struct Params { rows: u32, cols: u32, xOff: u32, rowOff: u32 }
${storage(0, "x", "array<f32>")}
${storage(1, "out", "array<f32>", true)}
${uniform(2)}
${entryRows(ROW_WG)}
  if (row >= p.rows) { return; }
  let base = p.xOff + row * p.cols;
  var acc = ${r.init};
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) {
    let v = x[base + j];
    acc = ${r.step};
  }
  let total = ${r.group}(acc, lid);
  if (lid == 0u) { out[p.rowOff + row] = ${r.result}; }
}`;
  forRowChunks(l, `reduceLastAxis(${op})`, rows, cols, (row0, count) => {
    const wx = rowWindow(l, x, row0, count, cols);
    const wo = window(l, out, 4, row0, count, true);
    l.launch(`reduce:${op}`, source, [wx.arg, wo.arg], new Params().u32(count, cols, wx.skew, wo.skew).bytes(), gridRows(count));
  });
}

/** Row softmax. */
export function softmax(l: Launcher, x: GPUBuffer /* (rows, cols) */, out: GPUBuffer /* (rows, cols) */, rows: number, cols: number): void {
  if (rows === 0 || cols === 0) return;
  const source = () => /* wgsl */ `
${ROW_PRELUDE}
struct Params { rows: u32, cols: u32, xOff: u32 }
${storage(0, "x", "array<f32>")}
${storage(1, "out", "array<f32>", true)}
${uniform(2)}
${entryRows(ROW_WG)}
  if (row >= p.rows) { return; }
  let base = p.xOff + row * p.cols;
  var m = negInf();
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { m = maxN(m, x[base + j]); }
  let rowMax = groupMax(m, lid);
  var s = 0.0;
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { s += exp(x[base + j] - rowMax); }
  let inv = 1.0 / groupSum(s, lid);
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { out[base + j] = exp(x[base + j] - rowMax) * inv; }
}`;
  forRowChunks(l, "softmax", rows, cols, (row0, count) => {
    const wx = rowWindow(l, x, row0, count, cols);
    const wo = rowWindow(l, out, row0, count, cols, true);
    l.launch("softmax", source, [wx.arg, wo.arg], new Params().u32(count, cols, wx.skew).bytes(), gridRows(count));
  });
}

/** dx = y ⊙ (dy − Σ dy ⊙ y). */
export function softmaxBackward(l: Launcher, y: GPUBuffer /* (rows, cols) */, dy: GPUBuffer /* (rows, cols) */, dx: GPUBuffer /* (rows, cols) */, rows: number, cols: number): void {
  if (rows === 0 || cols === 0) return;
  const source = () => /* wgsl */ `
${ROW_PRELUDE}
struct Params { rows: u32, cols: u32, xOff: u32 }
${storage(0, "y", "array<f32>")}
${storage(1, "dy", "array<f32>")}
${storage(2, "dx", "array<f32>", true)}
${uniform(3)}
${entryRows(ROW_WG)}
  if (row >= p.rows) { return; }
  let base = p.xOff + row * p.cols;
  var s = 0.0;
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { s += y[base + j] * dy[base + j]; }
  let dot = groupSum(s, lid);
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { dx[base + j] = y[base + j] * (dy[base + j] - dot); }
}`;
  forRowChunks(l, "softmaxBackward", rows, cols, (row0, count) => {
    const [wy, wdy, wdx] = [rowWindow(l, y, row0, count, cols), rowWindow(l, dy, row0, count, cols), rowWindow(l, dx, row0, count, cols, true)];
    l.launch("softmaxBackward", source, [wy.arg, wdy.arg, wdx.arg], new Params().u32(count, cols, wy.skew).bytes(), gridRows(count));
  });
}

/** RMSNorm forward; rstd written per row. */
export function rmsNorm(
  l: Launcher,
  x: GPUBuffer, // (rows, cols)
  weight: GPUBuffer, // (cols)
  out: GPUBuffer, // (rows, cols)
  rstd: GPUBuffer, // (rows)
  rows: number,
  cols: number,
  eps: number,
): void {
  if (rows === 0) return;
  const source = () => /* wgsl */ `
${ROW_PRELUDE}
struct Params { rows: u32, cols: u32, eps: f32, xOff: u32, rowOff: u32 }
${storage(0, "x", "array<f32>")}
${storage(1, "weight", "array<f32>")}
${storage(2, "out", "array<f32>", true)}
${storage(3, "rstd", "array<f32>", true)}
${uniform(4)}
${entryRows(ROW_WG)}
  if (row >= p.rows) { return; }
  let base = p.xOff + row * p.cols;
  var s = 0.0;
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { let v = x[base + j]; s += v * v; }
  let inv = 1.0 / sqrt(groupSum(s, lid) / f32(p.cols) + p.eps);
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { out[base + j] = x[base + j] * inv * weight[j]; }
  if (lid == 0u) { rstd[p.rowOff + row] = inv; }
}`;
  const ww = window(l, weight, 4, 0, cols);
  forRowChunks(l, "rmsNorm", rows, cols, (row0, count) => {
    const [wx, wo, wr] = [rowWindow(l, x, row0, count, cols), rowWindow(l, out, row0, count, cols, true), window(l, rstd, 4, row0, count, true)];
    l.launch("rmsNorm", source, [wx.arg, ww.arg, wo.arg, wr.arg], new Params().u32(count, cols).f32(eps).u32(wx.skew, wr.skew).bytes(), gridRows(count));
  });
}

/** RMSNorm backward: dx overwritten (row kernel), dWeight accumulated (column kernel, no atomics). */
export function rmsNormBackward(
  l: Launcher,
  x: GPUBuffer, // (rows, cols)
  weight: GPUBuffer, // (cols)
  rstd: GPUBuffer, // (rows)
  dy: GPUBuffer, // (rows, cols)
  dx: GPUBuffer, // (rows, cols)
  dWeight: GPUBuffer, // (cols)
  rows: number,
  cols: number,
): void {
  if (rows === 0 || cols === 0) return;
  const rowSource = () => /* wgsl */ `
${ROW_PRELUDE}
struct Params { rows: u32, cols: u32, xOff: u32, rowOff: u32 }
${storage(0, "x", "array<f32>")}
${storage(1, "weight", "array<f32>")}
${storage(2, "rstd", "array<f32>")}
${storage(3, "dy", "array<f32>")}
${storage(4, "dx", "array<f32>", true)}
${uniform(5)}
${entryRows(ROW_WG)}
  if (row >= p.rows) { return; }
  let base = p.xOff + row * p.cols;
  let inv = rstd[p.rowOff + row];
  var s = 0.0;
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { s += dy[base + j] * weight[j] * x[base + j]; }
  let coeff = inv * inv * inv * groupSum(s, lid) / f32(p.cols);
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { dx[base + j] = inv * weight[j] * dy[base + j] - coeff * x[base + j]; }
}`;
  const columnSource = () => /* wgsl */ `
struct Params { rows: u32, cols: u32, xOff: u32, rowOff: u32 }
${storage(0, "x", "array<f32>")}
${storage(1, "rstd", "array<f32>")}
${storage(2, "dy", "array<f32>")}
${storage(3, "dWeight", "array<f32>", true)}
${uniform(4)}
${entry1d()}
  if (i >= p.cols) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += dy[p.xOff + r * p.cols + i] * x[p.xOff + r * p.cols + i] * rstd[p.rowOff + r]; }
  dWeight[i] = dWeight[i] + s;
}`;
  // Each chunk of rows adds its column sums into dWeight, in row order.
  const ww = window(l, weight, 4, 0, cols);
  const wdw = window(l, dWeight, 4, 0, cols, true);
  forRowChunks(l, "rmsNormBackward", rows, cols, (row0, count) => {
    const [wx, wr, wdy, wdx] = [rowWindow(l, x, row0, count, cols), window(l, rstd, 4, row0, count), rowWindow(l, dy, row0, count, cols), rowWindow(l, dx, row0, count, cols, true)];
    const params = new Params().u32(count, cols, wx.skew, wr.skew).bytes();
    l.launch("rmsNormBackward:dx", rowSource, [wx.arg, ww.arg, wr.arg, wdy.arg, wdx.arg], params, gridRows(count));
    l.launch("rmsNormBackward:dWeight", columnSource, [wx.arg, wr.arg, wdy.arg, wdw.arg], params, grid1d(cols));
  });
}

/** Sum x (xShape) down to outShape (which broadcasts to xShape); out overwritten. */
export function sumToShape(l: Launcher, x: GPUBuffer /* xShape */, xShape: readonly number[], out: GPUBuffer /* outShape */, outShape: readonly number[]): void {
  const outTotal = outShape.reduce((a, b) => a * b, 1);
  if (outTotal === 0) return;
  if (xShape.length > 8) throw new ShapeError(`WebGpuBackend.sumToShape: xShape (${xShape}) has rank ${xShape.length}; at most 8 is supported`);
  // Per axis of x: its stride in x, whether out keeps it, and its stride in out (0 when summed away).
  const rank = xShape.length;
  const lead = rank - outShape.length;
  const xStrides = new Array<number>(rank);
  const outStrides = new Array<number>(rank);
  const kept = new Array<boolean>(rank);
  for (let d = rank - 1, xs = 1, os = 1; d >= 0; d--) {
    const outDim = d >= lead ? outShape[d - lead]! : 1;
    kept[d] = outDim === xShape[d];
    xStrides[d] = xs;
    outStrides[d] = kept[d] ? os : 0;
    xs *= xShape[d]!;
    if (kept[d]) os *= xShape[d]!;
  }
  const source = () => /* wgsl */ `
struct Params { keptSizes: array<vec4<u32>, 2>, keptStrides: array<vec4<u32>, 2>, reducedSizes: array<vec4<u32>, 2>, reducedStrides: array<vec4<u32>, 2>, n: u32, reducedCount: u32, xOff: u32, outOff: u32, accumulate: u32 }
${storage(0, "x", "array<f32>")}
${storage(1, "out", "array<f32>", true)}
${uniform(2)}
${entry1d()}
  if (i >= p.n) { return; }
  var rem = i;
  var base = p.xOff;
  for (var k = 7; k >= 0; k--) {
    let size = p.keptSizes[k / 4][k % 4];
    base += (rem % size) * p.keptStrides[k / 4][k % 4];
    rem = rem / size;
  }
  var s = 0.0;
  for (var r = 0u; r < p.reducedCount; r++) {
    var rr = r;
    var at = base;
    for (var k = 7; k >= 0; k--) {
      let size = p.reducedSizes[k / 4][k % 4];
      at += (rr % size) * p.reducedStrides[k / 4][k % 4];
      rr = rr / size;
    }
    s += x[at];
  }
  if (p.accumulate != 0u) { s += out[p.outOff + i]; }
  out[p.outOff + i] = s;
}`;
  const padFront = (values: number[], fill: number) => [...new Array<number>(8 - values.length).fill(fill), ...values];
  // Boxes of x, each summed into a contiguous block of out; a box whose summed-away axes do not
  // start at 0 adds to the block an earlier box wrote.
  const boxes = splitBoxes(xShape, [{ strides: xStrides, elementBytes: 4 }, { strides: outStrides, elementBytes: 4 }], spanBudget(l.limits));
  for (const box of boxes) {
    const keptSizes: number[] = [];
    const keptStrides: number[] = [];
    const reducedSizes: number[] = [];
    const reducedStrides: number[] = [];
    let accumulate = false;
    for (let d = 0; d < rank; d++) {
      if (!kept[d] && box.start[d]! > 0) accumulate = true;
      if (box.shape[d] === 1) continue;
      if (kept[d]) {
        keptSizes.push(box.shape[d]!);
        keptStrides.push(xStrides[d]!);
      } else {
        reducedSizes.push(box.shape[d]!);
        reducedStrides.push(xStrides[d]!);
      }
    }
    const count = keptSizes.reduce((a, b) => a * b, 1);
    const xSpan = boxSpan(box, 0, xStrides);
    const outSpan = boxSpan(box, 0, outStrides);
    const wx = window(l, x, 4, xSpan.first, xSpan.count);
    const wo = window(l, out, 4, outSpan.first, outSpan.count, true);
    const params = new Params()
      .u32x4(padFront(keptSizes, 1), 2)
      .u32x4(padFront(keptStrides, 0), 2)
      .u32x4(padFront(reducedSizes, 1), 2)
      .u32x4(padFront(reducedStrides, 0), 2)
      .u32(count, reducedSizes.reduce((a, b) => a * b, 1), wx.skew, wo.skew, accumulate ? 1 : 0)
      .bytes();
    l.launch("sumToShape", source, [wx.arg, wo.arg], params, grid1d(count));
  }
}
