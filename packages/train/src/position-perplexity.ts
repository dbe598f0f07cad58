import { noGrad, Tensor, type LanguageModel, type TensorBackend } from "@ecomla/core";
import { inputIds } from "./teacher.js";
import { splitBatch } from "./data.js";

/**
 * Perplexity at each position of the context window: rows of T+1 tokens (T inputs, T next-token
 * labels) go through the model `batchSize` at a time; position t's perplexity is exp of the mean
 * negative log-likelihood of the token after t over all rows. Returns T values (plot them with
 * @ecomla/plot's perplexityByPositionSpec).
 */
export async function perplexityByPosition(model: LanguageModel, backend: TensorBackend, rows: readonly Int32Array[], batchSize = 8): Promise<number[]> {
  if (rows.length === 0) return [];
  const seqLen = rows[0]!.length - 1;
  const sums = new Float64Array(seqLen);
  for (let s = 0; s < rows.length; s += batchSize) {
    const chunk = rows.slice(s, s + batchSize);
    const tokens = new Int32Array(chunk.length * (seqLen + 1));
    chunk.forEach((r, i) => tokens.set(r, i * (seqLen + 1)));
    const batch = { tokens, batch: chunk.length, seqLen };
    const n = chunk.length * seqLen;
    const nll = noGrad(() => {
      const ids = inputIds(backend, batch); // (B, T)
      const logits = model.forward(ids); // (B, T, V)
      const labels = Tensor.from(backend, splitBatch(batch).labels, [n]); // (B·T)
      const loss = Tensor.empty(backend, [n]); // (B·T)
      logits.backend.crossEntropy({ logits: logits.buffer, rows: n, vocab: model.vocabSize, labels: labels.buffer, loss: loss.buffer });
      ids.dispose();
      logits.dispose();
      labels.dispose();
      return loss;
    });
    const values = (await nll.data()) as Float32Array;
    nll.dispose();
    for (let i = 0; i < n; i++) sums[i % seqLen]! += values[i]!;
  }
  return Array.from(sums, (sum) => Math.exp(sum / rows.length));
}
