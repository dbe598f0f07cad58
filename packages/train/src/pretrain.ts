import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  ConfigError, HfTokenizer, LlamaForCausalLM, Rng, Tensor, loadLlama, noGrad, ops, parseLlamaConfig, tidyAsync,
  type LlamaConfig, type TokenBatch,
} from "@ecomla/core";
import { readTrainConfig, resolveSources, totalStepsOf, type TrainConfig } from "./config.js";
import { splitBatch, PackedDataSource, tokenizerFingerprint } from "./data.js";
import { writeModelFolder } from "./checkpoint.js";
import { writeFileAtomically } from "./atomic.js";
import { runLoop, type MicroResult, type RunSummary, type TaskHooks } from "./loop.js";
import type { RunEnvironment } from "./run.js";

/** Next-token cross-entropy over a batch: logits (N, V) and labels (N). */
function lmLoss(model: LlamaForCausalLM, batch: TokenBatch): Tensor {
  const be = model.backend;
  const { inputs, labels } = splitBatch(batch);
  const logits = ops.reshape(model.forward(Tensor.from(be, inputs, [batch.batch, batch.seqLen])), [batch.batch * batch.seqLen, model.vocabSize]);
  return ops.crossEntropy(logits, Tensor.from(be, labels, [labels.length], { dtype: "i32" }));
}

/** Language-model pretraining from scratch: next-token cross-entropy, validation loss and perplexity. */
export class PretrainTask implements TaskHooks {
  readonly kind = "pretrain";
  constructor(readonly model: LlamaForCausalLM, readonly data: PackedDataSource, readonly evalBatches?: number) {}

  async micro(gradScale: number): Promise<MicroResult | null> {
    const batch = await this.data.next();
    if (!batch) return null;
    const loss = lmLoss(this.model, batch);
    loss.backward(Tensor.full(this.model.backend, [], gradScale));
    return { loss, tokens: batch.batch * batch.seqLen };
  }

  async evaluate(): Promise<Record<string, number>> {
    const batches = this.data.validationBatches(this.evalBatches);
    if (batches.length === 0) return {};
    let sum = 0;
    let rows = 0;
    for (const batch of batches) {
      const v = await tidyAsync(() => noGrad(() => lmLoss(this.model, batch)).item());
      const n = batch.batch * batch.seqLen;
      sum += v * n;
      rows += n;
    }
    const ce = sum / rows;
    return { loss: ce, ce, perplexity: Math.exp(ce) };
  }

  dataState(): unknown {
    return this.data.state();
  }

  restoreData(state: unknown): void {
    this.data.restore(state);
  }
}

/** The architecture of a pretraining config: its `model` keys plus the tokenizer's vocabulary. */
export function pretrainModelConfig(c: TrainConfig, tokenizer: HfTokenizer): LlamaConfig {
  const raw = {
    architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_act: "silu", attention_bias: false, mlp_bias: false,
    rms_norm_eps: 1e-5, rope_theta: 10000, rope_scaling: null, tie_word_embeddings: true, initializer_range: 0.02,
    bos_token_id: tokenizer.bosTokenId, eos_token_id: tokenizer.eosTokenId, torch_dtype: "float32",
    max_position_embeddings: c.seqLen, ...c.model, vocab_size: tokenizer.vocabSize,
  };
  return parseLlamaConfig(raw, `${c.file} (model)`);
}

/**
 * `ecomla pretrain`: build the model of the config's `model` keys with random N(0, 0.02²) weights
 * (written to output_dir/init, once; reused on resume), then train it on next-token cross-entropy.
 */
export async function runPretrainConfig(config: TrainConfig | string, env: RunEnvironment, resume = false): Promise<RunSummary> {
  const c = await resolveSources(typeof config === "string" ? readTrainConfig(config, "pretrain") : config);
  if (!c.tokenizer || !existsSync(join(c.tokenizer, "tokenizer.json"))) throw new ConfigError(`${c.file}: pretraining needs "tokenizer": a folder with tokenizer.json`);
  const tokenizer = HfTokenizer.fromDir(c.tokenizer);
  const modelConfig = pretrainModelConfig(c, tokenizer);
  const initDir = c.student as string;
  if (!existsSync(join(initDir, "model.safetensors")) && !existsSync(join(initDir, "model.safetensors.index.json"))) {
    mkdirSync(initDir, { recursive: true });
    env.log?.(`initialising a ${modelConfig.numHiddenLayers}-layer model in ${initDir}`);
    const fresh = new LlamaForCausalLM(env.backend, modelConfig, new Rng(c.seed));
    try {
      // Weights and the tokenizer's files; config.json is written after, so one the tokenizer folder
      // may hold (a teacher's) never stands in for this model's.
      await writeModelFolder(initDir, fresh, c.tokenizer);
      await writeFileAtomically(join(initDir, "config.json"), JSON.stringify(modelConfig.raw, null, 2) + "\n");
    } finally {
      fresh.dispose();
    }
  }
  const data = await PackedDataSource.fromFiles(c.dataset, tokenizer, {
    seqLen: c.seqLen, batchSize: c.batchSize, seed: c.seed, validationFraction: c.validationSplit,
    tokenizerHash: tokenizerFingerprint(c.tokenizer), cacheDir: c.cacheDir, textField: c.textField,
  });
  const { model } = await loadLlama(initDir, env.backend);
  try {
    const tokensPerStep = c.batchSize * c.seqLen * c.gradientAccumulationSteps;
    const stepsPerEpoch = Math.floor(data.trainRows.length / (c.batchSize * c.gradientAccumulationSteps));
    const totalSteps = totalStepsOf(c, tokensPerStep, Math.max(1, stepsPerEpoch));
    return await runLoop(model, new PretrainTask(model, data, c.evalBatches), {
      learningRate: c.learningRate, totalSteps, gradientAccumulationSteps: c.gradientAccumulationSteps, warmupRatio: c.warmupRatio, minLr: c.minLr,
      scheduler: c.scheduler, weightDecay: c.weightDecay, beta1: c.beta1, beta2: c.beta2, eps: c.eps, maxGradNorm: c.maxGradNorm,
      freezeNonMla: false, evalSteps: c.evalSteps, saveSteps: c.saveSteps, saveTotalLimit: c.saveTotalLimit, maxBadSteps: c.maxBadSteps,
      seed: c.seed, outputDir: c.outputDir, modelDir: initDir, config: c.raw, onStep: env.onStep, onEval: env.onEval,
    }, resume);
  } finally {
    model.dispose();
  }
}
