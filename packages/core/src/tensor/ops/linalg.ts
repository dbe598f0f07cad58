import { ShapeError } from "../../errors.js";
import type { TensorBackend } from "../../interfaces/backend.js";
import { Tensor, sizeOf } from "../tensor.js";
import { backendOf, expectDtype, fmt, record } from "./common.js";
import { add, reshape } from "./elementwise.js";

/** C (batch, m, n) = alpha·op(A)·op(B) + beta·C over contiguous row-major operands. */
function gemmInto(
  be: TensorBackend,
  a: Tensor, // (batchA, m, k) or (batchA, k, m) when transA; batchA ∈ {1, batch}
  b: Tensor, // (batchB, k, n) or (batchB, n, k) when transB; batchB ∈ {1, batch}
  c: Tensor, // (batch, m, n)
  dims: { batch: number; m: number; n: number; k: number; transA: boolean; transB: boolean; aShared: boolean; bShared: boolean; beta?: number },
): void {
  const { batch, m, n, k, transA, transB } = dims;
  if (batch * m * n === 0) return;
  if (k === 0) {
    be.fill(c.buffer, 0, batch * m * n);
    return;
  }
  be.gemm({
    batch, m, n, k, transA, transB, alpha: 1, beta: dims.beta ?? 0,
    a: a.buffer, lda: transA ? m : k, strideA: dims.aShared ? 0 : m * k,
    b: b.buffer, ldb: transB ? k : n, strideB: dims.bShared ? 0 : k * n,
    c: c.buffer, ldc: n, strideC: m * n,
  });
}

/**
 * Matrix product over the last two axes: a (…, m, k) · b (k, n) or b (…, k, n) with the same
 * leading dims → (…, m, n). `transA`/`transB` take the operand's last two axes swapped as stored.
 * A 2-D b is shared by every batch entry (the Linear case). Differentiable.
 */
export function matmul(a: Tensor, b: Tensor, options: { transA?: boolean; transB?: boolean } = {}): Tensor {
  const be = backendOf("matmul", a, b);
  expectDtype("matmul", "a", a, "f32");
  expectDtype("matmul", "b", b, "f32");
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(`matmul: operands need rank ≥ 2, found ${fmt(a.shape)} and ${fmt(b.shape)}`);
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) throw new ShapeError(`matmul: inner dims differ: ${fmt(a.shape)}${transA ? "ᵀ" : ""} · ${fmt(b.shape)}${transB ? "ᵀ" : ""} (${k} vs ${kb})`);
  const lead = a.shape.slice(0, -2);
  const batch = sizeOf(lead);
  const bShared = b.rank === 2;
  if (!bShared && fmt(b.shape.slice(0, -2)) !== fmt(lead)) {
    throw new ShapeError(`matmul: batch dims differ: ${fmt(a.shape)} vs ${fmt(b.shape)} (b must be 2-D or share a's leading dims)`);
  }
  const out = Tensor.empty(be, [...lead, m, n]);
  // A shared 2-D B with a non-transposed A is one big GEMM over all rows.
  if (bShared && !transA) gemmInto(be, a, b, out, { batch: 1, m: batch * m, n, k, transA, transB, aShared: false, bShared: true });
  else gemmInto(be, a, b, out, { batch, m, n, k, transA, transB, aShared: false, bShared });

  return record(out, "matmul", [a, b], (g) => {
    // g (…, m, n). d op(A) = g · op(B)ᵀ ; d op(B) = op(A)ᵀ · g.
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (a.requiresGrad) {
      da = Tensor.empty(be, a.shape);
      if (!transA) {
        // dA (m, k) = g (m, n) · op(B)ᵀ → B stored (k, n): transB'=true; stored (n, k): transB'=false
        if (bShared) gemmInto(be, g, b, da, { batch: 1, m: batch * m, n: k, k: n, transA: false, transB: !transB, aShared: false, bShared: true });
        else gemmInto(be, g, b, da, { batch, m, n: k, k: n, transA: false, transB: !transB, aShared: false, bShared: false });
      } else {
        // dA (k, m) = op(B) (k, n) · gᵀ (n, m)
        gemmInto(be, b, g, da, { batch, m: k, n: m, k: n, transA: transB, transB: true, aShared: bShared, bShared: false });
      }
    }
    if (b.requiresGrad) {
      db = Tensor.empty(be, b.shape);
      if (bShared) {
        // Sum over the batch: flatten when A is not transposed, else accumulate per batch entry.
        if (!transB) {
          // dB (k, n) = op(A)ᵀ · g
          if (!transA) gemmInto(be, a, g, db, { batch: 1, m: k, n, k: batch * m, transA: true, transB: false, aShared: false, bShared: false });
          else for (let i = 0; i < batch; i++) gemmBatchEntry(be, a, g, db, i, { m: k, n, k: m, transA: false, transB: false, aStride: m * k, bStride: m * n, beta: i === 0 ? 0 : 1 });
        } else {
          // dB (n, k) = gᵀ · op(A)
          if (!transA) gemmInto(be, g, a, db, { batch: 1, m: n, n: k, k: batch * m, transA: true, transB: false, aShared: false, bShared: false });
          else for (let i = 0; i < batch; i++) gemmBatchEntry(be, g, a, db, i, { m: n, n: k, k: m, transA: true, transB: true, aStride: m * n, bStride: m * k, beta: i === 0 ? 0 : 1 });
        }
      } else if (!transB) {
        gemmInto(be, a, g, db, { batch, m: k, n, k: m, transA: !transA, transB: false, aShared: false, bShared: false });
      } else {
        gemmInto(be, g, a, db, { batch, m: n, n: k, k: m, transA: true, transB: transA, aShared: false, bShared: false });
      }
    }
    return [da, db];
  });
}

/** One entry of a batch accumulated into a shared output (the gradient of a shared B under transA). */
function gemmBatchEntry(
  be: TensorBackend,
  a: Tensor,
  b: Tensor,
  c: Tensor,
  i: number,
  d: { m: number; n: number; k: number; transA: boolean; transB: boolean; aStride: number; bStride: number; beta: number },
): void {
  be.gemm({
    batch: 1, m: d.m, n: d.n, k: d.k, transA: d.transA, transB: d.transB, alpha: 1, beta: d.beta,
    a: a.buffer, aOffset: i * d.aStride, lda: d.transA ? d.m : d.k, strideA: 0,
    b: b.buffer, bOffset: i * d.bStride, ldb: d.transB ? d.k : d.n, strideB: 0,
    c: c.buffer, ldc: d.n, strideC: 0,
  });
}

/** y = x · Wᵀ (+ bias): x (…, in), weight (out, in) as in PyTorch, bias (out). Differentiable. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  if (weight.rank !== 2 || x.rank < 1 || x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new ShapeError(`linear: input ${fmt(x.shape)} does not fit weight ${fmt(weight.shape)} (expected last dim ${weight.shape[1]})`);
  }
  const y = x.rank === 1 ? reshape(matmul(reshape(x, [1, x.size]), weight, { transB: true }), [weight.shape[0]!]) : matmul(x, weight, { transB: true });
  return bias ? add(y, bias) : y;
}
