// Evaluation tasks built from the held-out test split, in the eval harness's JSONL formats:
// last-word (LAMBADA-style), continuation-4way (HellaSwag-style) and minimal-pairs (BLiMP-style).
// Every random choice comes from a PRNG seeded by the task's name, so a rebuild is byte-identical.
import { createHash } from "node:crypto";
import type { CorpusDocument } from "./corpus.js";

/** Counts tokens of a string (the tiny teacher's tokenizer), to keep items short. */
export type TokenCounter = (text: string) => number;

/** A last-word item (the harness's explicit form): the target is `continuation` = " " + word. */
export interface LastWordItem {
  context: string;
  continuation: string;
  /** Source document id. */
  doc: string;
}

/** A multiple-choice item (the harness's native form). */
export interface ChoiceItem {
  context: string;
  choices: string[];
  gold: number;
  /** Source document id. */
  doc: string;
}

/** Limits shared by the builders. */
export interface TaskOptions {
  /** Items to keep (after a seeded shuffle of every eligible one). */
  count: number;
  /** Longest context, in tokens. */
  maxContextTokens: number;
  /** Longest choice / target sentence, in tokens. */
  maxChoiceTokens: number;
}

/** Defaults: 1000 items, contexts ≤ 60 tokens, choices ≤ 40. */
export const DEFAULT_TASK_OPTIONS: TaskOptions = { count: 1000, maxContextTokens: 60, maxChoiceTokens: 40 };

