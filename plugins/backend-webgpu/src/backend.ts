// WebGpuBackend: the TensorBackend contract on Dawn. Buffers come from a size-bucketed pool;
// kernels only record commands (see runtime.ts); download is the only readback.
import {
  BackendChecks,
  DTYPE_BYTES,
  EcomlaError,
  ShapeError,
  f32ToBf16Bits,
  f32ToF16Bits,
  type AdamWArgs,
  type AttentionBackwardArgs,
  type AttentionForwardArgs,
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
  type ReduceOp,
  type RopeArgs,
  type TensorBackend,
  type UnaryOp,
} from "@ecomla/core";
import * as attention from "./kernels/attention.js";
import type { Arg, BindingLimits, Launcher } from "./kernels/common.js";
import * as elementwise from "./kernels/elementwise.js";
import { gemm } from "./kernels/gemm.js";
import * as layout from "./kernels/layout.js";
import * as loss from "./kernels/loss.js";
import { rope } from "./kernels/rope.js";
import * as rows from "./kernels/rows.js";
import { BufferPool, type PoolStats } from "./pool.js";
import { GpuRuntime, type RuntimeCounters } from "./runtime.js";

/** Bytes a buffer of `length` elements of `dtype` occupies on the device (16-bit packed, 4-byte multiple). */
export function storageBytes(dtype: DType, length: number): number {
  return Math.max(4, Math.ceil((length * DTYPE_BYTES[dtype]) / 4) * 4);
}

/** A device buffer of the WebGPU backend. */
export class WebGpuBuffer implements DeviceBuffer {
  readonly backend = "webgpu";
  freed = false;
  constructor(
    readonly owner: WebGpuBackend,
    readonly dtype: DType,
    readonly length: number,
    readonly gpu: GPUBuffer,
  ) {}
}

const HOST_ARRAY_NAME: Record<DType, string> = { f32: "Float32Array", i32: "Int32Array", bf16: "Uint16Array", f16: "Uint16Array" };

/** Options of a {@link WebGpuBackend}. */
export interface WebGpuBackendOptions {
  /**
   * Pretend storage bindings may span at most this many bytes (below the device's
   * maxStorageBufferBindingSize), so the chunked kernel paths run on small tensors; for tests.
   */
  maxStorageBindingBytes?: number;
}

/** See the file comment. */
export class WebGpuBackend implements TensorBackend, Launcher {
  readonly name = "webgpu";
  readonly capabilities: BackendCapabilities = {};
  readonly runtime: GpuRuntime;
  private readonly pool: BufferPool;
  private readonly checks: BackendChecks<WebGpuBuffer> = new BackendChecks<WebGpuBuffer>("WebGpuBackend", "webgpu", this, (b): b is WebGpuBuffer => b instanceof WebGpuBuffer);
  /** Storage-binding limits the kernels split their work by. */
  readonly limits: BindingLimits;

  /** Use {@link createWebGpuBackend}; `adapterInfo` names the GPU (or lavapipe). */
  constructor(
    readonly device: GPUDevice,
    readonly adapterInfo = "",
    options: WebGpuBackendOptions = {},
  ) {
    this.runtime = new GpuRuntime(device);
    this.pool = new BufferPool(device, undefined, device.limits.maxBufferSize);
    const alignBytes = device.limits.minStorageBufferOffsetAlignment;
    let maxBytes = device.limits.maxStorageBufferBindingSize;
    const asked = options.maxStorageBindingBytes;
    if (asked !== undefined) {
      const least = 4 * Math.max(alignBytes, 16);
      if (!Number.isInteger(asked) || asked < least || asked % 4 !== 0) {
        throw new EcomlaError(`WebGpuBackend: maxStorageBindingBytes must be a multiple of 4 and ≥ ${least} (4 × the offset alignment), found ${asked}`);
      }
      maxBytes = Math.min(maxBytes, asked);
    }
    this.limits = { maxBytes, alignBytes };
  }

  // ---- Launcher -------------------------------------------------------------------------------------

