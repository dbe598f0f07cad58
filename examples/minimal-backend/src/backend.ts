// MinimalBackend: the required primitives of the TensorBackend contract and nothing else, as plain
// loops over typed arrays. "Device memory" is a typed array per buffer; every kernel runs at once,
// so download and sync have nothing to wait for. Core's completeBackend composes every fused
// kernel (softmax, RMSNorm, RoPE, attention, losses, AdamW, …) from these primitives.
import {
  BackendChecks,
  DTYPE_BYTES,
  bf16BitsToF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  unaryDerivative,
  unaryForward,
  unaryTakesAlpha,
  type BackendCapabilities,
  type BackendMemoryStats,
  type BackendPrimitives,
  type CopyStridedArgs,
  type BinaryOp,
  type DType,
  type DeviceBuffer,
  type GemmArgs,
  type HostArray,
  type HostArrayOf,
  type OwnedBuffer,
  type ReduceOp,
  type UnaryOp,
} from "@ecomla/core";

/** What a buffer holds: f32 as floats, i32 as ints, bf16/f16 as their raw 16-bit patterns. */
type Storage = Float32Array | Int32Array | Uint16Array;

/** One allocation: its typed array plus what the shared checks need (owner, freed). */
export class MinimalBuffer implements OwnedBuffer {
  readonly backend = "minimal";
  freed = false;
  constructor(
    readonly owner: object,
    readonly dtype: DType,
    readonly length: number,
    public data: Storage,
  ) {}
}

const STORAGE: Record<DType, new (length: number) => Storage> = { f32: Float32Array, i32: Int32Array, bf16: Uint16Array, f16: Uint16Array };

/** Stored element → number (bf16/f16 decode their bits; bf16/f16 → f32 is exact). */
function decode(dtype: DType, stored: number): number {
  if (dtype === "bf16") return bf16BitsToF32(stored);
  if (dtype === "f16") return f16BitsToF32(stored);
  return stored;
}

/** Number → stored element: bf16/f16 round to nearest even (through f32), i32 truncates and saturates, NaN → 0. */
function encode(dtype: DType, value: number): number {
  if (dtype === "bf16") return f32ToBf16Bits(value);
  if (dtype === "f16") return f32ToF16Bits(value);
  if (dtype === "i32") return Number.isNaN(value) ? 0 : Math.max(-2147483648, Math.min(2147483647, Math.trunc(value)));
  return value; // f32: the Float32Array rounds on store
}

const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  max: Math.max, // Math.max/min propagate NaN, like torch.maximum/minimum
  min: Math.min,
  pow: Math.pow,
};

/** Number of elements of a shape. */
function sizeOf(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** Strides that read `shape` broadcast to `outShape` (right-aligned; missing and size-1 axes get 0). */
function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const strides = new Array<number>(outShape.length).fill(0);
  for (let i = shape.length - 1, o = outShape.length - 1, stride = 1; i >= 0; i--, o--) {
    strides[o] = shape[i] === 1 ? 0 : stride;
    stride *= shape[i]!;
  }
  return strides;
}

/**
 * Visit the innermost rows of `shape` (rank ≥ 1) for two strided views at once: visit(a, b) gets
 * the element index of each row's first element in view a and view b. An odometer walks the outer
 * axes, so the cost is one call per row, and the caller's inner loop runs along the last axis.
 */
function forEachRow(shape: readonly number[], aOffset: number, aStrides: readonly number[], bOffset: number, bStrides: readonly number[], visit: (a: number, b: number) => void): void {
  if (sizeOf(shape) === 0) return;
  const outer = shape.length - 1;
  const counter = new Array<number>(outer).fill(0);
  let a = aOffset;
  let b = bOffset;
  for (;;) {
    visit(a, b);
    let axis = outer - 1;
    for (; axis >= 0; axis--) {
      a += aStrides[axis]!;
      b += bStrides[axis]!;
      if (++counter[axis]! < shape[axis]!) break;
      a -= aStrides[axis]! * shape[axis]!;
      b -= bStrides[axis]! * shape[axis]!;
      counter[axis] = 0;
    }
    if (axis < 0) return;
  }
}

/** The required primitives over typed arrays; `completeBackend(new MinimalBackend())` is a whole backend. */
export class MinimalBackend implements BackendPrimitives {
  readonly name = "minimal";
  /** No SVD here: the converters fall back to core's Jacobi SVD. */
  readonly capabilities: BackendCapabilities = {};
  private readonly checks = new BackendChecks<MinimalBuffer>("MinimalBackend", "minimal", this, (b): b is MinimalBuffer => b instanceof MinimalBuffer);

