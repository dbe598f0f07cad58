import { ShapeError } from "../../errors.js";
import type { DType } from "../../interfaces/backend.js";
import { Tensor } from "../tensor.js";
import { backendOf, fmt, normAxis, record, stridesOf } from "./common.js";

/** Reorder axes: out.shape[i] = x.shape[perm[i]]. A copy. Differentiable. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const b = backendOf("permute", x);
  if (perm.length !== x.rank || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) {
    throw new ShapeError(`permute: ${fmt(perm)} is not a permutation of ${x.rank} axes`);
  }
  const shape = perm.map((p) => x.shape[p]!);
  const inStrides = stridesOf(x.shape);
  const out = Tensor.empty(b, shape, x.dtype);
  if (out.size) b.copyStrided({ src: x.buffer, srcStrides: perm.map((p) => inStrides[p]!), dst: out.buffer, dstStrides: stridesOf(shape), shape });
  const inverse = perm.map((_, i) => perm.indexOf(i));
  return record(out, "permute", [x], (g) => [permute(g, inverse)]);
}

/** Swap two axes (a copy). Differentiable. */
export function transpose(x: Tensor, axisA = -2, axisB = -1): Tensor {
  const a = normAxis("transpose", axisA, x.rank);
  const c = normAxis("transpose", axisB, x.rank);
  const perm = x.shape.map((_, i) => (i === a ? c : i === c ? a : i));
  return permute(x, perm);
}

/** Elements [start, start+length) along `axis`. A copy. Differentiable. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const b = backendOf("narrow", x);
  const ax = normAxis("narrow", axis, x.rank);
  const dim = x.shape[ax]!;
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > dim) {
    throw new ShapeError(`narrow: [${start}, ${start + length}) is out of range for axis ${ax} of size ${dim}`);
  }
  const shape = x.shape.map((d, i) => (i === ax ? length : d));
  const strides = stridesOf(x.shape);
  const out = Tensor.empty(b, shape, x.dtype);
  if (out.size) b.copyStrided({ src: x.buffer, srcOffset: start * strides[ax]!, srcStrides: strides, dst: out.buffer, dstStrides: stridesOf(shape), shape });
  return record(out, "narrow", [x], (g) => {
    const dx = Tensor.zeros(b, x.shape);
    if (g.size) b.copyStrided({ src: g.buffer, srcStrides: stridesOf(shape), dst: dx.buffer, dstOffset: start * strides[ax]!, dstStrides: strides, shape, accumulate: true });
    return [dx];
  });
}

/** Join tensors along `axis` (all other dims equal). Differentiable. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new ShapeError("concat: needs at least one tensor");
  const b = backendOf("concat", ...xs);
  const first = xs[0]!;
  const ax = normAxis("concat", axis, first.rank);
  for (const t of xs) {
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== ax && d !== first.shape[i]) || t.dtype !== first.dtype) {
      throw new ShapeError(`concat: ${fmt(t.shape)} (${t.dtype}) does not fit ${fmt(first.shape)} (${first.dtype}) along axis ${ax}`);
    }
  }
  const total = xs.reduce((n, t) => n + t.shape[ax]!, 0);
  const shape = first.shape.map((d, i) => (i === ax ? total : d));
  const out = Tensor.empty(b, shape, first.dtype);
  const outStrides = stridesOf(shape);
  let at = 0;
  const starts: number[] = [];
  for (const t of xs) {
    starts.push(at);
    if (t.size) b.copyStrided({ src: t.buffer, srcStrides: stridesOf(t.shape), dst: out.buffer, dstOffset: at * outStrides[ax]!, dstStrides: outStrides, shape: t.shape });
    at += t.shape[ax]!;
  }
  return record(out, "concat", xs, (g) => xs.map((t, i) => (t.requiresGrad ? narrow(g, ax, starts[i]!, t.shape[ax]!) : null)));
}

/** Convert dtype (not differentiable). */
export function cast(x: Tensor, dtype: DType): Tensor {
  const b = backendOf("cast", x);
  const out = Tensor.empty(b, x.shape, dtype);
  if (x.size) b.cast(x.buffer, out.buffer, x.size);
  return out;
}
