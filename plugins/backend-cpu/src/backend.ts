// CpuBackend: the TensorBackend contract on the native addon (OpenBLAS GEMM/LAPACK SVD plus the
// multi-threaded fused C++ kernels). Every argument JS can check is checked here, before any
// native code touches memory.
import { fileURLToPath } from "node:url";
import {
  DTYPE_BYTES,
  BackendChecks,
  EcomlaError,
  unaryTakesAlpha,
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
} from "@ecomla/core";
import {
  BINARY_CODE, DTYPE_CODE, REDUCE_CODE, UNARY_CODE, checkBroadcast, checkInts, checkShape, fail, nativeCall, opCode, padShape,
  sizeOfShape, stridedSpan,
} from "./checks.js";
import { loadNative, type NativeAddon } from "./native.js";
import { BufferPool, type PoolStats } from "./pool.js";

/** Options of {@link CpuBackend}. */
export interface CpuBackendOptions {
  /** Pooled (freed, kept for reuse) bytes beyond which freed blocks go back to the allocator. Default 2 GiB. */
  maxPooledBytes?: number;
}

const HOST_ARRAY_OF: Record<DType, string> = { f32: "Float32Array", i32: "Int32Array", bf16: "Uint16Array", f16: "Uint16Array" };

/** A CPU buffer: a pooled native block plus its lifetime flag. */
export class CpuBuffer implements DeviceBuffer {
  readonly backend = "cpu";
  freed = false;
  constructor(
    readonly owner: CpuBackend,
    readonly dtype: DType,
    readonly length: number,
    public block: ArrayBuffer,
  ) {}
}

/** The native CPU backend. */
export class CpuBackend implements TensorBackend {
  readonly name = "cpu";
  readonly capabilities: BackendCapabilities;
  private readonly native: NativeAddon;
  private readonly pool: BufferPool;
  private readonly checks: BackendChecks<CpuBuffer> = new BackendChecks<CpuBuffer>("CpuBackend", "cpu", this, (b): b is CpuBuffer => b instanceof CpuBuffer);

  constructor(options: CpuBackendOptions = {}) {
    this.native = loadNative();
    this.pool = new BufferPool(this.native, options.maxPooledBytes ?? 2 ** 31);
    const native = this.native;
    this.capabilities = {
      svd: async (a, m, n) => {
        checkInts("svd", { m, n });
        if (a.length !== m * n) fail("svd", `a has ${a.length} elements, expected m·n = ${m}·${n} = ${m * n}`);
        return native.svd(a, m, n);
      },
      benchBaselines: {
        gemmMs: (m, n, k, repetitions) => Array.from(native.benchSgemm(m, n, k, repetitions)),
        pytorchScript: fileURLToPath(new URL("../bench/torch_baseline.py", import.meta.url)),
      },
    };
  }

  /** Threads of the kernel pool (ECOMLA_NUM_THREADS, default all cores), the BLAS, and the ISA chosen. */
  info(): { isa: string; threads: number; blasThreads: number; blasConfig: string } {
    return this.native.info();
  }

  /** Counters of the buffer pool. */
  poolStats(): PoolStats {
    return this.pool.stats();
  }

  /** Release pooled (free) blocks back to the allocator. */
  trimPool(): void {
    this.pool.trim();
  }

  // ---- buffer checks ------------------------------------------------------------------------------

  /** The block of a buffer of `dtype` holding elements [offset, offset+count). */
  private typed(kernel: string, arg: string, buf: DeviceBuffer, dtype: DType, count: number, offset = 0): ArrayBuffer {
    return this.checks.typed(kernel, arg, buf, dtype, count, offset).block;
  }

  private f32(kernel: string, arg: string, buf: DeviceBuffer, count: number, offset = 0): ArrayBuffer {
    return this.typed(kernel, arg, buf, "f32", count, offset);
  }

  private i32(kernel: string, arg: string, buf: DeviceBuffer, count: number): ArrayBuffer {
    return this.typed(kernel, arg, buf, "i32", count);
  }

  // ---- memory -------------------------------------------------------------------------------------

  alloc(dtype: DType, length: number): DeviceBuffer {
    if (!(dtype in DTYPE_BYTES)) fail("alloc", `unknown dtype ${JSON.stringify(dtype)}; expected one of f32, bf16, f16, i32`);
    checkInts("alloc", { length });
    const bytes = length * DTYPE_BYTES[dtype];
    const buf = new CpuBuffer(this, dtype, length, this.pool.take(bytes));
    this.checks.allocated(bytes);
    return buf;
  }

