// Elementwise kernels: binary with numpy broadcasting, unary forward and backward (one shader
// variant per op), SwiGLU forward/backward and the AdamW step. Tensors larger than a storage
// binding are walked in chunks (aligned element ranges; boxes of the broadcast space for binary).
import { ShapeError, type BinaryOp, type UnaryOp } from "@ecomla/core";
import {
  type Launcher, Params, WGSL_BITS, WGSL_ERF, alignedChunks, boxSpan, entry1d, grid1d, spanBudget, splitBoxes, storage, uniform, window,
} from "./common.js";

/** Launch a 1-D kernel whose f32 operands all index element i alike, in chunks that fit a binding. */
function launchElementwise(
  l: Launcher,
  key: string,
  source: () => string,
  operands: readonly { buffer: GPUBuffer; write?: boolean }[],
  n: number,
  params: (count: number) => ArrayBuffer,
): void {
  for (const [start, count] of alignedChunks(l, n, [4])) {
    const args = operands.map((o) => window(l, o.buffer, 4, start, count, o.write).arg);
    l.launch(key, source, args, params(count), grid1d(count));
  }
}

/** Strides reading `shape` broadcast to `outShape` (right-aligned; size-1 and missing axes get 0). */
function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const strides = new Array<number>(outShape.length).fill(0);
  let stride = 1;
  for (let i = shape.length - 1, o = outShape.length - 1; i >= 0; i--, o--) {
    strides[o] = shape[i] === 1 ? 0 : stride;
    stride *= shape[i]!;
  }
  return strides;
}

/** Merge adjacent axes that every operand walks contiguously (or all broadcasts), dropping size-1 axes. */
export function collapseAxes(shape: readonly number[], strideSets: number[][]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strideSets.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    const mergeable = last >= 0 && strideSets.every((s, k) => outStrides[k]![last] === s[d]! * shape[d]!);
    if (mergeable) {
      outShape[last]! *= shape[d]!;
      strideSets.forEach((s, k) => (outStrides[k]![last] = s[d]!));
    } else {
      outShape.push(shape[d]!);
      strideSets.forEach((s, k) => outStrides[k]!.push(s[d]!));
    }
  }
  if (outShape.length === 0) return { shape: [1], strides: strideSets.map(() => [0]) };
  return { shape: outShape, strides: outStrides };
}

const BINARY_EXPR: Record<BinaryOp, string> = {
  add: "x + y",
  sub: "x - y",
  mul: "x * y",
  div: "x / y",
  max: "select(max(x, y), nanF(), isNanF(x) || isNanF(y))",
  min: "select(min(x, y), nanF(), isNanF(x) || isNanF(y))",
  pow: "powF(x, y)",
};

/** WGSL pow that handles x ≤ 0 like Math.pow for integer exponents and x = 0. */
const WGSL_POW = /* wgsl */ `
fn powF(x: f32, y: f32) -> f32 {
  if (y == 0.0) { return 1.0; }
  if (x > 0.0) { return exp2(y * log2(x)); }
  if (x == 0.0) { return select(posInf(), 0.0, y > 0.0); }
  let r = exp2(y * log2(-x));
  if (floor(y) != y) { return nanF(); }
  return select(r, -r, (i32(abs(y)) & 1) == 1);
}
`;

/** out = a ⊙ b with numpy broadcasting; shapes already checked. */
export function binary(
  l: Launcher,
  op: BinaryOp,
  a: GPUBuffer, // aShape
  aShape: readonly number[],
  b: GPUBuffer, // bShape
  bShape: readonly number[],
  out: GPUBuffer, // outShape
  outShape: readonly number[],
): void {
  const total = outShape.reduce((x, y) => x * y, 1);
  if (total === 0) return;
  const collapsed = collapseAxes(outShape, [broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)]);
  const rank = collapsed.shape.length;
  if (rank > 8) throw new ShapeError(`WebGpuBackend.binary: broadcast of (${aShape}) and (${bShape}) to (${outShape}) needs ${rank} axes after merging; at most 8 are supported`);
  const pad = 8 - rank;
  const [aStrides, bStrides] = collapsed.strides.map((s) => [...new Array<number>(pad).fill(0), ...s]) as [number[], number[]];
  const outStrides = new Array<number>(rank);
  for (let d = rank - 1, stride = 1; d >= 0; d--) {
    outStrides[d] = stride;
    stride *= collapsed.shape[d]!;
  }
  const source = () => /* wgsl */ `
${WGSL_BITS}
${WGSL_POW}
struct Params { shape: array<vec4<u32>, 2>, aStrides: array<vec4<u32>, 2>, bStrides: array<vec4<u32>, 2>, n: u32, aOffset: u32, bOffset: u32, outOffset: u32 }
${storage(0, "a", "array<f32>")}
${storage(1, "b", "array<f32>")}
${storage(2, "out", "array<f32>", true)}
${uniform(3)}
${entry1d()}
  if (i >= p.n) { return; }
  var rem = i;
  var ai = p.aOffset;
  var bi = p.bOffset;
  for (var k = 7; k >= 0; k--) {
    let size = p.shape[k / 4][k % 4];
    let c = rem % size;
    rem = rem / size;
    ai += c * p.aStrides[k / 4][k % 4];
    bi += c * p.bStrides[k / 4][k % 4];
  }
  let x = a[ai];
  let y = b[bi];
  out[p.outOffset + i] = ${BINARY_EXPR[op]};
}`;
  const [aWalk, bWalk] = collapsed.strides as [number[], number[]];
  const boxes = splitBoxes(collapsed.shape, [{ strides: aWalk, elementBytes: 4 }, { strides: bWalk, elementBytes: 4 }, { strides: outStrides, elementBytes: 4 }], spanBudget(l.limits));
  for (const box of boxes) {
    const count = box.shape.reduce((x, y) => x * y, 1);
    const spans = [boxSpan(box, 0, aWalk), boxSpan(box, 0, bWalk), boxSpan(box, 0, outStrides)];
    const [wa, wb, wo] = [window(l, a, 4, spans[0]!.first, spans[0]!.count), window(l, b, 4, spans[1]!.first, spans[1]!.count), window(l, out, 4, spans[2]!.first, spans[2]!.count, true)];
    const shape8 = [...new Array<number>(pad).fill(1), ...box.shape];
    const params = new Params()
      .u32x4(shape8, 2)
      .u32x4(aStrides, 2)
      .u32x4(bStrides, 2)
      .u32(count, wa.skew + spans[0]!.base - spans[0]!.first, wb.skew + spans[1]!.base - spans[1]!.first, wo.skew)
      .bytes();
    l.launch(`binary:${op}`, source, [wa.arg, wb.arg, wo.arg], params, grid1d(count));
  }
}

