// Host-side helpers of the converters: SVD through the backend's capability (LAPACK on CPU) with
// core's Jacobi SVD as the fallback, rank rules, and row-major matrix slicing in float64.
import { EcomlaError, jacobiSvd, type ConversionContext, type HostTensor, type SvdResult } from "@ecomla/core";

/**
 * Thin SVD of an m×n row-major matrix, via the backend when it offers one. Float32 input runs in
 * single precision, as the seed's `torch.linalg.svd(weight.float())`.
 */
export async function svd(a: Float32Array | Float64Array, m: number, n: number, context: ConversionContext): Promise<SvdResult> {
  return context.capabilities.svd ? context.capabilities.svd(a, m, n) : jacobiSvd(a, m, n);
}

/**
 * A matrix whose m rows are copies of k distinct rows, as the repeat-interleaved K/V stacks of a
 * GQA model: row i is `distinct` row `source[i]`.
 */
export interface RowStack {
  readonly distinct: Float32Array;
  readonly k: number;
  readonly source: Int32Array;
}

/** The stack written out row by row (m × n, float32). */
export function materialize(stack: RowStack, n: number): Float32Array {
  const out = new Float32Array(stack.source.length * n);
  stack.source.forEach((j, i) => out.set(stack.distinct.subarray(j * n, (j + 1) * n), i * n));
  return out;
}

/** Factors of a row stack: `columns` singular vectors in vt (columns × n), U's columns in u, all min(m, n) singular values in s. */
export interface StackSvd extends SvdResult {
  readonly columns: number;
}

/** The stack's singular values and Vᵀ, and its U expanded to the stack's rows only on request. */
interface StackFactors {
  readonly s: Float64Array;
  readonly vt: Float64Array;
  readonly columns: number;
  /** The first r columns of U (m × r). */
  u(r: number): Float64Array;
}

/** The SVD of the materialized stack (no shortcut). */
async function wholeFactors(stack: RowStack, n: number, context: ConversionContext): Promise<StackFactors> {
  const m = stack.source.length;
  const whole = await svd(materialize(stack, n), m, n, context);
  const columns = whole.s.length;
  return { s: whole.s, vt: whole.vt, columns, u: (r) => (r === columns ? whole.u : leftColumns(whole.u, m, columns, r)) };
}

/**
 * Thin SVD of a row stack, computed on its k distinct rows. With P the m × k row-picking matrix and
 * c_j the copies of row j, stack = P·D and P·C^(-1/2) has orthonormal columns, so an SVD
 * C^(1/2)·D = U'·S·Vᵀ gives stack = (P·C^(-1/2)·U')·S·Vᵀ exactly: the same S and V, and row i of U
 * is U'[source[i]] / √c. The SVD runs on k rows instead of m (GQA with 4 query heads per key head:
 * k = m/4). The stack has at most k non-zero singular values; s is padded with zeros to min(m, n).
 */
async function stackFactors(stack: RowStack, n: number, context: ConversionContext): Promise<StackFactors> {
  const m = stack.source.length;
  const copies = new Float64Array(stack.k);
  for (const j of stack.source) copies[j]! += 1;
  if (stack.k >= m || copies.some((c) => c === 0)) return wholeFactors(stack, n, context);
  const scaled = new Float32Array(stack.distinct.length);
  for (let j = 0; j < stack.k; j++) {
    const c = Math.sqrt(copies[j]!);
    for (let x = j * n; x < (j + 1) * n; x++) scaled[x] = stack.distinct[x]! * c;
  }
  const r0 = await svd(scaled, stack.k, n, context);
  const columns = r0.s.length;
  const s = new Float64Array(Math.min(m, n));
  s.set(r0.s);
  const u = (r: number) => {
    const out = new Float64Array(m * r);
    stack.source.forEach((j, i) => {
      const c = 1 / Math.sqrt(copies[j]!);
      for (let x = 0; x < r; x++) out[i * r + x] = r0.u[j * columns + x]! * c;
    });
    return out;
  };
  return { s, vt: r0.vt, columns, u };
}

