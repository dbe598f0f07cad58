// What every TensorBackend checks before touching memory, and its memory bookkeeping, written once:
// the reference backend and the plugin backends (cpu, webgpu) hold one `BackendChecks` each, so
// their errors read the same ("CpuBackend.gemm: argument 'a' …").
import { EcomlaError, ShapeError } from "../errors.js";
import type { AttentionArgs, BackendMemoryStats, CopyStridedArgs, DType, DeviceBuffer, GemmArgs } from "../interfaces/backend.js";

/** A backend's buffer as the checks see it: which backend instance made it, and whether it was freed. */
export interface OwnedBuffer extends DeviceBuffer {
  readonly owner: object;
  freed: boolean;
}

/** Half-open element range [lo, hi) a strided view touches; null when the view is empty. */
export function stridedSpan(offset: number, shape: readonly number[], strides: readonly number[]): [number, number] | null {
  let lo = offset;
  let hi = offset;
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 0) return null;
    const extent = (shape[d]! - 1) * strides[d]!;
    if (extent < 0) lo += extent;
    else hi += extent;
  }
  return [lo, hi + 1];
}

/** Checks of plain arguments (integers, shapes), with errors naming `label.kernel` (`CpuBackend.gemm`). */
export class ArgumentChecks {
  constructor(readonly label: string) {}

  /** Throws a ShapeError naming the kernel. */
  fail(kernel: string, message: string): never {
    throw new ShapeError(`${this.label}.${kernel}: ${message}`);
  }

  /** Every value an integer ≥ min. */
  ints(kernel: string, values: Record<string, number>, min = 0): void {
    for (const key in values) {
      const value = values[key]!;
      if (!Number.isInteger(value) || value < min) this.fail(kernel, `${key} must be an integer ≥ ${min}, found ${value}`);
    }
  }

  /** A shape: an array of at most `maxRank` integer dimensions ≥ 0. */
  shape(kernel: string, arg: string, shape: readonly number[], maxRank = Infinity): void {
    if (!Array.isArray(shape)) this.fail(kernel, `${arg} must be an array of dimensions, found ${typeof shape}`);
    if (shape.length > maxRank) this.fail(kernel, `${arg} has rank ${shape.length}, at most ${maxRank} supported: [${shape.join(", ")}]`);
    shape.forEach((d, i) => this.ints(kernel, { [`${arg}[${i}]`]: d }));
  }

  /** `shape` broadcasts to `target`: right-aligned, each dim equal or 1. */
  broadcast(kernel: string, arg: string, shape: readonly number[], targetArg: string, target: readonly number[]): void {
    const ok = shape.length <= target.length && shape.every((d, i) => d === 1 || d === target[target.length - shape.length + i]);
    if (!ok) this.fail(kernel, `${arg} [${shape.join(", ")}] does not broadcast to ${targetArg} [${target.join(", ")}]`);
  }
}

/** One of q/k/v of an attention call after the checks: the backend's buffer, its offset and [batch, token, head] strides. */
export interface AttentionBufferView<B> {
  buf: B;
  offset: number;
  strides: readonly number[];
}

/**
 * Argument checks and memory statistics of one backend instance. `label` names the backend class
 * in messages (`CpuBackend`), `name` is its registry name (`cpu`), `owner` the instance whose
 * buffers are accepted, `isBuffer` recognises its buffer class.
 */
export class BackendChecks<B extends OwnedBuffer> extends ArgumentChecks {
  readonly stats: BackendMemoryStats = { liveBuffers: 0, liveBytes: 0, peakBytes: 0, allocCount: 0 };

  constructor(
    label: string,
    readonly name: string,
    private readonly owner: object,
    private readonly isBuffer: (buf: unknown) => buf is B,
  ) {
    super(label);
  }

  /** `buf` as this backend's live buffer, or an error naming the argument (foreign, another instance's, freed). */
  own(kernel: string, arg: string, buf: DeviceBuffer): B {
    if (!this.isBuffer(buf)) {
      const from = (buf as Partial<DeviceBuffer> | null | undefined)?.backend;
      throw new EcomlaError(`${this.label}.${kernel}: argument '${arg}' is a buffer of backend '${String(from)}', expected one of '${this.name}'`);
    }
    if (buf.owner !== this.owner) throw new EcomlaError(`${this.label}.${kernel}: argument '${arg}' belongs to another ${this.label} instance`);
    if (buf.freed) throw new EcomlaError(`${this.label}.${kernel}: argument '${arg}' was already freed (use after free)`);
    return buf;
  }

