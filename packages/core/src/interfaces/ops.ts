/**
 * The one list of ops. Every other list is derived from this file: the TypeScript unions below,
 * the conformance cases, the WebGPU shader tables (typed `Record<UnaryOp, …>`, so a missing op is a
 * compile error), and the C header of the native backends (`scripts/gen-op-header.mjs` writes
 * plugins/backend-cpu/native/ops.generated.h from these ids; a test fails when it drifts).
 * Ids are part of the native ABI: append new ops with new ids, never renumber.
 */

/** One entry of an op table: its name in TypeScript, its stable id in native code, what it computes. */
export interface OpEntry {
  readonly name: string;
  readonly id: number;
  readonly doc: string;
}

/** Elementwise binary ops (numpy broadcasting). */
export const BINARY_OPS = [
  { name: "add", id: 0, doc: "a + b" },
  { name: "sub", id: 1, doc: "a − b" },
  { name: "mul", id: 2, doc: "a · b" },
  { name: "div", id: 3, doc: "a / b" },
  { name: "max", id: 4, doc: "max(a, b)" },
  { name: "min", id: 5, doc: "min(a, b)" },
  { name: "pow", id: 6, doc: "a ^ b" },
] as const satisfies readonly OpEntry[];

/**
 * Elementwise unary ops. `alpha` marks the ops that take the scalar parameter: `scale` α·x,
 * `addScalar` x+α, `powScalar` x^α; the others ignore it.
 */
export const UNARY_OPS = [
  { name: "neg", id: 0, alpha: false, doc: "−x" },
  { name: "exp", id: 1, alpha: false, doc: "eˣ" },
  { name: "log", id: 2, alpha: false, doc: "ln x" },
  { name: "sqrt", id: 3, alpha: false, doc: "√x" },
  { name: "rsqrt", id: 4, alpha: false, doc: "1/√x" },
  { name: "abs", id: 5, alpha: false, doc: "|x| (derivative 0 at 0)" },
  { name: "square", id: 6, alpha: false, doc: "x²" },
  { name: "reciprocal", id: 7, alpha: false, doc: "1/x" },
  { name: "relu", id: 8, alpha: false, doc: "max(x, 0) (derivative 0 at 0)" },
  { name: "sigmoid", id: 9, alpha: false, doc: "1/(1+e⁻ˣ)" },
  { name: "silu", id: 10, alpha: false, doc: "x·sigmoid(x)" },
  { name: "tanh", id: 11, alpha: false, doc: "tanh x" },
  { name: "gelu", id: 12, alpha: false, doc: "exact GELU, x·Φ(x)" },
  { name: "scale", id: 13, alpha: true, doc: "α·x" },
  { name: "addScalar", id: 14, alpha: true, doc: "x + α" },
  { name: "powScalar", id: 15, alpha: true, doc: "x^α" },
] as const satisfies readonly (OpEntry & { alpha: boolean })[];

/** Reductions over the last axis. `sumsq` is the sum of squares (for gradient norms). */
export const REDUCE_OPS = [
  { name: "sum", id: 0, doc: "Σ x" },
  { name: "max", id: 1, doc: "max x" },
  { name: "mean", id: 2, doc: "Σ x / cols" },
  { name: "sumsq", id: 3, doc: "Σ x²" },
] as const satisfies readonly OpEntry[];

/** Element types with their native ids (the same ids the native backends use). */
export const DTYPES = [
  { name: "f32", id: 0, bytes: 4, doc: "IEEE float32; the compute type" },
  { name: "bf16", id: 1, bytes: 2, doc: "bfloat16, storage only" },
  { name: "f16", id: 2, bytes: 2, doc: "IEEE float16, storage only" },
  { name: "i32", id: 3, bytes: 4, doc: "int32 (ids, labels, positions)" },
] as const satisfies readonly (OpEntry & { bytes: number })[];

/** Elementwise binary operations (numpy broadcasting). */
export type BinaryOp = (typeof BINARY_OPS)[number]["name"];
/** Elementwise unary operations; see {@link UNARY_OPS} for which take `alpha`. */
export type UnaryOp = (typeof UNARY_OPS)[number]["name"];
/** Reductions over the last axis. */
export type ReduceOp = (typeof REDUCE_OPS)[number]["name"];

/** Names of a table, in id order. */
export function opNames<T extends readonly OpEntry[]>(table: T): T[number]["name"][] {
  return [...table].sort((a, b) => a.id - b.id).map((e) => e.name);
}

/** name → id of a table (for native calls). */
export function opIds<T extends readonly OpEntry[]>(table: T): Readonly<Record<T[number]["name"], number>> {
  return Object.fromEntries(table.map((e) => [e.name, e.id])) as Record<T[number]["name"], number>;
}

/** True for unary ops whose alpha parameter is required. */
export function unaryTakesAlpha(op: UnaryOp): boolean {
  return UNARY_OPS.find((e) => e.name === op)?.alpha ?? false;
}

/**
 * The required primitives of a backend (beyond `name` and `capabilities`): memory, fill, strided
 * copy, cast, GEMM, binary, unary (+ backward), last-axis reduce and the embedding gather.
 */
export const PRIMITIVE_METHODS = [
  "alloc", "free", "upload", "download", "sync", "memoryStats",
  "fill", "copyStrided", "cast", "gemm", "binary", "unary", "unaryBackward", "reduceLastAxis", "embedding",
] as const;

/**
 * The optional fused kernels. A backend claims one by implementing it (and, for shape-dependent
 * support, answering `supports(kernel, args)`); `completeBackend` composes every other one from
 * the primitives.
 */
export const FUSED_KERNELS = [
  "sumToShape", "softmax", "softmaxBackward", "rmsNorm", "rmsNormBackward", "rope",
  "attention", "attentionBackward", "swiglu", "swigluBackward", "embeddingBackward",
  "crossEntropy", "klDiv", "adamw",
] as const;

/** A required primitive's method name. */
export type PrimitiveMethod = (typeof PRIMITIVE_METHODS)[number];
/** An optional fused kernel's method name. */
export type FusedKernelName = (typeof FUSED_KERNELS)[number];
