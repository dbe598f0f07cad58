// A byte-level BPE trainer and encoder (GPT-2 style), written here because the npm `tokenizers`
// binding trains BPE without a vocabulary-size option. Its output is a Hugging Face tokenizer.json
// (BPE model, ByteLevel pre-tokenizer, decoder and post-processor); the encoder below is a second,
// independent implementation that tests compare against @huggingface/tokenizers.

/** GPT-2's pre-tokenization pattern (also the HF ByteLevel pre-tokenizer's, with use_regex). */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** The end-of-text token: BOS, EOS and padding of the tiny teacher. */
export const END_OF_TEXT = "<|endoftext|>";

/**
 * GPT-2's byte → printable character table: printable Latin-1 bytes map to themselves, the rest
 * to U+0100 upwards in byte order, so every token is a string of visible characters.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table: string[] = new Array(256);
  let next = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable.includes(b) ? b : 256 + next++);
  return table;
})();

/** Inverse of {@link BYTE_TO_CHAR}. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const utf8 = new TextEncoder();

/** The pieces GPT-2 pre-tokenization cuts a text into (their concatenation is the text). */
export function preTokenize(text: string): string[] {
  return text.match(GPT2_PATTERN) ?? [];
}

/** Add each pre-tokenized piece of `text` to `counts` (piece → occurrences). */
export function countPieces(text: string, counts: Map<string, number> = new Map()): Map<string, number> {
  for (const piece of preTokenize(text)) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  return counts;
}

/** A trained byte-level BPE: token strings (byte-level characters) by id, merges in rank order. */
export interface BpeModel {
  /** Token string of each id: ids 0–255 are the bytes, then merge products, then special tokens. */
  vocab: string[];
  /** Merges in rank order (earlier merges apply first), as pairs of token strings. */
  merges: [string, string][];
  /** Special tokens (ids at the end of `vocab`). */
  specialTokens: string[];
}

/** Options of {@link trainBpe}. */
export interface TrainBpeOptions {
  /** Total vocabulary, special tokens included (default 4096). */
  vocabSize?: number;
  /** Appended after the merges (default [END_OF_TEXT]). */
  specialTokens?: string[];
  /** A pair seen fewer times than this is never merged (default 2). */
  minPairCount?: number;
  /** Called every `progressEvery` merges (default 500). */
  onProgress?: (merges: number, vocabSize: number) => void;
  progressEvery?: number;
}

