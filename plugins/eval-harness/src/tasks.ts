// Task cards (YAML or JSON) and task data files (JSONL, plain text), with errors that name the file,
// the line and the key.
import { readFileSync } from "node:fs";
import { basename, dirname, extname, resolve as resolvePath } from "node:path";
import YAML from "yaml";
import { ConfigError, type TaskSpec } from "@ecomla/core";
import { DocReader, MC_FORMATS, describeValue, detectFormat, toMcItem, type McFormat, type McItem } from "./adapters.js";

/** The kinds of task, each scored by the evaluator of the same name. */
export const TASK_TYPES = ["multiple-choice", "perplexity", "last-word"] as const;

/** One of {@link TASK_TYPES}. */
export type TaskType = (typeof TASK_TYPES)[number];

/** Settings a card or the caller may give (the caller's win). */
export interface TaskSettings {
  /** Items (documents for perplexity) to take from the start of the data; all when absent. */
  limit?: number;
  /** Requests per forward. */
  batchSize?: number;
  /** Context window; default the model's max_position_embeddings, else 2048. */
  maxLength?: number;
  /** Perplexity window stride; default maxLength (lm-eval's disjoint rolling windows). */
  stride?: number;
  /** Between context and choice (lm-eval's target_delimiter), default " ". */
  targetDelimiter?: string;
  /** Token standing in for an empty context; default the tokenizer's end-of-text (EOS) token. */
  prefixTokenId?: number;
  /** Let the tokenizer add its special tokens (BOS); default: as tokenizer_config.json's add_bos_token says. */
  addBosToken?: boolean;
  /** Multiple-choice data format (default: detected from the first line's keys). */
  format?: McFormat | "auto";
  /** Metrics to report (default: all the evaluator computes). */
  metrics?: string[];
  /** Called as items are scored. */
  onProgress?: (done: number, total: number) => void;
}

/** A task card: what the data is and how to score it. */
export interface TaskCard {
  name: string;
  type: TaskType;
  /** Absolute path of the data (given relative to the card). */
  data: string;
  description?: string;
  settings: TaskSettings;
  /** The card's own path. */
  source: string;
}

/** A task ready to load: its data path, type and merged settings. */
export interface ResolvedTask {
  name: string;
  type: TaskType;
  data: string;
  settings: TaskSettings;
}

/** Whether a path names a task card (YAML or JSON) rather than a data file. */
export function isCardPath(path: string): boolean {
  return [".yaml", ".yml", ".json"].includes(extname(path).toLowerCase());
}

const CARD_KEYS: Record<string, keyof TaskSettings | null> = {
  name: null, type: null, data: null, description: null, metrics: "metrics", format: "format", limit: "limit",
  batch_size: "batchSize", max_length: "maxLength", stride: "stride", target_delimiter: "targetDelimiter",
  prefix_token_id: "prefixTokenId", add_bos_token: "addBosToken",
};

/** Check one setting's type; `where` names the file/flag and `key` the name the user wrote. */
function checkSetting(key: keyof TaskSettings, value: unknown, where: string, shown: string): void {
  const bad = (expected: string) => {
    throw new ConfigError(`${where}: "${shown}" must be ${expected}, found ${describeValue(value)}`);
  };
  switch (key) {
    case "limit": case "batchSize": case "maxLength": case "stride":
      if (typeof value !== "number" || !Number.isInteger(value) || value < 1) bad("an integer ≥ 1");
      break;
    case "prefixTokenId":
      if (typeof value !== "number" || !Number.isInteger(value) || value < 0) bad("a token id (integer ≥ 0)");
      break;
    case "targetDelimiter":
      if (typeof value !== "string") bad("a string");
      break;
    case "addBosToken":
      if (typeof value !== "boolean") bad("true or false");
      break;
    case "format":
      if (typeof value !== "string" || ![...MC_FORMATS, "auto"].includes(value)) bad(`one of ${[...MC_FORMATS, "auto"].join(", ")}`);
      break;
    case "metrics":
      if (!Array.isArray(value) || !value.every((m) => typeof m === "string")) bad("a list of metric names");
      break;
    case "onProgress":
      if (typeof value !== "function") bad("a function");
      break;
  }
}