const INV_SQRT2 = "0.70710678118654752";
const INV_SQRT_2PI = "0.39894228040143268";

/** f(x) per op, in terms of x and alpha. */
const UNARY_FORWARD: Record<UnaryOp, string> = {
  neg: "-x",
  exp: "exp(x)",
  log: "log(x)",
  sqrt: "sqrt(x)",
  rsqrt: "1.0 / sqrt(x)",
  abs: "abs(x)",
  square: "x * x",
  reciprocal: "1.0 / x",
  relu: "select(0.0, x, x > 0.0 || isNanF(x))",
  sigmoid: "sigmoidF(x)",
  silu: "x * sigmoidF(x)",
  tanh: "tanhF(x)",
  gelu: `0.5 * x * erfcApprox(-x * ${INV_SQRT2})`,
  scale: "alpha * x",
  addScalar: "x + alpha",
  powScalar: "powF(x, alpha)",
};

/** f'(x) per op. */
const UNARY_DERIVATIVE: Record<UnaryOp, string> = {
  neg: "-1.0",
  exp: "exp(x)",
  log: "1.0 / x",
  sqrt: "0.5 / sqrt(x)",
  rsqrt: "-0.5 / (x * sqrt(x))",
  abs: "select(select(0.0, -1.0, x < 0.0), 1.0, x > 0.0)",
  square: "2.0 * x",
  reciprocal: "-1.0 / (x * x)",
  relu: "select(0.0, 1.0, x > 0.0)",
  sigmoid: "sigmoidF(x) * (1.0 - sigmoidF(x))",
  silu: "sigmoidF(x) * (1.0 + x * (1.0 - sigmoidF(x)))",
  tanh: "1.0 - tanhF(x) * tanhF(x)",
  gelu: `0.5 * erfcApprox(-x * ${INV_SQRT2}) + x * ${INV_SQRT_2PI} * exp(-0.5 * x * x)`,
  scale: "alpha",
  addScalar: "1.0",
  powScalar: "select(alpha * powF(x, alpha - 1.0), 0.0, alpha == 0.0)",
};

/** WGSL tanh that keeps its relative accuracy near 0 and saturates without overflow. */
const WGSL_TANH = /* wgsl */ `
fn tanhF(x: f32) -> f32 {
  let ax = abs(x);
  if (ax < 0.55) {
    let x2 = x * x;
    return x * (1.0 + x2 * (-0.33333333333 + x2 * (0.13333333333 + x2 * (-0.05396825397 + x2 * (0.02186948854 + x2 * -0.00886323552)))));
  }
  let e = exp(-2.0 * ax);
  let t = (1.0 - e) / (1.0 + e);
  return select(t, -t, x < 0.0);
}
`;

const UNARY_PRELUDE = `${WGSL_BITS}${WGSL_ERF}${WGSL_POW}${WGSL_TANH}`;

/** out = f(x) over n elements. */
export function unary(l: Launcher, op: UnaryOp, x: GPUBuffer /* (n) */, out: GPUBuffer /* (n) */, n: number, alpha: number): void {
  if (n === 0) return;
  const source = () => /* wgsl */ `
${UNARY_PRELUDE}
struct Params { n: u32, alpha: f32 }
${storage(0, "xs", "array<f32>")}
${storage(1, "out", "array<f32>", true)}
${uniform(2)}
${entry1d()}
  if (i >= p.n) { return; }
  let x = xs[i];
  let alpha = p.alpha;
  out[i] = ${UNARY_FORWARD[op]};
}`;
  launchElementwise(l, `unary:${op}`, source, [{ buffer: x }, { buffer: out, write: true }], n, (count) => new Params().u32(count).f32(alpha).bytes());
}

