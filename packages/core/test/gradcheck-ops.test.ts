// Every differentiable op, checked against central finite differences in float64.
import t from "tap";
import { Rng, Tensor, ops } from "@ecomla/core";
import { f64, gradCheck, randn } from "./helpers/gradcheck.js";

const TOL = 1e-6;
const rng = new Rng(1234);

function check(name: string, inputs: Tensor[], f: () => Tensor, maxEntries?: number): void {
  t.test(name, async (t) => {
    const r = gradCheck(inputs, f, { maxEntries });
    t.ok(r.relErr < TOL, `relative error ${r.relErr.toExponential(2)} < ${TOL} over ${r.checked} entries`, { perInput: r.perInput });
    t.ok(r.checked > 0, "checked some entries");
    for (const x of inputs) {
      x.grad?.dispose();
      x.dispose();
    }
  });
}

// Elementwise with broadcasting: (2,3,4) against (3,1), (4), (1,1,4) and itself.
for (const [op, fn] of [["add", ops.add], ["sub", ops.sub], ["mul", ops.mul]] as const) {
  for (const bShape of [[2, 3, 4], [3, 1], [4], [1, 1, 4]]) {
    const a = randn(rng, [2, 3, 4]);
    const b = randn(rng, bShape);
    check(`${op} (2,3,4) ⊙ (${bShape})`, [a, b], () => fn(a, b));
  }
}
{
  const a = randn(rng, [3, 5]);
  const b = Tensor.from(f64, rng.uniformArray(5, 0.5, 2), [5]).requireGrad();
  check("div (3,5) / (5)", [a, b], () => ops.div(a, b));
}

// Unary ops inside their domains.
const positive = () => Tensor.from(f64, rng.uniformArray(12, 0.3, 2.5), [3, 4]).requireGrad();
const anyReal = () => Tensor.from(f64, rng.uniformArray(12, -2, 2).map((v) => (Math.abs(v) < 0.05 ? v + 0.2 : v)), [3, 4]).requireGrad();
for (const [name, fn, domain] of [
  ["neg", ops.neg, anyReal], ["exp", ops.exp, anyReal], ["log", ops.log, positive], ["sqrt", ops.sqrt, positive],
  ["rsqrt", ops.rsqrt, positive], ["abs", ops.abs, anyReal], ["square", ops.square, anyReal], ["reciprocal", ops.reciprocal, positive],
  ["relu", ops.relu, anyReal], ["sigmoid", ops.sigmoid, anyReal], ["silu", ops.silu, anyReal], ["tanh", ops.tanh, anyReal], ["gelu", ops.gelu, anyReal],
] as const) {
  const x = domain();
  check(`unary ${name}`, [x], () => fn(x));
}
{
  const x = positive();
  check("scale 2.5", [x], () => ops.scale(x, 2.5));
  const y = positive();
  check("addScalar −1", [y], () => ops.addScalar(y, -1));
  const z = positive();
  check("powScalar 1.7", [z], () => ops.powScalar(z, 1.7));
}

// Reductions and shape ops.
{
  const x = randn(rng, [3, 7]);
  check("sum last axis", [x], () => ops.sum(x));
  const y = randn(rng, [3, 7]);
  check("mean last axis", [y], () => ops.mean(y));
  const z = randn(rng, [2, 3, 5]);
  check("sumSquares", [z], () => ops.sumSquares(z));
  const w = randn(rng, [4, 3]);
  check("meanAll", [w], () => ops.meanAll(w));
  const e = randn(rng, [3, 1]);
  check("expand (3,1) → (2,3,4)", [e], () => ops.expand(e, [2, 3, 4]));
  const p = randn(rng, [2, 3, 4]);
  check("permute (2,0,1)", [p], () => ops.permute(p, [2, 0, 1]));
  const q = randn(rng, [2, 3, 4]);
  check("transpose last two", [q], () => ops.transpose(q));
  const n = randn(rng, [3, 6, 2]);
  check("narrow axis 1 [2,5)", [n], () => ops.narrow(n, 1, 2, 3));
  const c1 = randn(rng, [2, 3]);
  const c2 = randn(rng, [2, 1]);
  const c3 = randn(rng, [2, 4]);
  check("concat axis 1", [c1, c2, c3], () => ops.concat([c1, c2, c3], 1));
  const r = randn(rng, [2, 6]);
  check("reshape (2,6) → (3,4) then mul", [r], () => ops.mul(ops.reshape(r, [3, 4]), ops.reshape(r, [3, 4])));
}

