import { ShapeError } from "../../errors.js";
import type { BinaryOp, ReduceOp, UnaryOp } from "../../interfaces/backend.js";
import { engine } from "../engine.js";
import { Tensor, sizeOf } from "../tensor.js";
import { backendOf, broadcastShapes, expectDtype, fmt, record, stridesOf } from "./common.js";

/** A tensor of the same shape filled with value (no grad). */
export function fullLike(t: Tensor, value: number): Tensor {
  return Tensor.full(t.backend, t.shape, value, t.dtype);
}

/** target += source, in place, outside autograd (gradient accumulation, optimizer code). */
export function addInto(target: Tensor, source: Tensor): void {
  const b = backendOf("addInto", target, source);
  if (target.size !== source.size) throw new ShapeError(`addInto: sizes differ (${fmt(target.shape)} vs ${fmt(source.shape)})`);
  b.binary("add", target.buffer, [target.size], source.buffer, [source.size], target.buffer, [target.size]);
}

/** A copy of t (no grad), same shape. */
export function clone(t: Tensor): Tensor {
  const b = t.backend;
  const out = Tensor.empty(b, t.shape, t.dtype);
  if (t.size) b.copyStrided({ src: t.buffer, srcStrides: [1], dst: out.buffer, dstStrides: [1], shape: [t.size] });
  return out;
}

/** Sum t (shape of a broadcast result) down to `shape`; a view when nothing needs summing. */
export function sumTo(t: Tensor, shape: readonly number[]): Tensor {
  if (t.size === sizeOf(shape)) return t.view(shape);
  const out = Tensor.empty(t.backend, shape);
  t.backend.sumToShape(t.buffer, t.shape, out.buffer, shape);
  return out;
}

/** Broadcast t to `shape` (a copy, through stride-0 reads). Differentiable. */
export function expand(t: Tensor, shape: readonly number[]): Tensor {
  const b = backendOf("expand", t);
  const full = broadcastShapes("expand", t.shape, shape);
  if (fmt(full) !== fmt(shape)) throw new ShapeError(`expand: ${fmt(t.shape)} does not broadcast to ${fmt(shape)}`);
  const out = Tensor.empty(b, shape, t.dtype);
  const inStrides = stridesOf(t.shape);
  const srcStrides = shape.map((d, i) => {
    const j = i - (shape.length - t.shape.length);
    return j < 0 || t.shape[j] === 1 ? 0 : inStrides[j]!;
  });
  if (out.size) b.copyStrided({ src: t.buffer, srcStrides, dst: out.buffer, dstStrides: stridesOf(shape), shape });
  return record(out, "expand", [t], (g) => [sumTo(g, t.shape)]);
}

function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const be = backendOf(op, a, b);
  expectDtype(op, "a", a, "f32");
  expectDtype(op, "b", b, "f32");
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = Tensor.empty(be, shape);
  if (out.size) be.binary(op, a.buffer, a.shape, b.buffer, b.shape, out.buffer, shape);
  return out;
}