  /** An f32 buffer's floats, after checking that elements [offset, offset+count) exist. */
  private f32(kernel: string, arg: string, buf: DeviceBuffer, count: number, offset = 0): Float32Array {
    return this.checks.typed(kernel, arg, buf, "f32", count, offset).data as Float32Array;
  }

  /** Any buffer of ours, after checking that elements [offset, offset+count) exist. */
  private elements(kernel: string, arg: string, buf: DeviceBuffer, count: number, offset = 0): MinimalBuffer {
    const b = this.checks.own(kernel, arg, buf);
    this.checks.span(kernel, arg, b, count > 0 ? [offset, offset + count] : null);
    return b;
  }

  /** A GEMM operand's floats, after checking that the strided view (shape, strides) lies inside it. */
  // ---- memory -----------------------------------------------------------------------------------

  alloc(dtype: DType, length: number): DeviceBuffer {
    if (!(dtype in STORAGE)) this.checks.fail("alloc", `unknown dtype ${JSON.stringify(dtype)}`);
    this.checks.ints("alloc", { length });
    this.checks.allocated(length * DTYPE_BYTES[dtype]);
    return new MinimalBuffer(this, dtype, length, new STORAGE[dtype](length));
  }

  free(buf: DeviceBuffer): void {
    const b = this.checks.own("free", "buf", buf); // a second free is a use after free
    b.freed = true;
    b.data = new Float32Array(0);
    this.checks.released(b.length * DTYPE_BYTES[b.dtype]);
  }

  upload(buf: DeviceBuffer, data: HostArray, offset = 0): void {
    this.checks.ints("upload", { offset });
    const b = this.elements("upload", "buf", buf, data.length, offset);
    if (!(data instanceof STORAGE[b.dtype])) this.checks.fail("upload", `argument 'buf' (${b.dtype}) takes a ${STORAGE[b.dtype].name}, found ${data?.constructor?.name}`);
    b.data.set(data, offset);
  }

  async download<D extends DType>(buf: DeviceBuffer & { dtype: D }, offset = 0, length?: number): Promise<HostArrayOf<D>> {
    const count = length ?? buf.length - offset;
    this.checks.ints("download", { offset, length: count });
    const b = this.elements("download", "buf", buf, count, offset);
    return b.data.slice(offset, offset + count) as HostArrayOf<D>;
  }

  async sync(): Promise<void> {}

  memoryStats(): BackendMemoryStats {
    return this.checks.snapshot();
  }

  // ---- layout -----------------------------------------------------------------------------------

  /** out[offset .. offset+n) = value, in out's dtype. */
  fill(out: DeviceBuffer, value: number, n: number, offset = 0): void {
    this.checks.ints("fill", { n, offset });
    const b = this.elements("fill", "out", out, n, offset);
    b.data.fill(encode(b.dtype, value), offset, offset + n);
  }

  /** dst[dstOffset + Σ i·dstStrides] (+)= src[srcOffset + Σ i·srcStrides] for every index i of shape (rank ≤ 6), one dtype. */
  copyStrided(args: CopyStridedArgs): void {
    const { shape, srcStrides, dstStrides, accumulate } = args;
    const { src, dst, srcOffset, dstOffset } = this.checks.copyStrided(args);
    const dims = shape.length > 0 ? shape : [1]; // a rank-0 copy is one element
    const from = src === dst ? src.data.slice() : src.data; // read the values from before the call
    const to = dst.data;
    const n = dims[dims.length - 1]!;
    const [s, d] = [srcStrides[dims.length - 1] ?? 1, dstStrides[dims.length - 1] ?? 1];
    const dtype = dst.dtype;
    forEachRow(dims, srcOffset, srcStrides, dstOffset, dstStrides, (srcRow, dstRow) => {
      if (!accumulate) for (let j = 0; j < n; j++) to[dstRow + j * d] = from[srcRow + j * s]!;
      else if (dtype === "f32") for (let j = 0; j < n; j++) to[dstRow + j * d] += from[srcRow + j * s]!;
      else if (dtype === "i32") for (let j = 0; j < n; j++) to[dstRow + j * d] = (to[dstRow + j * d]! + from[srcRow + j * s]!) | 0;
      else for (let j = 0; j < n; j++) to[dstRow + j * d] = encode(dtype, decode(dtype, to[dstRow + j * d]!) + decode(dtype, from[srcRow + j * s]!));
    });
  }

