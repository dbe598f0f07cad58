// Layout, GEMM, elementwise and reduction kernels of the reference backend as plain loops over
// typed arrays. Arguments are already validated (ranges, dtypes, shapes) by ReferenceBackend;
// sums are accumulated in float64 and rounded once, on store.
import type { BinaryOp, ReduceOp } from "../../interfaces/backend.js";

/** Storage of an f32 buffer: Float32Array, or Float64Array in f64 precision mode. */
export type FloatStore = Float32Array | Float64Array;
/** Storage of any buffer (bf16/f16 as raw bits in a Uint16Array). */
export type Store = FloatStore | Int32Array | Uint16Array;

/** Number of elements of a shape. */
export function sizeOfShape(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Visits every index of `shape` in row-major order, calling visit(srcIndex, dstIndex) with the
 * two strided element positions; the odometer keeps the cost O(size · rank).
 */
export function forEachStrided(
  shape: readonly number[],
  srcOffset: number,
  srcStrides: readonly number[],
  dstOffset: number,
  dstStrides: readonly number[],
  visit: (srcIndex: number, dstIndex: number) => void,
): void {
  const rank = shape.length;
  if (sizeOfShape(shape) === 0) return;
  const counter = new Array<number>(rank).fill(0);
  let src = srcOffset;
  let dst = dstOffset;
  for (;;) {
    visit(src, dst);
    let axis = rank - 1;
    while (axis >= 0) {
      counter[axis]++;
      src += srcStrides[axis]!;
      dst += dstStrides[axis]!;
      if (counter[axis]! < shape[axis]!) break;
      src -= srcStrides[axis]! * shape[axis]!;
      dst -= dstStrides[axis]! * shape[axis]!;
      counter[axis] = 0;
      axis--;
    }
    if (axis < 0) return;
  }
}

/** Strides (in elements) that read `shape` broadcast to `outShape` (right-aligned; size-1 and missing axes get 0). */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const strides = new Array<number>(outShape.length).fill(0);
  let stride = 1;
  for (let i = shape.length - 1, o = outShape.length - 1; i >= 0; i--, o--) {
    strides[o] = shape[i] === 1 ? 0 : stride;
    stride *= shape[i]!;
  }
  return strides;
}

/** dst[...] (+)= src[...] over a strided N-d index space; `combine` merges old and incoming values when accumulating. */
export function copyStridedKernel(
  src: Store, // strided view of `shape`
  srcOffset: number,
  srcStrides: readonly number[],
  dst: Store, // strided view of `shape`
  dstOffset: number,
  dstStrides: readonly number[],
  shape: readonly number[],
  combine: ((old: number, incoming: number) => number) | null,
): void {
  if (combine === null) {
    forEachStrided(shape, srcOffset, srcStrides, dstOffset, dstStrides, (s, d) => {
      dst[d] = src[s]!;
    });
  } else {
    forEachStrided(shape, srcOffset, srcStrides, dstOffset, dstStrides, (s, d) => {
      dst[d] = combine(dst[d]!, src[s]!);
    });
  }
}

/** Row-major strided view of one operand of a batched GEMM. */
export interface GemmOperand {
  data: FloatStore;
  offset: number;
  /** Row stride as stored. */
  ld: number;
  /** Distance between consecutive batch matrices (0 broadcasts). */
  batchStride: number;
  /** The operand is stored transposed. */
  trans: boolean;
}