/** Max-heap of (count, pair key): higher count first, ties to the smaller key (older tokens first). */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private before(i: number, j: number): boolean {
    const ci = this.counts[i]!, cj = this.counts[j]!;
    return ci !== cj ? ci > cj : this.keys[i]! < this.keys[j]!;
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
    [this.keys[i], this.keys[j]] = [this.keys[j]!, this.keys[i]!];
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.keys.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): { count: number; key: number } {
    const top = { count: this.counts[0]!, key: this.keys[0]! };
    const lastCount = this.counts.pop()!, lastKey = this.keys.pop()!;
    if (this.keys.length > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1, right = left + 1;
        let best = i;
        if (left < this.keys.length && this.before(left, best)) best = left;
        if (right < this.keys.length && this.before(right, best)) best = right;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/** Pair of token ids as one number (vocabularies stay below 2^16). */
const PAIR_BASE = 65536;

/**
 * Train a byte-level BPE on piece counts (from {@link countPieces}): start from the 256 bytes,
 * repeatedly merge the most frequent adjacent pair (ties: the pair of older tokens, by id) until
 * the vocabulary (special tokens included) reaches `vocabSize`. Pair counts are updated
 * incrementally: a merge revisits only the words that contain the merged pair, and stale heap
 * entries are re-queued with their current count when they surface.
 */
export function trainBpe(pieceCounts: ReadonlyMap<string, number>, options: TrainBpeOptions = {}): BpeModel {
  const vocabSize = options.vocabSize ?? 4096;
  const specialTokens = options.specialTokens ?? [END_OF_TEXT];
  const minPairCount = options.minPairCount ?? 2;
  const progressEvery = options.progressEvery ?? 500;
  const targetTokens = vocabSize - specialTokens.length;
  if (targetTokens < 256 || vocabSize >= PAIR_BASE) throw new RangeError(`trainBpe: vocabSize must be in [${256 + specialTokens.length}, ${PAIR_BASE - 1}], found ${vocabSize}`);

  const vocab = [...BYTE_TO_CHAR];
  const idOf = new Map(vocab.map((token, id) => [token, id]));
  const merges: [string, string][] = [];

  // Words in sorted order, so ids and ties never depend on Map insertion order.
  const pieces = [...pieceCounts.keys()].sort();
  const words: number[][] = pieces.map((p) => Array.from(utf8.encode(p)));
  const freq = pieces.map((p) => pieceCounts.get(p)!);

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  words.forEach((word, w) => {
    for (let i = 0; i + 1 < word.length; i++) {
      const key = word[i]! * PAIR_BASE + word[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + freq[w]!);
      let set = pairWords.get(key);
      if (!set) pairWords.set(key, (set = new Set()));
      set.add(w);
    }
  });
  const heap = new PairHeap();
  for (const [key, count] of pairCount) heap.push(count, key);

  while (vocab.length < targetTokens && heap.size > 0) {
    const { count, key } = heap.pop();
    const current = pairCount.get(key) ?? 0;
    if (count !== current) {
      if (current > 0) heap.push(current, key);
      continue;
    }
    if (count < minPairCount) break;
    const left = Math.floor(key / PAIR_BASE), right = key % PAIR_BASE;
    const merged = vocab[left]! + vocab[right]!;
    let mergedId = idOf.get(merged);
    if (mergedId === undefined) {
      mergedId = vocab.length;
      vocab.push(merged);
      idOf.set(merged, mergedId);
    }
    merges.push([vocab[left]!, vocab[right]!]);

    // Net change of every pair count touched by this merge, applied once at the end.
    const delta = new Map<number, number>();
    const bump = (k: number, by: number) => delta.set(k, (delta.get(k) ?? 0) + by);
    const affected = pairWords.get(key)!;
    pairWords.delete(key);
    for (const w of affected) {
      const word = words[w]!;
      const f = freq[w]!;
      const out: number[] = [];
      let found = false;
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && word[i] === left && word[i + 1] === right) {
          out.push(mergedId);
          i++;
          found = true;
        } else {
          out.push(word[i]!);
        }
      }
      if (!found) continue; // stale: an earlier merge already consumed this word's pair
      for (let i = 0; i + 1 < word.length; i++) bump(word[i]! * PAIR_BASE + word[i + 1]!, -f);
      for (let i = 0; i + 1 < out.length; i++) {
        const k = out[i]! * PAIR_BASE + out[i + 1]!;
        bump(k, f);
        if (k !== key) {
          let set = pairWords.get(k);
          if (!set) pairWords.set(k, (set = new Set()));
          set.add(w);
        }
      }
      words[w] = out;
    }
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const now = (pairCount.get(k) ?? 0) + d;
      if (now > 0) pairCount.set(k, now);
      else pairCount.delete(k);
      if (d > 0) heap.push(now, k);
    }
    if (options.onProgress && merges.length % progressEvery === 0) options.onProgress(merges.length, vocab.length);
  }
  return { vocab: [...vocab, ...specialTokens], merges, specialTokens };
}

/**
 * Encode and decode with a {@link BpeModel}: GPT-2 pre-tokenization, then in each piece the
 * lowest-ranked adjacent pair is merged (leftmost first) until no pair has a rank. Special
 * tokens in the text are matched first, as whole strings.
 */
export class BpeEncoder {
  private readonly idOf: Map<string, number>;
  /** Pair key → rank and the id it merges into. */
  private readonly mergeOf = new Map<number, { rank: number; id: number }>();
  private readonly specialPattern: RegExp | null;
  private readonly cache = new Map<string, number[]>();

  constructor(readonly model: BpeModel) {
    this.idOf = new Map(model.vocab.map((token, id) => [token, id]));
    model.merges.forEach(([a, b], rank) => {
      const left = this.id(a), right = this.id(b), merged = this.id(a + b);
      const key = left * PAIR_BASE + right;
      if (!this.mergeOf.has(key)) this.mergeOf.set(key, { rank, id: merged });
    });
    const escaped = model.specialTokens.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    this.specialPattern = escaped.length ? new RegExp(`(${escaped.join("|")})`) : null;
  }

