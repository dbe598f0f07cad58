import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readFileSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import { ConfigError, Rng, type DataSource, type TokenBatch, type Tokenizer } from "@ecomla/core";
import { writeFileAtomically } from "./atomic.js";
import { parquetColumns, parquetColumnValues, pickTextColumn } from "./parquet.js";

/** A chat message as the `messages` field of chat JSONL holds it. */
export interface ChatMessage {
  role: string;
  content: string;
}

/** Render a chat with the tokenizer's template, or a plain "role: content" layout when it has none. */
export function renderChat(tokenizer: Tokenizer, messages: ChatMessage[], where: string): string {
  if (!Array.isArray(messages) || messages.some((m) => typeof m?.role !== "string" || typeof m?.content !== "string")) {
    throw new ConfigError(`${where}: "messages" must be a list of {role, content} strings`);
  }
  const hasTemplate = (tokenizer as { hasChatTemplate?: boolean }).hasChatTemplate ?? tokenizer.applyChatTemplate !== undefined;
  if (tokenizer.applyChatTemplate && hasTemplate) return tokenizer.applyChatTemplate(messages);
  return messages.map((m) => `${m.role}: ${m.content}\n`).join("");
}

/**
 * The documents of one file: a `.jsonl` file holds one `{"text": …}` or `{"messages": [...]}` per
 * line (or the string field `textField`); any other file is plain text whose documents are
 * separated by blank lines. Parquet files are read by {@link documentsOf}.
 */
export function readDocuments(file: string, tokenizer: Tokenizer, textField?: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`dataset ${file}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  if (extname(file).toLowerCase() !== ".jsonl") {
    return text.split(/\r?\n\s*\r?\n/).map((d) => d.trim()).filter((d) => d.length > 0);
  }
  const docs: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    let row: { text?: unknown; messages?: unknown } & Record<string, unknown>;
    try {
      row = JSON.parse(line) as typeof row;
    } catch (err) {
      throw new ConfigError(`${file}:${i + 1}: not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    if (textField !== undefined) docs.push(documentOf(row[textField], tokenizer, `${file}:${i + 1}: field "${textField}"`));
    else if (typeof row.text === "string") docs.push(row.text);
    else if (row.messages !== undefined) docs.push(renderChat(tokenizer, row.messages as ChatMessage[], `${file}:${i + 1}`));
    else throw new ConfigError(`${file}:${i + 1}: expected a "text" string or a "messages" list, found keys ${Object.keys(row).join(", ") || "(none)"}`);
  });
  return docs;
}

/** One document from a text value, or a `messages` list rendered with the chat template. */
function documentOf(value: unknown, tokenizer: Tokenizer, where: string): string {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return renderChat(tokenizer, value as ChatMessage[], where);
  throw new ConfigError(`${where}: expected a string or a list of {role, content} messages, found ${JSON.stringify(value)?.slice(0, 80)}`);
}

/**
 * The documents of any dataset file, one at a time: parquet files are streamed one row group at a
 * time from the column `textField` (default: "text", else "messages" rendered as a chat); JSONL and
 * text as {@link readDocuments} reads them.
 */
export async function* documentsOf(file: string, tokenizer: Tokenizer, textField?: string): AsyncGenerator<string> {
  if (extname(file).toLowerCase() !== ".parquet") {
    yield* readDocuments(file, tokenizer, textField);
    return;
  }
  const column = pickTextColumn(file, (await parquetColumns(file)).columns, textField);
  let row = 0;
  for await (const value of parquetColumnValues(file, column)) {
    if (value !== null && value !== undefined) yield documentOf(value, tokenizer, `${file}: row ${row}, column "${column}"`);
    row++;
  }
}

