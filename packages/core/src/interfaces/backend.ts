/**
 * The TensorBackend contract: device-resident buffers, a few required primitives, optional fused kernels.
 *
 * Designed for GPUs from day one:
 * - data lives on the device in opaque {@link DeviceBuffer}s; the host never indexes them;
 * - kernels take their output buffers and may run asynchronously (enqueue); ordering between
 *   kernels issued on one backend is program order;
 * - the only way back to the host is the explicit, async {@link TensorBackend.download}.
 *
 * The contract has two parts: {@link BackendPrimitives} (required, ~15 methods) and
 * {@link FusedKernels} (optional; core composes the missing ones, see `completeBackend`).
 *
 * Layout conventions: every buffer is a flat array of elements of one dtype; shapes are row-major
 * and given in elements. Offsets and strides are in elements, never bytes. Compute kernels read
 * and write `f32` (indices are `i32`); `bf16`/`f16` are storage formats reached through
 * {@link TensorBackend.cast}.
 */
import { DTYPES, type BinaryOp, type FusedKernelName, type ReduceOp, type UnaryOp } from "./ops.js";

export * from "./ops.js";

/** Element types a buffer may hold. `bf16`/`f16` are storage-only; compute is f32. */
export type DType = (typeof DTYPES)[number]["name"];

/** Bytes per element for each dtype. */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = Object.fromEntries(DTYPES.map((d) => [d.name, d.bytes])) as Record<DType, number>;

/** The host array type that carries each dtype on upload/download (bf16/f16 travel as raw bits). */
export type HostArrayOf<D extends DType> = D extends "f32"
  ? Float32Array
  : D extends "i32"
    ? Int32Array
    : Uint16Array;

/** Any host array accepted by {@link TensorBackend.upload}. */
export type HostArray = Float32Array | Int32Array | Uint16Array;

/**
 * An opaque handle to device memory owned by one backend. Only the owning backend may read it;
 * the fields are for bookkeeping and validation.
 */
export interface DeviceBuffer {
  /** Name of the backend that owns this buffer. */
  readonly backend: string;
  /** Element type. */
  readonly dtype: DType;
  /** Capacity in elements. */
  readonly length: number;
}

/** Counters every backend keeps so tests can assert that memory stays flat. */
export interface BackendMemoryStats {
  /** Buffers allocated and not yet freed. */
  liveBuffers: number;
  /** Bytes held by live buffers. */
  liveBytes: number;
  /** Highest liveBytes seen since the backend was created. */
  peakBytes: number;
  /** Total alloc() calls since creation. */
  allocCount: number;
  /**
   * Calls of each fused kernel that ran as a composition of primitives because the backend does
   * not implement it (filled in by {@link completeBackend}'s wrapper; absent on a bare backend).
   */
  composedCalls?: Partial<Record<FusedKernelName, number>>;
}

/** A (possibly strided) view of a rank-4 activation laid out as [batch, token, head, dim]. */
export interface AttentionView {
  /** The buffer holding the data. */
  buf: DeviceBuffer;
  /** First element of the view. Default 0. */
  offset?: number;
  /**
   * Element strides of [batch, token, head]; the dim axis is always contiguous.
   * Default: contiguous [tokens·heads·dim, heads·dim, dim].
   */
  strides?: readonly [number, number, number];
}

/** Arguments of {@link BackendPrimitives.copyStrided}: a strided N-d copy (rank ≤ 6), offsets and strides in elements. */
export interface CopyStridedArgs {
  src: DeviceBuffer;
  srcOffset?: number;
  srcStrides: readonly number[];
  dst: DeviceBuffer;
  dstOffset?: number;
  dstStrides: readonly number[];
  shape: readonly number[];
  /** Add into dst instead of storing. */
  accumulate?: boolean;
}