  free(buf: DeviceBuffer): void {
    if (buf instanceof CpuBuffer && buf.owner === this && buf.freed) {
      throw new EcomlaError(`CpuBackend.free: buffer (${buf.dtype}, length ${buf.length}) was already freed (freeing twice)`);
    }
    const b = this.checks.own("free", "buf", buf);
    b.freed = true;
    this.pool.give(b.block);
    b.block = new ArrayBuffer(0);
    this.checks.released(b.length * DTYPE_BYTES[b.dtype]);
  }

  upload(buf: DeviceBuffer, data: HostArray, offset = 0): void {
    const b = this.checks.own("upload", "buf", buf);
    const expected = HOST_ARRAY_OF[b.dtype];
    const found = (data as object)?.constructor?.name ?? typeof data;
    if (found !== expected) fail("upload", `a ${b.dtype} buffer takes a ${expected}, found ${found}`);
    checkInts("upload", { offset });
    this.checks.span("upload", "buf", b, data.length > 0 ? [offset, offset + data.length] : null);
    const View = data.constructor as Float32ArrayConstructor;
    new View(b.block, offset * data.BYTES_PER_ELEMENT, data.length).set(data as Float32Array);
  }

  async download<D extends DType>(buf: DeviceBuffer & { dtype: D }, offset = 0, length?: number): Promise<HostArrayOf<D>> {
    const b = this.checks.own("download", "buf", buf);
    const count = length ?? b.length - offset;
    checkInts("download", { offset, length: count });
    this.checks.span("download", "buf", b, count > 0 ? [offset, offset + count] : null);
    const bytes = DTYPE_BYTES[b.dtype];
    const View = b.dtype === "f32" ? Float32Array : b.dtype === "i32" ? Int32Array : Uint16Array;
    // A copy: the block returns to the pool when the buffer is freed.
    return new View(b.block.slice(offset * bytes, (offset + count) * bytes)) as HostArrayOf<D>;
  }

  async sync(): Promise<void> {}

  memoryStats(): BackendMemoryStats {
    return this.checks.snapshot();
  }

  /** Restart peakBytes from the current liveBytes. */
  resetPeak(): void {
    this.checks.resetPeak();
  }

  // ---- layout -------------------------------------------------------------------------------------

  fill(out: DeviceBuffer, value: number, n: number, offset = 0): void {
    const b = this.checks.own("fill", "out", out);
    checkInts("fill", { n, offset });
    this.checks.span("fill", "out", b, n > 0 ? [offset, offset + n] : null);
    if (n > 0) this.native.fill(b.block, DTYPE_CODE[b.dtype], value, n, offset);
  }

  copyStrided(args: CopyStridedArgs): void {
    const { shape, srcStrides, dstStrides } = args;
    const { src, dst, srcOffset, dstOffset, srcSpan } = this.checks.copyStrided(args, 6);
    if (srcSpan === null) return;
    let source = src.block;
    let sourceOffset = srcOffset;
    if (src.block === dst.block) {
      // Overlapping views of one buffer: read from a snapshot, as if the copy were atomic.
      const bytes = DTYPE_BYTES[src.dtype];
      source = src.block.slice(srcSpan[0] * bytes, srcSpan[1] * bytes);
      sourceOffset = srcOffset - srcSpan[0];
    }
    const packed = new Float64Array([shape.length, ...shape, ...srcStrides, ...dstStrides]);
    this.native.copyStrided(source, sourceOffset, dst.block, dstOffset, DTYPE_CODE[src.dtype], packed, args.accumulate ? 1 : 0);
  }

  cast(src: DeviceBuffer, dst: DeviceBuffer, n: number): void {
    const s = this.checks.own("cast", "src", src);
    const d = this.checks.own("cast", "dst", dst);
    checkInts("cast", { n });
    this.checks.span("cast", "src", s, n > 0 ? [0, n] : null);
    this.checks.span("cast", "dst", d, n > 0 ? [0, n] : null);
    if (n > 0) this.native.cast(s.block, DTYPE_CODE[s.dtype], d.block, DTYPE_CODE[d.dtype], n);
  }

  // ---- linear algebra -----------------------------------------------------------------------------