/** a + b (broadcasting). */
export function add(a: Tensor, b: Tensor): Tensor {
  return record(binary("add", a, b), "add", [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

/** a − b (broadcasting). */
export function sub(a: Tensor, b: Tensor): Tensor {
  return record(binary("sub", a, b), "sub", [a, b], (g) => [sumTo(g, a.shape), b.requiresGrad ? tidyKeep(() => sumTo(neg(g), b.shape)) : null]);
}

/** a ⊙ b (broadcasting). */
export function mul(a: Tensor, b: Tensor): Tensor {
  return record(binary("mul", a, b), "mul", [a, b], (g) => [
    a.requiresGrad ? tidyKeep(() => sumTo(binary("mul", g, b), a.shape)) : null,
    b.requiresGrad ? tidyKeep(() => sumTo(binary("mul", g, a), b.shape)) : null,
  ]);
}

/** a / b (broadcasting). */
export function div(a: Tensor, b: Tensor): Tensor {
  const out = binary("div", a, b);
  return record(out, "div", [a, b], (g) => [
    a.requiresGrad ? tidyKeep(() => sumTo(binary("div", g, b), a.shape)) : null,
    // d(a/b)/db = −(a/b)/b
    b.requiresGrad ? tidyKeep(() => sumTo(neg(binary("div", binary("mul", g, out), b)), b.shape)) : null,
  ]);
}

/** Elementwise maximum (no gradient to the smaller input; ties send it to a). */
export function maximum(a: Tensor, b: Tensor): Tensor {
  return binary("max", a, b);
}

/** Run fn in a scope and keep only its result (for temporaries inside backward closures). */
function tidyKeep(fn: () => Tensor): Tensor {
  return engine.tidy(fn);
}

function unary(op: UnaryOp, x: Tensor, alpha?: number): Tensor {
  const be = backendOf(op, x);
  expectDtype(op, "x", x, "f32");
  const out = Tensor.empty(be, x.shape);
  if (x.size) be.unary(op, x.buffer, out.buffer, x.size, alpha);
  return record(out, op, [x], (g) => {
    const dx = Tensor.empty(be, x.shape);
    if (x.size) be.unaryBackward(op, x.buffer, out.buffer, g.buffer, dx.buffer, x.size, alpha);
    return [dx];
  });
}

export const neg = (x: Tensor): Tensor => unary("neg", x);
export const exp = (x: Tensor): Tensor => unary("exp", x);
export const log = (x: Tensor): Tensor => unary("log", x);
export const sqrt = (x: Tensor): Tensor => unary("sqrt", x);
export const rsqrt = (x: Tensor): Tensor => unary("rsqrt", x);
export const abs = (x: Tensor): Tensor => unary("abs", x);
export const square = (x: Tensor): Tensor => unary("square", x);
export const reciprocal = (x: Tensor): Tensor => unary("reciprocal", x);
export const relu = (x: Tensor): Tensor => unary("relu", x);
export const sigmoid = (x: Tensor): Tensor => unary("sigmoid", x);
export const silu = (x: Tensor): Tensor => unary("silu", x);
export const tanh = (x: Tensor): Tensor => unary("tanh", x);
export const gelu = (x: Tensor): Tensor => unary("gelu", x);
/** alpha · x */
export const scale = (x: Tensor, alpha: number): Tensor => unary("scale", x, alpha);
/** x + alpha */
export const addScalar = (x: Tensor, alpha: number): Tensor => unary("addScalar", x, alpha);
/** x ^ alpha */
export const powScalar = (x: Tensor, alpha: number): Tensor => unary("powScalar", x, alpha);

function reduceLast(op: ReduceOp, x: Tensor): Tensor {
  const be = backendOf(op, x);
  expectDtype(op, "x", x, "f32");
  if (x.rank === 0) throw new ShapeError(`${op}: cannot reduce a scalar over its last axis`);
  const cols = x.shape[x.rank - 1]!;
  const outShape = x.shape.slice(0, -1);
  const out = Tensor.empty(be, outShape);
  const rows = sizeOf(outShape);
  if (rows) be.reduceLastAxis(op, x.buffer, out.buffer, rows, cols);
  return out;
}

/** Sum over the last axis: (…, n) → (…). */
export function sum(x: Tensor): Tensor {
  return record(reduceLast("sum", x), "sum", [x], (g) => [expand(g.view([...g.shape, 1]), x.shape)]);
}

/** Mean over the last axis: (…, n) → (…). */
export function mean(x: Tensor): Tensor {
  const n = x.shape[x.rank - 1]!;
  return record(reduceLast("mean", x), "mean", [x], (g) => [tidyKeep(() => scale(expand(g.view([...g.shape, 1]), x.shape), 1 / n))]);
}

/** Sum of squares over the last axis: (…, n) → (…). */
export function sumSquares(x: Tensor): Tensor {
  return record(reduceLast("sumsq", x), "sumsq", [x], (g) => [tidyKeep(() => mul(expand(g.view([...g.shape, 1]), x.shape), scale(x, 2)))]);
}

/** Maximum over the last axis (not differentiable). */
export function max(x: Tensor): Tensor {
  return reduceLast("max", x);
}

/** Same data in another shape of the same size (no copy). Differentiable. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  return record(x.view(shape), "reshape", [x], (g) => [g.view(x.shape)]);
}

/** Sum of every element → scalar (shape []). */
export function sumAll(x: Tensor): Tensor {
  return reshape(sum(reshape(x, [x.size])), []);
}

/** Mean of every element → scalar (shape []). */
export function meanAll(x: Tensor): Tensor {
  return reshape(mean(reshape(x, [x.size])), []);
}
