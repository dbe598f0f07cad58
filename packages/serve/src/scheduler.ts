// Continuous batching: sequences wait, are prefilled into their own cache, then join the shared
// decode step; each leaves the step as soon as it ends (or its client goes away), freeing its cache.
import { Rng, sampleToken } from "@ecomla/core";
import type { SequenceCache, ServedModel } from "./model.js";

/** Why a sequence ended (OpenAI's finish_reason, plus "cancelled" for a client that left). */
export type FinishReason = "stop" | "length" | "cancelled" | "error";

/** One sequence to generate. */
export interface GenerationRequest {
  prompt: readonly number[];
  /** New tokens at most (0: prefill only, for prompt log-probs). */
  maxTokens: number;
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  seed: number;
  /** Ids that end the sequence once emitted (the model's EOS). */
  stopTokenIds: readonly number[];
  /** Ask for every prompt position's logits (echo with logprobs). */
  promptLogits: boolean;
  /** logits (T, V) of the prompt, when promptLogits. */
  onPrompt?(logits: Float32Array): void;
  /** A new token and the logits row (V) it was drawn from; return false to end the sequence (a stop string). */
  onToken(token: number, logits: Float32Array): boolean | void;
  /** Called once, last. */
  onEnd(reason: FinishReason, error?: Error): void;
}

/** A submitted sequence; cancel() ends it between steps and frees its cache. */
export interface SequenceHandle {
  cancel(): void;
}

interface Sequence {
  request: GenerationRequest;
  rng: Rng;
  cache: SequenceCache | null;
  /** Sampled, not yet fed to the model. */
  next: number;
  generated: number;
  cancelled: boolean;
  ended: boolean;
}

/** Counters the server's /metrics reads. */
export interface SchedulerStats {
  /** Sequences in the last decode step. */
  batchSize: number;
  running: number;
  waiting: number;
  /** Bytes held by the caches of running sequences. */
  cacheBytes: number;
  promptTokens: number;
  generatedTokens: number;
  decodeSteps: number;
}

/** Runs every submitted sequence through one shared decode loop, at most maxBatch at a time. */
export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private readonly running: Sequence[] = [];
  private loop: Promise<void> | null = null;
  private lastBatch = 0;
  private promptTokens = 0;
  private generatedTokens = 0;
  private decodeSteps = 0;

  constructor(readonly model: ServedModel, readonly maxBatch: number) {}

  submit(request: GenerationRequest): SequenceHandle {
    const seq: Sequence = { request, rng: new Rng(request.seed), cache: null, next: -1, generated: 0, cancelled: false, ended: false };
    this.waiting.push(seq);
    this.loop ??= this.run().finally(() => {
      this.loop = null;
      this.lastBatch = 0;
    });
    return { cancel: () => { seq.cancelled = true; } };
  }

  get stats(): SchedulerStats {
    return {
      batchSize: this.lastBatch, running: this.running.length, waiting: this.waiting.length,
      cacheBytes: this.running.reduce((n, s) => n + (s.cache?.bytes ?? 0), 0),
      promptTokens: this.promptTokens, generatedTokens: this.generatedTokens, decodeSteps: this.decodeSteps,
    };
  }

  /** Resolves when nothing is left to run. */
  async drain(): Promise<void> {
    while (this.loop) await this.loop;
  }

  private end(seq: Sequence, reason: FinishReason, error?: Error): void {
    if (seq.ended) return;
    seq.ended = true;
    seq.cache?.free();
    seq.cache = null;
    const i = this.running.indexOf(seq);
    if (i >= 0) this.running.splice(i, 1);
    try {
      seq.request.onEnd(seq.cancelled && reason !== "error" ? "cancelled" : reason, error);
    } catch {
      // A handler that throws must not stop the other sequences.
    }
  }

  /** Deliver a sampled token; true while the sequence goes on. */
  private emit(seq: Sequence, logits: Float32Array): boolean {
    const r = seq.request;
    const token = sampleToken(logits, r.temperature, r.topP, seq.rng);
    seq.generated++;
    this.generatedTokens++;
    seq.next = token;
    const goOn = r.onToken(token, logits) !== false;
    if (!goOn || r.stopTokenIds.includes(token)) {
      this.end(seq, "stop");
      return false;
    }
    if (seq.generated >= r.maxTokens) {
      this.end(seq, "length");
      return false;
    }
    return true;
  }

  private async admit(seq: Sequence): Promise<void> {
    const r = seq.request;
    if (seq.cancelled) return this.end(seq, "cancelled");
    try {
      seq.cache = this.model.open(r.prompt.length + Math.max(r.maxTokens, 1));
      this.running.push(seq);
      this.promptTokens += r.prompt.length;
      const logits = await this.model.prefill(seq.cache, r.prompt, r.promptLogits);
      const vocab = this.model.vocabSize;
      if (r.promptLogits) r.onPrompt?.(logits);
      if (seq.cancelled) return this.end(seq, "cancelled");
      if (r.maxTokens === 0) return this.end(seq, "length");
      this.emit(seq, logits.subarray(logits.length - vocab));
    } catch (err) {
      this.end(seq, "error", err as Error);
    }
  }

  private async run(): Promise<void> {
    while (this.waiting.length > 0 || this.running.length > 0) {
      while (this.waiting.length > 0 && this.running.length < this.maxBatch) {
        await this.admit(this.waiting.shift()!);
        // Send the new sequence's first token now, not after every other prefill.
        await new Promise((resolve) => setImmediate(resolve));
      }
      for (const seq of [...this.running]) if (seq.cancelled) this.end(seq, "cancelled");
      const batch = [...this.running];
      this.lastBatch = batch.length;
      if (batch.length > 0) {
        try {
          const logits = await this.model.decode(batch.map((s) => s.cache!), batch.map((s) => s.next));
          this.decodeSteps++;
          const vocab = this.model.vocabSize;
          batch.forEach((seq, b) => {
            if (!seq.ended) this.emit(seq, logits.subarray(b * vocab, (b + 1) * vocab));
          });
        } catch (err) {
          for (const seq of batch) this.end(seq, "error", err as Error);
        }
      }
      // Let the HTTP side accept new requests and notice closed connections between steps.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}
