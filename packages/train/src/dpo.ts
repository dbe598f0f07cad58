import { readFileSync } from "node:fs";
import { ConfigError, Tensor, differentiateLoss, noGrad, ops, tidyAsync, type LlamaForCausalLM, type Tokenizer } from "@ecomla/core";
import { permutation, renderChat, type ChatMessage } from "./data.js";
import { runLoop, type LoopOptions, type MicroResult, type RunSummary, type TaskHooks } from "./loop.js";

/** A preference pair, tokenised: the prompt, then the chosen and the rejected continuation (EOS appended). */
export interface TokenizedPair {
  prompt: number[];
  chosen: number[];
  rejected: number[];
}

/** Read pairs JSONL: `prompt` (a string, or chat messages), `chosen`, `rejected` (strings). */
export function readPairs(file: string, tokenizer: Tokenizer): TokenizedPair[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`dataset ${file}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  const eos = tokenizer.eosTokenId;
  const withEos = (ids: number[]) => (eos === null ? ids : [...ids, eos]);
  const pairs: TokenizedPair[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    const where = `${file}:${i + 1}`;
    let row: { prompt?: unknown; chosen?: unknown; rejected?: unknown };
    try {
      row = JSON.parse(line) as typeof row;
    } catch (err) {
      throw new ConfigError(`${where}: not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    if (typeof row.chosen !== "string" || typeof row.rejected !== "string") throw new ConfigError(`${where}: "chosen" and "rejected" must be strings`);
    const prompt = typeof row.prompt === "string" ? row.prompt : Array.isArray(row.prompt) ? renderChat(tokenizer, row.prompt as ChatMessage[], where) : null;
    if (prompt === null) throw new ConfigError(`${where}: "prompt" must be a string or a list of chat messages`);
    pairs.push({ prompt: tokenizer.encode(prompt), chosen: withEos(tokenizer.encode(row.chosen)), rejected: withEos(tokenizer.encode(row.rejected)) });
  });
  if (pairs.length === 0) throw new ConfigError(`dataset ${file}: no preference pairs`);
  return pairs;
}

/**
 * Sequences of a batch of pairs: 2P rows (chosen rows first, then rejected) of `length` tokens,
 * padded; labels are the next token on continuation positions and −1 elsewhere (prompt, padding).
 */
export function pairRows(pairs: readonly TokenizedPair[], maxLen: number): { ids: Int32Array; labels: Int32Array; rows: number; length: number } {
  const seqs = [...pairs.map((p) => [p.prompt, p.chosen] as const), ...pairs.map((p) => [p.prompt, p.rejected] as const)].map(([prompt, cont]) => {
    // Keep the continuation's start: cut the prompt from the left (at least one token stays), then the continuation from the right.
    const keepPrompt = Math.max(1, Math.min(prompt.length, maxLen + 1 - cont.length));
    const p = prompt.slice(prompt.length - keepPrompt);
    const all = [...p, ...cont].slice(0, maxLen + 1);
    return { all, first: p.length };
  });
  const length = Math.max(...seqs.map((s) => s.all.length)) - 1;
  const rows = seqs.length;
  const ids = new Int32Array(rows * length);
  const labels = new Int32Array(rows * length).fill(-1);
  seqs.forEach((s, r) => {
    for (let t = 0; t < s.all.length - 1; t++) {
      ids[r * length + t] = s.all[t]!;
      if (t + 1 >= s.first) labels[r * length + t] = s.all[t + 1]!;
    }
  });
  return { ids, labels, rows, length };
}

/** Summed log-probability of each row's labelled tokens: logits (R·L, V), labels (R·L) → (R), no gradient. */
function rowLogprobs(logits: Tensor, labels: Tensor, rows: number, length: number): Tensor {
  return noGrad(() => {
    const per = Array.from({ length: rows }, (_, r) =>
      ops.scale(ops.crossEntropy(ops.narrow(logits, 0, r * length, length), ops.narrow(labels, 0, r * length, length), { scale: 1 }).view([1]), -1),
    );
    return ops.concat(per, 0);
  });
}

/** Inputs of {@link dpo}. */
export interface DpoInputs {
  policy: LlamaForCausalLM;
  /** The frozen reference (a copy of the starting model). */
  reference: LlamaForCausalLM;
  pairs: readonly TokenizedPair[];
  /** β of the sigmoid loss (default 0.01, as the seed). */
  beta?: number;
  /** Pairs per micro-batch. */
  batchSize: number;
  /** Longest sequence (prompt + continuation) in tokens. */
  maxLen: number;
  seed: number;
  /** Fraction of pairs held out for validation (default 0.1). */
  validationFraction?: number;
}

/** The sigmoid DPO loss of one pair's implicit reward difference z = β·((πc − rc) − (πr − rr)), and d loss/dz. */
export function dpoSigmoid(z: number): { loss: number; dLossDz: number } {
  // −log σ(z) = softplus(−z), computed stably.
  const loss = z > 0 ? Math.log1p(Math.exp(-z)) : -z + Math.log1p(Math.exp(z));
  return { loss, dLossDz: -1 / (1 + Math.exp(z)) };
}

/**
 * Direct preference optimisation with the sigmoid loss: log-probs of both continuations under the
 * policy (with gradient) and the frozen reference (once per batch, no gradient); metrics are the
 * reward margin β·((πc − rc) − (πr − rr)) and the preference accuracy (share of pairs with margin > 0).
 */
export class DpoTask implements TaskHooks {
  readonly kind = "dpo";
  readonly beta: number;
  readonly trainPairs: TokenizedPair[];
  readonly validationPairs: TokenizedPair[];
  private cursor = { epoch: 0, index: 0 };
  private order: Int32Array;