  gemm(args: GemmArgs): void {
    const { batch, m, n, transA, transB, alpha, beta } = args;
    const { a, b, c, aOffset, bOffset, cOffset } = this.checks.gemm(args);
    if (m === 0 || n === 0) return;
    const aCols = transA ? m : args.k;
    const bCols = transB ? args.k : n;
    // BLAS forbids C overlapping an input: give it snapshots of inputs that share C's block.
    const aBlock = a.block === c.block ? a.block.slice(0) : a.block;
    const bBlock = b.block === c.block ? b.block.slice(0) : b.block;
    // BLAS takes lda ≥ 1 even for a single row; any value is unused then.
    const lda = Math.max(args.lda, aCols, 1);
    const ldb = Math.max(args.ldb, bCols, 1);
    const ldc = Math.max(args.ldc, n, 1);
    this.native.gemm(aBlock, bBlock, c.block, new Float64Array([
      batch, m, n, args.k, transA ? 1 : 0, transB ? 1 : 0, alpha, beta,
      aOffset, lda, args.strideA, bOffset, ldb, args.strideB, cOffset, ldc, args.strideC,
    ]));
  }

  // ---- elementwise and reductions -----------------------------------------------------------------

  binary(op: BinaryOp, a: DeviceBuffer, aShape: readonly number[], b: DeviceBuffer, bShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    const k = `binary(${op})`;
    const code = opCode(k, BINARY_CODE, op);
    for (const [name, shape] of [["aShape", aShape], ["bShape", bShape], ["outShape", outShape]] as const) checkShape(k, name, shape);
    checkBroadcast(k, "aShape", aShape, "outShape", outShape);
    checkBroadcast(k, "bShape", bShape, "outShape", outShape);
    const size = sizeOfShape(outShape);
    const o = this.f32(k, "out", out, size);
    const aBlock = this.f32(k, "a", a, size > 0 ? sizeOfShape(aShape) : 0);
    const bBlock = this.f32(k, "b", b, size > 0 ? sizeOfShape(bShape) : 0);
    if (size === 0) return;
    const rank = Math.max(outShape.length, 1);
    const packed = new Float64Array([rank, ...padShape(aShape, rank), ...padShape(bShape, rank), ...padShape(outShape, rank)]);
    // Same-index aliasing is safe elementwise; a broadcast input aliasing out is not.
    const safeA = aBlock === o && sizeOfShape(aShape) !== size ? aBlock.slice(0) : aBlock;
    const safeB = bBlock === o && sizeOfShape(bShape) !== size ? bBlock.slice(0) : bBlock;
    this.native.binary(code, safeA, safeB, o, packed);
  }

  private alphaFor(kernel: string, op: UnaryOp, alpha: number | undefined): number {
    if (unaryTakesAlpha(op) && alpha === undefined) fail(kernel, `op '${op}' needs alpha, found undefined`);
    return alpha ?? 0;
  }

  unary(op: UnaryOp, x: DeviceBuffer, out: DeviceBuffer, n: number, alpha?: number): void {
    const k = `unary(${op})`;
    const code = opCode(k, UNARY_CODE, op);
    checkInts(k, { n });
    const a = this.alphaFor(k, op, alpha);
    const xb = this.f32(k, "x", x, n);
    const ob = this.f32(k, "out", out, n);
    if (n > 0) this.native.unary(code, xb, ob, n, a);
  }

  unaryBackward(op: UnaryOp, x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, n: number, alpha?: number): void {
    const k = `unaryBackward(${op})`;
    const code = opCode(k, UNARY_CODE, op);
    checkInts(k, { n });
    const a = this.alphaFor(k, op, alpha);
    const xb = this.f32(k, "x", x, n);
    const yb = this.f32(k, "y", y, n);
    const dyb = this.f32(k, "dy", dy, n);
    const dxb = this.f32(k, "dx", dx, n);
    if (n > 0) this.native.unaryBackward(code, xb, yb, dyb, dxb, n, a);
  }

