// The SVD of a repeat-interleaved stack computed on its distinct rows (what makes the GQA K/V
// factorisation 4× smaller on Llama-3.2-1B) against core's Jacobi SVD of the whole stack.
import t from "tap";
import { jacobiSvd, type ConversionContext } from "@ecomla/core";
import { materialize, rankedStackSvd, stackSvd, type RowStack } from "@ecomla/converter-xecomla";

const context: ConversionContext = { capabilities: {} }; // no backend SVD: core's Jacobi SVD

function randomStack(k: number, n: number, source: number[], seed: number): RowStack {
  let x = seed;
  const rand = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  return { distinct: Float32Array.from({ length: k * n }, rand), k, source: Int32Array.from(source) };
}

/** U[:, :r] · diag(s[:r]) · Vᵀ[:r] (m × n). */
function lowRank(u: Float64Array, s: Float64Array, vt: Float64Array, m: number, columns: number, n: number, r: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let x = 0; x < r; x++) for (let j = 0; j < n; j++) out[i * n + j]! += u[i * columns + x]! * s[x]! * vt[x * n + j]!;
  return out;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

const cases: [string, number, number, number[]][] = [
  // GQA [K; V]: 2 key heads of 3 rows repeated to 4 heads (each row twice), then V the same way.
  ["GQA group 2", 12, 16, [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 8, 6, 7, 8, 9, 10, 11, 9, 10, 11]],
  // Uneven copies (1, 2 and 3 of a row) and a wide stack (m < n is not required of the distinct rows).
  ["uneven copies", 3, 5, [0, 1, 1, 2, 2, 2]],
];
for (const [name, k, n, source] of cases) {
  t.test(`${name}: same singular values and rank-r factors as the SVD of the whole stack`, async (t) => {
    const stack = randomStack(k, n, source, 7 + k);
    const m = source.length;
    const whole = jacobiSvd(Float64Array.from(materialize(stack, n)), m, n);
    const mine = await stackSvd(stack, n, context);
    t.equal(mine.s.length, Math.min(m, n), "s has min(m, n) values, zeros past the distinct rank");
    t.ok(maxDiff(mine.s, whole.s) < 1e-5 * whole.s[0]!, `singular values agree (max |Δ| ${maxDiff(mine.s, whole.s).toExponential(2)})`);
    // Orthonormal columns of U on the whole stack.
    let orth = 0;
    for (let a = 0; a < mine.columns; a++) {
      for (let b = 0; b < mine.columns; b++) {
        let dot = 0;
        for (let i = 0; i < m; i++) dot += mine.u[i * mine.columns + a]! * mine.u[i * mine.columns + b]!;
        orth = Math.max(orth, Math.abs(dot - (a === b ? 1 : 0)));
      }
    }
    t.ok(orth < 1e-5, `UᵀU = I (max |Δ| ${orth.toExponential(2)})`);
    for (const r of [1, Math.min(k, n) - 1, Math.min(k, n)]) {
      const a = lowRank(mine.u, mine.s, mine.vt, m, mine.columns, n, r);
      const b = lowRank(whole.u, whole.s, whole.vt, m, whole.s.length, n, r);
      t.ok(maxDiff(a, b) < 1e-5, `rank ${r}: U·S·Vᵀ agree (max |Δ| ${maxDiff(a, b).toExponential(2)})`);
    }
    const full = lowRank(mine.u, mine.s, mine.vt, m, mine.columns, n, mine.columns);
    t.ok(maxDiff(full, materialize(stack, n)) < 1e-5, "all factors rebuild the stack");
  });
}

t.test("a rank past the distinct rows falls back to the SVD of the whole stack", async (t) => {
  const [, k, n, source] = cases[0]!;
  const stack = randomStack(k, n, source, 3);
  const within = await rankedStackSvd(stack, n, context, () => 8);
  t.equal(within.columns, k, "rank 8 ≤ 12 distinct rows: the small SVD");
  t.equal(within.rank, 8);
  const past = await rankedStackSvd(stack, n, context, () => 14);
  t.equal(past.columns, Math.min(source.length, n), "rank 14 > 12: singular vectors of the whole 24 × 16 stack");
  t.equal(past.rank, 14);
});