/** Batched, strided, row-major GEMM: C[i] = alpha · op(A[i]) · op(B[i]) + beta · C[i]. */
export interface GemmArgs {
  /** Number of matrices in the batch (≥ 1). */
  batch: number;
  /** Rows of op(A) and C. */
  m: number;
  /** Columns of op(B) and C. */
  n: number;
  /** Columns of op(A) = rows of op(B). */
  k: number;
  /** op(A) = Aᵀ when true: A is stored [k, m]; else [m, k]. */
  transA: boolean;
  /** op(B) = Bᵀ when true: B is stored [n, k]; else [k, n]. */
  transB: boolean;
  /** Scale of the product. */
  alpha: number;
  /** Scale of C's previous content (0 ignores it, even if it holds NaN). */
  beta: number;
  a: DeviceBuffer;
  /** Offset of A[0]; leading dimension (row stride) of A as stored; element distance between A[i] and A[i+1] (0 broadcasts). */
  aOffset?: number;
  lda: number;
  strideA: number;
  b: DeviceBuffer;
  bOffset?: number;
  ldb: number;
  strideB: number;
  c: DeviceBuffer;
  cOffset?: number;
  ldc: number;
  strideC: number;
}

/** Causal (or full) multi-head attention with GQA. Shapes in the comments use
 * B batch, T queries, S keys, Hq query heads, Hkv key/value heads (Hkv divides Hq),
 * Dqk the q·k head dim, Dv the value head dim. */
export interface AttentionArgs {
  batch: number;
  /** Queries per sequence (T). */
  queryLen: number;
  /** Keys per sequence (S ≥ T when causal). */
  keyLen: number;
  /** Hq */
  numHeads: number;
  /** Hkv; query head h reads key/value head floor(h / (Hq/Hkv)). */
  numKvHeads: number;
  /** Dqk */
  qkDim: number;
  /** Dv */
  vDim: number;
  /** Multiplier of q·k before softmax (usually Dqk^-1/2). */
  scale: number;
  /** When true, query t sees keys s ≤ t + (S − T) (the queries are the last T positions). */
  causal: boolean;
  /** (B, T, Hq, Dqk) */
  q: AttentionView;
  /** (B, S, Hkv, Dqk) */
  k: AttentionView;
  /** (B, S, Hkv, Dv) */
  v: AttentionView;
}

/** Forward attention outputs. */
export interface AttentionForwardArgs extends AttentionArgs {
  /** (B, T, Hq, Dv) contiguous, written. */
  out: DeviceBuffer;
  /** (B, Hq, T) log-sum-exp of the scaled scores per query row, written (saved for backward). Optional at inference. */
  lse?: DeviceBuffer;
}

/** Backward attention: given dOut, writes dq/dk/dv (overwritten, contiguous). */
export interface AttentionBackwardArgs extends AttentionArgs {
  /** (B, T, Hq, Dv) contiguous: the forward output. */
  out: DeviceBuffer;
  /** (B, Hq, T) from the forward. */
  lse: DeviceBuffer;
  /** (B, T, Hq, Dv) contiguous: gradient of the output. */
  dOut: DeviceBuffer;
  /** (B, T, Hq, Dqk) contiguous, written. */
  dq: DeviceBuffer;
  /** (B, S, Hkv, Dqk) contiguous, written. */
  dk: DeviceBuffer;
  /** (B, S, Hkv, Dv) contiguous, written. */
  dv: DeviceBuffer;
}

/**
 * Rotary position embedding on x (B, T, H, D), D even, contiguous.
 * Pair i (i < D/2) is (x[i], x[i + D/2]) in the `half` (rotate-half, HF Llama) layout and
 * (x[2i], x[2i+1]) in the `interleaved` layout; angle = position · invFreq[i], read from the tables
 * cos/sin (P, D/2) at row position = posOffset + t (or positions[b·T + t] when given).
 * y_a = x_a·c − x_b·s, y_b = x_b·c + x_a·s with c = scale·cos, s = scale·sin.
 * `inverse` rotates by −angle and is the backward of the forward (dx = rope(dy, inverse)).
 */
export interface RopeArgs {
  /** (B, T, H, D) */
  x: DeviceBuffer;
  /** (B, T, H, D), may alias x. */
  out: DeviceBuffer;
  batch: number;
  seqLen: number;
  numHeads: number;
  headDim: number;
  layout: "half" | "interleaved";
  /** (P, D/2) */
  cos: DeviceBuffer;
  /** (P, D/2) */
  sin: DeviceBuffer;
  /** Position of token 0 when `positions` is absent. Default 0. */
  posOffset?: number;
  /** (B, T) i32 explicit positions. */
  positions?: DeviceBuffer;
  /** Multiplier applied to cos and sin (e.g. YaRN's mscale). Default 1. */
  scale?: number;
  /** Rotate by −angle (the backward pass). Default false. */
  inverse?: boolean;
}