  reduceLastAxis(op: ReduceOp, x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void {
    const k = `reduceLastAxis(${op})`;
    const code = opCode(k, REDUCE_CODE, op);
    checkInts(k, { rows, cols });
    const xb = this.f32(k, "x", x, rows * cols);
    const ob = this.f32(k, "out", out, rows);
    if (rows > 0) this.native.reduceLastAxis(code, xb === ob ? xb.slice(0) : xb, ob, rows, cols);
  }

  sumToShape(x: DeviceBuffer, xShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    const k = "sumToShape";
    checkShape(k, "xShape", xShape);
    checkShape(k, "outShape", outShape);
    checkBroadcast(k, "outShape", outShape, "xShape", xShape);
    const xb = this.f32(k, "x", x, sizeOfShape(xShape));
    const ob = this.f32(k, "out", out, sizeOfShape(outShape));
    if (sizeOfShape(outShape) === 0) return;
    const rank = Math.max(xShape.length, 1);
    const packed = new Float64Array([rank, ...padShape(xShape, rank), ...padShape(outShape, rank)]);
    this.native.sumToShape(xb === ob ? xb.slice(0) : xb, ob, packed);
  }

  // ---- fused neural-network kernels ---------------------------------------------------------------

  softmax(x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void {
    checkInts("softmax", { rows, cols });
    const xb = this.f32("softmax", "x", x, rows * cols);
    const ob = this.f32("softmax", "out", out, rows * cols);
    if (rows * cols > 0) this.native.softmax(xb, ob, rows, cols);
  }

  softmaxBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, rows: number, cols: number): void {
    const k = "softmaxBackward";
    checkInts(k, { rows, cols });
    const size = rows * cols;
    const yb = this.f32(k, "y", y, size);
    const dyb = this.f32(k, "dy", dy, size);
    const dxb = this.f32(k, "dx", dx, size);
    if (size > 0) this.native.softmaxBackward(yb, dyb, dxb, rows, cols);
  }

  rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, out: DeviceBuffer, rstd: DeviceBuffer, rows: number, cols: number, eps: number): void {
    const k = "rmsNorm";
    checkInts(k, { rows, cols });
    if (!Number.isFinite(eps) || eps < 0) fail(k, `eps must be finite and ≥ 0, found ${eps}`);
    const ob = this.f32(k, "out", out, rows * cols);
    const rb = this.f32(k, "rstd", rstd, rows);
    const wb = this.f32(k, "weight", weight, rows > 0 ? cols : 0);
    const xb = this.f32(k, "x", x, rows * cols);
    if (rows > 0) this.native.rmsNorm(xb, wb === ob || wb === rb ? wb.slice(0) : wb, ob, rb, rows, cols, eps);
  }

  rmsNormBackward(x: DeviceBuffer, weight: DeviceBuffer, rstd: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, dWeight: DeviceBuffer, rows: number, cols: number): void {
    const k = "rmsNormBackward";
    checkInts(k, { rows, cols });
    const size = rows * cols;
    const dxb = this.f32(k, "dx", dx, size);
    const dwb = this.f32(k, "dWeight", dWeight, cols);
    const wb = this.f32(k, "weight", weight, cols);
    const rb = this.f32(k, "rstd", rstd, rows);
    const xb = this.f32(k, "x", x, size);
    const dyb = this.f32(k, "dy", dy, size);
    const safe = (block: ArrayBuffer) => (block === dxb || block === dwb ? block.slice(0) : block);
    if (rows > 0 && cols > 0) this.native.rmsNormBackward(safe(xb), safe(wb), safe(rb), safe(dyb), dxb, dwb, rows, cols);
  }

  rope(args: RopeArgs): void {
    const k = "rope";
    const { batch, seqLen, numHeads, headDim, layout } = args;
    const posOffset = args.posOffset ?? 0;
    checkInts(k, { batch, seqLen, numHeads, headDim, posOffset });
    if (headDim % 2 !== 0) fail(k, `headDim must be even, found ${headDim}`);
    if (layout !== "half" && layout !== "interleaved") fail(k, `layout must be "half" or "interleaved", found ${JSON.stringify(layout)}`);
    const size = batch * seqLen * numHeads * headDim;
    const xb = this.f32(k, "x", args.x, size);
    const ob = this.f32(k, "out", args.out, size);
    const half = headDim / 2;
    const cosBuf = this.checks.own(k, "cos", args.cos);
    const sinBuf = this.checks.own(k, "sin", args.sin);
    const cb = this.f32(k, "cos", args.cos, 0);
    const sb = this.f32(k, "sin", args.sin, 0);
    // Rows available in both tables; positions beyond them are an error (checked natively for `positions`).
    const tableRows = half > 0 ? Math.floor(Math.min(cosBuf.length, sinBuf.length) / half) : 0;
    const pb = args.positions === undefined ? null : this.i32(k, "positions", args.positions, batch * seqLen);
    if (size === 0) return;
    if (pb === null && posOffset + seqLen > tableRows) {
      fail(k, `positions ${posOffset}..${posOffset + seqLen - 1} need ${posOffset + seqLen} rows of cos/sin (P, ${half}), found ${tableRows}`);
    }
    const packed = new Float64Array([batch, seqLen, numHeads, headDim, layout === "interleaved" ? 1 : 0, tableRows, posOffset, args.scale ?? 1, args.inverse ? 1 : 0]);
    nativeCall(k, () => this.native.rope(xb, ob, cb === ob ? cb.slice(0) : cb, sb === ob ? sb.slice(0) : sb, pb, packed));
  }

