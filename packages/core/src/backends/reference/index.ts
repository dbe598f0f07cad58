// The reference TensorBackend: pure TypeScript, plain loops, float64 accumulation. It is the oracle
// every other backend is checked against, so it validates every argument it touches (ownership,
// lifetime, dtype, ranges, shapes) and its kernels never read or write outside a buffer.
import { EcomlaError, ShapeError } from "../../errors.js";
import {
  DTYPE_BYTES,
  type AdamWArgs,
  type AttentionArgs,
  type AttentionBackwardArgs,
  type AttentionForwardArgs,
  type AttentionView,
  type BackendCapabilities,
  type BackendMemoryStats,
  type BinaryOp,
  type CopyStridedArgs,
  type CrossEntropyArgs,
  type DType,
  type DeviceBuffer,
  type GemmArgs,
  type HostArray,
  type HostArrayOf,
  type KlDivArgs,
  type LossArgs,
  type ReduceOp,
  type RopeArgs,
  type TensorBackend,
  type UnaryOp,
} from "../../interfaces/backend.js";
import { unaryTakesAlpha } from "../../interfaces/ops.js";
import { jacobiSvd } from "../../linalg/svd.js";
import { BackendChecks, stridedSpan } from "../checks.js";
import { HOST_ARRAY_OF, ReferenceBuffer, decode, encode, hostArrayName, unalias } from "./buffer.js";
import {
  binaryKernel,
  copyStridedKernel,
  gemmKernel,
  reduceLastAxisKernel,
  sizeOfShape,
  sumToShapeKernel,
  type FloatStore,
  type Store,
} from "./kernels-basic.js";
import * as nn from "./kernels-nn.js";
import { unaryDerivative, unaryForward } from "./math.js";

/** Options of {@link ReferenceBackend}. */
export interface ReferenceBackendOptions {
  /** Storage of f32 buffers: "f32" (default) or "f64" (Float64Array, for finite-difference checks). */
  precision?: "f32" | "f64";
}

/** The pure-TypeScript oracle backend; f32 buffers may be stored in float64 (`precision: "f64"`). */
export class ReferenceBackend implements TensorBackend {
  readonly name = "reference";
  readonly precision: "f32" | "f64";
  readonly capabilities: BackendCapabilities = {
    svd: async (a, m, n) => jacobiSvd(a, m, n),
  };
  private readonly checks: BackendChecks<ReferenceBuffer> = new BackendChecks<ReferenceBuffer>("ReferenceBackend", "reference", this, (b): b is ReferenceBuffer => b instanceof ReferenceBuffer);

  constructor(options: ReferenceBackendOptions = {}) {
    this.precision = options.precision ?? "f32";
    if (this.precision !== "f32" && this.precision !== "f64") {
      throw new EcomlaError(`ReferenceBackend: precision must be "f32" or "f64", found ${JSON.stringify(options.precision)}`);
    }
  }

  // ---- validation ---------------------------------------------------------------------------------

  /** An f32 buffer's storage, after checking that elements [offset, offset+count) exist. */
  private floats(kernel: string, arg: string, buf: DeviceBuffer, count: number, offset = 0): FloatStore {
    const b = this.checks.own(kernel, arg, buf);
    this.checks.dtype(kernel, arg, b, "f32");
    this.checks.span(kernel, arg, b, count > 0 ? [offset, offset + count] : null);
    return b.data as FloatStore;
  }

  /** An i32 buffer's storage, after checking that elements [0, count) exist. */
  private ints(kernel: string, arg: string, buf: DeviceBuffer, count: number): Int32Array {
    const b = this.checks.own(kernel, arg, buf);
    this.checks.dtype(kernel, arg, b, "i32");
    this.checks.span(kernel, arg, b, count > 0 ? [0, count] : null);
    return b.data as Int32Array;
  }