  constructor(readonly inputs: DpoInputs) {
    this.beta = inputs.beta ?? 0.01;
    const n = inputs.pairs.length;
    const held = n >= 2 ? Math.min(n - 1, Math.max(1, Math.round((inputs.validationFraction ?? 0.1) * n))) : 0;
    const perm = permutation(n, inputs.seed ^ 0x5eed);
    const isVal = new Set(Array.from(perm.subarray(0, held)));
    this.trainPairs = inputs.pairs.filter((_, i) => !isVal.has(i));
    this.validationPairs = inputs.pairs.filter((_, i) => isVal.has(i));
    this.order = this.epochOrder(0);
  }

  private epochOrder(epoch: number): Int32Array {
    return permutation(this.trainPairs.length, (this.inputs.seed + 0x9e3779b1 * (epoch + 1)) >>> 0);
  }

  private nextPairs(): TokenizedPair[] {
    const out: TokenizedPair[] = [];
    while (out.length < this.inputs.batchSize) {
      if (this.cursor.index >= this.order.length) {
        this.cursor = { epoch: this.cursor.epoch + 1, index: 0 };
        this.order = this.epochOrder(this.cursor.epoch);
      }
      out.push(this.trainPairs[this.order[this.cursor.index++]!]!);
    }
    return out;
  }

  /** Policy logits (with gradient when asked), reference and policy log-probs per row, and host margins. */
  private async score(pairs: readonly TokenizedPair[], withGrad: boolean) {
    const { policy, reference, maxLen } = this.inputs;
    const be = policy.backend;
    const { ids, labels, rows, length } = pairRows(pairs, maxLen);
    const idT = Tensor.from(be, ids, [rows, length]);
    const labT = Tensor.from(be, labels, [rows * length], { dtype: "i32" });
    const vocab = policy.vocabSize;
    const refLogp = noGrad(() => rowLogprobs(reference.forward(idT).view([rows * length, vocab]), labT, rows, length));
    const out = withGrad ? policy.forward(idT) : noGrad(() => policy.forward(idT));
    const logits = ops.reshape(out, [rows * length, vocab]); // (2P·L, V)
    const polLogp = rowLogprobs(logits.view(logits.shape), labT, rows, length);
    const both = noGrad(() => ops.concat([polLogp, refLogp], 0));
    const host = (await both.data()) as Float32Array;
    const p = pairs.length;
    const z = pairs.map((_, i) => this.beta * (host[i]! - host[rows + i]! - (host[p + i]! - host[rows + p + i]!)));
    return { logits, labT, rows, length, z };
  }

  async micro(gradScale: number): Promise<MicroResult | null> {
    const pairs = this.nextPairs();
    const p = pairs.length;
    const { logits, labT, rows, length, z } = await this.score(pairs, true);
    const terms = z.map(dpoSigmoid);
    // d loss / d logp: ±β·dLoss/dz / P for chosen (+) and rejected (−). The weighted CE below has
    // gradient Σ_r w_r ∇(−log p_r), so w = −d loss/d logp per row gives ∇loss exactly.
    const coef = new Float32Array(rows);
    terms.forEach((t, i) => {
      coef[i] = -(this.beta * t.dLossDz) / p;
      coef[p + i] = (this.beta * t.dLossDz) / p;
    });
    const weights = new Float32Array(rows * length);
    for (let r = 0; r < rows; r++) weights.fill(coef[r]! * gradScale, r * length, (r + 1) * length);
    const w = Tensor.from(logits.backend, weights, [rows * length]);
    const { gradLogits } = differentiateLoss(logits, (l) => ops.crossEntropy(l, labT, { weights: w, scale: 1 }));
    logits.backward(gradLogits);
    const loss = terms.reduce((s, t) => s + t.loss, 0) / p;
    return {
      loss: Tensor.from(logits.backend, [loss], []),
      tokens: rows * length,
      extra: { margin: z.reduce((a, b) => a + b, 0) / p, accuracy: z.filter((v) => v > 0).length / p },
    };
  }

  async evaluate(): Promise<Record<string, number>> {
    const pairs = this.validationPairs;
    if (pairs.length === 0) return {};
    const zs: number[] = [];
    for (let s = 0; s < pairs.length; s += this.inputs.batchSize) {
      const z = await tidyAsync(async () => (await this.score(pairs.slice(s, s + this.inputs.batchSize), false)).z);
      zs.push(...z);
    }
    const n = zs.length;
    return {
      loss: zs.reduce((a, v) => a + dpoSigmoid(v).loss, 0) / n,
      margin: zs.reduce((a, b) => a + b, 0) / n,
      accuracy: zs.filter((v) => v > 0).length / n,
    };
  }

  dataState(): unknown {
    return { ...this.cursor };
  }

  restoreData(state: unknown): void {
    const s = state as { epoch?: unknown; index?: unknown } | null;
    if (!s || !Number.isInteger(s.epoch) || !Number.isInteger(s.index)) throw new ConfigError(`DPO data cursor ${JSON.stringify(state)} is malformed`);
    this.cursor = { epoch: s.epoch as number, index: s.index as number };
    this.order = this.epochOrder(this.cursor.epoch);
  }
}

/** Run DPO on `policy` against the frozen `reference`; `resume` continues from the newest checkpoint. */
export function dpo(inputs: DpoInputs, options: LoopOptions, resume = false): Promise<RunSummary> {
  for (const [, t] of inputs.reference.namedParameters()) t.requireGrad(false);
  return runLoop(inputs.policy, new DpoTask(inputs), options, resume);
}