  /** Checks the shared attention arguments; returns the packed parameters and the q/k/v blocks. */
  /** Checks the shared attention arguments (core's BackendChecks.attention); returns the packed parameters and the q/k/v blocks. */
  private attentionViews(kernel: string, args: AttentionArgs): { packed: Float64Array; q: ArrayBuffer; k: ArrayBuffer; v: ArrayBuffer; rows: number; empty: boolean } {
    const { q, k, v, packed, rows, empty } = this.checks.attention(kernel, args);
    return { packed, q: q.buf.block, k: k.buf.block, v: v.buf.block, rows, empty };
  }

  attention(args: AttentionForwardArgs): void {
    const kernel = "attention";
    const { packed, q, k, v, rows, empty } = this.attentionViews(kernel, args);
    const out = this.f32(kernel, "out", args.out, rows * args.vDim);
    const lse = args.lse === undefined ? null : this.f32(kernel, "lse", args.lse, rows);
    if (empty) return;
    const safe = (block: ArrayBuffer) => (block === out || block === lse ? block.slice(0) : block);
    this.native.attention(safe(q), safe(k), safe(v), out, lse, packed);
  }

  attentionBackward(args: AttentionBackwardArgs): void {
    const kernel = "attentionBackward";
    const { packed, q, k, v, rows, empty } = this.attentionViews(kernel, args);
    const { batch, keyLen, numKvHeads, qkDim, vDim } = args;
    const dq = this.f32(kernel, "dq", args.dq, rows * qkDim);
    const dk = this.f32(kernel, "dk", args.dk, batch * keyLen * numKvHeads * qkDim);
    const dv = this.f32(kernel, "dv", args.dv, batch * keyLen * numKvHeads * vDim);
    const out = this.f32(kernel, "out", args.out, rows * vDim);
    const lse = this.f32(kernel, "lse", args.lse, rows);
    const dOut = this.f32(kernel, "dOut", args.dOut, rows * vDim);
    if (empty) {
      // No query sees a key: the key/value gradients are zero.
      const n1 = batch * keyLen * numKvHeads;
      if (n1 > 0) {
        this.native.fill(dk, 0, 0, n1 * qkDim, 0);
        this.native.fill(dv, 0, 0, n1 * vDim, 0);
      }
      return;
    }
    const safe = (block: ArrayBuffer) => (block === dq || block === dk || block === dv ? block.slice(0) : block);
    this.native.attentionBackward(safe(q), safe(k), safe(v), safe(out), safe(lse), safe(dOut), dq, dk, dv, packed);
  }

  swiglu(gate: DeviceBuffer, up: DeviceBuffer, out: DeviceBuffer, n: number): void {
    checkInts("swiglu", { n });
    const g = this.f32("swiglu", "gate", gate, n);
    const u = this.f32("swiglu", "up", up, n);
    const o = this.f32("swiglu", "out", out, n);
    if (n > 0) this.native.swiglu(g, u, o, n);
  }

  swigluBackward(gate: DeviceBuffer, up: DeviceBuffer, dOut: DeviceBuffer, dGate: DeviceBuffer, dUp: DeviceBuffer, n: number): void {
    const k = "swigluBackward";
    checkInts(k, { n });
    const g = this.f32(k, "gate", gate, n);
    const u = this.f32(k, "up", up, n);
    const d = this.f32(k, "dOut", dOut, n);
    const dg = this.f32(k, "dGate", dGate, n);
    const du = this.f32(k, "dUp", dUp, n);
    if (n > 0) this.native.swigluBackward(g, u, d, dg, du, n);
  }

  embedding(ids: DeviceBuffer, table: DeviceBuffer, out: DeviceBuffer, n: number, vocab: number, dim: number): void {
    const k = "embedding";
    checkInts(k, { n, vocab, dim });
    const idb = this.i32(k, "ids", ids, n);
    const ob = this.f32(k, "out", out, n * dim);
    const tb = this.f32(k, "table", table, vocab * dim);
    if (n > 0) nativeCall(k, () => this.native.embedding(idb, tb === ob ? tb.slice(0) : tb, ob, n, vocab, dim));
  }