/** SHA-256 of a file, read as a stream (a dataset may not fit in memory). */
export async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  try {
    for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  } catch (err) {
    throw new ConfigError(`dataset ${file}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  return h.digest("hex");
}

/** SHA-256 of bytes or text, hex. */
export function sha256(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A fingerprint of a tokenizer folder (tokenizer.json + tokenizer_config.json), for cache keys. */
export function tokenizerFingerprint(dir: string): string {
  const h = createHash("sha256");
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    const p = join(dir, f);
    h.update(f).update(existsSync(p) ? readFileSync(p) : "-");
  }
  return h.digest("hex");
}

/** Tokenised documents: ids of document d are ids[offsets[d] .. offsets[d+1]) (EOS already appended). */
export interface TokenizedCorpus {
  offsets: Int32Array;
  ids: Int32Array;
}

const CACHE_MAGIC = 0x4b544345; // "ECTK" little-endian
const CACHE_VERSION = 1;

function encodeCache(c: TokenizedCorpus): Uint8Array {
  const header = new Int32Array([CACHE_MAGIC, CACHE_VERSION, c.offsets.length - 1, c.ids.length]);
  const out = new Uint8Array(4 * (header.length + c.offsets.length + c.ids.length));
  const view = new Int32Array(out.buffer);
  view.set(header, 0);
  view.set(c.offsets, header.length);
  view.set(c.ids, header.length + c.offsets.length);
  return out;
}

function decodeCache(bytes: Buffer, path: string): TokenizedCorpus | null {
  if (bytes.byteLength < 16 || bytes.byteLength % 4 !== 0) return null;
  const view = new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const [magic, version, docs, total] = view as unknown as [number, number, number, number];
  if (magic !== CACHE_MAGIC || version !== CACHE_VERSION || view.length !== 4 + docs + 1 + total) {
    process.emitWarning(`ignoring token cache ${path}: wrong format or size`);
    return null;
  }
  return { offsets: view.slice(4, 4 + docs + 1), ids: view.slice(5 + docs) };
}

/**
 * Where a data file's token cache goes by default: `.ecomla-cache` next to it, except for files of
 * the Hugging Face cache (Hub datasets), whose folders stay as huggingface_hub lays them out: their
 * token caches go to `ecomla/token-cache` beside the hub cache.
 */
function defaultTokenCacheDir(file: string): string {
  const inHub = /^(.*)[\\/]datasets--[^\\/]+[\\/]snapshots[\\/]/.exec(file);
  return inHub ? join(dirname(inHub[1]!), "ecomla", "token-cache") : join(dirname(file), ".ecomla-cache");
}

/** Options of {@link tokenizeFile}. */
export interface TokenizeOptions {
  /** Fingerprint of the tokenizer (see {@link tokenizerFingerprint}); part of the cache key. */
  tokenizerHash: string;
  /** Folder for token caches (default: `.ecomla-cache` next to the data file); null disables caching. */
  cacheDir?: string | null;
  /** The field/column holding the text (default: "text", else "messages"). */
  textField?: string;
}

/**
 * Tokenise every document of a file (appending EOS after each, so packed documents stay apart),
 * through an on-disk cache keyed by the file's and the tokenizer's hashes.
 */
export async function tokenizeFile(file: string, tokenizer: Tokenizer, options: TokenizeOptions): Promise<TokenizedCorpus> {
  const field = options.textField === undefined ? "" : `-${sha256(options.textField).slice(0, 8)}`;
  const key = `${(await sha256File(file)).slice(0, 16)}-${options.tokenizerHash.slice(0, 16)}${field}`;
  const cacheDir = options.cacheDir === undefined ? defaultTokenCacheDir(file) : options.cacheDir;
  const cachePath = cacheDir === null ? null : join(cacheDir, `${basename(file)}.${key}.tokens`);
  if (cachePath && existsSync(cachePath)) {
    const cached = decodeCache(readFileSync(cachePath), cachePath);
    if (cached) return cached;
  }
  const eos = tokenizer.eosTokenId;
  const offsets = new GrowableInt32();
  const ids = new GrowableInt32();
  offsets.push(0);
  for await (const doc of documentsOf(file, tokenizer, options.textField)) {
    const piece = tokenizer.encode(doc);
    if (eos !== null) piece.push(eos);
    ids.pushAll(piece);
    offsets.push(ids.length);
  }
  const corpus = { offsets: offsets.toArray(), ids: ids.toArray() };
  if (cachePath) {
    try {
      mkdirSync(dirname(cachePath), { recursive: true });
      await writeFileAtomically(cachePath, encodeCache(corpus));
    } catch (err) {
      // A read-only data folder must not stop training; the cache only saves time.
      process.emitWarning(`cannot write token cache ${cachePath}: ${(err as Error).message}`);
    }
  }
  return corpus;
}

/** An Int32Array that doubles as it fills (token ids of a file arrive one document at a time). */
class GrowableInt32 {
  private data = new Int32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) this.grow(this.length + 1);
    this.data[this.length++] = v;
  }
  pushAll(vs: readonly number[]): void {
    if (this.length + vs.length > this.data.length) this.grow(this.length + vs.length);
    this.data.set(vs, this.length);
    this.length += vs.length;
  }
  private grow(min: number): void {
    const next = new Int32Array(Math.max(min, this.data.length * 2));
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }
  toArray(): Int32Array {
    return this.data.slice(0, this.length);
  }
}

/** Concatenate documents (given as [start, end) slices of `ids`) and cut into rows of `rowLength`; the tail is dropped. */
export function packRows(ids: Int32Array, slices: readonly [number, number][], rowLength: number): Int32Array[] {
  const total = slices.reduce((n, [a, b]) => n + (b - a), 0);
  const stream = new Int32Array(total);
  let at = 0;
  for (const [a, b] of slices) {
    stream.set(ids.subarray(a, b), at);
    at += b - a;
  }
  const rows: Int32Array[] = [];
  for (let s = 0; s + rowLength <= total; s += rowLength) rows.push(stream.slice(s, s + rowLength));
  return rows;
}

/** Fisher-Yates permutation of [0, n) from a seeded generator. */
export function permutation(n: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** The cursor of a {@link PackedDataSource}: which epoch, and how many rows of it were served. */
export interface PackedCursor {
  epoch: number;
  index: number;
}

/** Options of {@link PackedDataSource}. */
export interface PackedDataOptions {
  /** Positions per row (the model sees seqLen inputs and seqLen next-token labels). */
  seqLen: number;
  /** Rows per batch. */
  batchSize: number;
  /** Seed of the validation split and of each epoch's shuffle. */
  seed: number;
  /** Fraction of documents held out for validation (default 0.05; at least one document when > 0 and there are two or more). */
  validationFraction?: number;
  /** Stop after this many epochs (next() returns null); default: endless. */
  epochs?: number;
}

/**
 * Packed, shuffled training rows of seqLen+1 tokens with a document-level validation split and a
 * JSON cursor: restore(state()) continues with exactly the rows an uninterrupted run would see.
 */
export class PackedDataSource implements DataSource {
  readonly name = "packed";
  /** Training rows, each (seqLen + 1). */
  readonly trainRows: Int32Array[];
  /** Validation rows, each (seqLen + 1), in a fixed order. */
  readonly validationRows: Int32Array[];
  private cursor: PackedCursor = { epoch: 0, index: 0 };
  private order: Int32Array;

  constructor(corpus: TokenizedCorpus, readonly options: PackedDataOptions) {
    const { seqLen, batchSize, seed } = options;
    if (!(Number.isInteger(seqLen) && seqLen >= 1)) throw new ConfigError(`seq_len must be an integer ≥ 1, found ${seqLen}`);
    if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new ConfigError(`batch size must be an integer ≥ 1, found ${batchSize}`);
    const docs = corpus.offsets.length - 1;
    const fraction = options.validationFraction ?? 0.05;
    const held = fraction > 0 && docs >= 2 ? Math.min(docs - 1, Math.max(1, Math.round(fraction * docs))) : 0;
    // Documents, not rows, are held out, so no validation text leaks into training rows.
    const shuffledDocs = permutation(docs, seed ^ 0x5eed);
    const validationDocs = new Set(Array.from(shuffledDocs.subarray(0, held)));
    const slice = (d: number): [number, number] => [corpus.offsets[d]!, corpus.offsets[d + 1]!];
    const all = Array.from({ length: docs }, (_, d) => d);
    this.trainRows = packRows(corpus.ids, all.filter((d) => !validationDocs.has(d)).map(slice), seqLen + 1);
    this.validationRows = packRows(corpus.ids, all.filter((d) => validationDocs.has(d)).map(slice), seqLen + 1);
    if (this.trainRows.length < 1) {
      throw new ConfigError(`dataset: ${corpus.ids.length} tokens in ${docs} documents make no training row of seq_len+1 = ${seqLen + 1} tokens`);
    }
    this.order = this.epochOrder(0);
  }

  /** Load and tokenise files, then pack them (see {@link tokenizeFile}). */
  static async fromFiles(files: readonly string[], tokenizer: Tokenizer, options: PackedDataOptions & TokenizeOptions): Promise<PackedDataSource> {
    if (files.length === 0) throw new ConfigError("dataset: no files given");
    const parts = [];
    for (const f of files) parts.push(await tokenizeFile(f, tokenizer, options));
    return new PackedDataSource(concatCorpora(parts), options);
  }

  private epochOrder(epoch: number): Int32Array {
    return permutation(this.trainRows.length, (this.options.seed + 0x9e3779b1 * (epoch + 1)) >>> 0);
  }

  /** Training positions per batch (batch · seqLen). */
  get tokensPerBatch(): number {
    return this.options.batchSize * this.options.seqLen;
  }

  async next(): Promise<TokenBatch | null> {
    const { batchSize, seqLen, epochs } = this.options;
    const rowLength = seqLen + 1;
    const tokens = new Int32Array(batchSize * rowLength);
    for (let b = 0; b < batchSize; b++) {
      if (this.cursor.index >= this.order.length) {
        if (epochs !== undefined && this.cursor.epoch + 1 >= epochs) return null;
        this.cursor = { epoch: this.cursor.epoch + 1, index: 0 };
        this.order = this.epochOrder(this.cursor.epoch);
      }
      tokens.set(this.trainRows[this.order[this.cursor.index]!]!, b * rowLength);
      this.cursor.index++;
    }
    return { tokens, batch: batchSize, seqLen };
  }

  /** Validation rows as batches of at most batchSize rows (at most maxBatches of them). */
  validationBatches(maxBatches = Infinity): TokenBatch[] {
    const { batchSize, seqLen } = this.options;
    const out: TokenBatch[] = [];
    for (let s = 0; s < this.validationRows.length && out.length < maxBatches; s += batchSize) {
      const rows = this.validationRows.slice(s, s + batchSize);
      const tokens = new Int32Array(rows.length * (seqLen + 1));
      rows.forEach((r, i) => tokens.set(r, i * (seqLen + 1)));
      out.push({ tokens, batch: rows.length, seqLen });
    }
    return out;
  }

  state(): PackedCursor {
    return { ...this.cursor };
  }

  restore(state: unknown): void {
    const s = state as Partial<PackedCursor> | null;
    if (!s || !Number.isInteger(s.epoch) || !Number.isInteger(s.index) || s.index! < 0 || s.index! > this.trainRows.length) {
      throw new ConfigError(`data cursor ${JSON.stringify(state)} does not fit this dataset (${this.trainRows.length} training rows per epoch)`);
    }
    this.cursor = { epoch: s.epoch!, index: s.index! };
    this.order = this.epochOrder(this.cursor.epoch);
  }
}

/** One corpus holding every document of several. */
export function concatCorpora(parts: readonly TokenizedCorpus[]): TokenizedCorpus {
  const docs = parts.reduce((n, p) => n + p.offsets.length - 1, 0);
  const total = parts.reduce((n, p) => n + p.ids.length, 0);
  const offsets = new Int32Array(docs + 1);
  const ids = new Int32Array(total);
  let d = 0;
  let at = 0;
  for (const p of parts) {
    for (let i = 1; i < p.offsets.length; i++) offsets[++d] = at + p.offsets[i]!;
    ids.set(p.ids, at);
    at += p.ids.length;
  }
  return { offsets, ids };
}

/** Inputs (B, T) and next-token labels (B·T) of a batch of rows of T+1 tokens. */
export function splitBatch(batch: TokenBatch): { inputs: Int32Array; labels: Int32Array } {
  const { batch: b, seqLen: t, tokens } = batch;
  const inputs = new Int32Array(b * t);
  const labels = new Int32Array(b * t);
  for (let r = 0; r < b; r++) {
    inputs.set(tokens.subarray(r * (t + 1), r * (t + 1) + t), r * t);
    labels.set(tokens.subarray(r * (t + 1) + 1, (r + 1) * (t + 1)), r * t);
  }
  return { inputs, labels };
}
