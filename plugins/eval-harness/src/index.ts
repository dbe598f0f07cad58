// @ecomla/eval-harness: evaluators that score the way lm-evaluation-harness does, so ecomla's
// numbers compare with the paper's. Registered by name: multiple-choice, perplexity, last-word, kv-report.
import { provide, type EcomlaPlugin } from "@ecomla/core";
import { KvReportEvaluator, LastWordEvaluator, MultipleChoiceEvaluator, PerplexityEvaluator } from "./evaluators.js";

export { MultipleChoiceEvaluator, PerplexityEvaluator, LastWordEvaluator, KvReportEvaluator, modelMaxLength, encodeOptionsFor } from "./evaluators.js";
export { encodePair, scoreRequests, rollingWindows, tokenNegLogLikelihoods, modelBackend, type TokenRequest, type LoglikelihoodResult, type ScoreOptions, type EncodeOptions } from "./scoring.js";
export { toMcItem, detectFormat, hellaswagPreprocess, MC_FORMATS, type McItem, type McFormat } from "./adapters.js";
export {
  readTaskCard, resolveTask, isCardPath, readJsonl, loadMcItems, loadLastWordItems, loadPerplexityDocs, TASK_TYPES,
  type TaskType, type TaskCard, type TaskSettings, type ResolvedTask, type LastWordItem, type JsonlLine,
} from "./tasks.js";
export { scoreChoices, firstArgmax, meanStderr, charLength, byteLength, countWords, type McOutcome } from "./metrics.js";

/** The plugin: registers the four evaluators. */
const plugin: EcomlaPlugin = {
  name: "@ecomla/eval-harness",
  version: "0.0.0",
  register(container) {
    provide(container, "evaluator", "multiple-choice", { useValue: new MultipleChoiceEvaluator() }, { description: "lm-eval multiple-choice log-likelihood: acc, acc_norm (per char), acc_bytes" });
    provide(container, "evaluator", "perplexity", { useValue: new PerplexityEvaluator() }, { description: "sliding-window perplexity: token, word, byte perplexity, bits per byte" });
    provide(container, "evaluator", "last-word", { useValue: new LastWordEvaluator() }, { description: "LAMBADA-style greedy last-word match: acc, perplexity" });
    provide(container, "evaluator", "kv-report", { useValue: new KvReportEvaluator() }, { description: "KV-cache elements and bytes per token" });
  },
};
export default plugin;