/** Thin SVD of a row stack (see `stackFactors`): u is m × columns, vt columns × n, s all min(m, n) values. */
export async function stackSvd(stack: RowStack, n: number, context: ConversionContext): Promise<StackSvd> {
  const f = await stackFactors(stack, n, context);
  return { s: f.s, vt: f.vt, columns: f.columns, u: f.u(f.columns) };
}

/** The singular values of a row stack alone (no U is built). */
export async function stackSpectrum(stack: RowStack, n: number, context: ConversionContext): Promise<Float64Array> {
  return (await stackFactors(stack, n, context)).s;
}

/**
 * The rank-r factors of a row stack, r chosen from the singular values by `rankOf`: u holds exactly
 * the first r columns of U (m × r). When r asks for more singular vectors than the distinct rows
 * give (directions of zero singular value), the SVD is redone on the materialized stack, as the
 * seed does.
 */
export async function rankedStackSvd(stack: RowStack, n: number, context: ConversionContext, rankOf: (s: Float64Array) => number): Promise<StackSvd & { rank: number }> {
  let f = await stackFactors(stack, n, context);
  const rank = rankOf(f.s);
  if (rank > f.columns) f = await wholeFactors(stack, n, context);
  return { s: f.s, vt: f.vt, columns: f.columns, u: f.u(Math.min(rank, f.columns)), rank };
}

/** r rounded up to a multiple of divisor. */
export function roundUp(r: number, divisor: number): number {
  return Math.ceil(r / divisor) * divisor;
}

/**
 * The seed's dynamic rank: the number of singular values whose cumulative energy Σσ² (normalised)
 * stays ≤ δ, at least 1, rounded up to the divisor.
 */
export function energyRank(s: Float64Array, energy: number, divisor: number): number {
  if (!(energy > 0 && energy <= 1)) throw new EcomlaError(`energy ratio must be in (0, 1], found ${energy}`);
  let total = 0;
  for (const v of s) total += v * v;
  let cum = 0;
  let rank = 0;
  for (const v of s) {
    cum += v * v;
    if (cum / total <= energy) rank++;
  }
  return roundUp(Math.max(1, rank), divisor);
}

/** Fraction of Σσ² kept by the first r singular values. */
export function energyKept(s: Float64Array, r: number): number {
  let total = 0;
  let kept = 0;
  s.forEach((v, i) => {
    total += v * v;
    if (i < r) kept += v * v;
  });
  return total > 0 ? kept / total : 1;
}

/** A HostTensor's data widened to float64. */
export function f64(t: HostTensor): Float64Array {
  return Float64Array.from(t.data);
}

/** Rows [r0, r0+count) of an m×n row-major matrix. */
export function rows(a: Float64Array, n: number, r0: number, count: number): Float64Array {
  return a.slice(r0 * n, (r0 + count) * n);
}

/** diag(s[:r]) · vt[:r] — the seed's down projection (Σ folded in). vt (k, n). */
export function sigmaVt(s: Float64Array, vt: Float64Array, n: number, r: number): Float64Array {
  const out = new Float64Array(r * n);
  for (let i = 0; i < r; i++) for (let j = 0; j < n; j++) out[i * n + j] = s[i]! * vt[i * n + j]!;
  return out;
}

/** Columns [0, r) of u (m, k). */
export function leftColumns(u: Float64Array, m: number, k: number, r: number): Float64Array {
  const out = new Float64Array(m * r);
  for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) out[i * r + j] = u[i * k + j]!;
  return out;
}

/** Stack row blocks of width n. */
export function vstack(blocks: Float64Array[]): Float64Array {
  const out = new Float64Array(blocks.reduce((s, b) => s + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** A HostTensor (float32) from float64 rows. */
export function host(data: Float64Array, shape: number[]): HostTensor {
  return { shape, data: Float32Array.from(data) };
}

/** Check a rank against the bound min(m, n) of a matrix, naming it. */
export function checkRank(what: string, rank: number, m: number, n: number): void {
  if (!Number.isInteger(rank) || rank < 0) throw new EcomlaError(`${what}: rank must be a non-negative integer, found ${rank}`);
  if (rank > Math.min(m, n)) throw new EcomlaError(`${what}: rank ${rank} exceeds min(${m}, ${n}) = ${Math.min(m, n)}, the most an SVD of this matrix gives`);
}