  /** dst (n) = src (n) converted between dtypes. */
  cast(src: DeviceBuffer, dst: DeviceBuffer, n: number): void {
    this.checks.ints("cast", { n });
    const [s, d] = [this.elements("cast", "src", src, n), this.elements("cast", "dst", dst, n)];
    if (s.dtype === d.dtype) d.data.set(s.data.subarray(0, n));
    else for (let i = 0; i < n; i++) d.data[i] = encode(d.dtype, decode(s.dtype, s.data[i]!));
  }

  // ---- linear algebra ---------------------------------------------------------------------------

  /**
   * C[i] (m, n) = alpha · op(A[i]) (m, k) · op(B[i]) (k, n) + beta · C[i], per batch item i.
   * Each row of C is summed in float64, four terms at a time: that is what makes a plain JS loop
   * reach ~2-4 GFLOP/s instead of ~1. When B is stored [k, n] the loop is i-p-j (the inner loop
   * runs along four rows of B at once); when it is stored transposed, [n, k], it is i-j-p (four
   * dot products along rows of B at once).
   */
  gemm(args: GemmArgs): void {
    const { batch, m, n, k, transA, transB, alpha, beta, lda, ldb, ldc, strideA, strideB, strideC } = args;
    const { aOffset, bOffset, cOffset, ...bufs } = this.checks.gemm(args); // sizes, strides, ranges, f32
    const [a, b, c] = [bufs.a.data, bufs.b.data, bufs.c.data] as Float32Array[]; // op(A) (m, k), op(B) (k, n), C (m, n) per item
    const [aRowStep, aColStep] = transA ? [1, lda] : [lda, 1]; // element steps of op(A) along i and p
    const row = new Float64Array(n); // (n) one row of op(A)·op(B)
    for (let item = 0; item < batch; item++) {
      const [aBase, bBase, cBase] = [aOffset + item * strideA, bOffset + item * strideB, cOffset + item * strideC];
      for (let i = 0; i < m; i++) {
        const ai = aBase + i * aRowStep; // A(i, p) = a[ai + p·aColStep]
        if (!transB) {
          row.fill(0); // B(p, j) = b[bBase + p·ldb + j]
          let p = 0;
          for (; p + 3 < k; p += 4) {
            const a0 = a[ai + p * aColStep]!, a1 = a[ai + (p + 1) * aColStep]!, a2 = a[ai + (p + 2) * aColStep]!, a3 = a[ai + (p + 3) * aColStep]!;
            const b0 = bBase + p * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
            for (let j = 0; j < n; j++) row[j] += a0 * b[b0 + j]! + a1 * b[b1 + j]! + a2 * b[b2 + j]! + a3 * b[b3 + j]!;
          }
          for (; p < k; p++) {
            const ap = a[ai + p * aColStep]!, bp = bBase + p * ldb;
            for (let j = 0; j < n; j++) row[j] += ap * b[bp + j]!;
          }
        } else {
          let j = 0; // B(p, j) = b[bBase + j·ldb + p]
          for (; j + 3 < n; j += 4) {
            const b0 = bBase + j * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
            let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (let p = 0; p < k; p++) {
              const x = a[ai + p * aColStep]!;
              s0 += x * b[b0 + p]!;
              s1 += x * b[b1 + p]!;
              s2 += x * b[b2 + p]!;
              s3 += x * b[b3 + p]!;
            }
            row[j] = s0;
            row[j + 1] = s1;
            row[j + 2] = s2;
            row[j + 3] = s3;
          }
          for (; j < n; j++) {
            let sum = 0;
            for (let p = 0; p < k; p++) sum += a[ai + p * aColStep]! * b[bBase + j * ldb + p]!;
            row[j] = sum;
          }
        }
        const ci = cBase + i * ldc;
        // beta = 0 never reads C, so whatever it held (even NaN) does not leak through.
        for (let j = 0; j < n; j++) c[ci + j] = beta === 0 ? alpha * row[j]! : alpha * row[j]! + beta * c[ci + j]!;
      }
    }
  }

  // ---- elementwise and reductions ---------------------------------------------------------------