/** dx = dy · f'(x) over n elements. */
export function unaryBackward(l: Launcher, op: UnaryOp, x: GPUBuffer /* (n) */, dy: GPUBuffer /* (n) */, dx: GPUBuffer /* (n) */, n: number, alpha: number): void {
  if (n === 0) return;
  const source = () => /* wgsl */ `
${UNARY_PRELUDE}
struct Params { n: u32, alpha: f32 }
${storage(0, "xs", "array<f32>")}
${storage(1, "dy", "array<f32>")}
${storage(2, "dx", "array<f32>", true)}
${uniform(3)}
${entry1d()}
  if (i >= p.n) { return; }
  let x = xs[i];
  let alpha = p.alpha;
  dx[i] = dy[i] * (${UNARY_DERIVATIVE[op]});
}`;
  launchElementwise(l, `unaryBackward:${op}`, source, [{ buffer: x }, { buffer: dy }, { buffer: dx, write: true }], n, (count) => new Params().u32(count).f32(alpha).bytes());
}

/** out = silu(gate) ⊙ up. */
export function swiglu(l: Launcher, gate: GPUBuffer /* (n) */, up: GPUBuffer /* (n) */, out: GPUBuffer /* (n) */, n: number): void {
  if (n === 0) return;
  const source = () => /* wgsl */ `
${WGSL_ERF}
struct Params { n: u32 }
${storage(0, "gate", "array<f32>")}
${storage(1, "up", "array<f32>")}
${storage(2, "out", "array<f32>", true)}
${uniform(3)}
${entry1d()}
  if (i >= p.n) { return; }
  let g = gate[i];
  out[i] = g * sigmoidF(g) * up[i];
}`;
  launchElementwise(l, "swiglu", source, [{ buffer: gate }, { buffer: up }, { buffer: out, write: true }], n, (count) => new Params().u32(count).bytes());
}

/** dGate = dOut·up·silu'(gate), dUp = dOut·silu(gate). */
export function swigluBackward(
  l: Launcher,
  gate: GPUBuffer, // (n)
  up: GPUBuffer, // (n)
  dOut: GPUBuffer, // (n)
  dGate: GPUBuffer, // (n)
  dUp: GPUBuffer, // (n)
  n: number,
): void {
  if (n === 0) return;
  const source = () => /* wgsl */ `
${WGSL_ERF}
struct Params { n: u32 }
${storage(0, "gate", "array<f32>")}
${storage(1, "up", "array<f32>")}
${storage(2, "dOut", "array<f32>")}
${storage(3, "dGate", "array<f32>", true)}
${storage(4, "dUp", "array<f32>", true)}
${uniform(5)}
${entry1d()}
  if (i >= p.n) { return; }
  let g = gate[i];
  let u = up[i];
  let dy = dOut[i];
  let s = sigmoidF(g);
  dGate[i] = dy * u * s * (1.0 + g * (1.0 - s));
  dUp[i] = dy * g * s;
}`;
  const operands = [{ buffer: gate }, { buffer: up }, { buffer: dOut }, { buffer: dGate, write: true }, { buffer: dUp, write: true }];
  launchElementwise(l, "swigluBackward", source, operands, n, (count) => new Params().u32(count).bytes());
}

/** Scalars of one AdamW step. */
export interface AdamWScalars {
  n: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  biasCorrection1: number;
  biasCorrection2: number;
  gradScale: number;
}

/** One AdamW step in place (PyTorch semantics, see TensorBackend.adamw). */
export function adamw(l: Launcher, param: GPUBuffer /* (n) */, grad: GPUBuffer /* (n) */, m: GPUBuffer /* (n) */, v: GPUBuffer /* (n) */, s: AdamWScalars): void {
  if (s.n === 0) return;
  const source = () => /* wgsl */ `
struct Params { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, bc1: f32, bc2: f32, gradScale: f32 }
${storage(0, "param", "array<f32>", true)}
${storage(1, "grad", "array<f32>")}
${storage(2, "m", "array<f32>", true)}
${storage(3, "v", "array<f32>", true)}
${uniform(4)}
${entry1d()}
  if (i >= p.n) { return; }
  let g = grad[i] * p.gradScale;
  let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let x = param[i];
  param[i] = x - p.lr * p.weightDecay * x - (p.lr * (mi / p.bc1)) / (sqrt(vi / p.bc2) + p.eps);
}`;
  const params = (count: number) => new Params().u32(count).f32(s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, s.biasCorrection1, s.biasCorrection2, s.gradScale).bytes();
  launchElementwise(l, "adamw", source, [{ buffer: param, write: true }, { buffer: grad }, { buffer: m, write: true }, { buffer: v, write: true }], s.n, params);
}
