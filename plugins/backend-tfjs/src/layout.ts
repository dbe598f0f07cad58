// Strided views as tfjs index tensors, and the 16-bit storage formats. tfjs has neither bf16 nor a
// bitcast, so bf16/f16 buffers hold their raw bits in int32 tensors and casts to and from them
// convert on the host with core's round-to-nearest-even helpers (the same code the reference runs).
import * as tf from "@tensorflow/tfjs-core";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, type DType } from "@ecomla/core";

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major contiguous strides of a shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return strides;
}

/** True when the strided view of `shape` is the contiguous range [offset, offset + numel) in row-major order. */
export function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 1) continue;
    if (strides[d] !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

/**
 * When the view is a contiguous block read in permuted axis order (a transpose), the block's
 * stored shape and the permutation that reads it as the view: view = transpose(stored, perm).
 */
export function permutation(shape: readonly number[], strides: readonly number[]): { stored: number[]; perm: number[] } | null {
  const axes = shape.map((_, d) => d).filter((d) => shape[d] !== 1);
  const order = [...axes].sort((a, b) => strides[b]! - strides[a]!);
  if (!isContiguous(order.map((d) => shape[d]!), order.map((d) => strides[d]!))) return null;
  // Size-1 axes go first in the stored block; any stride serves them.
  const ones = shape.map((_, d) => d).filter((d) => shape[d] === 1);
  const storedAxes = [...ones, ...order];
  return { stored: storedAxes.map((d) => shape[d]!), perm: shape.map((_, d) => storedAxes.indexOf(d)) };
}

/**
 * True when no two indices of the view address the same element (so a scatter of it has no
 * duplicates): sorted by |stride|, each stride must step over everything the smaller ones span.
 */
export function isInjective(shape: readonly number[], strides: readonly number[]): boolean {
  const dims = shape.map((n, d) => ({ n, s: Math.abs(strides[d]!) })).filter((x) => x.n > 1).sort((a, b) => a.s - b.s);
  let span = 1;
  for (const { n, s } of dims) {
    if (s < span) return false;
    span = s * (n - 1) + span;
  }
  return true;
}

/** (numel(shape)) int32: the element index of every position of a strided view, in row-major order (built on the device). */
export function stridedIndex(offset: number, shape: readonly number[], strides: readonly number[]): tf.Tensor1D {
  return tf.tidy(() => {
    let index: tf.Tensor = tf.scalar(offset, "int32");
    shape.forEach((n, d) => {
      if (n === 1 || strides[d] === 0) return;
      const axis = tf.range(0, n * strides[d]!, strides[d]!, "int32");
      index = tf.add(index, tf.reshape(axis, shape.map((m, e) => (e === d ? n : 1))));
    });
    return tf.reshape(tf.broadcastTo(index, shape.length ? [...shape] : []), [-1]) as tf.Tensor1D;
  });
}

/** The tfjs dtype holding a buffer dtype (16-bit formats keep raw bits in int32). */
export function tfDtype(dtype: DType): "float32" | "int32" {
  return dtype === "f32" ? "float32" : "int32";
}

/** f32 values of 16-bit raw bits (exact). */
export function halfToF32(bits: ArrayLike<number>, dtype: "bf16" | "f16"): Float32Array {
  const out = new Float32Array(bits.length);
  if (dtype === "bf16") {
    const words = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) words[i] = (bits[i]! & 0xffff) << 16;
  } else {
    for (let i = 0; i < bits.length; i++) out[i] = f16BitsToF32(bits[i]!);
  }
  return out;
}

/** 16-bit raw bits (as int32) of values, rounded to nearest even (values are rounded to f32 first). */
export function f32ToHalf(values: ArrayLike<number>, dtype: "bf16" | "f16"): Int32Array {
  const out = new Int32Array(values.length);
  const encode = dtype === "bf16" ? f32ToBf16Bits : f32ToF16Bits;
  for (let i = 0; i < values.length; i++) out[i] = encode(values[i]!);
  return out;
}

/** The value a stored element stands for (16-bit formats decoded). */
export function decodeValue(dtype: DType, raw: number): number {
  return dtype === "bf16" ? bf16BitsToF32(raw) : dtype === "f16" ? f16BitsToF32(raw) : raw;
}

/** The stored element for a value: 16-bit formats encoded, i32 truncated and saturated (NaN gives 0), f32 as is. */
export function encodeValue(dtype: DType, value: number): number {
  if (dtype === "bf16") return f32ToBf16Bits(value);
  if (dtype === "f16") return f32ToF16Bits(value);
  if (dtype === "i32") return Number.isNaN(value) ? 0 : Math.trunc(Math.min(2147483647, Math.max(-2147483648, value)));
  return value;
}
