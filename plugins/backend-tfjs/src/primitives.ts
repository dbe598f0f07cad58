// The required primitives of the TensorBackend contract on TensorFlow.js. tfjs tensors are
// immutable, so a buffer holds a 1-D tensor that each write replaces (the old one is disposed);
// kernels build their result inside tf.tidy, so intermediates never outlive the call.
import * as tf from "@tensorflow/tfjs-core";
import {
  DTYPE_BYTES,
  BackendChecks,
  EcomlaError,
  ShapeError,
  stridedSpan,
  unaryTakesAlpha,
  type BackendCapabilities,
  type BackendMemoryStats,
  type BinaryOp,
  type CopyStridedArgs,
  type DType,
  type DeviceBuffer,
  type GemmArgs,
  type HostArray,
  type HostArrayOf,
  type ReduceOp,
  type TensorBackend,
  type UnaryOp,
} from "@ecomla/core";
import { decodeValue, encodeValue, f32ToHalf, halfToF32, isContiguous, isInjective, numel, permutation, stridedIndex, tfDtype } from "./layout.js";
import { batchedMatMul } from "./matmul.js";
import type { TfjsSelection } from "./select.js";

const HOST_ARRAY_OF: Record<DType, string> = { f32: "Float32Array", i32: "Int32Array", bf16: "Uint16Array", f16: "Uint16Array" };

/** A tfjs-backend buffer: a flat tensor replaced on every write, or null until first written. */
export class TfjsBuffer implements DeviceBuffer {
  readonly backend = "tfjs";
  freed = false;
  /** (length) float32 for f32, int32 for i32 and for the raw bits of bf16/f16. */
  tensor: tf.Tensor1D | null = null;
  constructor(
    readonly owner: object,
    readonly dtype: DType,
    readonly length: number,
  ) {}
}

