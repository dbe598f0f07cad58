import type { LanguageModel } from "./model.js";
import type { Tokenizer } from "./tokenizer.js";

/** A task as evaluators receive it: a name, where its items are, and its options. */
export interface TaskSpec {
  name: string;
  /** Path of the task's data (e.g. a JSONL file). */
  path?: string;
  options?: Record<string, unknown>;
}

/** Metric values of one model on one task. */
export interface EvalResult {
  task: string;
  /** e.g. { acc: 0.61, acc_norm: 0.64 } or { perplexity: 21.3 } */
  metrics: Record<string, number>;
  /** Items scored. */
  count: number;
}

/** Scores a model on a task (perplexity, multiple-choice log-likelihood, exact match, KV report…). */
export interface Evaluator {
  /** Registry name, e.g. "multiple-choice". */
  readonly name: string;
  evaluate(model: LanguageModel, tokenizer: Tokenizer, task: TaskSpec): Promise<EvalResult>;
}