/** C[i] = alpha · op(A[i]) · op(B[i]) + beta · C[i]; beta = 0 never reads C. */
export function gemmKernel(
  batch: number,
  m: number,
  n: number,
  k: number,
  alpha: number,
  beta: number,
  a: GemmOperand, // op(A): (m, k) per batch
  b: GemmOperand, // op(B): (k, n) per batch
  c: Omit<GemmOperand, "trans">, // (m, n) per batch
): void {
  // Element strides of op(A) along (row i, col p) and of op(B) along (row p, col j).
  const aRow = a.trans ? 1 : a.ld;
  const aCol = a.trans ? a.ld : 1;
  const bRow = b.trans ? 1 : b.ld;
  const bCol = b.trans ? b.ld : 1;
  for (let batchIndex = 0; batchIndex < batch; batchIndex++) {
    const aBase = a.offset + batchIndex * a.batchStride;
    const bBase = b.offset + batchIndex * b.batchStride;
    const cBase = c.offset + batchIndex * c.batchStride;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) sum += a.data[aBase + i * aRow + p * aCol]! * b.data[bBase + p * bRow + j * bCol]!;
        const ci = cBase + i * c.ld + j;
        c.data[ci] = beta === 0 ? alpha * sum : alpha * sum + beta * c.data[ci]!;
      }
    }
  }
}

function binaryScalar(op: BinaryOp, x: number, y: number): number {
  switch (op) {
    case "add":
      return x + y;
    case "sub":
      return x - y;
    case "mul":
      return x * y;
    case "div":
      return x / y;
    // Math.max/min propagate NaN, like torch.maximum/minimum.
    case "max":
      return Math.max(x, y);
    case "min":
      return Math.min(x, y);
    case "pow":
      return Math.pow(x, y);
  }
}

/** out = a ⊙ b with numpy broadcasting (shapes already checked). */
export function binaryKernel(
  op: BinaryOp,
  a: FloatStore, // aShape, broadcast to outShape
  aShape: readonly number[],
  b: FloatStore, // bShape, broadcast to outShape
  bShape: readonly number[],
  out: FloatStore, // outShape
  outShape: readonly number[],
): void {
  const aStrides = broadcastStrides(aShape, outShape);
  const bStrides = broadcastStrides(bShape, outShape);
  let o = 0;
  forEachStrided(outShape, 0, aStrides, 0, bStrides, (ai, bi) => {
    out[o++] = binaryScalar(op, a[ai]!, b[bi]!);
  });
}

/** Per reduce op (keyed by the op table, so a new op is a compile error here): start, step, last step. */
const REDUCERS: Record<ReduceOp, { init: number; step: (acc: number, v: number) => number; finish: (acc: number, cols: number) => number }> = {
  sum: { init: 0, step: (acc, v) => acc + v, finish: (acc) => acc },
  max: { init: -Infinity, step: (acc, v) => (Number.isNaN(v) || Number.isNaN(acc) ? NaN : Math.max(acc, v)), finish: (acc) => acc },
  mean: { init: 0, step: (acc, v) => acc + v, finish: (acc, cols) => acc / cols },
  sumsq: { init: 0, step: (acc, v) => acc + v * v, finish: (acc) => acc },
};

/** out[r] = reduce(x[r, :]); an empty row gives sum 0, max −Inf, mean NaN. */
export function reduceLastAxisKernel(
  op: ReduceOp,
  x: FloatStore, // (rows, cols)
  out: FloatStore, // (rows)
  rows: number,
  cols: number,
): void {
  const { init, step, finish } = REDUCERS[op];
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let acc = init;
    for (let j = 0; j < cols; j++) acc = step(acc, x[base + j]!);
    out[r] = finish(acc, cols);
  }
}

/** Sum x down to outShape (outShape broadcasts to xShape); out is overwritten. */
export function sumToShapeKernel(
  x: FloatStore, // xShape
  xShape: readonly number[],
  out: FloatStore, // outShape
  outShape: readonly number[],
): void {
  const acc = new Float64Array(sizeOfShape(outShape));
  const outStrides = broadcastStrides(outShape, xShape);
  const xStrides = broadcastStrides(xShape, xShape);
  forEachStrided(xShape, 0, xStrides, 0, outStrides, (xi, oi) => {
    acc[oi] += x[xi]!;
  });
  for (let i = 0; i < acc.length; i++) out[i] = acc[i]!;
}
