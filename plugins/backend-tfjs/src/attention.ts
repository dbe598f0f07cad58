// Attention forward and backward as a few batched tfjs matMuls over the whole score matrix
// (B·Hkv, G·T, S), G = Hq/Hkv: the query heads that share a key/value head are stacked as rows,
// so GQA needs no copy of K or V. Scores are held whole; core's composition chunks instead.
import * as tf from "@tensorflow/tfjs-core";
import type { AttentionArgs } from "@ecomla/core";

/** What attention takes from its backend: the checked strided reads of q (B, T, Hq, Dqk), k (B, S, Hkv, Dqk), v (B, S, Hkv, Dv), and its batched product. */
export interface AttentionIo {
  view(name: "q" | "k" | "v"): tf.Tensor;
  matMul(a: tf.Tensor, b: tf.Tensor, transA?: boolean, transB?: boolean): tf.Tensor3D;
}

/** Shapes shared by forward and backward. */
function dims(a: AttentionArgs) {
  const group = a.numHeads / a.numKvHeads;
  return { B: a.batch, T: a.queryLen, S: a.keyLen, Hkv: a.numKvHeads, G: group, Dqk: a.qkDim, Dv: a.vDim };
}

/** (B, T, Hq, D) → (B·Hkv, G·T, D): head h = kv·G + g becomes rows g·T … g·T+T−1 of matrix (b, kv). */
export function stackQueries(x: tf.Tensor, a: AttentionArgs, D: number): tf.Tensor3D {
  const { B, T, Hkv, G } = dims(a);
  return tf.reshape(tf.transpose(tf.reshape(x, [B, T, Hkv, G, D]), [0, 2, 3, 1, 4]), [B * Hkv, G * T, D]);
}

/** The inverse of {@link stackQueries}: (B·Hkv, G·T, D) → (B, T, Hq, D). */
export function unstackQueries(x: tf.Tensor, a: AttentionArgs, D: number): tf.Tensor {
  const { B, T, Hkv, G } = dims(a);
  return tf.transpose(tf.reshape(x, [B, Hkv, G, T, D]), [0, 3, 1, 2, 4]);
}

/** (B, S, Hkv, D) → (B·Hkv, S, D). */
function stackKeys(x: tf.Tensor, a: AttentionArgs, D: number): tf.Tensor3D {
  const { B, S, Hkv } = dims(a);
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [B * Hkv, S, D]);
}

/** (B·Hkv, S, D) → (B, S, Hkv, D). */
export function unstackKeys(x: tf.Tensor, a: AttentionArgs, D: number): tf.Tensor {
  const { B, S, Hkv } = dims(a);
  return tf.transpose(tf.reshape(x, [B, Hkv, S, D]), [0, 2, 1, 3]);
}

/** Scaled, masked scores (B·Hkv, G·T, S) and the stacked q, k, v. */
function scores(io: AttentionIo, a: AttentionArgs) {
  const { B, T, S, Hkv, G, Dqk, Dv } = dims(a);
  const q = stackQueries(io.view("q"), a, Dqk);
  const k = stackKeys(io.view("k"), a, Dqk);
  const v = stackKeys(io.view("v"), a, Dv);
  let s: tf.Tensor = tf.mul(io.matMul(q, k, false, true), a.scale);
  if (a.causal) {
    // Query t sees keys s ≤ t + (S − T): −∞ elsewhere, so exp gives exactly 0 there.
    const allowed = tf.lessEqual(tf.reshape(tf.range(0, S, 1, "int32"), [1, S]), tf.reshape(tf.range(S - T, S, 1, "int32"), [T, 1]));
    const bias = tf.where(allowed, tf.zeros([T, S]), tf.fill([T, S], -Infinity));
    s = tf.reshape(tf.add(tf.reshape(s, [B * Hkv, G, T, S]), bias), [B * Hkv, G * T, S]);
  }
  return { s, q, k, v };
}

/** Forward: out (B, T, Hq, Dv) and lse (B, Hq, T). */
export function attentionForward(io: AttentionIo, a: AttentionArgs): { out: tf.Tensor; lse: tf.Tensor } {
  const { s, v } = scores(io, a);
  const lse = tf.logSumExp(s, -1, true);
  const out = io.matMul(tf.exp(tf.sub(s, lse)), v);
  // lse rows are (b, kv, g, t), which is (b, h, t) with h = kv·G + g.
  return { out: unstackQueries(out, a, a.vDim), lse };
}

/** Backward from dOut and the forward's out and lse: dq (B, T, Hq, Dqk), dk (B, S, Hkv, Dqk), dv (B, S, Hkv, Dv). */
export function attentionBackward(io: AttentionIo, a: AttentionArgs, out: tf.Tensor, lse: tf.Tensor, dOut: tf.Tensor): { dq: tf.Tensor; dk: tf.Tensor; dv: tf.Tensor } {
  const { B, T, Hkv, G } = dims(a);
  const { s, q, k, v } = scores(io, a);
  const p = tf.exp(tf.sub(s, tf.reshape(lse, [B * Hkv, G * T, 1])));
  const dO = stackQueries(dOut, a, a.vDim);
  const o = stackQueries(out, a, a.vDim);
  const dv = io.matMul(p, dO, true, false);
  // dS = P ⊙ (dP − rowsum(dO ⊙ O)), the softmax backward per row.
  const ds = tf.mul(p, tf.sub(io.matMul(dO, v, false, true), tf.sum(tf.mul(dO, o), -1, true)));
  return {
    dq: unstackQueries(tf.mul(io.matMul(ds, k), a.scale), a, a.qkDim),
    dk: unstackKeys(tf.mul(io.matMul(ds, q, true, false), a.scale), a, a.qkDim),
    dv: unstackKeys(dv, a, a.vDim),
  };
}