/**
 * Fused log-softmax + loss over rows of logits, with gradient. Per row r (of N), z = logits[r]/τ:
 * - cross-entropy: loss[r] = −log softmax(z)[label[r]] (rows whose label < 0 give 0 loss, 0 grad);
 * - KL (dense teacher): p = softmax(teacher[r]/τ), loss[r] = Σ_j p_j (log p_j − log softmax(z)_j);
 * - KL (top-k teacher): p_j = exp(teacherLogprobs[r, k]) at j = teacherIndices[r, k] only, unnormalised:
 *   loss[r] = Σ_k p_k (teacherLogprobs[r,k] − log softmax(z)_{j_k}).
 * Each row's loss and gradient is multiplied by weights[r] when given (e.g. a mask / normaliser).
 * grad[r] = weights[r] · d loss[r] / d logits[r] (includes the 1/τ of the chain rule).
 */
export interface LossArgs {
  /** (N, V) student logits. */
  logits: DeviceBuffer;
  rows: number;
  vocab: number;
  /** Temperature τ > 0. Default 1. */
  temperature?: number;
  /** (N) per-row multiplier. */
  weights?: DeviceBuffer;
  /** (N) per-row loss, written. */
  loss: DeviceBuffer;
  /** (N, V) gradient w.r.t. logits, written when given. May alias logits. */
  grad?: DeviceBuffer;
}

/** Cross-entropy against integer labels. */
export interface CrossEntropyArgs extends LossArgs {
  /** (N) i32 labels; negative = ignored row. */
  labels: DeviceBuffer;
}

/** Forward KL(teacher ‖ student); exactly one of `teacherLogits` or (`teacherIndices`, `teacherLogprobs`). */
export interface KlDivArgs extends LossArgs {
  /** (N, V) dense teacher logits. */
  teacherLogits?: DeviceBuffer;
  /** (N, K) i32 top-k token ids. */
  teacherIndices?: DeviceBuffer;
  /** (N, K) f32 teacher log-probabilities at those ids. */
  teacherLogprobs?: DeviceBuffer;
  /** K, with the top-k form. */
  topK?: number;
}

/**
 * One AdamW step over n elements (decoupled weight decay, PyTorch semantics):
 * g = grad·gradScale; m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²;
 * p = p − lr·wd·p − lr · (m / bc1) / (sqrt(v / bc2) + eps), with bc1 = 1−β1^t, bc2 = 1−β2^t.
 */
export interface AdamWArgs {
  /** (n) */
  param: DeviceBuffer;
  /** (n) */
  grad: DeviceBuffer;
  /** (n) first moment */
  m: DeviceBuffer;
  /** (n) second moment */
  v: DeviceBuffer;
  n: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1 − β1^step */
  biasCorrection1: number;
  /** 1 − β2^step */
  biasCorrection2: number;
  /** Multiplier on the gradient (e.g. global-norm clipping). Default 1. */
  gradScale?: number;
}

/** Result of a thin SVD A = U · diag(S) · Vᵀ of an m×n row-major matrix, k = min(m, n). */
export interface SvdResult {
  /** (m, k) row-major */
  u: Float64Array;
  /** (k) descending, ≥ 0 */
  s: Float64Array;
  /** (k, n) row-major */
  vt: Float64Array;
}

/** Optional capabilities a backend may offer; callers probe before use. */
export interface BackendCapabilities {
  /** Thin SVD on host data (LAPACK on CPU; a Jacobi fallback in the reference backend). */
  svd?: (a: Float64Array | Float32Array, m: number, n: number) => Promise<SvdResult>;
  /** Baselines for `ecomla bench`: `gemmMs` times `repetitions` m×n×k sgemm calls made directly on the backend's own library; `pytorchScript` is the path of a script timing PyTorch eager on the bench shapes. */
  benchBaselines?: { gemmMs?(m: number, n: number, k: number, repetitions: number): number[]; pytorchScript?: string };
}

/**
 * The required part of a backend: allocation plus the primitive kernels every other kernel can be
 * composed from. This is the whole cost of a new backend; see {@link FusedKernels} for the rest.
 * Kernels validate nothing they need not (the Tensor layer checks shapes); they document shapes in
 * their parameter comments.
 */
export interface BackendPrimitives {
  /** Registry name, e.g. "reference", "cpu", "webgpu". */
  readonly name: string;
  /** Optional capabilities (probe: `backend.capabilities.svd !== undefined`). */
  readonly capabilities: BackendCapabilities;