  /** Every id in [0, limit) (negative ones allowed where they mean "ignored"), checked before any write. */
  private checkIds(
    kernel: string,
    arg: string,
    ids: Int32Array, // (count)
    count: number,
    limit: number,
    allowNegative: boolean,
  ): void {
    for (let i = 0; i < count; i++) {
      const id = ids[i]!;
      if (id >= limit || (id < 0 && !allowNegative)) {
        throw new EcomlaError(`ReferenceBackend.${kernel}: ${arg}[${i}] = ${id} is out of range [0, ${limit})`);
      }
    }
  }

  // ---- memory -------------------------------------------------------------------------------------

  alloc(dtype: DType, length: number): DeviceBuffer {
    if (!(dtype in DTYPE_BYTES)) throw new ShapeError(`ReferenceBackend.alloc: unknown dtype ${JSON.stringify(dtype)}`);
    this.checks.ints("alloc", { length });
    const data: Store =
      dtype === "f32"
        ? this.precision === "f64"
          ? new Float64Array(length)
          : new Float32Array(length)
        : dtype === "i32"
          ? new Int32Array(length)
          : new Uint16Array(length);
    const buf = new ReferenceBuffer(this, dtype, length, data);
    // Bytes are counted at the logical dtype size, so stats are the same in both precisions.
    const bytes = length * DTYPE_BYTES[dtype];
    this.checks.allocated(bytes);
    return buf;
  }

  free(buf: DeviceBuffer): void {
    if (buf instanceof ReferenceBuffer && buf.owner === this && buf.freed) {
      throw new EcomlaError(`ReferenceBackend.free: buffer (${buf.dtype}, length ${buf.length}) was already freed (freeing twice)`);
    }
    const b = this.checks.own("free", "buf", buf);
    b.freed = true;
    b.data = new Float32Array(0);
    this.checks.released(b.length * DTYPE_BYTES[b.dtype]);
  }

  upload(buf: DeviceBuffer, data: HostArray, offset = 0): void {
    const b = this.checks.own("upload", "buf", buf);
    const expected = HOST_ARRAY_OF[b.dtype];
    if (hostArrayName(data) !== expected) this.checks.fail("upload", `a ${b.dtype} buffer takes a ${expected}, found ${hostArrayName(data)}`);
    this.checks.ints("upload", { offset });
    this.checks.span("upload", "buf", b, data.length > 0 ? [offset, offset + data.length] : null);
    b.data.set(data, offset);
  }

  async download<D extends DType>(buf: DeviceBuffer & { dtype: D }, offset = 0, length?: number): Promise<HostArrayOf<D>> {
    const b = this.checks.own("download", "buf", buf);
    const count = length ?? b.length - offset;
    this.checks.ints("download", { offset, length: count });
    this.checks.span("download", "buf", b, count > 0 ? [offset, offset + count] : null);
    const view = b.data.subarray(offset, offset + count);
    // Float32Array.from rounds f64-mode storage to f32; the other dtypes copy as stored.
    const copy = b.dtype === "f32" ? Float32Array.from(view) : view.slice();
    return copy as HostArrayOf<D>;
  }

  async sync(): Promise<void> {}

  memoryStats(): BackendMemoryStats {
    return this.checks.snapshot();
  }

  /** Restart peakBytes from the current liveBytes. */
  resetPeak(): void {
    this.checks.resetPeak();
  }

  /** Exact stored values of any buffer as float64 (bf16/f16 decoded), synchronously. For tests. */
  readF64(buf: DeviceBuffer): Float64Array {
    const b = this.checks.own("readF64", "buf", buf);
    const out = new Float64Array(b.length);
    for (let i = 0; i < b.length; i++) out[i] = decode(b.dtype, b.data[i]!);
    return out;
  }

  /** Store float64 values into any buffer from element `offset`, rounding to its dtype (and precision). For tests. */
  writeF64(buf: DeviceBuffer, data: Float64Array | number[], offset = 0): void {
    const b = this.checks.own("writeF64", "buf", buf);
    this.checks.ints("writeF64", { offset });
    this.checks.span("writeF64", "buf", b, data.length > 0 ? [offset, offset + data.length] : null);
    for (let i = 0; i < data.length; i++) b.data[offset + i] = encode(b.dtype, data[i]!);
  }