// Matrix products: every transpose combination, shared and batched B.
for (const transA of [false, true]) {
  for (const transB of [false, true]) {
    const m = 3, k = 5, n = 4;
    const a = randn(rng, transA ? [2, k, m] : [2, m, k]);
    const bShared = randn(rng, transB ? [n, k] : [k, n]);
    check(`matmul shared B transA=${transA} transB=${transB}`, [a, bShared], () => ops.matmul(a, bShared, { transA, transB }));
    const a2 = randn(rng, transA ? [2, k, m] : [2, m, k]);
    const bBatched = randn(rng, transB ? [2, n, k] : [2, k, n]);
    check(`matmul batched transA=${transA} transB=${transB}`, [a2, bBatched], () => ops.matmul(a2, bBatched, { transA, transB }));
  }
}
{
  const x = randn(rng, [2, 3, 5]);
  const w = randn(rng, [4, 5]);
  const b = randn(rng, [4]);
  check("linear with bias", [x, w, b], () => ops.linear(x, w, b));
}

// Fused neural-network ops.
{
  const x = randn(rng, [3, 6]);
  check("softmax", [x], () => ops.softmax(x));
  const y = randn(rng, [2, 3, 8]);
  const g = Tensor.from(f64, rng.uniformArray(8, 0.5, 1.5), [8]).requireGrad();
  check("rmsNorm (x and weight)", [y, g], () => ops.rmsNorm(y, g, 1e-5));
  const a = randn(rng, [2, 3, 4]);
  const b = randn(rng, [2, 3, 4]);
  check("swiglu", [a, b], () => ops.swiglu(a, b));
}
for (const layout of ["half", "interleaved"] as const) {
  const D = 6, P = 16;
  const cos = new Float32Array(P * D / 2);
  const sin = new Float32Array(P * D / 2);
  for (let p = 0; p < P; p++) for (let i = 0; i < D / 2; i++) {
    cos[p * D / 2 + i] = Math.cos(p * Math.pow(100, -i / 3));
    sin[p * D / 2 + i] = Math.sin(p * Math.pow(100, -i / 3));
  }
  const tables = { cos: Tensor.from(f64, cos, [P, D / 2]), sin: Tensor.from(f64, sin, [P, D / 2]) };
  const x = randn(rng, [2, 3, 2, D]);
  check(`rope ${layout} offset 5 scale 1.3`, [x], () => ops.rope(x, tables, { layout, posOffset: 5, scale: 1.3 }));
}
for (const [label, T, S, Hq, Hkv, Dqk, Dv, causal] of [
  ["MHA causal", 4, 4, 2, 2, 3, 3, true],
  ["GQA 4:1, Dqk≠Dv, causal S>T", 3, 5, 4, 1, 5, 2, true],
  ["GQA 2:1 non-causal", 3, 4, 4, 2, 3, 4, false],
] as const) {
  const q = randn(rng, [2, T, Hq, Dqk]);
  const k = randn(rng, [2, S, Hkv, Dqk]);
  const v = randn(rng, [2, S, Hkv, Dv]);
  check(`attention ${label}`, [q, k, v], () => ops.attention(q, k, v, { causal, scale: 0.7 }), 30);
}
{
  const table = randn(rng, [7, 3]);
  const ids = Tensor.from(f64, [1, 4, 1, 6, 0], [5], { dtype: "i32" });
  check("embedding (repeated ids)", [table], () => ops.embedding(ids, table));
}
{
  const logits = randn(rng, [4, 9]);
  const labels = Tensor.from(f64, [3, -100, 8, 0], [4], { dtype: "i32" });
  const weights = Tensor.from(f64, [1, 1, 0.5, 2], [4]);
  check("crossEntropy (ignored label, weights, τ=1.5)", [logits], () => ops.crossEntropy(logits, labels, { weights, temperature: 1.5, scale: 0.3 }));
  const s = randn(rng, [3, 7]);
  const teacher = Tensor.from(f64, rng.normalArray(21), [3, 7]);
  check("klDiv dense (τ=2)", [s], () => ops.klDiv(s, { logits: teacher }, { temperature: 2 }));
  const s2 = randn(rng, [3, 7]);
  const indices = Tensor.from(f64, [0, 3, 5, 1, 2, 6, 4, 0, 2], [3, 3], { dtype: "i32" });
  const logprobs = Tensor.from(f64, [-0.5, -1.5, -2.5, -0.7, -1.2, -3, -0.2, -2.2, -2.9], [3, 3]);
  check("klDiv top-3", [s2], () => ops.klDiv(s2, { indices, logprobs }));
}