  /** out (outShape) = a (aShape) ⊙ b (bShape), numpy broadcasting; out may alias an input of outShape. */
  binary(op: BinaryOp, a: DeviceBuffer, aShape: readonly number[], b: DeviceBuffer, bShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    const k = `binary(${op})`;
    for (const [arg, shape] of [["aShape", aShape], ["bShape", bShape], ["outShape", outShape]] as const) this.checks.shape(k, arg, shape);
    this.checks.broadcast(k, "aShape", aShape, "outShape", outShape);
    this.checks.broadcast(k, "bShape", bShape, "outShape", outShape);
    const size = sizeOf(outShape);
    const o = this.f32(k, "out", out, size);
    const x = this.f32(k, "a", a, size > 0 ? sizeOf(aShape) : 0);
    const y = this.f32(k, "b", b, size > 0 ? sizeOf(bShape) : 0);
    const f = BINARY[op];
    const dims = outShape.length > 0 ? outShape : [1];
    const [aStrides, bStrides] = [broadcastStrides(aShape, dims), broadcastStrides(bShape, dims)];
    const n = dims[dims.length - 1]!;
    const [aStep, bStep] = [aStrides[dims.length - 1]!, bStrides[dims.length - 1]!]; // 1, or 0 when broadcast
    let at = 0; // out is contiguous: its rows follow one another
    forEachRow(dims, 0, aStrides, 0, bStrides, (aRow, bRow) => {
      for (let j = 0; j < n; j++) o[at++] = f(x[aRow + j * aStep]!, y[bRow + j * bStep]!);
    });
  }

  /** out (n) = f(x (n)); may run in place. */
  unary(op: UnaryOp, x: DeviceBuffer, out: DeviceBuffer, n: number, alpha?: number): void {
    const k = `unary(${op})`;
    this.checks.ints(k, { n });
    const scalar = this.alpha(k, op, alpha);
    const [xs, os] = [this.f32(k, "x", x, n), this.f32(k, "out", out, n)];
    for (let i = 0; i < n; i++) os[i] = unaryForward(op, xs[i]!, scalar);
  }

  /** dx (n) = dy (n) · f'(x (n)); the derivative is recomputed from x, so y is only checked. */
  unaryBackward(op: UnaryOp, x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, n: number, alpha?: number): void {
    const k = `unaryBackward(${op})`;
    this.checks.ints(k, { n });
    const scalar = this.alpha(k, op, alpha);
    this.f32(k, "y", y, n);
    const [xs, dys, dxs] = [this.f32(k, "x", x, n), this.f32(k, "dy", dy, n), this.f32(k, "dx", dx, n)];
    for (let i = 0; i < n; i++) dxs[i] = dys[i]! * unaryDerivative(op, xs[i]!, scalar);
  }

  /** The scalar of scale/addScalar/powScalar (required for them), else 0. */
  private alpha(kernel: string, op: UnaryOp, alpha: number | undefined): number {
    if (unaryTakesAlpha(op) && alpha === undefined) this.checks.fail(kernel, `op '${op}' needs alpha, found undefined`);
    return alpha ?? 0;
  }

  /** out[r] (rows) = reduce(x[r, :]) over x (rows, cols), in float64; an empty row gives sum 0, max −Inf, mean NaN. */
  reduceLastAxis(op: ReduceOp, x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void {
    const k = `reduceLastAxis(${op})`;
    this.checks.ints(k, { rows, cols });
    const [xs, os] = [this.f32(k, "x", x, rows * cols), this.f32(k, "out", out, rows)];
    for (let r = 0; r < rows; r++) {
      let acc = op === "max" ? -Infinity : 0;
      for (let j = r * cols; j < (r + 1) * cols; j++) {
        const v = xs[j]!;
        if (op === "max") acc = Math.max(acc, v); // a NaN anywhere makes the max NaN
        else acc += op === "sumsq" ? v * v : v;
      }
      os[r] = op === "mean" ? acc / cols : acc;
    }
  }

  // ---- gather -----------------------------------------------------------------------------------

  /** out (n, dim) = rows ids (n) of table (vocab, dim). */
  embedding(ids: DeviceBuffer, table: DeviceBuffer, out: DeviceBuffer, n: number, vocab: number, dim: number): void {
    this.checks.ints("embedding", { n, vocab, dim });
    const idx = this.checks.typed("embedding", "ids", ids, "i32", n).data as Int32Array;
    const [ts, os] = [this.f32("embedding", "table", table, vocab * dim), this.f32("embedding", "out", out, n * dim)];
    for (let i = 0; i < n; i++) {
      const id = idx[i]!;
      if (id < 0 || id >= vocab) this.checks.fail("embedding", `ids[${i}] = ${id} is out of range [0, ${vocab})`);
      os.set(ts.subarray(id * dim, (id + 1) * dim), i * dim);
    }
  }
}
