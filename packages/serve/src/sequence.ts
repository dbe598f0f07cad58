// One choice of a completion: tokens → text (stop strings, held-back partial characters), the
// log-prob entries, and the deltas a stream sends.
import type { Tokenizer } from "@ecomla/core";
import { positionLogprobs, type PositionLogprobs } from "./logprobs.js";
import type { FinishReason, Scheduler } from "./scheduler.js";

/** A choice's settings after validation. */
export interface SequenceJob {
  prompt: number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  stop: string[];
  /** Top-n log-probs per token (null: none). */
  logprobs: number | null;
  /** Prompt log-probs too (completions' echo with logprobs). */
  promptLogprobs: boolean;
}

/** What a stream sends since its last delta. */
export interface SequenceDelta {
  /** The prompt's log-prob entries, sent once after the prefill (echo with logprobs). */
  prompt?: SequenceOutcome["promptLogprobs"];
  text: string;
  logprobs: PositionLogprobs[];
}

/** A finished choice. */
export interface SequenceOutcome {
  text: string;
  tokens: number[];
  finishReason: Exclude<FinishReason, "cancelled" | "error">;
  /** The prompt's log-prob entries (first one has no context: logprob null). */
  promptLogprobs: (PositionLogprobs | { token: number; logprob: null })[];
  logprobs: PositionLogprobs[];
}

/** Error raised when a sequence ends without a result (client gone, model failure). */
export class SequenceAborted extends Error {}

/** Text of ids, special tokens skipped (as vLLM returns completions), or "" without a tokenizer. */
function textOf(tokenizer: Tokenizer | null, ids: readonly number[]): string {
  return tokenizer ? tokenizer.decode(ids, { skipSpecialTokens: true }) : "";
}

/** Submit one choice; `onDelta` (streams) gets text as it becomes final. */
export function startSequence(scheduler: Scheduler, tokenizer: Tokenizer | null, eos: readonly number[], job: SequenceJob, onDelta?: (delta: SequenceDelta) => void): { done: Promise<SequenceOutcome>; cancel(): void } {
  const tokens: number[] = [];
  const entries: PositionLogprobs[] = [];
  const promptEntries: SequenceOutcome["promptLogprobs"] = [];
  let text = "";
  let sentChars = 0;
  let sentEntries = 0;
  const holdBack = job.stop.reduce((n, s) => Math.max(n, s.length - 1), 0);
  const flush = (final: boolean) => {
    if (!onDelta) return;
    // Hold back a trailing replacement character (a multi-byte character cut between tokens) and
    // what could still become a stop string.
    let end = text.length;
    if (!final) {
      while (end > sentChars && text.charCodeAt(end - 1) === 0xfffd) end--;
      end = Math.max(sentChars, end - holdBack);
    }
    const delta = { text: text.slice(sentChars, end), logprobs: entries.slice(sentEntries) };
    if (delta.text.length === 0 && delta.logprobs.length === 0) return;
    sentChars = end;
    sentEntries = entries.length;
    onDelta(delta);
  };
  let handle: { cancel(): void } = { cancel() {} };
  const done = new Promise<SequenceOutcome>((resolve, reject) => {
    handle = scheduler.submit({
      prompt: job.prompt, maxTokens: job.maxTokens, temperature: job.temperature, topP: job.topP, seed: job.seed,
      stopTokenIds: eos, promptLogits: job.promptLogprobs,
      onPrompt: (logits) => {
        const vocab = logits.length / job.prompt.length;
        promptEntries.push({ token: job.prompt[0]!, logprob: null });
        for (let t = 1; t < job.prompt.length; t++) {
          promptEntries.push(positionLogprobs(logits.subarray((t - 1) * vocab, t * vocab), job.prompt[t]!, job.logprobs ?? 0));
        }
        onDelta?.({ prompt: promptEntries, text: "", logprobs: [] });
      },
      onToken: (token, logits) => {
        tokens.push(token);
        if (job.logprobs !== null) entries.push(positionLogprobs(logits, token, job.logprobs));
        text = textOf(tokenizer, tokens);
        for (const s of job.stop) {
          const at = text.indexOf(s);
          if (at >= 0) {
            text = text.slice(0, at);
            return false;
          }
        }
        flush(false);
        return true;
      },
      onEnd: (reason, error) => {
        if (reason === "cancelled") return reject(new SequenceAborted("the client closed the connection"));
        if (reason === "error") return reject(error ?? new SequenceAborted("the model failed"));
        flush(true);
        resolve({ text, tokens, finishReason: reason, promptLogprobs: promptEntries, logprobs: entries });
      },
    });
  });
  return { done, cancel: () => handle.cancel() };
}