/** mulberry32 seeded from SHA-256 of `seed`: uniform floats in [0, 1). */
export function seededRandom(seed: string): () => number {
  let state = createHash("sha256").update(seed).digest().readUInt32BE(0);
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Fisher–Yates shuffle in place with `random`. */
export function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/**
 * A clean sentence: starts with a capital (maybe after a quote), ends with one . ? or !, holds
 * plain ASCII, balanced brackets and quotes, and no long numbers (Brown's tables and typos stay out).
 */
export function isCleanSentence(sentence: string): boolean {
  const count = (re: RegExp) => (sentence.match(re) ?? []).length;
  return (
    /^["']?[A-Z]/.test(sentence) && /[^.?!][.?!]["']?$/.test(sentence) && !/[^\x20-\x7e]/.test(sentence) && !/\d\d\d/.test(sentence) &&
    count(/\(/g) === count(/\)/g) && count(/"/g) % 2 === 0
  );
}

/**
 * The longest run of whole sentences ending at `end` (exclusive) that fits `maxTokens` (less
 * `reserve`) and starts with a capitalised sentence (so a passage never opens mid-thought).
 */
function precedingPassage(sentences: readonly string[], end: number, maxTokens: number, countTokens: TokenCounter, reserve = 0): string {
  let passage = "";
  let best = "";
  for (let i = end - 1; i >= 0; i--) {
    const longer = passage ? `${sentences[i]} ${passage}` : sentences[i]!;
    if (countTokens(longer) + reserve > maxTokens) break;
    passage = longer;
    if (/^["']?[A-Z]/.test(sentences[i]!)) best = passage;
  }
  return best;
}

/** Words too common to make a last-word target. */
const FUNCTION_WORDS = new Set(
  ("the and that this with from have has had were was are for not but which their there they them these those " +
    "will would shall should been being into upon than then also such other more most very what when where who whom " +
    "its our your his her him she you all any can may must our out over only some each every both").split(" "),
);

/**
 * last-word: a sentence prefix → its next word, LAMBADA-style. In each clean sentence the target
 * is the last word (letters only, ≥ 3 of them, not a function word; punctuation after it dropped)
 * that also occurs earlier in the context, so it is predictable from the context as LAMBADA's are;
 * one item per sentence. The context is the sentence up to the target, preceded by the earlier
 * sentences that fit in `maxContextTokens`.
 */
export function buildLastWord(documents: readonly CorpusDocument[], countTokens: TokenCounter, options: TaskOptions = DEFAULT_TASK_OPTIONS): LastWordItem[] {
  const eligible: LastWordItem[] = [];
  for (const doc of documents) {
    doc.sentences.forEach((sentence, i) => {
      if (!isCleanSentence(sentence)) return;
      const words = sentence.split(" ");
      for (let k = words.length - 1; k >= 4; k--) {
        const word = /^([A-Za-z]{3,})[.,;:?!]?["']?$/.exec(words[k]!)?.[1];
        if (!word || FUNCTION_WORDS.has(word.toLowerCase())) continue;
        const prefix = words.slice(0, k).join(" ");
        const prefixTokens = countTokens(prefix);
        if (prefixTokens > options.maxContextTokens) continue;
        const before = precedingPassage(doc.sentences, i, options.maxContextTokens, countTokens, prefixTokens + 1);
        const context = before ? `${before} ${prefix}` : prefix;
        if (countTokens(context) > options.maxContextTokens) continue;
        const seen = new Set(context.toLowerCase().match(/[a-z]+/g) ?? []);
        if (!seen.has(word.toLowerCase())) continue;
        eligible.push({ context, continuation: ` ${word}`, doc: doc.id });
        return;
      }
    });
  }
  return shuffle(eligible, seededRandom("last-word")).slice(0, options.count);
}

/**
 * continuation-4way: a passage (the sentences before a target that fit), then four choices — the
 * true next sentence and three sentences of similar length (±25% characters) from other test
 * documents of the same source (so style alone does not give the answer); gold placed at random.
 */
export function buildContinuation(documents: readonly CorpusDocument[], countTokens: TokenCounter, options: TaskOptions = DEFAULT_TASK_OPTIONS): ChoiceItem[] {
  const random = seededRandom("continuation-4way");
  const candidates: { sentence: string; doc: CorpusDocument }[] = [];
  for (const doc of documents) {
    for (const sentence of doc.sentences) {
      const tokens = countTokens(sentence);
      if (isCleanSentence(sentence) && tokens >= 6 && tokens <= options.maxChoiceTokens) candidates.push({ sentence, doc });
    }
  }
  candidates.sort((a, b) => a.sentence.length - b.sentence.length || (a.sentence < b.sentence ? -1 : a.sentence > b.sentence ? 1 : 0));
  const targets: { context: string; sentence: string; doc: CorpusDocument }[] = [];
  for (const doc of documents) {
    doc.sentences.forEach((sentence, i) => {
      if (i === 0 || !isCleanSentence(sentence)) return;
      const tokens = countTokens(sentence);
      if (tokens < 6 || tokens > options.maxChoiceTokens) return;
      const context = precedingPassage(doc.sentences, i, options.maxContextTokens, countTokens);
      if (context === "" || countTokens(context) < 12) return;
      targets.push({ context, sentence, doc });
    });
  }
  shuffle(targets, random);
  const items: ChoiceItem[] = [];
  for (const target of targets) {
    if (items.length === options.count) break;
    const low = target.sentence.length * 0.75, high = target.sentence.length * 1.25;
    const pool = candidates.filter((c) => c.doc !== target.doc && c.doc.source === target.doc.source && c.sentence.length >= low && c.sentence.length <= high && c.sentence !== target.sentence);
    const distractors = new Set<string>();
    for (let tries = 0; distractors.size < 3 && tries < 50 && pool.length > 0; tries++) distractors.add(pool[Math.floor(random() * pool.length)]!.sentence);
    if (distractors.size < 3) continue;
    const gold = Math.floor(random() * 4);
    const choices = [...distractors];
    choices.splice(gold, 0, target.sentence);
    items.push({ context: target.context, choices, gold, doc: target.doc.id });
  }
  return items;
}

/** Words that often move freely ("they both were" / "they were both"): never swapped. */
const MOVABLE_WORDS = new Set(
  "both also not only never always often still then just even all too now already ever once so very more most well much soon again here there perhaps".split(" "),
);

/**
 * minimal-pairs: a sentence (6–30 words) against the same sentence with two adjacent lower-case
 * words swapped (never the first or the last word, so capitals and the full stop stay put; never a
 * freely movable adverb, so the swap is rarely still grammatical), with an empty context: the
 * harness scores each whole sentence after the end-of-text token.
 */
export function buildMinimalPairs(documents: readonly CorpusDocument[], countTokens: TokenCounter, options: TaskOptions = DEFAULT_TASK_OPTIONS): ChoiceItem[] {
  const random = seededRandom("minimal-pairs");
  const sentences: { sentence: string; doc: string }[] = [];
  for (const doc of documents) {
    for (const sentence of doc.sentences) {
      const words = sentence.split(" ");
      if (isCleanSentence(sentence) && words.length >= 6 && words.length <= 30 && countTokens(sentence) <= options.maxContextTokens) sentences.push({ sentence, doc: doc.id });
    }
  }
  shuffle(sentences, random);
  const items: ChoiceItem[] = [];
  const used = new Set<string>();
  for (const { sentence, doc } of sentences) {
    if (items.length === options.count) break;
    if (used.has(sentence)) continue;
    const words = sentence.split(" ");
    const swappable: number[] = [];
    for (let j = 1; j + 2 < words.length; j++) {
      const [a, b] = [words[j]!, words[j + 1]!];
      const fixed = (w: string) => /^[a-z]+$/.test(w) && !MOVABLE_WORDS.has(w) && !w.endsWith("ly");
      if (fixed(a) && fixed(b) && a !== b) swappable.push(j);
    }
    if (swappable.length === 0) continue;
    const j = swappable[Math.floor(random() * swappable.length)]!;
    const corrupted = [...words];
    [corrupted[j], corrupted[j + 1]] = [words[j + 1]!, words[j]!];
    const gold = random() < 0.5 ? 0 : 1;
    const choices = gold === 0 ? [sentence, corrupted.join(" ")] : [corrupted.join(" "), sentence];
    used.add(sentence);
    items.push({ context: "", choices, gold, doc });
  }
  return items;
}
