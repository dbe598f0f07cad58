// The four evaluators the plugin registers: multiple-choice, perplexity, last-word, kv-report.
import { ConfigError, type EvalResult, type Evaluator, type LanguageModel, type TaskSpec, type Tokenizer } from "@ecomla/core";
import type { McItem } from "./adapters.js";
import { aggregateMeans, byteLength, countWords, mean, scoreChoices } from "./metrics.js";
import { encodePair, rollingWindows, scoreRequests, type EncodeOptions, type TokenRequest } from "./scoring.js";
import { loadLastWordItems, loadMcItems, loadPerplexityDocs, resolveTask, type ResolvedTask, type TaskSettings } from "./tasks.js";

/** lm-eval's fallback context window when the model does not say. */
const DEFAULT_MAX_LENGTH = 2048;

/** The model's context window: the task's setting, else its config's max_position_embeddings, else 2048. */
export function modelMaxLength(model: LanguageModel, settings: TaskSettings): number {
  if (settings.maxLength !== undefined) return settings.maxLength;
  const fromConfig = (model as { config?: { maxPositionEmbeddings?: unknown } }).config?.maxPositionEmbeddings;
  return typeof fromConfig === "number" && Number.isInteger(fromConfig) && fromConfig > 0 ? fromConfig : DEFAULT_MAX_LENGTH;
}

/**
 * How a task's strings become tokens: no special tokens unless tokenizer_config.json sets
 * add_bos_token (or the task does); an empty context becomes the end-of-text token.
 */
export function encodeOptionsFor(tokenizer: Tokenizer, settings: TaskSettings, task: string): EncodeOptions {
  const config = (tokenizer as { tokenizerConfig?: Record<string, unknown> }).tokenizerConfig;
  const addSpecialTokens = settings.addBosToken ?? config?.["add_bos_token"] === true;
  const prefixTokenId = settings.prefixTokenId ?? tokenizer.eosTokenId ?? tokenizer.bosTokenId;
  if (prefixTokenId === null) {
    throw new ConfigError(`task "${task}": the tokenizer has no end-of-text (eos_token) or BOS token to stand in for an empty context; set prefix_token_id in the task card`);
  }
  return { prefixTokenId, addSpecialTokens };
}

/** Check the metrics a task asks for before any scoring; returns a filter for the results. */
function metricFilter(task: ResolvedTask, available: readonly string[]): (all: Record<string, number>) => Record<string, number> {
  const wanted = task.settings.metrics;
  if (!wanted) return (all) => all;
  const unknown = wanted.filter((m) => !available.includes(m));
  if (unknown.length) throw new ConfigError(`task "${task.name}": unknown metric(s) ${unknown.join(", ")}; this ${task.type} task reports ${available.join(", ")}`);
  return (all) => Object.fromEntries(Object.entries(all).filter(([k]) => wanted.includes(k.replace(/_stderr$/, ""))));
}

/** The (context, continuation) strings lm-eval scores for one item. */
function itemRequests(item: McItem, delimiter: string): [string, string][] {
  return item.kind === "choices"
    ? item.choices.map((choice) => [item.context, delimiter + choice])
    : item.contexts.map((context) => [context, delimiter + item.continuation]);
}

/**
 * Multiple-choice log-likelihood (lm-eval's `multiple_choice`): acc, acc_norm (per character),
 * acc_bytes (per UTF-8 byte), each with its stderr. Partial-evaluation items report acc only, as
 * lm-eval's WinoGrande does.
 */
export class MultipleChoiceEvaluator implements Evaluator {
  readonly name = "multiple-choice";

  async evaluate(model: LanguageModel, tokenizer: Tokenizer, spec: TaskSpec): Promise<EvalResult> {
    const task = resolveTask(spec, "multiple-choice");
    const items = loadMcItems(task.data, task.settings.format, task.settings.limit);
    // lm-eval's WinoGrande (partial evaluation) reports acc only.
    const names = items.every((item) => item.kind === "partial") ? ["acc"] : ["acc", "acc_norm", "acc_bytes"];
    const select = metricFilter(task, names);
    const encoding = encodeOptionsFor(tokenizer, task.settings, task.name);
    const delimiter = task.settings.targetDelimiter ?? " ";
    const requests: TokenRequest[] = [];
    const spans = items.map((item) => {
      const start = requests.length;
      for (const [context, continuation] of itemRequests(item, delimiter)) requests.push(encodePair(tokenizer, context, continuation, encoding));
      return start;
    });
    const scored = await scoreRequests(model, requests, { maxLength: modelMaxLength(model, task.settings), batchSize: task.settings.batchSize, onProgress: task.settings.onProgress });
    const outcomes = items.map((item, i) => {
      const lls = scored.slice(spans[i], spans[i]! + (item.kind === "choices" ? item.choices.length : item.contexts.length)).map((r) => r.logLikelihood);
      // lm-eval measures doc_to_choice: the choices, or (partial) the contexts.
      return scoreChoices(lls, item.kind === "choices" ? item.choices : item.contexts, item.gold);
    });
    const metrics = aggregateMeans(outcomes as unknown as Record<string, number>[], names);
    return { task: task.name, metrics: select(metrics), count: items.length };
  }
}

