// One-sided Jacobi SVD: known singular values, reconstruction, orthonormality, rank deficiency.
import t from "tap";
import { ReferenceBackend, jacobiSvd, type SvdResult } from "@ecomla/core";

/** The part of tap's test object the helpers use. */
type Asserts = Pick<typeof t, "ok">;

function randoms(n: number, seed: number): Float64Array {
  let state = seed >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

/** max |U·diag(S)·Vᵀ − A| / max |A| for a row-major (m, n) A. */
function reconstructionError(a: ArrayLike<number>, m: number, n: number, { u, s, vt }: SvdResult): number {
  const k = s.length;
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let c = 0; c < k; c++) sum += u[i * k + c]! * s[c]! * vt[c * n + j]!;
      worst = Math.max(worst, Math.abs(sum - a[i * n + j]!));
      scale = Math.max(scale, Math.abs(a[i * n + j]!));
    }
  }
  return worst / Math.max(scale, 1e-300);
}

/** max |GᵀG − I| for the k columns of a row-major (rows, k) G, or of Gᵀ when `rowsAreVectors`. */
function orthonormalityError(g: Float64Array, rows: number, k: number, rowsAreVectors: boolean): number {
  const at = (vector: number, i: number) => (rowsAreVectors ? g[vector * rows + i]! : g[i * k + vector]!);
  let worst = 0;
  for (let p = 0; p < k; p++) {
    for (let q = 0; q < k; q++) {
      let sum = 0;
      for (let i = 0; i < rows; i++) sum += at(p, i) * at(q, i);
      worst = Math.max(worst, Math.abs(sum - (p === q ? 1 : 0)));
    }
  }
  return worst;
}

function checkFactorisation(t: Asserts, what: string, a: ArrayLike<number>, m: number, n: number, result: SvdResult): void {
  const k = Math.min(m, n);
  t.ok(result.u.length === m * k && result.s.length === k && result.vt.length === k * n, `${what}: shapes U (${m}, ${k}), S (${k}), Vᵀ (${k}, ${n})`);
  const recon = reconstructionError(a, m, n, result);
  t.ok(recon < 1e-12, `${what}: U·S·Vᵀ reconstructs A (relative error ${recon.toExponential(2)})`);
  const uErr = orthonormalityError(result.u, m, k, false);
  const vErr = orthonormalityError(result.vt, n, k, true);
  t.ok(uErr < 1e-12 && vErr < 1e-12, `${what}: UᵀU = I (${uErr.toExponential(2)}), VᵀV = I (${vErr.toExponential(2)})`);
  const sorted = result.s.every((v, i) => v >= 0 && (i === 0 || v <= result.s[i - 1]!));
  t.ok(sorted, `${what}: singular values non-negative and descending`, { s: Array.from(result.s) });
}

t.test("known singular values", async (t) => {
  const diag = new Float64Array([0, 0, 0.5, 3, 0, 0, 0, -2, 0]); // 3×3 with entries 0.5, 3, −2 in shuffled places
  const d = jacobiSvd(diag, 3, 3);
  t.same(Array.from(d.s), [3, 2, 0.5], "a permuted diagonal gives |entries| sorted");
  checkFactorisation(t, "permuted diagonal", diag, 3, 3, d);

  // A = R(0.3)·diag(5, 2)·R(−1.1): rotations leave the singular values 5 and 2.
  const [c1, s1, c2, s2] = [Math.cos(0.3), Math.sin(0.3), Math.cos(1.1), Math.sin(1.1)];
  const rotated = new Float64Array([
    5 * c1 * c2 + 2 * s1 * s2, 5 * c1 * s2 - 2 * s1 * c2,
    5 * s1 * c2 - 2 * c1 * s2, 5 * s1 * s2 + 2 * c1 * c2,
  ]);
  const r = jacobiSvd(rotated, 2, 2);
  t.ok(Math.abs(r.s[0]! - 5) < 1e-14 && Math.abs(r.s[1]! - 2) < 1e-14, "rotated diag(5, 2)", { s: Array.from(r.s) });

  // Rank 1: x·yᵀ has the single singular value |x|·|y|.
  const x = [1, 2, 3];
  const y = [1, -2, 3, 4];
  const outer = new Float64Array(12);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) outer[i * 4 + j] = x[i]! * y[j]!;
  const o = jacobiSvd(outer, 3, 4);
  t.ok(Math.abs(o.s[0]! - Math.sqrt(14 * 30)) < 1e-13, "rank 1: σ₁ = |x|·|y|", { s: Array.from(o.s) });
  t.ok(o.s[1]! < 1e-13 && o.s[2]! < 1e-13, "rank 1: the other singular values vanish");
  checkFactorisation(t, "rank-1 3×4 (U completed orthonormally)", outer, 3, 4, o);
  const ot = new Float64Array(12);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) ot[j * 3 + i] = outer[i * 4 + j]!;
  checkFactorisation(t, "rank-1 4×3", ot, 4, 3, jacobiSvd(ot, 4, 3));

  const zero = jacobiSvd(new Float64Array(6), 2, 3);
  t.same(Array.from(zero.s), [0, 0], "zero matrix");
  checkFactorisation(t, "zero 2×3", new Float64Array(6), 2, 3, zero);
});

t.test("random tall, wide and square matrices", async (t) => {
  for (const [m, n, seed] of [[9, 5, 1], [5, 9, 2], [12, 12, 3], [1, 7, 4], [7, 1, 5]] as const) {
    const a = randoms(m * n, seed);
    const result = jacobiSvd(a, m, n);
    checkFactorisation(t, `${m}×${n}`, a, m, n, result);
    // Σσ² = ‖A‖_F² is independent of the factors.
    const frobenius = a.reduce((acc, v) => acc + v * v, 0);
    const sumSquares = result.s.reduce((acc, v) => acc + v * v, 0);
    t.ok(Math.abs(frobenius - sumSquares) < 1e-12 * frobenius, `${m}×${n}: Σσ² = ‖A‖²_F`);
  }
  // Columns 3 and 4 repeat columns 0 and 1: rank 3 of 5.
  const [m, n] = [8, 5];
  const a = randoms(m * n, 6);
  for (let i = 0; i < m; i++) {
    a[i * n + 3] = a[i * n]!;
    a[i * n + 4] = 2 * a[i * n + 1]!;
  }
  const deficient = jacobiSvd(a, m, n);
  t.ok(deficient.s[3]! < 1e-14 * deficient.s[0]! && deficient.s[4]! < 1e-14 * deficient.s[0]!, "rank 3 of 5: two singular values vanish", { s: Array.from(deficient.s) });
  checkFactorisation(t, "rank-deficient 8×5", a, m, n, deficient);
});

t.test("deterministic, float32 input, backend capability", async (t) => {
  const a = randoms(20, 7);
  const first = jacobiSvd(a, 4, 5);
  const second = jacobiSvd(a, 4, 5);
  t.same([first.u, first.s, first.vt], [second.u, second.s, second.vt], "identical results on identical input");
  const a32 = Float32Array.from(a);
  const viaBackend = await new ReferenceBackend().capabilities.svd!(a32, 4, 5);
  checkFactorisation(t, "Float32Array through capabilities.svd", Array.from(a32), 4, 5, viaBackend);
  t.throws(() => jacobiSvd(new Float64Array([1, NaN]), 1, 2), { message: "jacobiSvd: element 1 (row 0, col 1) is NaN, expected a finite number" });
});