  // ---- memory ---------------------------------------------------------------------------
  /** Allocate `length` elements of `dtype` (content unspecified). */
  alloc(dtype: DType, length: number): DeviceBuffer;
  /** Release a buffer; using it afterwards is an error. Freeing twice is an error. */
  free(buf: DeviceBuffer): void;
  /** Copy host data into buf starting at element `offset` (default 0). bf16/f16 take raw bits. */
  upload(buf: DeviceBuffer, data: HostArray, offset?: number): void;
  /** Read `length` elements (default all) from element `offset` back to the host, after all queued work. */
  download<D extends DType>(buf: DeviceBuffer & { dtype: D }, offset?: number, length?: number): Promise<HostArrayOf<D>>;
  /** Wait for all queued work. */
  sync(): Promise<void>;
  /** Allocation counters. */
  memoryStats(): BackendMemoryStats;

  // ---- layout -----------------------------------------------------------------------------
  /** out[offset .. offset+n) = value. (n) */
  fill(out: DeviceBuffer, value: number, n: number, offset?: number): void;
  /**
   * Strided N-d copy (rank ≤ 6): for every index i of `shape`,
   * dst[dstOffset + Σ i_d·dstStrides_d] (+)= src[srcOffset + Σ i_d·srcStrides_d].
   * Covers permute, slice, concat and broadcast (stride 0). `accumulate` adds instead of storing.
   * Same dtype on both sides (any dtype).
   */
  copyStrided(args: CopyStridedArgs): void;
  /** Convert n elements between dtypes (f32→bf16/f16 round to nearest even; i32↔f32 by value). */
  cast(src: DeviceBuffer, dst: DeviceBuffer, n: number): void;

  // ---- linear algebra ------------------------------------------------------------------------
  /** Batched strided GEMM, see {@link GemmArgs}. */
  gemm(args: GemmArgs): void;

