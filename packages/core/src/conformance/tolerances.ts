// Per-kernel tolerances of the conformance suite. An element passes when
// |got − expected| ≤ atol + rtol·|expected|, expected being the f32 reference backend (which
// accumulates in f64 and rounds once). The backend under test computes in f32, so each bound is
// a few times the rounding error an honest f32 implementation makes at the suite's sizes, and
// well under the size of a real bug (a missing beta, a 1e-3 shift, a lost 1/τ, a dropped mask).
//
//  kernel                          atol      rtol    why
//  fill, copyStrided, cast,        0         0       data movement and a defined rounding (RNE):
//    embedding, upload/download                        the result is exact, bit for bit.
//  binary                          1e-6      2e-6    one correctly rounded op (pow: a libm call,
//                                                      a few ulp; GPU division is not IEEE).
//  unary, unaryBackward, swiglu,   1e-6      1e-5    transcendental libm/fast-math functions
//    swigluBackward                                    differ by a few ulp; 1e-5 is ~80 ulp.
//  reduceLastAxis max              0         0       a max is exact in any order.
//  reduceLastAxis sum/mean/sumsq   1e-7·K    1e-5    naive f32 summation of K terms of size ~1
//                                                      drifts like u·K/√6 (≈1.2e-4 at K = 5000).
//  sumToShape                      1e-5      1e-5    sums of ≤ 60 terms, any order.
//  gemm                            2e-5      1e-5    dot products of ≤ 130 terms of size ≤ 1
//                                                      (|C| ≲ 4), any blocking order; TF32 fails.
//  softmax, softmaxBackward        1e-6      1e-5    probabilities ≤ 1; exp plus a row sum.
//  rmsNorm, rmsNormBackward        2e-5      1e-5    a row sum of squares then products of O(1)
//                                                      values; dWeight sums ≤ 33 rows.
//  rope                            1e-6      1e-5    two products and a sum per element.
//  attention (out, lse)            2e-5      1e-4    exp of scores ~ O(3), online-softmax
//                                                      rescaling, then a weighted average.
//  attentionBackward               5e-5      2e-4    recomputes P from lse and chains three
//                                                      more reductions over S or T.
//  embeddingBackward               1e-6      1e-6    sums of repeated rows in any order.
//  crossEntropy, klDiv loss        2e-5      1e-4    log-sum-exp over up to 5000 logits; KL
//                                                      subtracts nearly equal log-probabilities.
//  crossEntropy, klDiv grad        1e-6      1e-5    softmax minus target, ≤ 1 in size.
//  adamw                           1e-6      1e-5    one sqrt and one division per element.
import type { ReduceOp } from "../interfaces/backend.js";
import { BITWISE, type Tolerance } from "./harness.js";

/** The tolerance table; see the comment at the top of this file for the reasoning. */
export const TOLERANCES = {
  exact: BITWISE,
  binary: { atol: 1e-6, rtol: 2e-6 },
  unary: { atol: 1e-6, rtol: 1e-5 },
  sumToShape: { atol: 1e-5, rtol: 1e-5 },
  gemm: { atol: 2e-5, rtol: 1e-5 },
  softmax: { atol: 1e-6, rtol: 1e-5 },
  rmsNorm: { atol: 2e-5, rtol: 1e-5 },
  rope: { atol: 1e-6, rtol: 1e-5 },
  attention: { atol: 2e-5, rtol: 1e-4 },
  attentionBackward: { atol: 5e-5, rtol: 2e-4 },
  embeddingBackward: { atol: 1e-6, rtol: 1e-6 },
  loss: { atol: 2e-5, rtol: 1e-4 },
  lossGrad: { atol: 1e-6, rtol: 1e-5 },
  adamw: { atol: 1e-6, rtol: 1e-5 },
} satisfies Record<string, Tolerance>;

/** Reductions: max is exact; sums drift with the row length. */
export function reduceTolerance(op: ReduceOp, cols: number): Tolerance {
  if (op === "max") return { atol: 0, rtol: 0 };
  return { atol: 1e-7 * Math.max(cols, 10), rtol: 1e-5 };
}