/** Read a task card: name, type, data (relative to the card), metrics, description and settings. */
export function readTaskCard(path: string): TaskCard {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read task card ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = extname(path).toLowerCase() === ".json" ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    throw new ConfigError(`task card ${path} is not valid ${extname(path).toLowerCase() === ".json" ? "JSON" : "YAML"}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new ConfigError(`task card ${path}: expected a mapping, found ${describeValue(parsed)}`);
  const card = parsed as Record<string, unknown>;
  const settings: TaskSettings = {};
  for (const [key, value] of Object.entries(card)) {
    if (!(key in CARD_KEYS)) throw new ConfigError(`task card ${path}: unknown key "${key}"; known keys: ${Object.keys(CARD_KEYS).join(", ")}`);
    const setting = CARD_KEYS[key];
    if (setting) {
      checkSetting(setting, value, `task card ${path}`, key);
      (settings as Record<string, unknown>)[setting] = value;
    }
  }
  const str = (key: string) => {
    const v = card[key];
    if (v !== undefined && typeof v !== "string") throw new ConfigError(`task card ${path}: "${key}" must be a string, found ${describeValue(v)}`);
    return v as string | undefined;
  };
  const type = str("type") ?? "multiple-choice";
  if (!(TASK_TYPES as readonly string[]).includes(type)) throw new ConfigError(`task card ${path}: "type" must be one of ${TASK_TYPES.join(", ")}, found "${type}"`);
  const data = str("data");
  if (data === undefined) throw new ConfigError(`task card ${path}: missing key "data" (the task's data file, relative to the card)`);
  return {
    name: str("name") ?? basename(path, extname(path)),
    type: type as TaskType,
    data: resolvePath(dirname(resolvePath(path)), data),
    description: str("description"),
    settings,
    source: path,
  };
}

/**
 * The task a {@link TaskSpec} names for an evaluator of `type`: a card (its settings under the
 * spec's options) or a data file (the spec's options only).
 */
export function resolveTask(spec: TaskSpec, type: TaskType): ResolvedTask {
  if (!spec.path) throw new ConfigError(`${type}: task "${spec.name}" has no path (a task card or a data file)`);
  const options: TaskSettings = {};
  for (const [key, value] of Object.entries(spec.options ?? {})) {
    if (value === undefined) continue;
    checkSetting(key as keyof TaskSettings, value, `task "${spec.name}" options`, key);
    (options as Record<string, unknown>)[key] = value;
  }
  if (!isCardPath(spec.path)) return { name: spec.name, type, data: spec.path, settings: options };
  const card = readTaskCard(spec.path);
  if (card.type !== type) throw new ConfigError(`task card ${spec.path} is a ${card.type} task; the ${type} evaluator cannot score it (use the "${card.type}" evaluator)`);
  return { name: spec.name || card.name, type, data: card.data, settings: { ...card.settings, ...options } };
}

/** One parsed JSONL line and where it came from. */
export interface JsonlLine {
  value: unknown;
  /** "file:line" */
  where: string;
}

/** Parse a JSONL file (blank lines skipped), up to `limit` records; bad JSON names the file and line. */
export function readJsonl(path: string, limit?: number): JsonlLine[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read task data ${path}: ${(err as Error).message}`, { cause: err });
  }
  const out: JsonlLine[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length && (limit === undefined || out.length < limit); i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    const where = `${path}:${i + 1}`;
    try {
      out.push({ value: JSON.parse(line), where });
    } catch (err) {
      throw new ConfigError(`${where}: not valid JSON: ${(err as Error).message}`, { cause: err });
    }
  }
  if (out.length === 0) throw new ConfigError(`${path}: no items (an empty task file)`);
  return out;
}

/** Multiple-choice items of a JSONL file; the format is the first line's unless given. */
export function loadMcItems(path: string, format: McFormat | "auto" = "auto", limit?: number): McItem[] {
  const lines = readJsonl(path, limit);
  let chosen = format;
  if (chosen === "auto") {
    const first = lines[0]!;
    const detected = typeof first.value === "object" && first.value !== null && !Array.isArray(first.value) ? detectFormat(first.value as Record<string, unknown>) : null;
    // An undetectable first line still gets toMcItem's own error (which lists its keys).
    if (detected) chosen = detected;
  }
  return lines.map((l) => toMcItem(l.value, l.where, chosen));
}

/** A last-word item: the context and the target continuation (with its leading space). */
export interface LastWordItem {
  context: string;
  continuation: string;
}

/**
 * Last-word items of a JSONL file: `{"text"}` split as lm-eval's lambada (context = all words but
 * the last, joined by " "; target = " " + last word), or an explicit `{"context", "continuation"}`.
 */
export function loadLastWordItems(path: string, limit?: number): LastWordItem[] {
  return readJsonl(path, limit).map(({ value, where }) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new ConfigError(`${where}: expected a JSON object per line, found ${describeValue(value)}`);
    const r = new DocReader(value as Record<string, unknown>, where, "last-word");
    if ("text" in r.doc) {
      const words = r.string("text").split(" ");
      return { context: words.slice(0, -1).join(" "), continuation: " " + words[words.length - 1] };
    }
    return { context: r.string("context"), continuation: r.string("continuation") };
  });
}

/** Perplexity documents: each `{"text"}` line of a .jsonl file, or a whole text file as one. */
export function loadPerplexityDocs(path: string, limit?: number): string[] {
  if (extname(path).toLowerCase() === ".jsonl") {
    return readJsonl(path, limit).map(({ value, where }) => {
      if (typeof value !== "object" || value === null || Array.isArray(value)) throw new ConfigError(`${where}: expected a JSON object per line, found ${describeValue(value)}`);
      return new DocReader(value as Record<string, unknown>, where, "perplexity").string("text");
    });
  }
  try {
    return [readFileSync(path, "utf8")];
  } catch (err) {
    throw new ConfigError(`cannot read perplexity text ${path}: ${(err as Error).message}`, { cause: err });
  }
}
