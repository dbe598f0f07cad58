// Row kernels, one workgroup per row with a shared-memory tree reduction: reduceLastAxis, softmax
// fwd/bwd, RMSNorm fwd/bwd; plus sumToShape (one invocation per output element).
import { ShapeError, type ReduceOp } from "@ecomla/core";
import { type Launcher, Params, WGSL_BITS, entry1d, entryRows, grid1d, gridRows, storage, uniform } from "./common.js";

/** Lanes per row workgroup. */
const ROW_WG = 256;

/** WGSL: workgroup sum and NaN-propagating max over the lanes (call from uniform control flow). */
const WGSL_REDUCE = /* wgsl */ `
var<workgroup> red: array<f32, ${ROW_WG}>;
fn maxN(a: f32, b: f32) -> f32 { return select(max(a, b), nanF(), isNanF(a) || isNanF(b)); }
fn groupSum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn groupMax(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = maxN(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;

/** WGSL prelude of a row kernel. */
const ROW_PRELUDE = `${WGSL_BITS}${WGSL_REDUCE}`;

/** out[r] = reduce(x[r, :]). */
export function reduceLastAxis(l: Launcher, op: ReduceOp, x: GPUBuffer /* (rows, cols) */, out: GPUBuffer /* (rows) */, rows: number, cols: number): void {
  if (rows === 0) return;
  const isMax = op === "max";
  const term = op === "sumsq" ? "v * v" : "v";
  const source = () => /* wgsl */ `
${ROW_PRELUDE}
struct Params { rows: u32, cols: u32 }
${storage(0, "x", "array<f32>")}
${storage(1, "out", "array<f32>", true)}
${uniform(2)}
${entryRows(ROW_WG)}
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var acc = ${isMax ? "negInf()" : "0.0"};
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) {
    let v = x[base + j];
    acc = ${isMax ? "maxN(acc, v)" : `acc + ${term}`};
  }
  let total = ${isMax ? "groupMax(acc, lid)" : "groupSum(acc, lid)"};
  if (lid == 0u) { out[row] = ${op === "mean" ? "total / f32(p.cols)" : "total"}; }
}`;
  l.launch(`reduce:${op}`, source, [{ buffer: x }, { buffer: out, write: true }], new Params().u32(rows, cols).bytes(), gridRows(rows));
}

/** Row softmax. */
export function softmax(l: Launcher, x: GPUBuffer /* (rows, cols) */, out: GPUBuffer /* (rows, cols) */, rows: number, cols: number): void {
  if (rows === 0 || cols === 0) return;
  const source = () => /* wgsl */ `
${ROW_PRELUDE}
struct Params { rows: u32, cols: u32 }
${storage(0, "x", "array<f32>")}
${storage(1, "out", "array<f32>", true)}
${uniform(2)}
${entryRows(ROW_WG)}
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var m = negInf();
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { m = maxN(m, x[base + j]); }
  let rowMax = groupMax(m, lid);
  var s = 0.0;
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { s += exp(x[base + j] - rowMax); }
  let inv = 1.0 / groupSum(s, lid);
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { out[base + j] = exp(x[base + j] - rowMax) * inv; }
}`;
  l.launch("softmax", source, [{ buffer: x }, { buffer: out, write: true }], new Params().u32(rows, cols).bytes(), gridRows(rows));
}

/** dx = y ⊙ (dy − Σ dy ⊙ y). */
export function softmaxBackward(l: Launcher, y: GPUBuffer /* (rows, cols) */, dy: GPUBuffer /* (rows, cols) */, dx: GPUBuffer /* (rows, cols) */, rows: number, cols: number): void {
  if (rows === 0 || cols === 0) return;
  const source = () => /* wgsl */ `
