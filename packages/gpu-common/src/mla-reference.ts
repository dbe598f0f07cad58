// Host reference of the absorbed-MLA decode (float64), for tests and the GPU check.

/** out (B, H, R) and lse (B, H) of {@link GpuBackend.mlaDecode} computed on the host. */
export function mlaDecodeReference(a: {
  batch: number;
  numHeads: number;
  kvRank: number;
  ropeDim: number;
  maxLen: number;
  scale: number;
  qLatent: Float32Array;
  qRope: Float32Array;
  cache: Float32Array;
  lengths?: Int32Array;
}): { out: Float64Array; lse: Float64Array } {
  const { batch, numHeads: H, kvRank: R, ropeDim: Dr, maxLen, scale } = a;
  const W = R + Dr;
  const out = new Float64Array(batch * H * R);
  const lse = new Float64Array(batch * H);
  const scores = new Float64Array(maxLen);
  for (let b = 0; b < batch; b++) {
    const len = Math.min(a.lengths ? a.lengths[b]! : maxLen, maxLen);
    for (let h = 0; h < H; h++) {
      const q = (b * H + h) * R;
      const qr = (b * H + h) * Dr;
      let max = -Infinity;
      for (let s = 0; s < len; s++) {
        const row = (b * maxLen + s) * W;
        let dot = 0;
        for (let c = 0; c < R; c++) dot += a.qLatent[q + c]! * a.cache[row + c]!;
        for (let c = 0; c < Dr; c++) dot += a.qRope[qr + c]! * a.cache[row + R + c]!;
        scores[s] = scale * dot;
        max = Math.max(max, scores[s]!);
      }
      let sum = 0;
      for (let s = 0; s < len; s++) sum += Math.exp(scores[s]! - max);
      for (let s = 0; s < len; s++) {
        const p = Math.exp(scores[s]! - max) / sum;
        const row = (b * maxLen + s) * W;
        for (let c = 0; c < R; c++) out[q + c] += p * a.cache[row + c]!;
      }
      lse[b * H + h] = max + Math.log(sum);
    }
  }
  return { out, lse };
}
