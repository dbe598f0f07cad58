// Test doubles with closed-form log-likelihoods: a bigram "language model" whose logits are
// log-probabilities (so log-softmax returns them unchanged), a GPT-2-style piece tokenizer, and a
// word tokenizer "w0" … "wN" for the Llama fixtures.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ReferenceBackend, Tensor, ops, type LanguageModel, type TensorBackend, type Tokenizer } from "@ecomla/core";

/** Pieces: an optional leading space glued to a word (GPT-2 style), or a run of spaces. */
export class PieceTokenizer implements Tokenizer {
  readonly bosTokenId = null;
  readonly eosTokenId: number;
  readonly vocabSize: number;
  private readonly ids: Map<string, number>;
  constructor(readonly pieces: readonly string[], eos = "<eos>") {
    this.ids = new Map(pieces.map((p, i) => [p, i]));
    this.eosTokenId = this.ids.get(eos)!;
    this.vocabSize = pieces.length;
  }
  id(piece: string): number {
    const id = this.ids.get(piece);
    if (id === undefined) throw new Error(`PieceTokenizer: no piece ${JSON.stringify(piece)}`);
    return id;
  }
  encode(text: string): number[] {
    return (text.match(/ ?[^ ]+| +/g) ?? []).map((p) => this.id(p));
  }
  decode(ids: readonly number[]): string {
    return ids.map((i) => this.pieces[i]).join("");
  }
}

/** "w5 w17" → [5, 17]; EOS is 2. */
export class WordTokenizer implements Tokenizer {
  readonly bosTokenId = 1;
  readonly eosTokenId = 2;
  constructor(readonly vocabSize = 96) {}
  encode(text: string): number[] {
    return text.split(/\s+/).filter(Boolean).map((w) => {
      const id = Number(w.slice(1));
      if (!w.startsWith("w") || !Number.isInteger(id) || id >= this.vocabSize) throw new Error(`WordTokenizer: bad word ${w}`);
      return id;
    });
  }
  decode(ids: readonly number[]): string {
    return ids.map((i) => `w${i}`).join(" ");
  }
}

/**
 * A bigram model: logits[b, t] = logProbs[ids[b, t]], each row a log-probability distribution,
 * so log p(next | prev) is exactly logProbs[prev][next] (up to f32 rounding).
 */
export class BigramModel implements LanguageModel {
  readonly backend: TensorBackend = new ReferenceBackend();
  readonly vocabSize: number;
  readonly logProbs: number[][];
  readonly table: Tensor;
  forwardCalls = 0;
  /** Each row: probabilities for some next tokens; the rest of the mass spreads evenly. */
  constructor(vocab: number, rows: Record<number, Record<number, number>>) {
    this.vocabSize = vocab;
    this.logProbs = Array.from({ length: vocab }, (_, prev) => {
      const given = rows[prev] ?? {};
      const mass = Object.values(given).reduce((a, b) => a + b, 0);
      const rest = (1 - mass) / (vocab - Object.keys(given).length);
      return Array.from({ length: vocab }, (_, next) => Math.log(given[next] ?? rest));
    });
    this.table = Tensor.from(this.backend, this.logProbs.flat(), [vocab, vocab]);
  }
  lp(prev: number, next: number): number {
    return this.logProbs[prev]![next]!;
  }
  /** ids (B, T) i32 → (B, T, V) */
  forward(ids: Tensor): Tensor {
    this.forwardCalls++;
    return ops.embedding(ids, this.table);
  }
  kvCacheBytesPerToken(): number {
    return 0;
  }
}

/** A fresh temporary folder. */
export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "ecomla-eval-"));
}

/** Write `lines` (objects, or raw strings) as a JSONL file in dir; returns its path. */
export function writeJsonl(dir: string, name: string, lines: readonly unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n");
  return path;
}
