// Batched matrix products on the fast path of the active tfjs backend. tfjs-backend-wasm sends only
// a rank-2, untransposed product to XNNPACK (~30-45 GFLOP/s here); a batched or transposed one runs
// a plain loop (~1-3 GFLOP/s). So on wasm transposes are materialised (memory-bound, cheap), a
// shared right operand takes the whole batch as rows, and distinct ones run one 2-D product each.
import * as tf from "@tensorflow/tfjs-core";

/** op(a)·op(b) per batch: a (Ba, m, k) or (Ba, k, m) when transA, b (Bb, k, n) or (Bb, n, k) when transB; a batch of 1 broadcasts. */
export function batchedMatMul(a: tf.Tensor3D, b: tf.Tensor3D, transA: boolean, transB: boolean, rank2Only: boolean): tf.Tensor3D {
  if (!rank2Only) return tf.matMul(a, b, transA, transB);
  const left = transA ? tf.transpose(a, [0, 2, 1]) : a; // (Ba, m, k)
  const right = transB ? tf.transpose(b, [0, 2, 1]) : b; // (Bb, k, n)
  const [batchA, m, k] = left.shape;
  const [batchB, , n] = right.shape;
  if (batchB === 1) return tf.reshape(tf.matMul(tf.reshape(left, [batchA * m, k]), tf.reshape(right, [k, n])), [batchA, m, n]);
  const rights = tf.unstack(right) as tf.Tensor2D[];
  const lefts = batchA === 1 ? rights.map(() => tf.reshape(left, [m, k]) as tf.Tensor2D) : (tf.unstack(left) as tf.Tensor2D[]);
  return tf.stack(rights.map((r, i) => tf.matMul(lefts[i]!, r))) as tf.Tensor3D;
}