  /** The elements [lo, hi) lie inside the buffer (null: nothing is touched). */
  span(kernel: string, arg: string, buf: B, span: [number, number] | null): void {
    if (span === null) return;
    const [lo, hi] = span;
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || hi > buf.length) {
      this.fail(kernel, `argument '${arg}' needs elements [${lo}, ${hi}) but has length ${buf.length}`);
    }
  }

  dtype(kernel: string, arg: string, buf: B, dtype: DType): void {
    if (buf.dtype !== dtype) this.fail(kernel, `argument '${arg}' has dtype ${buf.dtype}, expected ${dtype}`);
  }

  /**
   * copyStrided's checks: both buffers ours and of one dtype, rank ≤ maxRank, one stride per
   * dimension, integer strides and offsets, both views inside their buffers. Returns the buffers,
   * the offsets (defaults applied) and the source's element span (null: the copy is empty).
   */
  copyStrided(args: CopyStridedArgs, maxRank = 6): { src: B; dst: B; srcOffset: number; dstOffset: number; srcSpan: [number, number] | null } {
    const k = "copyStrided";
    const { shape, srcStrides, dstStrides } = args;
    const srcOffset = args.srcOffset ?? 0;
    const dstOffset = args.dstOffset ?? 0;
    const src = this.own(k, "src", args.src);
    const dst = this.own(k, "dst", args.dst);
    if (src.dtype !== dst.dtype) this.fail(k, `src has dtype ${src.dtype} but dst has dtype ${dst.dtype}; they must match`);
    this.shape(k, "shape", shape, maxRank);
    if (srcStrides.length !== shape.length || dstStrides.length !== shape.length) {
      this.fail(k, `shape [${shape.join(", ")}] needs ${shape.length} strides, found srcStrides [${srcStrides.join(", ")}], dstStrides [${dstStrides.join(", ")}]`);
    }
    for (const s of [...srcStrides, ...dstStrides, srcOffset, dstOffset]) {
      if (!Number.isInteger(s)) this.fail(k, `strides and offsets must be integers, found ${s}`);
    }
    const srcSpan = stridedSpan(srcOffset, shape, srcStrides);
    this.span(k, "src", src, srcSpan);
    this.span(k, "dst", dst, stridedSpan(dstOffset, shape, dstStrides));
    return { src, dst, srcOffset, dstOffset, srcSpan };
  }

  /**
   * GEMM's checks: sizes and strides integers, leading dimensions at least the stored widths, no
   * batch writing one C, a/b/c f32 buffers of ours holding every element they are read or written
   * at. Returns the buffers and the offsets (defaults applied).
   */
  gemm(args: GemmArgs): { a: B; b: B; c: B; aOffset: number; bOffset: number; cOffset: number } {
    const k = "gemm";
    const { batch, m, n, transA, transB } = args;
    this.ints(k, { batch }, 1);
    this.ints(k, { m, n, k: args.k });
    const aOffset = args.aOffset ?? 0;
    const bOffset = args.bOffset ?? 0;
    const cOffset = args.cOffset ?? 0;
    this.ints(k, { aOffset, bOffset, cOffset, lda: args.lda, ldb: args.ldb, ldc: args.ldc, strideA: args.strideA, strideB: args.strideB, strideC: args.strideC });
    const [aRows, aCols] = transA ? [args.k, m] : [m, args.k];
    const [bRows, bCols] = transB ? [n, args.k] : [args.k, n];
    if (aRows > 1 && args.lda < aCols) this.fail(k, `lda must be ≥ ${aCols} (columns of A as stored), found ${args.lda}`);
    if (bRows > 1 && args.ldb < bCols) this.fail(k, `ldb must be ≥ ${bCols} (columns of B as stored), found ${args.ldb}`);
    if (m > 1 && args.ldc < n) this.fail(k, `ldc must be ≥ ${n}, found ${args.ldc}`);
    if (batch > 1 && args.strideC === 0 && m * n > 0) this.fail(k, `strideC = 0 with batch ${batch} would write every batch to the same C`);
    const a = this.own(k, "a", args.a);
    const b = this.own(k, "b", args.b);
    const c = this.own(k, "c", args.c);
    for (const [name, buf] of [["a", a], ["b", b], ["c", c]] as const) this.dtype(k, name, buf, "f32");
    this.span(k, "a", a, stridedSpan(aOffset, [batch, aRows, aCols], [args.strideA, args.lda, 1]));
    this.span(k, "b", b, stridedSpan(bOffset, [batch, bRows, bCols], [args.strideB, args.ldb, 1]));
    this.span(k, "c", c, stridedSpan(cOffset, [batch, m, n], [args.strideC, args.ldc, 1]));
    return { a, b, c, aOffset, bOffset, cOffset };
  }

  /**
   * The attention kernels' shared checks: sizes, GQA divisibility, causal key count, a finite
   * scale, and q/k/v as f32 views of ours inside their buffers. Returns each view with its defaults
   * applied, the packed parameters [B, T, S, Hq, Hkv, Dqk, Dv, scale, causal, then offset and 3
   * strides of q, k, v] that native kernels take, the query rows B·T·Hq, and whether no query exists.
   */
  attention(kernel: string, args: AttentionArgs): {
    q: AttentionBufferView<B>;
    k: AttentionBufferView<B>;
    v: AttentionBufferView<B>;
    packed: Float64Array;
    rows: number;
    empty: boolean;
  } {
    const { batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim, scale, causal } = args;
    this.ints(kernel, { batch, queryLen, keyLen });
    this.ints(kernel, { numHeads, numKvHeads, qkDim, vDim }, 1);
    if (numHeads % numKvHeads !== 0) this.fail(kernel, `numKvHeads (${numKvHeads}) must divide numHeads (${numHeads})`);
    if (causal && keyLen < queryLen) this.fail(kernel, `causal attention needs keyLen ≥ queryLen, found keyLen ${keyLen} < queryLen ${queryLen}`);
    if (keyLen === 0 && queryLen > 0 && batch > 0) this.fail(kernel, `keyLen is 0: query rows would see no key`);
    if (!Number.isFinite(scale)) this.fail(kernel, `scale must be finite, found ${scale}`);
    const view = (name: string, v: AttentionArgs["q"], tokens: number, heads: number, dim: number): AttentionBufferView<B> => {
      const offset = v.offset ?? 0;
      const strides = v.strides ?? ([tokens * heads * dim, heads * dim, dim] as const);
      if (strides.length !== 3) this.fail(kernel, `${name}.strides must have 3 entries [batch, token, head], found ${strides.length}`);
      this.ints(kernel, { [`${name}.offset`]: offset });
      if (!strides.every((s) => Number.isInteger(s))) this.fail(kernel, `${name}.strides must be integers, found [${strides.join(", ")}]`);
      const buf = this.own(kernel, name, v.buf);
      this.dtype(kernel, name, buf, "f32");
      this.span(kernel, name, buf, stridedSpan(offset, [batch, tokens, heads, dim], [...strides, 1]));
      return { buf, offset, strides };
    };
    const q = view("q", args.q, queryLen, numHeads, qkDim);
    const k = view("k", args.k, keyLen, numKvHeads, qkDim);
    const v = view("v", args.v, keyLen, numKvHeads, vDim);
    const packed = new Float64Array([
      batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim, scale, causal ? 1 : 0,
      q.offset, ...q.strides, k.offset, ...k.strides, v.offset, ...v.strides,
    ]);
    return { q, k, v, packed, rows: batch * queryLen * numHeads, empty: batch * queryLen === 0 };
  }

  /** `buf` is live, ours, of `dtype`, and holds elements [offset, offset+count). */
  typed(kernel: string, arg: string, buf: DeviceBuffer, dtype: DType, count: number, offset = 0): B {
    const b = this.own(kernel, arg, buf);
    this.dtype(kernel, arg, b, dtype);
    this.span(kernel, arg, b, count > 0 ? [offset, offset + count] : null);
    return b;
  }

  /** Count an allocation of `bytes` (at the logical dtype size). */
  allocated(bytes: number): void {
    this.stats.liveBuffers++;
    this.stats.liveBytes += bytes;
    this.stats.allocCount++;
    if (this.stats.liveBytes > this.stats.peakBytes) this.stats.peakBytes = this.stats.liveBytes;
  }

  /** Count a free of `bytes`. */
  released(bytes: number): void {
    this.stats.liveBuffers--;
    this.stats.liveBytes -= bytes;
  }

  snapshot(): BackendMemoryStats {
    return { ...this.stats };
  }

  /** Restart peakBytes from the current liveBytes. */
  resetPeak(): void {
    this.stats.peakBytes = this.stats.liveBytes;
  }
}
