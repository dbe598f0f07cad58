// A small Llama-style language model and a copy task, for backends to prove that training works on
// them (the reference backend learns the task in 50 AdamW steps; a backend follows its loss curve).
import type { TensorBackend } from "../interfaces/backend.js";
import { CausalSelfAttention, DecoderBlock, Embedding, Linear, RMSNorm, RotaryEmbedding, ropeInverseFrequencies } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { Rng } from "../random.js";
import type { Tensor } from "../tensor/tensor.js";

/** Sizes of a {@link TinyLM}. */
export interface TinyConfig {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  maxPositions: number;
}

/** Embedding → decoder blocks → RMSNorm → head, built from core's layers. */
export class TinyLM extends Module {
  readonly embed: Embedding;
  readonly blocks: DecoderBlock[];
  readonly norm: RMSNorm;
  readonly head: Linear;
  readonly rotary: RotaryEmbedding;
  constructor(backend: TensorBackend, readonly cfg: TinyConfig, seed = 0) {
    super(backend);
    const rng = new Rng(seed);
    this.embed = this.child("embed_tokens", new Embedding(backend, cfg.vocab, cfg.hidden, rng, { std: 0.5 }));
    this.rotary = new RotaryEmbedding(backend, cfg.headDim, cfg.maxPositions, ropeInverseFrequencies(cfg.headDim, 10000));
    const shape = { hiddenSize: cfg.hidden, numHeads: cfg.heads, numKvHeads: cfg.kvHeads, headDim: cfg.headDim };
    this.blocks = Array.from({ length: cfg.layers }, (_, i) =>
      this.child(`layers.${i}`, new DecoderBlock(backend, { hiddenSize: cfg.hidden, intermediateSize: cfg.intermediate, rmsNormEps: 1e-5 }, rng,
        new CausalSelfAttention(backend, shape, rng, this.rotary))),
    );
    this.norm = this.child("norm", new RMSNorm(backend, cfg.hidden, 1e-5));
    this.head = this.child("lm_head", new Linear(backend, cfg.hidden, cfg.vocab, rng));
  }
  /** ids (B, T) i32 → logits (B, T, V) */
  forward(ids: Tensor): Tensor {
    let h = this.embed.forward(ids);
    for (const b of this.blocks) h = b.forward(h);
    return this.head.forward(this.norm.forward(h));
  }
  override dispose(): void {
    super.dispose();
    this.rotary.dispose();
  }
}

/**
 * Copy task: [x1 … xn, SEP, x1 … xn] with xi ∈ [1, vocab); labels ask for the second half only
 * (−100 elsewhere). Returns inputs (B, 2n+1) and next-token labels (B·(2n+1)).
 */
export function copyBatch(rng: Rng, batch: number, n: number, vocab: number): { ids: Int32Array; labels: Int32Array; seqLen: number } {
  const T = 2 * n + 1;
  const ids = new Int32Array(batch * T);
  const labels = new Int32Array(batch * T).fill(-100);
  for (let b = 0; b < batch; b++) {
    const xs = Array.from({ length: n }, () => 1 + rng.int(vocab - 1));
    const seq = [...xs, 0, ...xs];
    for (let t = 0; t < T; t++) ids[b * T + t] = seq[t]!;
    // Position t predicts seq[t+1]; only predictions of the copied half count.
    for (let t = n; t < T - 1; t++) labels[b * T + t] = seq[t + 1]!;
  }
  return { ids, labels, seqLen: T };
}