  // ---- layout -------------------------------------------------------------------------------------

  fill(out: DeviceBuffer, value: number, n: number, offset = 0): void {
    const b = this.checks.own("fill", "out", out);
    this.checks.ints("fill", { n, offset });
    this.checks.span("fill", "out", b, n > 0 ? [offset, offset + n] : null);
    b.data.fill(encode(b.dtype, value), offset, offset + n);
  }

  copyStrided(args: CopyStridedArgs): void {
    const { shape, srcStrides, dstStrides } = args;
    const { src, dst, srcOffset, dstOffset } = this.checks.copyStrided(args);
    const dtype = dst.dtype;
    const combine = !args.accumulate
      ? null
      : dtype === "i32"
        ? (old: number, incoming: number) => (old + incoming) | 0
        : dtype === "f32"
          ? (old: number, incoming: number) => old + incoming
          : (old: number, incoming: number) => encode(dtype, decode(dtype, old) + decode(dtype, incoming));
    copyStridedKernel(unalias(src.data, dst.data), srcOffset, srcStrides, dst.data, dstOffset, dstStrides, shape, combine);
  }

  cast(src: DeviceBuffer, dst: DeviceBuffer, n: number): void {
    const s = this.checks.own("cast", "src", src);
    const d = this.checks.own("cast", "dst", dst);
    this.checks.ints("cast", { n });
    this.checks.span("cast", "src", s, n > 0 ? [0, n] : null);
    this.checks.span("cast", "dst", d, n > 0 ? [0, n] : null);
    if (s.dtype === d.dtype) {
      d.data.set(s.data.subarray(0, n));
      return;
    }
    // bf16/f16 → f32 is exact, so any conversion through a float value rounds only once,
    // except i32 → bf16/f16, which rounds through f32 as PyTorch does.
    for (let i = 0; i < n; i++) d.data[i] = encode(d.dtype, decode(s.dtype, s.data[i]!));
  }

  // ---- linear algebra -----------------------------------------------------------------------------

  gemm(args: GemmArgs): void {
    const { batch, m, n, transA, transB, alpha, beta } = args;
    const { a, b, c, aOffset, bOffset, cOffset } = this.checks.gemm(args);
    const cData = c.data as FloatStore;
    gemmKernel(
      batch,
      m,
      n,
      args.k,
      alpha,
      beta,
      { data: unalias(a.data as FloatStore, cData), offset: aOffset, ld: args.lda, batchStride: args.strideA, trans: transA },
      { data: unalias(b.data as FloatStore, cData), offset: bOffset, ld: args.ldb, batchStride: args.strideB, trans: transB },
      { data: cData, offset: cOffset, ld: args.ldc, batchStride: args.strideC },
    );
  }

  // ---- elementwise and reductions -----------------------------------------------------------------

  binary(op: BinaryOp, a: DeviceBuffer, aShape: readonly number[], b: DeviceBuffer, bShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    const k = `binary(${op})`;
    for (const [name, shape] of [["aShape", aShape], ["bShape", bShape], ["outShape", outShape]] as const) this.checks.shape(k, name, shape);
    this.checks.broadcast(k, "aShape", aShape, "outShape", outShape);
    this.checks.broadcast(k, "bShape", bShape, "outShape", outShape);
    const outData = this.floats(k, "out", out, sizeOfShape(outShape));
    const aData = this.floats(k, "a", a, sizeOfShape(outShape) > 0 ? sizeOfShape(aShape) : 0);
    const bData = this.floats(k, "b", b, sizeOfShape(outShape) > 0 ? sizeOfShape(bShape) : 0);
    binaryKernel(op, unalias(aData, outData), aShape, unalias(bData, outData), bShape, outData, outShape);
  }

  private alphaFor(kernel: string, op: UnaryOp, alpha: number | undefined): number {
    if (unaryTakesAlpha(op) && alpha === undefined) this.checks.fail(kernel, `op '${op}' needs alpha, found undefined`);
    return alpha ?? 0;
  }

