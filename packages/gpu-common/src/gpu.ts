// GpuBackend: the TensorBackend contract on the CUDA or HIP build of the one kernel source. Every
// argument JS can check is checked here (core's BackendChecks), before any kernel is enqueued;
// kernels run on one stream in program order and nothing here waits for the device except
// download() and sync(), which wait off the main thread.
import { fileURLToPath } from "node:url";
import {
  BINARY_OPS,
  BackendChecks,
  DTYPES,
  DTYPE_BYTES,
  EcomlaError,
  REDUCE_OPS,
  UNARY_OPS,
  opIds,
  stridedSpan,
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
  type FusedKernelName,
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
import { blasCandidates, blasNotFoundMessage, pythonWheelDirs } from "./blas-search.js";
import { BackendUnavailableError, type DeviceProbe, type GpuAddon, type GpuFlavor } from "./native.js";
import { DevicePool, type PoolStats } from "./pool.js";

const DTYPE_ID = opIds(DTYPES);
const BINARY_ID = opIds(BINARY_OPS);
const UNARY_ID = opIds(UNARY_OPS);
const REDUCE_ID = opIds(REDUCE_OPS);
const HOST_ARRAY_OF: Record<DType, string> = { f32: "Float32Array", i32: "Int32Array", bf16: "Uint16Array", f16: "Uint16Array" };

/** Data-dependent errors the kernels raise on the device (flags read back at the next download or sync). */
const FLAGS = ["embedding: an id outside [0, vocab)", "embeddingBackward: an id outside [0, vocab)", "rope: a position outside the cos/sin table",
  "crossEntropy: a label ≥ vocab", "klDiv: a teacher index outside [0, vocab)"] as const;
const FLAG = { embedding: 0, embeddingBackward: 1, rope: 2, crossEntropy: 3, klDiv: 4 } as const;

/** Options of {@link GpuBackend}. */
export interface GpuBackendOptions {
  /** Pooled (freed, kept for reuse) device bytes beyond which freed blocks are released. Default 4 GiB. */
  maxPooledBytes?: number;
  /** cuBLAS TF32 tensor-core math for the f32 GEMM (faster, ~1e-3 relative error). Default: ECOMLA_CUDA_TF32=1. */
  tf32?: boolean;
  /** Extra folders to search for cuBLAS/hipBLAS. */
  blasDirs?: string[];
}

/**
 * Absorbed-MLA decode over the latent cache (METHOD.md, "Inference: absorbed decode"): one new
 * token per sequence, B sequences, H heads, kv rank R ≤ 1024, rope dim Dr ≤ 128.
 * score[b,h,s] = scale·(qLatent[b,h]·c_kv[b,s] + qRope[b,h]·k_pe[b,s]) for s < lengths[b];
 * out[b,h] = Σ_s softmax(score[b,h])_s · c_kv[b,s] (the caller applies W_UV and o_proj).
 */
export interface MlaDecodeArgs {
  batch: number;
  numHeads: number;
  /** R: the latent (c_kv) width. */
  kvRank: number;
  /** Dr: the decoupled rope key width (0 allowed). */
  ropeDim: number;
  /** S_max: cache rows per sequence. */
  maxLen: number;
  /** Usually (d_nope + d_rope)^-1/2 of the un-absorbed model. */
  scale: number;
  /** (B, H, R) f32: q_nope · W_UK per head. */
  qLatent: DeviceBuffer;
  /** (B, H, Dr) f32: the rotated q_pe. */
  qRope: DeviceBuffer;
  /** (B, S_max, R + Dr) f32 rows [c_kv ‖ k_pe]. */
  cache: DeviceBuffer;
  /** Elements between sequences in `cache`. Default S_max·(R + Dr). */
  cacheBatchStride?: number;
  /** (B) i32 valid rows per sequence (1..S_max); absent: all S_max. */
  lengths?: DeviceBuffer;
  /** (B, H, R) f32, written. */
  out: DeviceBuffer;
  /** (B, H) f32 log-sum-exp of the scores, written when given. */
  lse?: DeviceBuffer;
  /** Context slices (default: about four blocks per multiprocessor). */
  splits?: number;
}

/** A device buffer of a GpuBackend. */
export class GpuBuffer implements DeviceBuffer {
  freed = false;
  constructor(
    readonly backend: string,
    readonly owner: GpuBackend,
    readonly dtype: DType,
    readonly length: number,
    public ptr: number,
    readonly capacity: number,
  ) {}
}

function sizeOfShape(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
function padShape(shape: readonly number[], rank: number): number[] {
  return [...new Array<number>(rank - shape.length).fill(1), ...shape];
}

/** Fused kernels the GPU build implements natively. */
export const GPU_NATIVE_KERNELS: readonly FusedKernelName[] = [
  "sumToShape", "softmax", "softmaxBackward", "rmsNorm", "rmsNormBackward", "rope", "attention", "attentionBackward",
  "swiglu", "swigluBackward", "embeddingBackward", "crossEntropy", "klDiv", "adamw",
];

/** The CUDA / ROCm backend. Create it with {@link GpuBackend.create} (which loads the BLAS library). */
export class GpuBackend implements TensorBackend {
  readonly capabilities: BackendCapabilities;
  readonly blasPath: string;
  private readonly pool: DevicePool;
  private readonly checks: BackendChecks<GpuBuffer>;
  private readonly flags: number;
  private readonly tf32: boolean;
  private readonly label: string;

  private constructor(
    readonly name: GpuFlavor,
    private readonly native: GpuAddon,
    readonly device: DeviceProbe,
    blasPath: string,
    options: GpuBackendOptions,
  ) {
    this.label = name === "cuda" ? "CudaBackend" : "RocmBackend";
    this.checks = new BackendChecks<GpuBuffer>(this.label, name, this, (b): b is GpuBuffer => b instanceof GpuBuffer);
    this.blasPath = blasPath;
    this.tf32 = options.tf32 ?? process.env.ECOMLA_CUDA_TF32 === "1";
    this.pool = new DevicePool(native, options.maxPooledBytes ?? 4 * 2 ** 30);
    this.flags = native.alloc(256);
    native.fill(this.flags, DTYPE_ID.i32, 0, FLAGS.length, 0);
    this.capabilities = {
      benchBaselines: {
        gemmMs: (m, n, k, repetitions) => Array.from({ length: repetitions }, () => native.benchSgemm(m, n, k, 10) / 10),
        pytorchScript: fileURLToPath(new URL("../bench/torch_baseline_cuda.py", import.meta.url)),
      },
    };
  }

  /**
   * Probe the device, create the stream, load cuBLAS/hipBLAS. Throws a {@link BackendUnavailableError}
   * naming what is missing (the driver, a GPU, the library with every path searched).
   */
  static create(flavor: GpuFlavor, native: GpuAddon, options: GpuBackendOptions = {}): GpuBackend {
    const device = native.probe();
    if (!device.ok) throw new BackendUnavailableError(flavor, `no usable ${flavor === "cuda" ? "CUDA" : "ROCm"} device: ${device.error}`);
    native.init();
    const blasPath = loadBlas(flavor, native, options.blasDirs ?? []);
    return new GpuBackend(flavor, native, device, blasPath, options);
  }

  /** One line: the device, its architecture, the library. */
  describe(): string {
    return `${this.device.name} (${this.device.arch}; binary for ${this.native.compiledTargets}), BLAS ${this.blasPath}`;
  }

  poolStats(): PoolStats {
    return this.pool.stats();
  }

  /** Free pooled device blocks. */
  trimPool(): void {
    this.pool.trim();
  }

  /** The device's free/total memory and the pinned staging bytes kept for downloads. */
  deviceMemory(): { freeBytes: number; totalBytes: number; stagingBytes: number } {
    return this.native.memInfo();
  }

  supports(kernel: FusedKernelName, args: readonly unknown[]): boolean {
    if (kernel === "attention" || kernel === "attentionBackward") {
      const a = args[0] as AttentionArgs;
      return a.qkDim <= this.native.attentionMaxHeadDim && a.vDim <= this.native.attentionMaxHeadDim;
    }
    return true;
  }

  // ---- helpers --------------------------------------------------------------------------------------
  private fail(kernel: string, message: string): never {
    return this.checks.fail(kernel, message);
  }
  private ints(kernel: string, values: Record<string, number>, min = 0): void {
    this.checks.ints(kernel, values, min);
  }
  private typed(kernel: string, arg: string, buf: DeviceBuffer, dtype: DType, count: number, offset = 0): GpuBuffer {
    return this.checks.typed(kernel, arg, buf, dtype, count, offset);
  }
  private f32(kernel: string, arg: string, buf: DeviceBuffer, count: number): GpuBuffer {
    return this.typed(kernel, arg, buf, "f32", count);
  }
  private i32(kernel: string, arg: string, buf: DeviceBuffer, count: number): GpuBuffer {
    return this.typed(kernel, arg, buf, "i32", count);
  }
  private shape(kernel: string, arg: string, shape: readonly number[]): void {
    this.checks.shape(kernel, arg, shape, 6);
  }
  private flag(i: number): number {
    return this.flags + i * 4;
  }
  /**
   * Device scratch for one call: `run` receives its address; the block returns to the pool right
   * after (later kernels that reuse it are ordered after this one on the stream).
   */
  private withScratch<T>(bytes: number, run: (ptr: number) => T): T {
    const block = this.pool.take(Math.max(bytes, 4));
    try {
      return run(block.ptr);
    } finally {
      this.pool.give(block.ptr, block.capacity);
    }
  }
  /** Inputs that share a block with an output are read from a device copy (as if the kernel were atomic). */
  private unaliased<T>(inputs: (GpuBuffer | null)[], outputs: (GpuBuffer | null)[], run: (ptrs: (number | null)[]) => T): T {
    const outs = new Set(outputs.filter((o): o is GpuBuffer => o !== null).map((o) => o.ptr));
    const temps: { ptr: number; capacity: number }[] = [];
    try {
      const ptrs = inputs.map((b) => {
        if (b === null) return null;
        if (!outs.has(b.ptr)) return b.ptr;
        const bytes = b.length * DTYPE_BYTES[b.dtype];
        const block = this.pool.take(Math.max(bytes, 4));
        temps.push(block);
        if (bytes > 0) this.native.copyDevice(block.ptr, b.ptr, bytes);
        return block.ptr;
      });
      return run(ptrs);
    } finally {
      for (const t of temps) this.pool.give(t.ptr, t.capacity);
    }
  }

  // ---- memory ---------------------------------------------------------------------------------------
  alloc(dtype: DType, length: number): DeviceBuffer {
    if (!(dtype in DTYPE_BYTES)) this.fail("alloc", `unknown dtype ${JSON.stringify(dtype)}; expected one of f32, bf16, f16, i32`);
    this.ints("alloc", { length });
    const bytes = length * DTYPE_BYTES[dtype];
    let block: { ptr: number; capacity: number };
    try {
      block = this.pool.take(bytes);
    } catch (error) {
      throw new EcomlaError(`${this.label}.alloc: ${length} × ${dtype} (${bytes} bytes) failed: ${(error as Error).message}`, { cause: error });
    }
    this.checks.allocated(bytes);
    return new GpuBuffer(this.name, this, dtype, length, block.ptr, block.capacity);
  }

  free(buf: DeviceBuffer): void {
    if (buf instanceof GpuBuffer && buf.owner === this && buf.freed) {
      throw new EcomlaError(`${this.label}.free: buffer (${buf.dtype}, length ${buf.length}) was already freed (freeing twice)`);
    }
    const b = this.checks.own("free", "buf", buf);
    b.freed = true;
    this.pool.give(b.ptr, b.capacity);
    this.checks.released(b.length * DTYPE_BYTES[b.dtype]);
  }

  upload(buf: DeviceBuffer, data: HostArray, offset = 0): void {
    const b = this.checks.own("upload", "buf", buf);
    const expected = HOST_ARRAY_OF[b.dtype];
    const found = (data as object)?.constructor?.name ?? typeof data;
    if (found !== expected) this.fail("upload", `a ${b.dtype} buffer takes a ${expected}, found ${found}`);
    this.ints("upload", { offset });
    this.checks.span("upload", "buf", b, data.length > 0 ? [offset, offset + data.length] : null);
    if (data.length > 0) this.native.upload(b.ptr, offset * DTYPE_BYTES[b.dtype], data);
  }

  async download<D extends DType>(buf: DeviceBuffer & { dtype: D }, offset = 0, length?: number): Promise<HostArrayOf<D>> {
    const b = this.checks.own("download", "buf", buf);
    const count = length ?? b.length - offset;
    this.ints("download", { offset, length: count });
    this.checks.span("download", "buf", b, count > 0 ? [offset, offset + count] : null);
    const bytes = DTYPE_BYTES[b.dtype];
    const [data, flags] = await Promise.all([this.native.download(b.ptr, offset * bytes, count * bytes), this.native.download(this.flags, 0, FLAGS.length * 4)]);
    this.raiseFlags(new Int32Array(flags));
    const View = b.dtype === "f32" ? Float32Array : b.dtype === "i32" ? Int32Array : Uint16Array;
    return new View(data) as HostArrayOf<D>;
  }

  async sync(): Promise<void> {
    this.raiseFlags(new Int32Array(await this.native.download(this.flags, 0, FLAGS.length * 4)));
  }

  /** Throws (once) for the device-side errors raised since the last download or sync. */
  private raiseFlags(flags: Int32Array): void {
    const raised = FLAGS.filter((_, i) => flags[i] !== 0);
    if (raised.length === 0) return;
    this.native.fill(this.flags, DTYPE_ID.i32, 0, FLAGS.length, 0);
    throw new EcomlaError(`${this.label}: a kernel found bad input on the device (affected rows were zeroed or set to NaN): ${raised.join("; ")}`);
  }

  memoryStats(): BackendMemoryStats {
    return this.checks.snapshot();
  }

  resetPeak(): void {
    this.checks.resetPeak();
  }

  // ---- layout ---------------------------------------------------------------------------------------
  fill(out: DeviceBuffer, value: number, n: number, offset = 0): void {
    const b = this.checks.own("fill", "out", out);
    this.ints("fill", { n, offset });
    this.checks.span("fill", "out", b, n > 0 ? [offset, offset + n] : null);
    if (n > 0) this.native.fill(b.ptr, DTYPE_ID[b.dtype], value, n, offset);
  }

  copyStrided(args: CopyStridedArgs): void {
    const { shape, srcStrides, dstStrides } = args;
    const { src, dst, srcOffset, dstOffset, srcSpan } = this.checks.copyStrided(args, 6);
    if (srcSpan === null) return;
    const packed = new Float64Array([shape.length, ...shape, ...srcStrides, ...dstStrides]);
    this.unaliased([src], [dst], ([s]) => this.native.copyStrided(s!, srcOffset, dst.ptr, dstOffset, DTYPE_ID[src.dtype], packed, args.accumulate === true));
  }

  cast(src: DeviceBuffer, dst: DeviceBuffer, n: number): void {
    const s = this.checks.own("cast", "src", src);
    const d = this.checks.own("cast", "dst", dst);
    this.ints("cast", { n });
    this.checks.span("cast", "src", s, n > 0 ? [0, n] : null);
    this.checks.span("cast", "dst", d, n > 0 ? [0, n] : null);
    if (n === 0) return;
    if (s.ptr === d.ptr && s.dtype !== d.dtype && DTYPE_BYTES[s.dtype] !== DTYPE_BYTES[d.dtype]) {
      this.unaliased([s], [d], ([p]) => this.native.cast(p!, DTYPE_ID[s.dtype], d.ptr, DTYPE_ID[d.dtype], n));
    } else {
      this.native.cast(s.ptr, DTYPE_ID[s.dtype], d.ptr, DTYPE_ID[d.dtype], n);
    }
  }

  // ---- linear algebra -------------------------------------------------------------------------------
  gemm(args: GemmArgs): void {
    const k = "gemm";
    const { batch, m, n, transA, transB, alpha, beta } = args;
    const { a, b, c, aOffset, bOffset, cOffset } = this.checks.gemm(args);
    const aCols = transA ? m : args.k;
    const bCols = transB ? args.k : n;
    if (m === 0 || n === 0) return;
    if (Math.max(m, n, args.k, batch) > 2 ** 31 - 1) this.fail(k, `m, n, k and batch must be < 2^31 for the BLAS library`);
    // BLAS takes lda ≥ the stored row length even for a single row; the value is unused then.
    const lda = Math.max(args.lda, aCols, 1);
    const ldb = Math.max(args.ldb, bCols, 1);
    const ldc = Math.max(args.ldc, n, 1);
    const packed = new Float64Array([batch, m, n, args.k, transA ? 1 : 0, transB ? 1 : 0, alpha, beta, aOffset, lda, args.strideA, bOffset, ldb, args.strideB, cOffset, ldc, args.strideC]);
    // BLAS forbids C overlapping an input: such inputs are read from a device copy.
    this.unaliased([a, b], [c], ([pa, pb]) => this.native.gemm(pa!, pb!, c.ptr, packed, this.tf32));
  }

  // ---- elementwise and reductions -------------------------------------------------------------------
  private opId(kernel: string, table: Readonly<Record<string, number>>, op: string): number {
    const id = table[op];
    if (id === undefined) this.fail(kernel, `unknown op ${JSON.stringify(op)}; expected one of ${Object.keys(table).join(", ")}`);
    return id;
  }

  binary(op: BinaryOp, a: DeviceBuffer, aShape: readonly number[], b: DeviceBuffer, bShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    const k = `binary(${op})`;
    const id = this.opId(k, BINARY_ID, op);
    for (const [name, shape] of [["aShape", aShape], ["bShape", bShape], ["outShape", outShape]] as const) this.shape(k, name, shape);
    this.checks.broadcast(k, "aShape", aShape, "outShape", outShape);
    this.checks.broadcast(k, "bShape", bShape, "outShape", outShape);
    const size = sizeOfShape(outShape);
    const o = this.f32(k, "out", out, size);
    const ab = this.f32(k, "a", a, size > 0 ? sizeOfShape(aShape) : 0);
    const bb = this.f32(k, "b", b, size > 0 ? sizeOfShape(bShape) : 0);
    if (size === 0) return;
    const rank = Math.max(outShape.length, 1);
    const packed = new Float64Array([rank, ...padShape(aShape, rank), ...padShape(bShape, rank), ...padShape(outShape, rank)]);
    // Same-index aliasing is safe elementwise; a broadcast input aliasing out is not.
    const risky = (x: GpuBuffer, shape: readonly number[]) => (x.ptr === o.ptr && sizeOfShape(shape) !== size ? x : null);
    const ra = risky(ab, aShape);
    const rb = risky(bb, bShape);
    if (ra === null && rb === null) this.native.binary(id, ab.ptr, bb.ptr, o.ptr, packed);
    else this.unaliased([ab, bb], [o], ([pa, pb]) => this.native.binary(id, pa!, pb!, o.ptr, packed));
  }

  private alphaFor(kernel: string, op: UnaryOp, alpha: number | undefined): number {
    if (unaryTakesAlpha(op) && alpha === undefined) this.fail(kernel, `op '${op}' needs alpha, found undefined`);
    return alpha ?? 0;
  }

  unary(op: UnaryOp, x: DeviceBuffer, out: DeviceBuffer, n: number, alpha?: number): void {
    const k = `unary(${op})`;
    const id = this.opId(k, UNARY_ID, op);
    this.ints(k, { n });
    const a = this.alphaFor(k, op, alpha);
    const xb = this.f32(k, "x", x, n);
    const ob = this.f32(k, "out", out, n);
    if (n > 0) this.native.unary(id, xb.ptr, ob.ptr, n, a);
  }

  unaryBackward(op: UnaryOp, x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, n: number, alpha?: number): void {
    const k = `unaryBackward(${op})`;
    const id = this.opId(k, UNARY_ID, op);
    this.ints(k, { n });
    const a = this.alphaFor(k, op, alpha);
    const xb = this.f32(k, "x", x, n);
    const yb = this.f32(k, "y", y, n);
    const dyb = this.f32(k, "dy", dy, n);
    const dxb = this.f32(k, "dx", dx, n);
    if (n > 0) this.native.unaryBackward(id, xb.ptr, yb.ptr, dyb.ptr, dxb.ptr, n, a);
  }

  reduceLastAxis(op: ReduceOp, x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void {
    const k = `reduceLastAxis(${op})`;
    const id = this.opId(k, REDUCE_ID, op);
    this.ints(k, { rows, cols });
    const xb = this.f32(k, "x", x, rows * cols);
    const ob = this.f32(k, "out", out, rows);
    if (rows > 0) this.unaliased([xb], [ob], ([px]) => this.native.reduceLastAxis(id, px!, ob.ptr, rows, cols));
  }

  sumToShape(x: DeviceBuffer, xShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    const k = "sumToShape";
    this.shape(k, "xShape", xShape);
    this.shape(k, "outShape", outShape);
    this.checks.broadcast(k, "outShape", outShape, "xShape", xShape);
    const xb = this.f32(k, "x", x, sizeOfShape(xShape));
    const ob = this.f32(k, "out", out, sizeOfShape(outShape));
    if (sizeOfShape(outShape) === 0) return;
    const rank = Math.max(xShape.length, 1);
    const packed = new Float64Array([rank, ...padShape(xShape, rank), ...padShape(outShape, rank)]);
    if (sizeOfShape(xShape) === 0) {
      this.native.fill(ob.ptr, DTYPE_ID.f32, 0, sizeOfShape(outShape), 0);
      return;
    }
    this.unaliased([xb], [ob], ([px]) => this.native.sumToShape(px!, ob.ptr, packed));
  }

  embedding(ids: DeviceBuffer, table: DeviceBuffer, out: DeviceBuffer, n: number, vocab: number, dim: number): void {
    const k = "embedding";
    this.ints(k, { n, vocab, dim });
    const idb = this.i32(k, "ids", ids, n);
    const ob = this.f32(k, "out", out, n * dim);
    const tb = this.f32(k, "table", table, vocab * dim);
    if (n > 0) this.unaliased([idb, tb], [ob], ([pi, pt]) => this.native.embedding(pi!, pt!, ob.ptr, n, vocab, dim, this.flag(FLAG.embedding)));
  }

  // ---- fused kernels --------------------------------------------------------------------------------
  embeddingBackward(ids: DeviceBuffer, dOut: DeviceBuffer, dTable: DeviceBuffer, n: number, vocab: number, dim: number): void {
    const k = "embeddingBackward";
    this.ints(k, { n, vocab, dim });
    const idb = this.i32(k, "ids", ids, n);
    const tb = this.f32(k, "dTable", dTable, vocab * dim);
    const db = this.f32(k, "dOut", dOut, n * dim);
    if (n > 0) this.unaliased([idb, db], [tb], ([pi, pd]) => this.native.embeddingBackward(pi!, pd!, tb.ptr, n, vocab, dim, this.flag(FLAG.embeddingBackward)));
  }

  softmax(x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void {
    this.ints("softmax", { rows, cols });
    const xb = this.f32("softmax", "x", x, rows * cols);
    const ob = this.f32("softmax", "out", out, rows * cols);
    if (rows * cols > 0) this.native.softmax(xb.ptr, ob.ptr, rows, cols);
  }

  softmaxBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, rows: number, cols: number): void {
    const k = "softmaxBackward";
    this.ints(k, { rows, cols });
    const size = rows * cols;
    const yb = this.f32(k, "y", y, size);
    const dyb = this.f32(k, "dy", dy, size);
    const dxb = this.f32(k, "dx", dx, size);
    if (size > 0) this.native.softmaxBackward(yb.ptr, dyb.ptr, dxb.ptr, rows, cols);
  }

  rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, out: DeviceBuffer, rstd: DeviceBuffer, rows: number, cols: number, eps: number): void {
    const k = "rmsNorm";
    this.ints(k, { rows, cols });
    if (!Number.isFinite(eps) || eps < 0) this.fail(k, `eps must be finite and ≥ 0, found ${eps}`);
    const ob = this.f32(k, "out", out, rows * cols);
    const rb = this.f32(k, "rstd", rstd, rows);
    const wb = this.f32(k, "weight", weight, rows > 0 ? cols : 0);
    const xb = this.f32(k, "x", x, rows * cols);
    if (rows > 0) this.unaliased([xb, wb], [ob, rb], ([px, pw]) => this.native.rmsNorm(px!, pw!, ob.ptr, rb.ptr, rows, cols, eps));
  }

  rmsNormBackward(x: DeviceBuffer, weight: DeviceBuffer, rstd: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, dWeight: DeviceBuffer, rows: number, cols: number): void {
    const k = "rmsNormBackward";
    this.ints(k, { rows, cols });
    const size = rows * cols;
    const dxb = this.f32(k, "dx", dx, size);
    const dwb = this.f32(k, "dWeight", dWeight, cols);
    const wb = this.f32(k, "weight", weight, cols);
    const rb = this.f32(k, "rstd", rstd, rows);
    const xb = this.f32(k, "x", x, size);
    const dyb = this.f32(k, "dy", dy, size);
    if (rows === 0 || cols === 0) return;
    const scratch = this.native.rmsNormBackwardScratch(rows, cols) * 4;
    this.unaliased([xb, wb, rb, dyb], [dxb, dwb], ([px, pw, pr, pdy]) =>
      this.withScratch(scratch, (s) => this.native.rmsNormBackward(px!, pw!, pr!, pdy!, dxb.ptr, dwb.ptr, rows, cols, s)),
    );
  }

  rope(args: RopeArgs): void {
    const k = "rope";
    const { batch, seqLen, numHeads, headDim, layout } = args;
    const posOffset = args.posOffset ?? 0;
    this.ints(k, { batch, seqLen, numHeads, headDim, posOffset });
    if (headDim % 2 !== 0) this.fail(k, `headDim must be even, found ${headDim}`);
    if (layout !== "half" && layout !== "interleaved") this.fail(k, `layout must be "half" or "interleaved", found ${JSON.stringify(layout)}`);
    const size = batch * seqLen * numHeads * headDim;
    const xb = this.f32(k, "x", args.x, size);
    const ob = this.f32(k, "out", args.out, size);
    const half = headDim / 2;
    const cb = this.f32(k, "cos", args.cos, 0);
    const sb = this.f32(k, "sin", args.sin, 0);
    const tableRows = half > 0 ? Math.floor(Math.min(cb.length, sb.length) / half) : 0;
    const pb = args.positions === undefined ? null : this.i32(k, "positions", args.positions, batch * seqLen);
    if (size === 0) return;
    if (pb === null && posOffset + seqLen > tableRows) {
      this.fail(k, `positions ${posOffset}..${posOffset + seqLen - 1} need ${posOffset + seqLen} rows of cos/sin (P, ${half}), found ${tableRows}`);
    }
    const packed = new Float64Array([batch, seqLen, numHeads, headDim, layout === "interleaved" ? 1 : 0, tableRows, posOffset, args.scale ?? 1, args.inverse ? 1 : 0]);
    // x may alias out (each pair is read before it is written); the tables and positions may not.
    this.unaliased([cb, sb, pb], [ob], ([pc, ps, pp]) => this.native.rope(xb.ptr, ob.ptr, pc!, ps!, pp, packed, this.flag(FLAG.rope)));
  }

  /** Checks the shared attention arguments; returns the packed parameters and the q/k/v buffers. */
  private attentionViews(kernel: string, args: AttentionArgs): { packed: Float64Array; q: GpuBuffer; k: GpuBuffer; v: GpuBuffer; rows: number; empty: boolean } {
    const { qkDim, vDim } = args;
    if (qkDim > this.native.attentionMaxHeadDim || vDim > this.native.attentionMaxHeadDim) {
      this.fail(kernel, `qkDim (${qkDim}) and vDim (${vDim}) must be ≤ ${this.native.attentionMaxHeadDim} for the native kernel (supports() sends larger ones to the composition)`);
    }
    const { q, k, v, packed, rows, empty } = this.checks.attention(kernel, args);
    return { packed, q: q.buf, k: k.buf, v: v.buf, rows, empty };
  }

  attention(args: AttentionForwardArgs): void {
    const kernel = "attention";
    const { packed, q, k, v, rows, empty } = this.attentionViews(kernel, args);
    const out = this.f32(kernel, "out", args.out, rows * args.vDim);
    const lse = args.lse === undefined ? null : this.f32(kernel, "lse", args.lse, rows);
    if (empty) return;
    this.unaliased([q, k, v], [out, lse], ([pq, pk, pv]) => this.native.attention(pq!, pk!, pv!, out.ptr, lse?.ptr ?? null, packed));
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
      const n1 = batch * keyLen * numKvHeads;
      if (n1 > 0) {
        this.native.fill(dk.ptr, DTYPE_ID.f32, 0, n1 * qkDim, 0);
        this.native.fill(dv.ptr, DTYPE_ID.f32, 0, n1 * vDim, 0);
      }
      return;
    }
    this.unaliased([q, k, v, out, lse, dOut], [dq, dk, dv], ([pq, pk, pv, po, pl, pd]) =>
      this.withScratch(rows * 4, (s) => this.native.attentionBackward(pq!, pk!, pv!, po!, pl!, pd!, dq.ptr, dk.ptr, dv.ptr, packed, s)),
    );
  }

  swiglu(gate: DeviceBuffer, up: DeviceBuffer, out: DeviceBuffer, n: number): void {
    this.ints("swiglu", { n });
    const g = this.f32("swiglu", "gate", gate, n);
    const u = this.f32("swiglu", "up", up, n);
    const o = this.f32("swiglu", "out", out, n);
    if (n > 0) this.native.swiglu(g.ptr, u.ptr, o.ptr, n);
  }

  swigluBackward(gate: DeviceBuffer, up: DeviceBuffer, dOut: DeviceBuffer, dGate: DeviceBuffer, dUp: DeviceBuffer, n: number): void {
    const k = "swigluBackward";
    this.ints(k, { n });
    const g = this.f32(k, "gate", gate, n);
    const u = this.f32(k, "up", up, n);
    const d = this.f32(k, "dOut", dOut, n);
    const dg = this.f32(k, "dGate", dGate, n);
    const du = this.f32(k, "dUp", dUp, n);
    // Elementwise, but dGate written before dUp's inputs are read would break dGate aliasing up: copy such inputs.
    if (n > 0) this.unaliased([g, u, d], [dg, du], ([pg, pu, pd]) => this.native.swigluBackward(pg!, pu!, pd!, dg.ptr, du.ptr, n));
  }

  private lossCommon(kernel: string, args: LossArgs): { logits: GpuBuffer; weights: GpuBuffer | null; loss: GpuBuffer; grad: GpuBuffer | null; temperature: number } {
    const { rows, vocab } = args;
    this.ints(kernel, { rows, vocab });
    const temperature = args.temperature ?? 1;
    if (!(temperature > 0) || !Number.isFinite(temperature)) this.fail(kernel, `temperature must be finite and > 0, found ${temperature}`);
    const logits = this.f32(kernel, "logits", args.logits, rows * vocab);
    const loss = this.f32(kernel, "loss", args.loss, rows);
    const grad = args.grad === undefined ? null : this.f32(kernel, "grad", args.grad, rows * vocab);
    const weights = args.weights === undefined ? null : this.f32(kernel, "weights", args.weights, rows);
    if (rows > 0 && vocab === 0) this.fail(kernel, `vocab must be ≥ 1 when rows > 0 (a softmax over nothing), found 0`);
    return { logits, weights, loss, grad, temperature };
  }

  crossEntropy(args: CrossEntropyArgs): void {
    const k = "crossEntropy";
    const c = this.lossCommon(k, args);
    const labels = this.i32(k, "labels", args.labels, args.rows);
    if (args.rows === 0) return;
    // grad may alias logits (each row is read before it is written); nothing else may alias an output.
    this.unaliased([c.logits.ptr === c.grad?.ptr ? null : c.logits, labels, c.weights], [c.loss, c.grad], ([pl, plab, pw]) =>
      this.native.crossEntropy(pl ?? c.logits.ptr, plab!, pw, c.loss.ptr, c.grad?.ptr ?? null, args.rows, args.vocab, c.temperature, this.flag(FLAG.crossEntropy)),
    );
  }

  klDiv(args: KlDivArgs): void {
    const k = "klDiv";
    const dense = args.teacherLogits !== undefined;
    const topKForm = args.teacherIndices !== undefined || args.teacherLogprobs !== undefined;
    if (dense === topKForm) this.fail(k, `give exactly one of teacherLogits or (teacherIndices, teacherLogprobs), found ${dense ? "both" : "neither"}`);
    const c = this.lossCommon(k, args);
    const { rows, vocab } = args;
    const logitsIn = c.logits.ptr === c.grad?.ptr ? null : c.logits;
    if (dense) {
      const teacher = this.f32(k, "teacherLogits", args.teacherLogits!, rows * vocab);
      if (rows === 0) return;
      this.unaliased([logitsIn, teacher, c.weights], [c.loss, c.grad], ([pl, pt, pw]) =>
        this.native.klDiv(pl ?? c.logits.ptr, pt, null, null, pw, c.loss.ptr, c.grad?.ptr ?? null, rows, vocab, c.temperature, 0, this.flag(FLAG.klDiv)),
      );
      return;
    }
    if (args.teacherIndices === undefined || args.teacherLogprobs === undefined) this.fail(k, `the top-k form needs both teacherIndices and teacherLogprobs`);
    if (args.topK === undefined) this.fail(k, `the top-k form needs topK, found undefined`);
    const topK = args.topK;
    this.ints(k, { topK });
    const indices = this.i32(k, "teacherIndices", args.teacherIndices, rows * topK);
    const logprobs = this.f32(k, "teacherLogprobs", args.teacherLogprobs, rows * topK);
    if (rows === 0) return;
    this.unaliased([logitsIn, indices, logprobs, c.weights], [c.loss, c.grad], ([pl, pi, plp, pw]) =>
      this.native.klDiv(pl ?? c.logits.ptr, null, pi, plp, pw, c.loss.ptr, c.grad?.ptr ?? null, rows, vocab, c.temperature, topK, this.flag(FLAG.klDiv)),
    );
  }

  adamw(args: AdamWArgs): void {
    const k = "adamw";
    const { n } = args;
    this.ints(k, { n });
    const param = this.f32(k, "param", args.param, n);
    const m = this.f32(k, "m", args.m, n);
    const v = this.f32(k, "v", args.v, n);
    const grad = this.f32(k, "grad", args.grad, n);
    if (new Set([param.ptr, m.ptr, v.ptr]).size !== 3) this.fail(k, `param, m and v must be distinct buffers`);
    if (n === 0) return;
    const packed = new Float64Array([n, args.lr, args.beta1, args.beta2, args.eps, args.weightDecay, args.biasCorrection1, args.biasCorrection2, args.gradScale ?? 1]);
    this.unaliased([grad], [param, m, v], ([pg]) => this.native.adamw(param.ptr, pg!, m.ptr, v.ptr, packed));
  }

  // ---- inference --------------------------------------------------------------------------------------
  /** Absorbed-MLA decode, see {@link MlaDecodeArgs}. */
  mlaDecode(args: MlaDecodeArgs): void {
    const k = "mlaDecode";
    const { batch, numHeads, kvRank, ropeDim, maxLen, scale } = args;
    this.ints(k, { batch, numHeads, maxLen });
    this.ints(k, { kvRank }, 1);
    this.ints(k, { ropeDim });
    if (kvRank > 1024) this.fail(k, `kvRank must be ≤ 1024, found ${kvRank}`);
    if (ropeDim > 128) this.fail(k, `ropeDim must be ≤ 128, found ${ropeDim}`);
    if (!Number.isFinite(scale)) this.fail(k, `scale must be finite, found ${scale}`);
    const width = kvRank + ropeDim;
    const cacheBatchStride = args.cacheBatchStride ?? maxLen * width;
    this.ints(k, { cacheBatchStride });
    if (batch > 1 && cacheBatchStride < maxLen * width) this.fail(k, `cacheBatchStride must be ≥ maxLen·(kvRank + ropeDim) = ${maxLen * width}, found ${cacheBatchStride}`);
    const rows = batch * numHeads;
    const ql = this.f32(k, "qLatent", args.qLatent, rows * kvRank);
    const qr = this.f32(k, "qRope", args.qRope, rows * ropeDim);
    const cache = this.f32(k, "cache", args.cache, 0);
    this.checks.span(k, "cache", cache, batch > 0 && maxLen > 0 ? [0, (batch - 1) * cacheBatchStride + maxLen * width] : null);
    const lengths = args.lengths === undefined ? null : this.i32(k, "lengths", args.lengths, batch);
    const out = this.f32(k, "out", args.out, rows * kvRank);
    const lse = args.lse === undefined ? null : this.f32(k, "lse", args.lse, rows);
    if (rows === 0) return;
    if (maxLen === 0) this.fail(k, `maxLen is 0: the new token would see no cached position`);
    const splits = args.splits ?? 0;
    this.ints(k, { splits });
    const packed = new Float64Array([batch, numHeads, kvRank, ropeDim, maxLen, cacheBatchStride, scale]);
    const scratch = this.native.mlaDecodeScratch(packed, splits) * 4;
    this.unaliased([ql, qr, cache, lengths], [out, lse], ([pq, pr, pc, pl]) =>
      this.withScratch(scratch, (s) => this.native.mlaDecode(pq!, pr!, pc!, pl, out.ptr, lse?.ptr ?? null, s, packed, splits)),
    );
  }
}

/**
 * dlopen cuBLAS/hipBLAS from the candidates of {@link blasCandidates}; when none loads, ask python3
 * where the wheel is and try there; else throw a BackendUnavailableError naming every path tried.
 */
export function loadBlas(flavor: GpuFlavor, native: Pick<GpuAddon, "loadBlas">, extraDirs: readonly string[] = [], findWheel = pythonWheelDirs): string {
  const first = blasCandidates(flavor, process.env, extraDirs);
  const r1 = native.loadBlas(first);
  if (r1.ok) return r1.path;
  const more = blasCandidates(flavor, process.env, [...extraDirs, ...findWheel(flavor)]).filter((p) => !first.includes(p));
  const r2 = more.length > 0 ? native.loadBlas(more) : { ok: false, path: "", errors: "" };
  if (r2.ok) return r2.path;
  throw new BackendUnavailableError(flavor, blasNotFoundMessage(flavor, [...first, ...more], r1.errors + r2.errors));
}