  embeddingBackward(ids: DeviceBuffer, dOut: DeviceBuffer, dTable: DeviceBuffer, n: number, vocab: number, dim: number): void {
    const k = "embeddingBackward";
    checkInts(k, { n, vocab, dim });
    const idb = this.i32(k, "ids", ids, n);
    const tb = this.f32(k, "dTable", dTable, vocab * dim);
    const db = this.f32(k, "dOut", dOut, n * dim);
    if (n > 0) nativeCall(k, () => this.native.embeddingBackward(idb, db === tb ? db.slice(0) : db, tb, n, vocab, dim));
  }

  /** Checks the LossArgs common to both losses. */
  private lossCommon(kernel: string, args: LossArgs): { logits: ArrayBuffer; weights: ArrayBuffer | null; loss: ArrayBuffer; grad: ArrayBuffer | null; temperature: number } {
    const { rows, vocab } = args;
    checkInts(kernel, { rows, vocab });
    const temperature = args.temperature ?? 1;
    if (!(temperature > 0) || !Number.isFinite(temperature)) fail(kernel, `temperature must be finite and > 0, found ${temperature}`);
    const logits = this.f32(kernel, "logits", args.logits, rows * vocab);
    const loss = this.f32(kernel, "loss", args.loss, rows);
    const grad = args.grad === undefined ? null : this.f32(kernel, "grad", args.grad, rows * vocab);
    const weights = args.weights === undefined ? null : this.f32(kernel, "weights", args.weights, rows);
    if (rows > 0 && vocab === 0) fail(kernel, `vocab must be ≥ 1 when rows > 0 (a softmax over nothing), found 0`);
    const outputs = [loss, grad];
    // grad may alias logits (the kernels read each row before writing it); nothing else may alias an output.
    return { logits: logits === loss ? logits.slice(0) : logits, weights: weights && outputs.includes(weights) ? weights.slice(0) : weights, loss, grad, temperature };
  }

  crossEntropy(args: CrossEntropyArgs): void {
    const k = "crossEntropy";
    const c = this.lossCommon(k, args);
    const labels = this.i32(k, "labels", args.labels, args.rows);
    if (args.rows > 0) nativeCall(k, () => this.native.crossEntropy(c.logits, labels, c.weights, c.loss, c.grad, args.rows, args.vocab, c.temperature));
  }

  klDiv(args: KlDivArgs): void {
    const k = "klDiv";
    const dense = args.teacherLogits !== undefined;
    const topKForm = args.teacherIndices !== undefined || args.teacherLogprobs !== undefined;
    if (dense === topKForm) fail(k, `give exactly one of teacherLogits or (teacherIndices, teacherLogprobs), found ${dense ? "both" : "neither"}`);
    const c = this.lossCommon(k, args);
    const { rows, vocab } = args;
    const safe = (block: ArrayBuffer) => (block === c.loss || block === c.grad ? block.slice(0) : block);
    if (dense) {
      const teacher = safe(this.f32(k, "teacherLogits", args.teacherLogits!, rows * vocab));
      if (rows > 0) this.native.klDiv(c.logits, teacher, null, null, c.weights, c.loss, c.grad, rows, vocab, c.temperature, 0);
      return;
    }
    if (args.teacherIndices === undefined || args.teacherLogprobs === undefined) fail(k, `the top-k form needs both teacherIndices and teacherLogprobs`);
    if (args.topK === undefined) fail(k, `the top-k form needs topK, found undefined`);
    const topK = args.topK;
    checkInts(k, { topK });
    const indices = this.i32(k, "teacherIndices", args.teacherIndices, rows * topK);
    const logprobs = safe(this.f32(k, "teacherLogprobs", args.teacherLogprobs, rows * topK));
    if (rows > 0) nativeCall(k, () => this.native.klDiv(c.logits, null, indices, logprobs, c.weights, c.loss, c.grad, rows, vocab, c.temperature, topK));
  }

  adamw(args: AdamWArgs): void {
    const k = "adamw";
    const { n } = args;
    checkInts(k, { n });
    const param = this.f32(k, "param", args.param, n);
    const m = this.f32(k, "m", args.m, n);
    const v = this.f32(k, "v", args.v, n);
    const grad = this.f32(k, "grad", args.grad, n);
    if (new Set([param, m, v]).size !== 3) fail(k, `param, m and v must be distinct buffers`);
    if (n === 0) return;
    const packed = new Float64Array([n, args.lr, args.beta1, args.beta2, args.eps, args.weightDecay, args.biasCorrection1, args.biasCorrection2, args.gradScale ?? 1]);
    this.native.adamw(param, grad, m, v, packed);
  }
}