  launch(key: string, source: () => string, args: readonly Arg[], params: ArrayBuffer | null, groups: readonly [number, number?, number?]): void {
    // WebGPU forbids binding one buffer both writable and anywhere else in a dispatch, so a read
    // argument aliasing a written one (in-place unary, grad aliasing logits) reads a copy of its window.
    const written = new Set(args.filter((a) => a.write).map((a) => a.buffer));
    const copies: GPUBuffer[] = [];
    const bound = args.map((a): Arg => {
      if (a.write || !written.has(a.buffer)) return a;
      const offset = a.offset ?? 0;
      const size = a.size ?? a.buffer.size - offset;
      const copy = this.scratch(size);
      this.runtime.copy(a.buffer, offset, copy, 0, size);
      copies.push(copy);
      return { buffer: copy, offset: 0, size };
    });
    this.runtime.dispatch(this.runtime.pipeline(key, source), bound, params, groups);
    for (const copy of copies) this.release(copy);
  }

  scratch(bytes: number): GPUBuffer {
    return this.pool.acquire(Math.max(4, bytes));
  }

  release(buffer: GPUBuffer): void {
    this.pool.release(buffer);
  }

  // ---- validation -------------------------------------------------------------------------------------

  /** The GPU buffer behind an f32 (or `dtype`) argument. */
  private g(kernel: string, arg: string, buf: DeviceBuffer, dtype: DType = "f32"): GPUBuffer {
    const b = this.checks.own(kernel, arg, buf);
    this.checks.dtype(kernel, arg, b, dtype);
    return b.gpu;
  }

  // ---- memory -------------------------------------------------------------------------------------

  alloc(dtype: DType, length: number): DeviceBuffer {
    if (!(dtype in DTYPE_BYTES)) throw new ShapeError(`WebGpuBackend.alloc: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Number.isInteger(length) || length < 0) throw new ShapeError(`WebGpuBackend.alloc: length must be an integer ≥ 0, found ${length}`);
    const bytes = storageBytes(dtype, length);
    if (bytes > this.device.limits.maxBufferSize) {
      throw new ShapeError(`WebGpuBackend.alloc: ${length} ${dtype} elements take ${bytes} bytes, more than the device's maxBufferSize of ${this.device.limits.maxBufferSize} bytes`);
    }
    const buf = new WebGpuBuffer(this, dtype, length, this.pool.acquire(storageBytes(dtype, length)));
    this.checks.allocated(length * DTYPE_BYTES[dtype]);
    return buf;
  }

  free(buf: DeviceBuffer): void {
    if (buf instanceof WebGpuBuffer && buf.owner === this && buf.freed) {
      throw new EcomlaError(`WebGpuBackend.free: buffer (${buf.dtype}, length ${buf.length}) was already freed (freeing twice)`);
    }
    const b = this.checks.own("free", "buf", buf);
    b.freed = true;
    this.pool.release(b.gpu);
    this.checks.released(b.length * DTYPE_BYTES[b.dtype]);
  }