  private id(token: string): number {
    const id = this.idOf.get(token);
    if (id === undefined) throw new Error(`BpeEncoder: merge token ${JSON.stringify(token)} is not in the vocabulary`);
    return id;
  }

  /** Vocabulary size, special tokens included. */
  get vocabSize(): number {
    return this.model.vocab.length;
  }

  /** Token ids of one pre-tokenized piece. */
  encodePiece(piece: string): number[] {
    const cached = this.cache.get(piece);
    if (cached) return cached;
    const ids = Array.from(utf8.encode(piece));
    for (;;) {
      let best = -1, bestRank = Infinity, bestId = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const m = this.mergeOf.get(ids[i]! * PAIR_BASE + ids[i + 1]!);
        if (m && m.rank < bestRank) {
          best = i;
          bestRank = m.rank;
          bestId = m.id;
        }
      }
      if (best < 0) break;
      ids.splice(best, 2, bestId);
    }
    if (this.cache.size < 200_000) this.cache.set(piece, ids);
    return ids;
  }

  /** Token ids of a text (no special tokens added). */
  encode(text: string): number[] {
    const out: number[] = [];
    const parts = this.specialPattern ? text.split(this.specialPattern) : [text];
    parts.forEach((part, i) => {
      if (i % 2 === 1) out.push(this.id(part));
      else for (const piece of preTokenize(part)) out.push(...this.encodePiece(piece));
    });
    return out;
  }

  /** The text of token ids (special tokens written out). */
  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    let text = "";
    const flush = () => {
      text += new TextDecoder().decode(new Uint8Array(bytes));
      bytes.length = 0;
    };
    for (const id of ids) {
      const token = this.model.vocab[id];
      if (token === undefined) throw new RangeError(`BpeEncoder.decode: id ${id} is outside the vocabulary (size ${this.vocabSize})`);
      if (this.model.specialTokens.includes(token)) {
        flush();
        text += token;
        continue;
      }
      for (const ch of token) bytes.push(CHAR_TO_BYTE.get(ch)!);
    }
    flush();
    return text;
  }
}

/** A Hugging Face tokenizer.json for a {@link BpeModel} (merges in the "a b" form every reader takes). */
export function toTokenizerJson(model: BpeModel): Record<string, unknown> {
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const firstSpecial = model.vocab.length - model.specialTokens.length;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: model.specialTokens.map((content, i) => ({ id: firstSpecial + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(model.vocab.slice(0, firstSpecial).map((token, id) => [token, id])),
      merges: model.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/** tokenizer_config.json: end-of-text as BOS/EOS/pad, no BOS added, no decode clean-up (lossless). */
export function toTokenizerConfig(model: BpeModel, modelMaxLength: number): Record<string, unknown> {
  const firstSpecial = model.vocab.length - model.specialTokens.length;
  return {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: END_OF_TEXT,
    eos_token: END_OF_TEXT,
    pad_token: END_OF_TEXT,
    unk_token: null,
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    clean_up_tokenization_spaces: false,
    model_max_length: modelMaxLength,
    added_tokens_decoder: Object.fromEntries(
      model.specialTokens.map((content, i) => [String(firstSpecial + i), { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }]),
    ),
  };
}

/** Read a {@link BpeModel} back from a tokenizer.json written by {@link toTokenizerJson}. */
export function fromTokenizerJson(json: Record<string, unknown>): BpeModel {
  const model = json["model"] as { type?: unknown; vocab?: Record<string, number>; merges?: unknown[] } | undefined;
  if (!model || model.type !== "BPE" || !model.vocab || !Array.isArray(model.merges)) throw new Error(`tokenizer.json: expected model.type "BPE" with vocab and merges, found ${JSON.stringify(model?.type)}`);
  const added = (json["added_tokens"] as { id: number; content: string }[] | undefined) ?? [];
  const vocab: string[] = [];
  for (const [token, id] of Object.entries(model.vocab)) vocab[id] = token;
  for (const { id, content } of added) vocab[id] = content;
  if (vocab.some((t) => t === undefined) || vocab.length !== Object.keys(model.vocab).length + added.length) throw new Error("tokenizer.json: vocabulary ids are not contiguous from 0");
  const merges = model.merges.map((m) => (Array.isArray(m) ? [m[0], m[1]] : String(m).split(" ", 2)) as [string, string]);
  return { vocab, merges, specialTokens: added.map((a) => a.content) };
}