  unary(op: UnaryOp, x: DeviceBuffer, out: DeviceBuffer, n: number, alpha?: number): void {
    const k = `unary(${op})`;
    this.checks.ints(k, { n });
    const a = this.alphaFor(k, op, alpha);
    const xData = this.floats(k, "x", x, n);
    const outData = this.floats(k, "out", out, n);
    for (let i = 0; i < n; i++) outData[i] = unaryForward(op, xData[i]!, a);
  }

  unaryBackward(op: UnaryOp, x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, n: number, alpha?: number): void {
    const k = `unaryBackward(${op})`;
    this.checks.ints(k, { n });
    const a = this.alphaFor(k, op, alpha);
    const xData = this.floats(k, "x", x, n);
    this.floats(k, "y", y, n); // validated only: the derivative is recomputed from x
    const dyData = this.floats(k, "dy", dy, n);
    const dxData = this.floats(k, "dx", dx, n);
    for (let i = 0; i < n; i++) dxData[i] = dyData[i]! * unaryDerivative(op, xData[i]!, a);
  }

  reduceLastAxis(op: ReduceOp, x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void {
    const k = `reduceLastAxis(${op})`;
    this.checks.ints(k, { rows, cols });
    const xData = this.floats(k, "x", x, rows * cols);
    const outData = this.floats(k, "out", out, rows);
    reduceLastAxisKernel(op, unalias(xData, outData), outData, rows, cols);
  }

  sumToShape(x: DeviceBuffer, xShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    const k = "sumToShape";
    this.checks.shape(k, "xShape", xShape);
    this.checks.shape(k, "outShape", outShape);
    this.checks.broadcast(k, "outShape", outShape, "xShape", xShape);
    const xData = this.floats(k, "x", x, sizeOfShape(xShape));
    const outData = this.floats(k, "out", out, sizeOfShape(outShape));
    sumToShapeKernel(xData, xShape, outData, outShape);
  }

  // ---- fused neural-network kernels ---------------------------------------------------------------

  softmax(x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void {
    this.checks.ints("softmax", { rows, cols });
    nn.softmaxForward(this.floats("softmax", "x", x, rows * cols), this.floats("softmax", "out", out, rows * cols), rows, cols);
  }

  softmaxBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, rows: number, cols: number): void {
    const k = "softmaxBackward";
    this.checks.ints(k, { rows, cols });
    const size = rows * cols;
    nn.softmaxBackward(this.floats(k, "y", y, size), this.floats(k, "dy", dy, size), this.floats(k, "dx", dx, size), rows, cols);
  }

  rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, out: DeviceBuffer, rstd: DeviceBuffer, rows: number, cols: number, eps: number): void {
    const k = "rmsNorm";
    this.checks.ints(k, { rows, cols });
    const outData = this.floats(k, "out", out, rows * cols);
    const rstdData = this.floats(k, "rstd", rstd, rows);
    const weightData = unalias(this.floats(k, "weight", weight, rows > 0 ? cols : 0), outData, rstdData);
    nn.rmsNormForward(this.floats(k, "x", x, rows * cols), weightData, outData, rstdData, rows, cols, eps);
  }

  rmsNormBackward(x: DeviceBuffer, weight: DeviceBuffer, rstd: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, dWeight: DeviceBuffer, rows: number, cols: number): void {
    const k = "rmsNormBackward";
    this.checks.ints(k, { rows, cols });
    const size = rows * cols;
    const dxData = this.floats(k, "dx", dx, size);
    const dWeightData = this.floats(k, "dWeight", dWeight, cols);
    const weightData = unalias(this.floats(k, "weight", weight, cols), dxData, dWeightData);
    const rstdData = unalias(this.floats(k, "rstd", rstd, rows), dxData, dWeightData);
    const xData = unalias(this.floats(k, "x", x, size), dWeightData);
    const dyData = unalias(this.floats(k, "dy", dy, size), dWeightData);
    nn.rmsNormBackward(xData, weightData, rstdData, dyData, dxData, dWeightData, rows, cols);
  }