  upload(buf: DeviceBuffer, data: HostArray, offset = 0): void {
    const b = this.checks.own("upload", "buf", buf);
    const found = data.constructor.name;
    if (found !== HOST_ARRAY_NAME[b.dtype]) throw new ShapeError(`WebGpuBackend.upload: a ${b.dtype} buffer takes a ${HOST_ARRAY_NAME[b.dtype]}, found ${found}`);
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > b.length) {
      throw new ShapeError(`WebGpuBackend.upload: elements [${offset}, ${offset + data.length}) do not fit a buffer of length ${b.length}`);
    }
    if (data.length === 0) return;
    const elementBytes = DTYPE_BYTES[b.dtype];
    if (elementBytes === 4 || (offset % 2 === 0 && data.length % 2 === 0)) {
      this.runtime.write(b.gpu, offset * elementBytes, data);
      return;
    }
    // A 16-bit upload that starts or ends mid-word: stage it, then copy it in by halves.
    const padded = new Uint16Array(data.length + (data.length % 2));
    padded.set(data);
    const staging = this.scratch(padded.byteLength);
    this.runtime.write(staging, 0, padded);
    layout.copyStrided(this, b.dtype, staging, 0, [1], b.gpu, offset, [1], [data.length], false);
    this.release(staging);
  }

  async download<D extends DType>(buf: DeviceBuffer & { dtype: D }, offset = 0, length?: number): Promise<HostArrayOf<D>> {
    const b = this.checks.own("download", "buf", buf);
    const count = length ?? b.length - offset;
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(count) || count < 0 || offset + count > b.length) {
      throw new ShapeError(`WebGpuBackend.download: elements [${offset}, ${offset + count}) are outside a buffer of length ${b.length}`);
    }
    const elementBytes = DTYPE_BYTES[b.dtype];
    const startByte = Math.floor((offset * elementBytes) / 4) * 4;
    const endByte = Math.ceil(((offset + count) * elementBytes) / 4) * 4;
    const bytes = count === 0 ? new ArrayBuffer(0) : await this.runtime.read(b.gpu, startByte, endByte - startByte);
    const skip = (offset * elementBytes - startByte) / elementBytes;
    const out = b.dtype === "f32" ? new Float32Array(bytes, 0) : b.dtype === "i32" ? new Int32Array(bytes, 0) : new Uint16Array(bytes, 0);
    return out.slice(skip, skip + count) as HostArrayOf<D>;
  }

  async sync(): Promise<void> {
    await this.runtime.sync();
  }

  memoryStats(): BackendMemoryStats {
    return this.checks.snapshot();
  }

  /** Pool occupancy (capacity held, idle buffers), beside the exact live accounting of memoryStats. */
  poolStats(): PoolStats {
    return this.pool.snapshot();
  }

  /** Device traffic counters (submits, maps, dispatches, compiled pipelines). */
  counters(): RuntimeCounters {
    return { ...this.runtime.counters };
  }

  /** Submit pending work and destroy the pool's idle buffers. */
  async trim(): Promise<void> {
    await this.runtime.sync();
    this.pool.trim();
  }

  /** Release the device. The backend is unusable afterwards. */
  destroy(): void {
    this.runtime.flush();
    this.pool.trim();
    this.device.destroy();
  }

  // ---- layout -------------------------------------------------------------------------------------

  fill(out: DeviceBuffer, value: number, n: number, offset = 0): void {
    const b = this.checks.own("fill", "out", out);
    if (offset + n > b.length) throw new ShapeError(`WebGpuBackend.fill: elements [${offset}, ${offset + n}) do not fit a buffer of length ${b.length}`);
    let bits: number;
    if (b.dtype === "f32") bits = new Uint32Array(Float32Array.of(value).buffer)[0]!;
    else if (b.dtype === "i32") bits = value | 0;
    else bits = b.dtype === "bf16" ? f32ToBf16Bits(value) : f32ToF16Bits(value);
    layout.fill(this, b.dtype, b.gpu, bits, n, offset);
  }

  copyStrided(args: CopyStridedArgs): void {
    const { src, dst } = this.checks.copyStrided(args);
    layout.copyStrided(this, dst.dtype, src.gpu, args.srcOffset ?? 0, args.srcStrides, dst.gpu, args.dstOffset ?? 0, args.dstStrides, args.shape, args.accumulate ?? false);
  }

  cast(src: DeviceBuffer, dst: DeviceBuffer, n: number): void {
    const s = this.checks.own("cast", "src", src);
    const d = this.checks.own("cast", "dst", dst);
    if (s.dtype === d.dtype) {
      layout.copyStrided(this, d.dtype, s.gpu, 0, [1], d.gpu, 0, [1], [n], false);
      return;
    }
    layout.cast(this, s.dtype, s.gpu, d.dtype, d.gpu, n);
  }

  // ---- linear algebra -----------------------------------------------------------------------------

  gemm(args: GemmArgs): void {
    gemm(this, { ...args, a: this.g("gemm", "a", args.a), b: this.g("gemm", "b", args.b), c: this.g("gemm", "c", args.c) });
  }

  // ---- elementwise and reductions -----------------------------------------------------------------

  binary(op: BinaryOp, a: DeviceBuffer, aShape: readonly number[], b: DeviceBuffer, bShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    const k = `binary(${op})`;
    elementwise.binary(this, op, this.g(k, "a", a), aShape, this.g(k, "b", b), bShape, this.g(k, "out", out), outShape);
  }

  unary(op: UnaryOp, x: DeviceBuffer, out: DeviceBuffer, n: number, alpha?: number): void {
    const k = `unary(${op})`;
    elementwise.unary(this, op, this.g(k, "x", x), this.g(k, "out", out), n, alpha ?? 0);
  }

  unaryBackward(op: UnaryOp, x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, n: number, alpha?: number): void {
    const k = `unaryBackward(${op})`;
    this.g(k, "y", y);
    elementwise.unaryBackward(this, op, this.g(k, "x", x), this.g(k, "dy", dy), this.g(k, "dx", dx), n, alpha ?? 0);
  }

  reduceLastAxis(op: ReduceOp, x: DeviceBuffer, out: DeviceBuffer, rowCount: number, cols: number): void {
    const k = `reduceLastAxis(${op})`;
    rows.reduceLastAxis(this, op, this.g(k, "x", x), this.g(k, "out", out), rowCount, cols);
  }

  sumToShape(x: DeviceBuffer, xShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    rows.sumToShape(this, this.g("sumToShape", "x", x), xShape, this.g("sumToShape", "out", out), outShape);
  }

  // ---- fused neural-network kernels ---------------------------------------------------------------

  softmax(x: DeviceBuffer, out: DeviceBuffer, rowCount: number, cols: number): void {
    rows.softmax(this, this.g("softmax", "x", x), this.g("softmax", "out", out), rowCount, cols);
  }

  softmaxBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, rowCount: number, cols: number): void {
    const k = "softmaxBackward";
    rows.softmaxBackward(this, this.g(k, "y", y), this.g(k, "dy", dy), this.g(k, "dx", dx), rowCount, cols);
  }

  rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, out: DeviceBuffer, rstd: DeviceBuffer, rowCount: number, cols: number, eps: number): void {
    const k = "rmsNorm";
    rows.rmsNorm(this, this.g(k, "x", x), this.g(k, "weight", weight), this.g(k, "out", out), this.g(k, "rstd", rstd), rowCount, cols, eps);
  }

  rmsNormBackward(x: DeviceBuffer, weight: DeviceBuffer, rstd: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, dWeight: DeviceBuffer, rowCount: number, cols: number): void {
    const k = "rmsNormBackward";
    rows.rmsNormBackward(this, this.g(k, "x", x), this.g(k, "weight", weight), this.g(k, "rstd", rstd), this.g(k, "dy", dy), this.g(k, "dx", dx), this.g(k, "dWeight", dWeight), rowCount, cols);
  }

  rope(args: RopeArgs): void {
    if (args.headDim % 2 !== 0) throw new ShapeError(`WebGpuBackend.rope: headDim must be even, found ${args.headDim}`);
    const positions = args.positions === undefined ? null : this.g("rope", "positions", args.positions, "i32");
    const cos = this.checks.own("rope", "cos", args.cos);
    rope(this, { ...args, x: this.g("rope", "x", args.x), out: this.g("rope", "out", args.out), cos: this.g("rope", "cos", args.cos), sin: this.g("rope", "sin", args.sin), positions, tableLength: cos.length });
  }

  private views(kernel: string, args: AttentionForwardArgs | AttentionBackwardArgs): attention.Views {
    if (args.numHeads % args.numKvHeads !== 0) throw new ShapeError(`WebGpuBackend.${kernel}: numKvHeads (${args.numKvHeads}) must divide numHeads (${args.numHeads})`);
    if (args.causal && args.keyLen < args.queryLen) throw new ShapeError(`WebGpuBackend.${kernel}: causal attention needs keyLen ≥ queryLen, found keyLen ${args.keyLen} < queryLen ${args.queryLen}`);
    return { q: this.g(kernel, "q", args.q.buf), k: this.g(kernel, "k", args.k.buf), v: this.g(kernel, "v", args.v.buf) };
  }

  attention(args: AttentionForwardArgs): void {
    const views = this.views("attention", args);
    const lse = args.lse === undefined ? null : this.g("attention", "lse", args.lse);
    attention.forward(this, args, views, this.g("attention", "out", args.out), lse);
  }

  attentionBackward(args: AttentionBackwardArgs): void {
    const k = "attentionBackward";
    const views = this.views(k, args);
    attention.backward(this, args, views, {
      out: this.g(k, "out", args.out),
      lse: this.g(k, "lse", args.lse),
      dOut: this.g(k, "dOut", args.dOut),
      dq: this.g(k, "dq", args.dq),
      dk: this.g(k, "dk", args.dk),
      dv: this.g(k, "dv", args.dv),
    });
  }

  swiglu(gate: DeviceBuffer, up: DeviceBuffer, out: DeviceBuffer, n: number): void {
    elementwise.swiglu(this, this.g("swiglu", "gate", gate), this.g("swiglu", "up", up), this.g("swiglu", "out", out), n);
  }

  swigluBackward(gate: DeviceBuffer, up: DeviceBuffer, dOut: DeviceBuffer, dGate: DeviceBuffer, dUp: DeviceBuffer, n: number): void {
    const k = "swigluBackward";
    elementwise.swigluBackward(this, this.g(k, "gate", gate), this.g(k, "up", up), this.g(k, "dOut", dOut), this.g(k, "dGate", dGate), this.g(k, "dUp", dUp), n);
  }

  embedding(ids: DeviceBuffer, table: DeviceBuffer, out: DeviceBuffer, n: number, vocab: number, dim: number): void {
    layout.embedding(this, this.g("embedding", "ids", ids, "i32"), this.g("embedding", "table", table), this.g("embedding", "out", out), n, vocab, dim);
  }

  embeddingBackward(ids: DeviceBuffer, dOut: DeviceBuffer, dTable: DeviceBuffer, n: number, vocab: number, dim: number): void {
    const k = "embeddingBackward";
    layout.embeddingBackward(this, this.g(k, "ids", ids, "i32"), this.g(k, "dOut", dOut), this.g(k, "dTable", dTable), n, vocab, dim);
  }

  crossEntropy(args: CrossEntropyArgs): void {
    const k = "crossEntropy";
    loss.crossEntropy(this, {
      rows: args.rows,
      vocab: args.vocab,
      temperature: args.temperature ?? 1,
      logits: this.g(k, "logits", args.logits),
      loss: this.g(k, "loss", args.loss),
      grad: args.grad === undefined ? null : this.g(k, "grad", args.grad),
      weights: args.weights === undefined ? null : this.g(k, "weights", args.weights),
      labels: this.g(k, "labels", args.labels, "i32"),
    });
  }

  klDiv(args: KlDivArgs): void {
    const k = "klDiv";
    const dense = args.teacherLogits !== undefined;
    if (dense === (args.teacherIndices !== undefined || args.teacherLogprobs !== undefined)) {
      throw new ShapeError(`WebGpuBackend.klDiv: give exactly one of teacherLogits or (teacherIndices, teacherLogprobs), found ${dense ? "both" : "neither"}`);
    }
    if (!dense && (args.teacherIndices === undefined || args.teacherLogprobs === undefined || args.topK === undefined)) {
      throw new ShapeError(`WebGpuBackend.klDiv: the top-k form needs teacherIndices, teacherLogprobs and topK`);
    }
    loss.klDiv(this, {
      rows: args.rows,
      vocab: args.vocab,
      temperature: args.temperature ?? 1,
      logits: this.g(k, "logits", args.logits),
      loss: this.g(k, "loss", args.loss),
      grad: args.grad === undefined ? null : this.g(k, "grad", args.grad),
      weights: args.weights === undefined ? null : this.g(k, "weights", args.weights),
      teacher: dense
        ? { kind: "dense", logits: this.g(k, "teacherLogits", args.teacherLogits!) }
        : { kind: "topK", topK: args.topK!, indices: this.g(k, "teacherIndices", args.teacherIndices!, "i32"), logprobs: this.g(k, "teacherLogprobs", args.teacherLogprobs!) },
    });
  }

  adamw(args: AdamWArgs): void {
    const k = "adamw";
    elementwise.adamw(this, this.g(k, "param", args.param), this.g(k, "grad", args.grad), this.g(k, "m", args.m), this.g(k, "v", args.v), {
      n: args.n,
      lr: args.lr,
      beta1: args.beta1,
      beta2: args.beta2,
      eps: args.eps,
      weightDecay: args.weightDecay,
      biasCorrection1: args.biasCorrection1,
      biasCorrection2: args.biasCorrection2,
      gradScale: args.gradScale ?? 1,
    });
  }
}