const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** erfc(z) for z ≥ 0 with relative error < 1.2e-7 everywhere (Numerical Recipes' Chebyshev fit), so Φ keeps its tails. */
function erfcNonNegative(z: tf.Tensor): tf.Tensor {
  const t = tf.div(1, tf.add(1, tf.mul(0.5, z)));
  const coefficients = [0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196, 1.00002368];
  let poly: tf.Tensor = tf.scalar(coefficients[0]!);
  for (const c of coefficients.slice(1)) poly = tf.add(c, tf.mul(t, poly));
  return tf.mul(t, tf.exp(tf.add(tf.sub(tf.neg(tf.square(z)), 1.26551223), tf.mul(t, poly))));
}

/** Φ(x), the standard normal CDF, for exact GELU: 0.5·erfc(−x/√2) without cancellation in either tail. */
function normalCdf(x: tf.Tensor): tf.Tensor {
  const half = tf.mul(0.5, erfcNonNegative(tf.mul(tf.abs(x), INV_SQRT2)));
  return tf.where(tf.greaterEqual(x, 0), tf.sub(1, half), half);
}

function unaryForward(op: UnaryOp, x: tf.Tensor, alpha: number): tf.Tensor {
  switch (op) {
    case "neg": return tf.neg(x);
    case "exp": return tf.exp(x);
    case "log": return tf.log(x);
    case "sqrt": return tf.sqrt(x);
    case "rsqrt": return tf.rsqrt(x);
    case "abs": return tf.abs(x);
    case "square": return tf.square(x);
    case "reciprocal": return tf.reciprocal(x);
    case "relu": return tf.relu(x);
    case "sigmoid": return tf.sigmoid(x);
    case "silu": return tf.mul(x, tf.sigmoid(x));
    case "tanh": return tf.tanh(x);
    case "gelu": return tf.mul(x, normalCdf(x));
    case "scale": return tf.mul(x, alpha);
    case "addScalar": return tf.add(x, alpha);
    case "powScalar": return tf.pow(x, alpha);
  }
}

/** f'(x), recomputed from x as the reference does (abs and relu give 0 at 0). */
function unaryDerivative(op: UnaryOp, x: tf.Tensor, alpha: number): tf.Tensor {
  switch (op) {
    case "neg": return tf.fill(x.shape, -1);
    case "exp": return tf.exp(x);
    case "log": return tf.reciprocal(x);
    case "sqrt": return tf.div(0.5, tf.sqrt(x));
    case "rsqrt": return tf.div(-0.5, tf.mul(x, tf.sqrt(x)));
    case "abs": return tf.sign(x);
    case "square": return tf.mul(x, 2);
    case "reciprocal": return tf.div(-1, tf.square(x));
    case "relu": return tf.step(x, 0);
    case "sigmoid": {
      const s = tf.sigmoid(x);
      return tf.mul(s, tf.sub(1, s));
    }
    case "silu": {
      const s = tf.sigmoid(x);
      return tf.mul(s, tf.add(1, tf.mul(x, tf.sub(1, s))));
    }
    case "tanh": return tf.sub(1, tf.square(tf.tanh(x)));
    case "gelu": return tf.add(normalCdf(x), tf.mul(x, tf.mul(INV_SQRT_2PI, tf.exp(tf.mul(-0.5, tf.square(x))))));
    case "scale": return tf.fill(x.shape, alpha);
    case "addScalar": return tf.onesLike(x);
    case "powScalar": return alpha === 0 ? tf.zerosLike(x) : tf.mul(alpha, tf.pow(x, alpha - 1));
  }
}

function binaryOp(op: BinaryOp, a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  switch (op) {
    case "add": return tf.add(a, b);
    case "sub": return tf.sub(a, b);
    case "mul": return tf.mul(a, b);
    case "div": return tf.div(a, b);
    case "max": return tf.maximum(a, b);
    case "min": return tf.minimum(a, b);
    case "pow": return tf.pow(a, b);
  }
}

/** The primitives; {@link TfjsBackend} adds the fused kernels tfjs runs faster than core's compositions. */
export class TfjsPrimitives implements TensorBackend {
  readonly name = "tfjs";
  readonly capabilities: BackendCapabilities = {};
  protected readonly checks: BackendChecks<TfjsBuffer> = new BackendChecks<TfjsBuffer>("TfjsBackend", "tfjs", this, (b): b is TfjsBuffer => b instanceof TfjsBuffer);

  constructor(
    /** Which tfjs backend runs the kernels, and why the better ones do not. */
    readonly selection: TfjsSelection,
  ) {}

  // ---- buffer plumbing ------------------------------------------------------------------------------

  /** The buffer's tensor (zeros when never written: content is unspecified until then). */
  protected tensorOf(b: TfjsBuffer): tf.Tensor1D {
    b.tensor ??= tf.keep(tf.zeros([b.length], tfDtype(b.dtype)) as tf.Tensor1D);
    return b.tensor;
  }

  /** Elements [offset, offset+n) of a checked buffer as a tensor of `shape` (default [n]). */
  protected read(b: TfjsBuffer, n: number, offset = 0, shape: readonly number[] = [n]): tf.Tensor {
    const whole = this.tensorOf(b);
    const part = offset === 0 && n === b.length ? whole : tf.slice(whole, offset, n);
    return tf.reshape(part, [...shape]);
  }

  /** A strided view of a buffer's tensor as a tensor of `shape`: a slice when contiguous (or row-padded), else a gather. */
  protected readStrided(b: TfjsBuffer, offset: number, shape: readonly number[], strides: readonly number[]): tf.Tensor {
    const whole = this.tensorOf(b);
    const count = numel(shape);
    if (count === 0) return tf.zeros([...shape], whole.dtype);
    if (isContiguous(shape, strides)) return this.read(b, count, offset, shape);
    const permuted = permutation(shape, strides);
    if (permuted && offset + numel(shape) <= b.length) {
      return tf.transpose(this.read(b, count, offset, permuted.stored), permuted.perm);
    }
    const rank = shape.length;
    if (rank >= 2 && strides[rank - 1] === 1 && strides[rank - 2]! >= shape[rank - 1]!) {
      // Rows of a wider matrix (lda > cols): read whole padded rows, then drop the padding.
      const padded = [...shape.slice(0, -1), strides[rank - 2]!];
      if (isContiguous(padded, strides) && offset + numel(padded) <= b.length) {
        return tf.slice(this.read(b, numel(padded), offset, padded), new Array<number>(rank).fill(0), [...shape]);
      }
    }
    return tf.reshape(tf.gather(whole, stridedIndex(offset, shape, strides)), [...shape]);
  }

  /** `old` with elements [offset, offset+values.size) replaced by values (1-D). */
  protected spliced(old: tf.Tensor1D, offset: number, values: tf.Tensor): tf.Tensor1D {
    const flat = tf.reshape(values, [-1]) as tf.Tensor1D;
    const n = flat.size;
    if (n === old.size) return flat;
    const parts: tf.Tensor1D[] = [];
    if (offset > 0) parts.push(tf.slice(old, 0, offset));
    parts.push(flat);
    if (offset + n < old.size) parts.push(tf.slice(old, offset + n));
    return tf.concat(parts);
  }

  /** `old` with the strided view (injective) replaced by values of `shape`. */
  protected scattered(old: tf.Tensor1D, offset: number, shape: readonly number[], strides: readonly number[], values: tf.Tensor): tf.Tensor1D {
    if (isContiguous(shape, strides)) return this.spliced(old, offset, values);
    const index = tf.reshape(stridedIndex(offset, shape, strides), [-1, 1]);
    return tf.tensorScatterUpdate(old, index, tf.reshape(values, [-1])) as tf.Tensor1D;
  }

  /** Replace b's content by what `compute(old)` returns (run in a tidy; the old tensor is disposed). */
  protected update(b: TfjsBuffer, compute: (old: tf.Tensor1D) => tf.Tensor): void {
    // The reshape gives the buffer a tensor object of its own (sharing the data, no copy) even when
    // compute returns an input unchanged.
    const next = tf.tidy(() => tf.reshape(compute(this.tensorOf(b)), [b.length])) as tf.Tensor1D;
    if (next.dtype !== tfDtype(b.dtype)) throw new EcomlaError(`TfjsBackend: internal error, a ${b.dtype} buffer got a ${next.dtype} tensor`);
    b.tensor?.dispose();
    b.tensor = next;
    this.lastWritten = b;
  }

  /** The buffer written last: reading one element of it waits for every kernel queued before (see sync). */
  private lastWritten: TfjsBuffer | null = null;

  /** op(a)·op(b) per batch (a batch of 1 broadcasts), on the active tfjs backend's fast path. */
  protected matMul(a: tf.Tensor, b: tf.Tensor, transA = false, transB = false): tf.Tensor3D {
    return batchedMatMul(a as tf.Tensor3D, b as tf.Tensor3D, transA, transB, this.selection.active === "wasm");
  }

  /** A checked buffer of `dtype` holding elements [offset, offset+count). */
  protected typed(kernel: string, arg: string, buf: DeviceBuffer, dtype: DType, count: number, offset = 0): TfjsBuffer {
    return this.checks.typed(kernel, arg, buf, dtype, count, offset);
  }

  // ---- memory -----------------------------------------------------------------------------------------

  alloc(dtype: DType, length: number): DeviceBuffer {
    if (!(dtype in DTYPE_BYTES)) throw new ShapeError(`TfjsBackend.alloc: unknown dtype ${JSON.stringify(dtype)}`);
    this.checks.ints("alloc", { length });
    this.checks.allocated(length * DTYPE_BYTES[dtype]);
    return new TfjsBuffer(this, dtype, length);
  }

  free(buf: DeviceBuffer): void {
    if (buf instanceof TfjsBuffer && buf.owner === this && buf.freed) {
      throw new EcomlaError(`TfjsBackend.free: buffer (${buf.dtype}, length ${buf.length}) was already freed (freeing twice)`);
    }
    const b = this.checks.own("free", "buf", buf);
    b.freed = true;
    b.tensor?.dispose();
    b.tensor = null;
    this.checks.released(b.length * DTYPE_BYTES[b.dtype]);
  }

  upload(buf: DeviceBuffer, data: HostArray, offset = 0): void {
    const b = this.checks.own("upload", "buf", buf);
    const expected = HOST_ARRAY_OF[b.dtype];
    const found = (data as object)?.constructor?.name ?? typeof data;
    if (found !== expected) this.checks.fail("upload", `a ${b.dtype} buffer takes a ${expected}, found ${found}`);
    this.checks.ints("upload", { offset });
    this.checks.span("upload", "buf", b, data.length > 0 ? [offset, offset + data.length] : null);
    if (data.length === 0) return;
    const values = data instanceof Uint16Array ? Int32Array.from(data) : data;
    this.update(b, (old) => this.spliced(old, offset, tf.tensor1d(values, tfDtype(b.dtype))));
  }

  async download<D extends DType>(buf: DeviceBuffer & { dtype: D }, offset = 0, length?: number): Promise<HostArrayOf<D>> {
    const b = this.checks.own("download", "buf", buf);
    const count = length ?? b.length - offset;
    this.checks.ints("download", { offset, length: count });
    this.checks.span("download", "buf", b, count > 0 ? [offset, offset + count] : null);
    const empty = b.dtype === "f32" ? new Float32Array(0) : b.dtype === "i32" ? new Int32Array(0) : new Uint16Array(0);
    if (count === 0) return empty as HostArrayOf<D>;
    const part = tf.tidy(() => tf.clone(this.read(b, count, offset)));
    try {
      const data = await part.data();
      // Copies: a backend may hand out its own storage.
      if (b.dtype === "f32") return Float32Array.from(data as Float32Array) as HostArrayOf<D>;
      if (b.dtype === "i32") return Int32Array.from(data as Int32Array) as HostArrayOf<D>;
      return Uint16Array.from(data as Int32Array) as HostArrayOf<D>;
    } finally {
      part.dispose();
    }
  }

  async sync(): Promise<void> {
    // tfjs-node-gpu queues kernels on a stream; the CPU backends have already run them.
    const last = this.lastWritten;
    if (last === null || last.freed || last.tensor === null || last.length === 0) return;
    const probe = tf.tidy(() => tf.slice(last.tensor!, 0, 1));
    await probe.data();
    probe.dispose();
  }

  memoryStats(): BackendMemoryStats {
    return this.checks.snapshot();
  }

  /** Tensors tfjs holds now (all buffers' plus any leak), for tests that check nothing leaks. */
  tfjsTensors(): number {
    return tf.memory().numTensors;
  }

  // ---- layout -----------------------------------------------------------------------------------------

  fill(out: DeviceBuffer, value: number, n: number, offset = 0): void {
    const b = this.checks.own("fill", "out", out);
    this.checks.ints("fill", { n, offset });
    this.checks.span("fill", "out", b, n > 0 ? [offset, offset + n] : null);
    if (n === 0) return;
    this.update(b, (old) => this.spliced(old, offset, tf.fill([n], encodeValue(b.dtype, value), tfDtype(b.dtype))));
  }

  copyStrided(args: CopyStridedArgs): void {
    const { shape, srcStrides, dstStrides } = args;
    const { src, dst, srcOffset, dstOffset } = this.checks.copyStrided(args);
    if (numel(shape) === 0) return;
    const half = dst.dtype === "bf16" || dst.dtype === "f16";
    if (!isInjective(shape, dstStrides) || (args.accumulate && half)) {
      this.copyOnHost(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape, args.accumulate ?? false);
      return;
    }
    this.update(dst, (old) => {
      let values = this.readStrided(src, srcOffset, shape, srcStrides);
      // i32 adds wrap like the reference's `| 0`; f32 adds round once per element as it does.
      if (args.accumulate) values = tf.add(this.readStrided(dst, dstOffset, shape, dstStrides), values);
      return this.scattered(old, dstOffset, shape, dstStrides, values);
    });
  }

  /**
   * The sequential reference semantics on the host, for what a scatter cannot express: a
   * destination that repeats elements (each write, or add, in row-major order) and 16-bit
   * accumulation (decode, add, round per element).
   */
  private copyOnHost(src: TfjsBuffer, srcOffset: number, srcStrides: readonly number[], dst: TfjsBuffer, dstOffset: number, dstStrides: readonly number[], shape: readonly number[], accumulate: boolean): void {
    const from = this.tensorOf(src).dataSync().slice();
    const to = this.tensorOf(dst).dataSync().slice();
    const dtype = dst.dtype;
    const counter = new Array<number>(shape.length).fill(0);
    let s = srcOffset;
    let d = dstOffset;
    for (let done = 0, total = numel(shape); done < total; done++) {
      if (!accumulate) to[d] = from[s]!;
      else if (dtype === "f32" || dtype === "i32") to[d] = to[d]! + from[s]!; // the typed array rounds (f32) or wraps (i32)
      else to[d] = encodeValue(dtype, decodeValue(dtype, to[d]!) + decodeValue(dtype, from[s]!));
      for (let axis = shape.length - 1; axis >= 0; axis--) {
        counter[axis]++;
        s += srcStrides[axis]!;
        d += dstStrides[axis]!;
        if (counter[axis]! < shape[axis]!) break;
        s -= srcStrides[axis]! * shape[axis]!;
        d -= dstStrides[axis]! * shape[axis]!;
        counter[axis] = 0;
      }
    }
    this.update(dst, () => tf.tensor1d(to, tfDtype(dtype)));
  }

  cast(src: DeviceBuffer, dst: DeviceBuffer, n: number): void {
    const s = this.checks.own("cast", "src", src);
    const d = this.checks.own("cast", "dst", dst);
    this.checks.ints("cast", { n });
    this.checks.span("cast", "src", s, n > 0 ? [0, n] : null);
    this.checks.span("cast", "dst", d, n > 0 ? [0, n] : null);
    if (n === 0) return;
    const halves = (dtype: DType): dtype is "bf16" | "f16" => dtype === "bf16" || dtype === "f16";
    if (s.dtype !== d.dtype && (halves(s.dtype) || halves(d.dtype))) {
      // 16-bit formats convert on the host (tfjs has no bitcast); one rounding, as in the reference.
      const part = tf.tidy(() => tf.clone(this.read(s, n)));
      const raw = part.dataSync();
      part.dispose();
      const values = halves(s.dtype) ? halfToF32(raw, s.dtype) : raw;
      const stored = halves(d.dtype) ? f32ToHalf(values, d.dtype) : d.dtype === "i32" ? Int32Array.from(values, (v) => encodeValue("i32", v)) : Float32Array.from(values);
      this.update(d, (old) => this.spliced(old, 0, tf.tensor1d(stored, tfDtype(d.dtype))));
      return;
    }
    this.update(d, (old) => {
      const x = this.read(s, n);
      if (s.dtype === d.dtype) return this.spliced(old, 0, x);
      if (d.dtype === "f32") return this.spliced(old, 0, tf.cast(x, "float32"));
      // f32 → i32: truncate toward zero, saturate at the i32 range, NaN gives 0 (the reference's choice).
      const truncated = tf.cast(tf.clipByValue(x, -2147483648, 2147483520), "int32");
      const saturated = tf.where(tf.greaterEqual(x, 2147483648), tf.fill([n], 2147483647, "int32"), truncated);
      return this.spliced(old, 0, tf.where(tf.isNaN(x), tf.zeros([n], "int32"), saturated));
    });
  }

  // ---- linear algebra ---------------------------------------------------------------------------------

  gemm(args: GemmArgs): void {
    const { batch, m, n, transA, transB, alpha, beta } = args;
    const { a, b, c, aOffset, bOffset, cOffset } = this.checks.gemm(args);
    if (m * n === 0) return;
    const [aRows, aCols] = transA ? [args.k, m] : [m, args.k];
    const [bRows, bCols] = transB ? [n, args.k] : [args.k, n];
    const cShape = [batch, m, n];
    const cStrides = [args.strideC, args.ldc, 1];
    this.update(c, (old) => {
      // A stride-0 operand is one matrix that matMul broadcasts over the batch.
      const operand = (buf: TfjsBuffer, offset: number, stride: number, rows: number, cols: number, ld: number) =>
        this.readStrided(buf, offset, [stride === 0 ? 1 : batch, rows, cols], [stride, ld, 1]);
      let product: tf.Tensor =
        args.k === 0 ? tf.zeros(cShape) : this.matMul(operand(a, aOffset, args.strideA, aRows, aCols, args.lda), operand(b, bOffset, args.strideB, bRows, bCols, args.ldb), transA, transB);
      if (product.shape[0] !== batch) product = tf.broadcastTo(product, cShape);
      if (alpha !== 1) product = tf.mul(product, alpha);
      // beta = 0 never reads C, so NaN there cannot leak.
      if (beta !== 0) product = tf.add(product, tf.mul(this.readStrided(c, cOffset, cShape, cStrides), beta));
      return this.scattered(old, cOffset, cShape, cStrides, product);
    });
  }

  // ---- elementwise and reductions -------------------------------------------------------------------

  binary(op: BinaryOp, a: DeviceBuffer, aShape: readonly number[], b: DeviceBuffer, bShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    const k = `binary(${op})`;
    for (const [name, shape] of [["aShape", aShape], ["bShape", bShape], ["outShape", outShape]] as const) this.checks.shape(k, name, shape);
    this.checks.broadcast(k, "aShape", aShape, "outShape", outShape);
    this.checks.broadcast(k, "bShape", bShape, "outShape", outShape);
    const size = numel(outShape);
    const o = this.typed(k, "out", out, "f32", size);
    const x = this.typed(k, "a", a, "f32", size > 0 ? numel(aShape) : 0);
    const y = this.typed(k, "b", b, "f32", size > 0 ? numel(bShape) : 0);
    if (size === 0) return;
    this.update(o, (old) => {
      let result = binaryOp(op, this.read(x, numel(aShape), 0, aShape), this.read(y, numel(bShape), 0, bShape));
      if (result.shape.length !== outShape.length || result.size !== size) result = tf.broadcastTo(result, [...outShape]);
      return this.spliced(old, 0, result);
    });
  }

  private alphaFor(kernel: string, op: UnaryOp, alpha: number | undefined): number {
    if (unaryTakesAlpha(op) && alpha === undefined) this.checks.fail(kernel, `op '${op}' needs alpha, found undefined`);
    return alpha ?? 0;
  }

  unary(op: UnaryOp, x: DeviceBuffer, out: DeviceBuffer, n: number, alpha?: number): void {
    const k = `unary(${op})`;
    this.checks.ints(k, { n });
    const a = this.alphaFor(k, op, alpha);
    const xb = this.typed(k, "x", x, "f32", n);
    const ob = this.typed(k, "out", out, "f32", n);
    if (n === 0) return;
    this.update(ob, (old) => this.spliced(old, 0, unaryForward(op, this.read(xb, n), a)));
  }

  unaryBackward(op: UnaryOp, x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, n: number, alpha?: number): void {
    const k = `unaryBackward(${op})`;
    this.checks.ints(k, { n });
    const a = this.alphaFor(k, op, alpha);
    const xb = this.typed(k, "x", x, "f32", n);
    this.typed(k, "y", y, "f32", n); // validated only: the derivative is recomputed from x
    const dyb = this.typed(k, "dy", dy, "f32", n);
    const dxb = this.typed(k, "dx", dx, "f32", n);
    if (n === 0) return;
    this.update(dxb, (old) => this.spliced(old, 0, tf.mul(this.read(dyb, n), unaryDerivative(op, this.read(xb, n), a))));
  }

  reduceLastAxis(op: ReduceOp, x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void {
    const k = `reduceLastAxis(${op})`;
    this.checks.ints(k, { rows, cols });
    const xb = this.typed(k, "x", x, "f32", rows * cols);
    const ob = this.typed(k, "out", out, "f32", rows);
    if (rows === 0) return;
    this.update(ob, (old) => {
      if (cols === 0) return this.spliced(old, 0, tf.fill([rows], op === "max" ? -Infinity : op === "mean" ? NaN : 0));
      const m = this.read(xb, rows * cols, 0, [rows, cols]);
      const reduced = op === "sum" ? tf.sum(m, -1) : op === "max" ? tf.max(m, -1) : op === "mean" ? tf.mean(m, -1) : tf.sum(tf.square(m), -1);
      return this.spliced(old, 0, reduced);
    });
  }

  // ---- gather -------------------------------------------------------------------------------------------

  embedding(ids: DeviceBuffer, table: DeviceBuffer, out: DeviceBuffer, n: number, vocab: number, dim: number): void {
    const k = "embedding";
    this.checks.ints(k, { n, vocab, dim });
    const idb = this.typed(k, "ids", ids, "i32", n);
    const ob = this.typed(k, "out", out, "f32", n * dim);
    const tb = this.typed(k, "table", table, "f32", vocab * dim);
    if (n === 0 || dim === 0) return;
    // Ids are few (one per token): checking them on the host costs one small read.
    const idValues = tf.tidy(() => tf.clone(this.read(idb, n)));
    try {
      const host = idValues.dataSync();
      for (let i = 0; i < n; i++) {
        if (host[i]! < 0 || host[i]! >= vocab) throw new EcomlaError(`TfjsBackend.embedding: ids[${i}] = ${host[i]} is out of range [0, ${vocab})`);
      }
      this.update(ob, (old) => this.spliced(old, 0, tf.gather(this.read(tb, vocab * dim, 0, [vocab, dim]), idValues)));
    } finally {
      idValues.dispose();
    }
  }
}