  rope(args: RopeArgs): void {
    const k = "rope";
    const { batch, seqLen, numHeads, headDim, layout } = args;
    const posOffset = args.posOffset ?? 0;
    this.checks.ints(k, { batch, seqLen, numHeads, headDim, posOffset });
    if (headDim % 2 !== 0) this.checks.fail(k, `headDim must be even, found ${headDim}`);
    if (layout !== "half" && layout !== "interleaved") this.checks.fail(k, `layout must be "half" or "interleaved", found ${JSON.stringify(layout)}`);
    const size = batch * seqLen * numHeads * headDim;
    const xData = this.floats(k, "x", args.x, size);
    const outData = this.floats(k, "out", args.out, size);
    let positions: Int32Array | null = null;
    let maxPos = seqLen > 0 ? posOffset + seqLen - 1 : -1;
    if (args.positions !== undefined) {
      positions = this.ints(k, "positions", args.positions, batch * seqLen);
      maxPos = -1;
      for (let i = 0; i < batch * seqLen; i++) {
        if (positions[i]! < 0) throw new EcomlaError(`ReferenceBackend.rope: positions[${i}] = ${positions[i]} is negative`);
        maxPos = Math.max(maxPos, positions[i]!);
      }
    }
    // The tables must hold rows 0..maxPos of (P, D/2); a missing row is a position ≥ P.
    const tableSize = size > 0 ? (maxPos + 1) * (headDim / 2) : 0;
    const cosData = unalias(this.floats(k, "cos", args.cos, tableSize), outData);
    const sinData = unalias(this.floats(k, "sin", args.sin, tableSize), outData);
    const params = { batch, seqLen, numHeads, headDim, layout, posOffset, scale: args.scale ?? 1, inverse: args.inverse ?? false };
    nn.ropeKernel(params, xData, outData, cosData, sinData, positions);
  }

  /** Validates the shared attention arguments and resolves the q/k/v views. */
  private attentionViews(kernel: string, args: AttentionArgs): { dims: nn.AttentionDims; q: nn.AttentionViewData; k: nn.AttentionViewData; v: nn.AttentionViewData } {
    const { batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim, scale, causal } = args;
    this.checks.ints(kernel, { batch, queryLen, keyLen });
    this.checks.ints(kernel, { numHeads, numKvHeads, qkDim, vDim }, 1);
    if (numHeads % numKvHeads !== 0) this.checks.fail(kernel, `numKvHeads (${numKvHeads}) must divide numHeads (${numHeads})`);
    if (causal && keyLen < queryLen) this.checks.fail(kernel, `causal attention needs keyLen ≥ queryLen, found keyLen ${keyLen} < queryLen ${queryLen}`);
    if (keyLen === 0 && queryLen > 0 && batch > 0) this.checks.fail(kernel, `keyLen is 0: query rows would see no key`);
    const view = (name: string, v: AttentionView, tokens: number, heads: number, dim: number): nn.AttentionViewData => {
      const offset = v.offset ?? 0;
      const strides = v.strides ?? ([tokens * heads * dim, heads * dim, dim] as const);
      if (strides.length !== 3) this.checks.fail(kernel, `${name}.strides must have 3 entries [batch, token, head], found ${strides.length}`);
      this.checks.ints(kernel, { [`${name}.offset`]: offset });
      if (!strides.every(Number.isInteger)) this.checks.fail(kernel, `${name}.strides must be integers, found [${strides.join(", ")}]`);
      const b = this.checks.own(kernel, name, v.buf);
      this.checks.dtype(kernel, name, b, "f32");
      this.checks.span(kernel, name, b, stridedSpan(offset, [batch, tokens, heads, dim], [...strides, 1]));
      return { data: b.data as FloatStore, offset, strides };
    };
    return {
      dims: { batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim, scale, causal },
      q: view("q", args.q, queryLen, numHeads, qkDim),
      k: view("k", args.k, keyLen, numKvHeads, qkDim),
      v: view("v", args.v, keyLen, numKvHeads, vDim),
    };
  }