  // ---- elementwise and reductions -----------------------------------------------------------------
  /**
   * out = a ⊙ b with numpy broadcasting: aShape and bShape are right-aligned against outShape,
   * each dimension equal to outShape's or 1. All contiguous f32. out may alias an input whose
   * shape equals outShape (in-place accumulation).
   */
  binary(op: BinaryOp, a: DeviceBuffer, aShape: readonly number[], b: DeviceBuffer, bShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void;
  /** out = f(x) elementwise over n elements (x, out: (n), may alias). */
  unary(op: UnaryOp, x: DeviceBuffer, out: DeviceBuffer, n: number, alpha?: number): void;
  /**
   * dx = dy · f'(x) for a unary op; `y` = f(x) is passed too (kernels may use either).
   * (n) each. Not defined for `abs` at 0 (gives 0) or `relu` at 0 (gives 0).
   */
  unaryBackward(op: UnaryOp, x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, n: number, alpha?: number): void;
  /** out[r] = reduce(x[r, :]). x (rows, cols), out (rows). */
  reduceLastAxis(op: ReduceOp, x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void;
  // ---- gather ------------------------------------------------------------------------------------
  /** out[i] = table[ids[i]]. ids (n) i32, table (vocab, dim), out (n, dim). Out-of-range ids are an error where detectable, else zeros. */
  embedding(ids: DeviceBuffer, table: DeviceBuffer, out: DeviceBuffer, n: number, vocab: number, dim: number): void;
}

/**
 * The optional fused kernels. A backend implements the ones it has (ggml's `supports_op` is the
 * model); {@link completeBackend} composes the rest from {@link BackendPrimitives}, and counts
 * how often each composition ran (`memoryStats().composedCalls`).
 */
export interface FusedKernels {
  /**
   * Sum x (xShape) down to outShape, which broadcasts to xShape (right-aligned, dims equal or 1).
   * The backward of a broadcast. out is overwritten.
   */
  sumToShape(x: DeviceBuffer, xShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void;

  // ---- fused neural-network kernels -----------------------------------------------------------------
  /** Row softmax. x, out (rows, cols); out may alias x. */
  softmax(x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void;
  /** dx = y ⊙ (dy − Σ(dy ⊙ y)). y, dy, dx (rows, cols). */
  softmaxBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, rows: number, cols: number): void;
  /**
   * RMSNorm: rstd[r] = 1/sqrt(mean(x[r]²) + eps); out[r] = x[r] · rstd[r] · weight.
   * x, out (rows, cols); weight (cols); rstd (rows) written.
   */
  rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, out: DeviceBuffer, rstd: DeviceBuffer, rows: number, cols: number, eps: number): void;
  /**
   * RMSNorm backward. x, dy, dx (rows, cols); weight, dWeight (cols); rstd (rows) from the forward.
   * dx is overwritten; dWeight is ACCUMULATED into (+=).
   */
  rmsNormBackward(x: DeviceBuffer, weight: DeviceBuffer, rstd: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, dWeight: DeviceBuffer, rows: number, cols: number): void;
  /** Rotary embedding, see {@link RopeArgs}. */
  rope(args: RopeArgs): void;
  /** Attention forward, see {@link AttentionForwardArgs}. */
  attention(args: AttentionForwardArgs): void;
  /** Attention backward, see {@link AttentionBackwardArgs}. */
  attentionBackward(args: AttentionBackwardArgs): void;
  /** out = silu(gate) ⊙ up. gate, up, out (n). */
  swiglu(gate: DeviceBuffer, up: DeviceBuffer, out: DeviceBuffer, n: number): void;
  /** dGate, dUp from dOut. gate, up, dOut, dGate, dUp (n); all overwritten. */
  swigluBackward(gate: DeviceBuffer, up: DeviceBuffer, dOut: DeviceBuffer, dGate: DeviceBuffer, dUp: DeviceBuffer, n: number): void;
  /** dTable[ids[i]] += dOut[i]. ids (n) i32, dOut (n, dim), dTable (vocab, dim) accumulated. */
  embeddingBackward(ids: DeviceBuffer, dOut: DeviceBuffer, dTable: DeviceBuffer, n: number, vocab: number, dim: number): void;
  /** Fused log-softmax + cross-entropy (+ gradient), see {@link CrossEntropyArgs}. */
  crossEntropy(args: CrossEntropyArgs): void;
  /** Fused log-softmax + KL(teacher ‖ student) (+ gradient), see {@link KlDivArgs}. */
  klDiv(args: KlDivArgs): void;
  /** One AdamW update in place, see {@link AdamWArgs}. */
  adamw(args: AdamWArgs): void;
}

/**
 * What a backend plugin implements: the primitives, plus any of the fused kernels. A backend whose
 * fused kernel handles only some shapes answers `supports(kernel, args)` (args as the kernel
 * receives them); false sends that call to the composition.
 */
export interface TensorBackend extends BackendPrimitives, Partial<FusedKernels> {
  /** Whether the native fused kernel handles this call (default: every call, when implemented). */
  supports?(kernel: FusedKernelName, args: readonly unknown[]): boolean;
}

/**
 * A backend with every kernel present: what {@link completeBackend} returns and what tensors
 * hold. Fused kernels the base lacks run as compositions of its primitives.
 */
export interface CompleteBackend extends BackendPrimitives, FusedKernels {
  /** The backend as its plugin made it. */
  readonly base: TensorBackend;
  /** Fused kernels the base implements itself. */
  readonly nativeKernels: readonly FusedKernelName[];
  /** Fused kernels the base lacks, so they always run as compositions (calls `supports` refuses do too). */
  readonly composedKernels: readonly FusedKernelName[];
}

/** What a backend plugin can say about itself without acquiring a device (for `ecomla plugins`). */
export interface BackendProbe {
  /** Whether `create()` can succeed here. */
  available: boolean;
  /** Why not (names what is missing: a compiler, a library, a device), when unavailable. */
  reason?: string;
  /** One line on what it would run on (e.g. the tfjs backend chosen, the GPU, the library found). */
  detail?: string;
}

/**
 * A backend whose device is acquired asynchronously on first use (a GPU adapter, a remote
 * service). Plugins register it instead of a ready backend so that loading the plugin costs
 * nothing; {@link PluginRegistry.backend} awaits `create()` once per container.
 */
export interface LazyBackend {
  readonly lazy: true;
  readonly name: string;
  /** The fused kernels the created backend implements, for listings that must not create it. */
  readonly nativeKernels?: readonly FusedKernelName[];
  /** Cheap availability check (no device acquired); `create()` should fail with the same reason. */
  probe?(): BackendProbe | Promise<BackendProbe>;
  create(): Promise<TensorBackend>;
}