${ROW_PRELUDE}
struct Params { rows: u32, cols: u32 }
${storage(0, "y", "array<f32>")}
${storage(1, "dy", "array<f32>")}
${storage(2, "dx", "array<f32>", true)}
${uniform(3)}
${entryRows(ROW_WG)}
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var s = 0.0;
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { s += y[base + j] * dy[base + j]; }
  let dot = groupSum(s, lid);
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { dx[base + j] = y[base + j] * (dy[base + j] - dot); }
}`;
  l.launch("softmaxBackward", source, [{ buffer: y }, { buffer: dy }, { buffer: dx, write: true }], new Params().u32(rows, cols).bytes(), gridRows(rows));
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
struct Params { rows: u32, cols: u32, eps: f32 }
${storage(0, "x", "array<f32>")}
${storage(1, "weight", "array<f32>")}
${storage(2, "out", "array<f32>", true)}
${storage(3, "rstd", "array<f32>", true)}
${uniform(4)}
${entryRows(ROW_WG)}
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var s = 0.0;
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { let v = x[base + j]; s += v * v; }
  let inv = 1.0 / sqrt(groupSum(s, lid) / f32(p.cols) + p.eps);
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { out[base + j] = x[base + j] * inv * weight[j]; }
  if (lid == 0u) { rstd[row] = inv; }
}`;
  const args = [{ buffer: x }, { buffer: weight }, { buffer: out, write: true }, { buffer: rstd, write: true }];
  l.launch("rmsNorm", source, args, new Params().u32(rows, cols).f32(eps).bytes(), gridRows(rows));
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
struct Params { rows: u32, cols: u32 }
${storage(0, "x", "array<f32>")}
${storage(1, "weight", "array<f32>")}
${storage(2, "rstd", "array<f32>")}
${storage(3, "dy", "array<f32>")}
${storage(4, "dx", "array<f32>", true)}
${uniform(5)}
${entryRows(ROW_WG)}
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let inv = rstd[row];
  var s = 0.0;
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { s += dy[base + j] * weight[j] * x[base + j]; }
  let coeff = inv * inv * inv * groupSum(s, lid) / f32(p.cols);
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { dx[base + j] = inv * weight[j] * dy[base + j] - coeff * x[base + j]; }
}`;
  const params = new Params().u32(rows, cols).bytes();
  l.launch("rmsNormBackward:dx", rowSource, [{ buffer: x }, { buffer: weight }, { buffer: rstd }, { buffer: dy }, { buffer: dx, write: true }], params, gridRows(rows));
  const columnSource = () => /* wgsl */ `
struct Params { rows: u32, cols: u32 }
${storage(0, "x", "array<f32>")}
${storage(1, "rstd", "array<f32>")}
${storage(2, "dy", "array<f32>")}
${storage(3, "dWeight", "array<f32>", true)}
${uniform(4)}
${entry1d()}
  if (i >= p.cols) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += dy[r * p.cols + i] * x[r * p.cols + i] * rstd[r]; }
  dWeight[i] = dWeight[i] + s;
}`;
  l.launch("rmsNormBackward:dWeight", columnSource, [{ buffer: x }, { buffer: rstd }, { buffer: dy }, { buffer: dWeight, write: true }], params, grid1d(cols));
}

/** Sum x (xShape) down to outShape (which broadcasts to xShape); out overwritten. */
export function sumToShape(l: Launcher, x: GPUBuffer /* xShape */, xShape: readonly number[], out: GPUBuffer /* outShape */, outShape: readonly number[]): void {
  const outTotal = outShape.reduce((a, b) => a * b, 1);
  if (outTotal === 0) return;
  if (xShape.length > 8) throw new ShapeError(`WebGpuBackend.sumToShape: xShape (${xShape}) has rank ${xShape.length}; at most 8 is supported`);
  const xStrides = new Array<number>(xShape.length);
  let stride = 1;
  for (let d = xShape.length - 1; d >= 0; d--) {
    xStrides[d] = stride;
    stride *= xShape[d]!;
  }
  const keptSizes: number[] = [];
  const keptStrides: number[] = [];
  const reducedSizes: number[] = [];
  const reducedStrides: number[] = [];
  const lead = xShape.length - outShape.length;
  for (let d = 0; d < xShape.length; d++) {
    const outDim = d >= lead ? outShape[d - lead]! : 1;
    if (xShape[d] === 1) continue;
    if (outDim === xShape[d]) {
      keptSizes.push(xShape[d]!);
      keptStrides.push(xStrides[d]!);
    } else {
      reducedSizes.push(xShape[d]!);
      reducedStrides.push(xStrides[d]!);
    }
  }
  const reducedCount = reducedSizes.reduce((a, b) => a * b, 1);
  const padFront = (values: number[], fill: number) => [...new Array<number>(8 - values.length).fill(fill), ...values];
  const source = () => /* wgsl */ `
struct Params { keptSizes: array<vec4<u32>, 2>, keptStrides: array<vec4<u32>, 2>, reducedSizes: array<vec4<u32>, 2>, reducedStrides: array<vec4<u32>, 2>, n: u32, reducedCount: u32 }
${storage(0, "x", "array<f32>")}
${storage(1, "out", "array<f32>", true)}
${uniform(2)}
${entry1d()}
  if (i >= p.n) { return; }
  var rem = i;
  var base = 0u;
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
  out[i] = s;
}`;
  const params = new Params()
    .u32x4(padFront(keptSizes, 1), 2)
    .u32x4(padFront(keptStrides, 0), 2)
    .u32x4(padFront(reducedSizes, 1), 2)
    .u32x4(padFront(reducedStrides, 0), 2)
    .u32(outTotal, reducedCount)
    .bytes();
  l.launch("sumToShape", source, [{ buffer: x }, { buffer: out, write: true }], params, grid1d(outTotal));
}