  attention(args: AttentionForwardArgs): void {
    const kernel = "attention";
    const { dims, q, k, v } = this.attentionViews(kernel, args);
    const rows = dims.batch * dims.queryLen * dims.numHeads;
    const out = this.floats(kernel, "out", args.out, rows * dims.vDim);
    const lse = args.lse === undefined ? null : this.floats(kernel, "lse", args.lse, rows);
    const outputs: Store[] = lse === null ? [out] : [out, lse];
    const safe = (view: nn.AttentionViewData) => ({ ...view, data: unalias(view.data, ...outputs) });
    nn.attentionForward(dims, safe(q), safe(k), safe(v), out, lse);
  }

  attentionBackward(args: AttentionBackwardArgs): void {
    const kernel = "attentionBackward";
    const { dims, q, k, v } = this.attentionViews(kernel, args);
    const { batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim } = dims;
    const rows = batch * queryLen * numHeads;
    const dq = this.floats(kernel, "dq", args.dq, rows * qkDim);
    const dk = this.floats(kernel, "dk", args.dk, batch * keyLen * numKvHeads * qkDim);
    const dv = this.floats(kernel, "dv", args.dv, batch * keyLen * numKvHeads * vDim);
    const outputs = [dq, dk, dv];
    const safe = (view: nn.AttentionViewData) => ({ ...view, data: unalias(view.data, ...outputs) });
    const out = unalias(this.floats(kernel, "out", args.out, rows * vDim), ...outputs);
    const lse = unalias(this.floats(kernel, "lse", args.lse, rows), ...outputs);
    const dOut = unalias(this.floats(kernel, "dOut", args.dOut, rows * vDim), ...outputs);
    nn.attentionBackward(dims, safe(q), safe(k), safe(v), out, lse, dOut, dq, dk, dv);
  }

  swiglu(gate: DeviceBuffer, up: DeviceBuffer, out: DeviceBuffer, n: number): void {
    this.checks.ints("swiglu", { n });
    nn.swigluForward(this.floats("swiglu", "gate", gate, n), this.floats("swiglu", "up", up, n), this.floats("swiglu", "out", out, n), n);
  }

  swigluBackward(gate: DeviceBuffer, up: DeviceBuffer, dOut: DeviceBuffer, dGate: DeviceBuffer, dUp: DeviceBuffer, n: number): void {
    const k = "swigluBackward";
    this.checks.ints(k, { n });
    const [gateData, upData, dOutData] = [this.floats(k, "gate", gate, n), this.floats(k, "up", up, n), this.floats(k, "dOut", dOut, n)];
    nn.swigluBackward(gateData, upData, dOutData, this.floats(k, "dGate", dGate, n), this.floats(k, "dUp", dUp, n), n);
  }

  embedding(ids: DeviceBuffer, table: DeviceBuffer, out: DeviceBuffer, n: number, vocab: number, dim: number): void {
    const k = "embedding";
    this.checks.ints(k, { n, vocab, dim });
    const idData = this.ints(k, "ids", ids, n);
    const outData = this.floats(k, "out", out, n * dim);
    const tableData = unalias(this.floats(k, "table", table, vocab * dim), outData);
    this.checkIds(k, "ids", idData, n, vocab, false);
    nn.embeddingForward(idData, tableData, outData, n, dim);
  }

  embeddingBackward(ids: DeviceBuffer, dOut: DeviceBuffer, dTable: DeviceBuffer, n: number, vocab: number, dim: number): void {
    const k = "embeddingBackward";
    this.checks.ints(k, { n, vocab, dim });
    const idData = this.ints(k, "ids", ids, n);
    const dTableData = this.floats(k, "dTable", dTable, vocab * dim);
    const dOutData = unalias(this.floats(k, "dOut", dOut, n * dim), dTableData);
    this.checkIds(k, "ids", idData, n, vocab, false);
    nn.embeddingBackward(idData, dOutData, dTableData, n, dim);
  }