/**
 * Rolling-window perplexity of a text (lm-eval's `loglikelihood_rolling` and wikitext metrics):
 * token perplexity, word and byte perplexity and bits per byte. Items counted are scored tokens.
 */
export class PerplexityEvaluator implements Evaluator {
  readonly name = "perplexity";

  async evaluate(model: LanguageModel, tokenizer: Tokenizer, spec: TaskSpec): Promise<EvalResult> {
    const task = resolveTask(spec, "perplexity");
    const select = metricFilter(task, ["perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte"]);
    const docs = loadPerplexityDocs(task.data, task.settings.limit);
    const encoding = encodeOptionsFor(tokenizer, task.settings, task.name);
    const maxLength = modelMaxLength(model, task.settings);
    const requests = docs.flatMap((doc) => rollingWindows(tokenizer.encode(doc, { addSpecialTokens: encoding.addSpecialTokens }), encoding.prefixTokenId, maxLength, task.settings.stride ?? maxLength));
    const tokens = requests.reduce((n, r) => n + r.continuation.length, 0);
    if (tokens === 0) throw new ConfigError(`task "${task.name}": ${task.data} tokenizes to no tokens`);
    const scored = await scoreRequests(model, requests, { maxLength, batchSize: task.settings.batchSize, onProgress: task.settings.onProgress });
    const logLikelihood = scored.reduce((s, r) => s + r.logLikelihood, 0);
    const words = docs.reduce((n, d) => n + countWords(d), 0);
    const bytes = docs.reduce((n, d) => n + byteLength(d), 0);
    const metrics = {
      perplexity: Math.exp(-logLikelihood / tokens),
      word_perplexity: Math.exp(-logLikelihood / words),
      byte_perplexity: Math.exp(-logLikelihood / bytes),
      bits_per_byte: -logLikelihood / bytes / Math.LN2,
    };
    return { task: task.name, metrics: select(metrics), count: tokens };
  }
}

/**
 * Greedy last-word match (LAMBADA, lm-eval's `loglikelihood` with is_greedy): `acc` = the target's
 * tokens are each the argmax given the context and the target's earlier tokens (what greedy
 * decoding of that many tokens produces); `perplexity` = exp(−mean target log-likelihood).
 */
export class LastWordEvaluator implements Evaluator {
  readonly name = "last-word";

  async evaluate(model: LanguageModel, tokenizer: Tokenizer, spec: TaskSpec): Promise<EvalResult> {
    const task = resolveTask(spec, "last-word");
    const select = metricFilter(task, ["acc", "perplexity"]);
    const items = loadLastWordItems(task.data, task.settings.limit);
    const encoding = encodeOptionsFor(tokenizer, task.settings, task.name);
    const requests = items.map((item) => encodePair(tokenizer, item.context, item.continuation, encoding));
    const scored = await scoreRequests(model, requests, { maxLength: modelMaxLength(model, task.settings), batchSize: task.settings.batchSize, greedy: true, onProgress: task.settings.onProgress });
    const metrics = {
      ...aggregateMeans(scored.map((r) => ({ acc: r.isGreedy ? 1 : 0 })), ["acc"]),
      perplexity: Math.exp(-mean(scored.map((r) => r.logLikelihood))),
    };
    return { task: task.name, metrics: select(metrics), count: items.length };
  }
}

/** KV-cache size per token of a model (elements where the model reports them, and bytes); reads no data. */
export class KvReportEvaluator implements Evaluator {
  readonly name = "kv-report";

  async evaluate(model: LanguageModel, _tokenizer: Tokenizer, spec: TaskSpec): Promise<EvalResult> {
    const elements = (model as { kvCacheElementsPerToken?: () => number }).kvCacheElementsPerToken;
    return {
      task: spec.name,
      metrics: {
        ...(typeof elements === "function" ? { kv_elements_per_token: elements.call(model) } : {}),
        kv_bytes_per_token: model.kvCacheBytesPerToken(),
      },
      count: 0,
    };
  }
}