  /** Validates the LossArgs common to both losses. */
  private lossCommon(kernel: string, args: LossArgs): { params: nn.LossParams; logits: FloatStore; weights: FloatStore | null; loss: FloatStore; grad: FloatStore | null } {
    const { rows, vocab } = args;
    this.checks.ints(kernel, { rows, vocab });
    const temperature = args.temperature ?? 1;
    if (!(temperature > 0) || !Number.isFinite(temperature)) this.checks.fail(kernel, `temperature must be finite and > 0, found ${temperature}`);
    const logits = this.floats(kernel, "logits", args.logits, rows * vocab);
    const loss = this.floats(kernel, "loss", args.loss, rows);
    const grad = args.grad === undefined ? null : this.floats(kernel, "grad", args.grad, rows * vocab);
    const outputs: Store[] = grad === null ? [loss] : [loss, grad];
    const weights = args.weights === undefined ? null : unalias(this.floats(kernel, "weights", args.weights, rows), ...outputs);
    // grad may alias logits (kernels read each row first); the loss must not.
    return { params: { rows, vocab, temperature }, logits: unalias(logits, loss), weights, loss, grad };
  }

  crossEntropy(args: CrossEntropyArgs): void {
    const k = "crossEntropy";
    const common = this.lossCommon(k, args);
    const labels = this.ints(k, "labels", args.labels, args.rows);
    this.checkIds(k, "labels", labels, args.rows, args.vocab, true);
    nn.crossEntropyKernel(common.params, common.logits, labels, common.weights, common.loss, common.grad);
  }

  klDiv(args: KlDivArgs): void {
    const k = "klDiv";
    const dense = args.teacherLogits !== undefined;
    const topKForm = args.teacherIndices !== undefined || args.teacherLogprobs !== undefined;
    if (dense === topKForm) this.checks.fail(k, `give exactly one of teacherLogits or (teacherIndices, teacherLogprobs), found ${dense ? "both" : "neither"}`);
    const common = this.lossCommon(k, args);
    const outputs: Store[] = common.grad === null ? [common.loss] : [common.loss, common.grad];
    const { rows, vocab } = common.params;
    if (dense) {
      const teacher = unalias(this.floats(k, "teacherLogits", args.teacherLogits!, rows * vocab), ...outputs);
      nn.klDivDenseKernel(common.params, common.logits, teacher, common.weights, common.loss, common.grad);
      return;
    }
    if (args.teacherIndices === undefined || args.teacherLogprobs === undefined) this.checks.fail(k, `the top-k form needs both teacherIndices and teacherLogprobs`);
    if (args.topK === undefined) this.checks.fail(k, `the top-k form needs topK, found undefined`);
    const topK = args.topK;
    this.checks.ints(k, { topK });
    const indices = this.ints(k, "teacherIndices", args.teacherIndices, rows * topK);
    this.checkIds(k, "teacherIndices", indices, rows * topK, vocab, false);
    const logprobs = unalias(this.floats(k, "teacherLogprobs", args.teacherLogprobs, rows * topK), ...outputs);
    nn.klDivTopKKernel(common.params, topK, common.logits, indices, logprobs, common.weights, common.loss, common.grad);
  }

  adamw(args: AdamWArgs): void {
    const k = "adamw";
    const { n } = args;
    this.checks.ints(k, { n });
    const param = this.floats(k, "param", args.param, n);
    const m = this.floats(k, "m", args.m, n);
    const v = this.floats(k, "v", args.v, n);
    const grad = unalias(this.floats(k, "grad", args.grad, n), param, m, v);
    if (new Set([param, m, v]).size !== 3) this.checks.fail(k, `param, m and v must be distinct buffers`);
    const params: nn.AdamWParams = {
      n,
      lr: args.lr,
      beta1: args.beta1,
      beta2: args.beta2,
      eps: args.eps,
      weightDecay: args.weightDecay,
      biasCorrection1: args.biasCorrection1,
      biasCorrection2: args.biasCorrection2,
      gradScale: args.gradScale ?? 1,
    };
    nn.adamwKernel(params, param, grad, m, v);
  }
}
