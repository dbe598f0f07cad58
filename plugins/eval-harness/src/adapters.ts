// Items of a multiple-choice task, from ecomla's own JSONL or from lm-evaluation-harness-style
// exports of ARC, HellaSwag, PIQA, WinoGrande and OpenBookQA. Each adapter reproduces the task's
// lm-eval doc_to_text / doc_to_choice / doc_to_target, so scores compare with lm-eval's.
import { ConfigError } from "@ecomla/core";

/**
 * One multiple-choice item. `choices`: every choice continues the same context (lm-eval's usual
 * form). `partial`: every choice is a context and one shared continuation is scored after each
 * (lm-eval's `multiple_inputs`, WinoGrande's partial evaluation).
 */
export type McItem =
  | { kind: "choices"; context: string; choices: string[]; gold: number }
  | { kind: "partial"; contexts: string[]; continuation: string; gold: number };

/** Formats a multiple-choice JSONL line may have. */
export const MC_FORMATS = ["native", "arc", "hellaswag", "piqa", "winogrande", "openbookqa"] as const;

/** One of {@link MC_FORMATS}. */
export type McFormat = (typeof MC_FORMATS)[number];

type Doc = Record<string, unknown>;

/** What a JSON value is, for error messages. */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

/** Typed reads of a JSONL line's keys; errors say where, which key, what was expected and found. */
export class DocReader {
  constructor(
    readonly doc: Doc,
    /** "file:line", prefixed to every error. */
    readonly where: string,
    readonly format: string,
  ) {}

  fail(message: string): never {
    throw new ConfigError(`${this.where}: ${message} (${this.format} format)`);
  }

  private get(key: string): unknown {
    if (!(key in this.doc)) this.fail(`missing key "${key}"`);
    return this.doc[key];
  }

  string(key: string): string {
    const v = this.get(key);
    if (typeof v !== "string") this.fail(`key "${key}" must be a string, found ${describeValue(v)}`);
    return v;
  }

  stringList(key: string, v: unknown = this.get(key)): string[] {
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "string")) {
      this.fail(`key "${key}" must be a non-empty list of strings, found ${Array.isArray(v) ? `[${v.map(describeValue).join(", ")}]` : describeValue(v)}`);
    }
    return v as string[];
  }

  /** An integer, or a string holding one (HF exports store some labels as "0"/"1"). */
  index(key: string): number {
    const v = this.get(key);
    const n = typeof v === "string" && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n)) this.fail(`key "${key}" must be an integer index, found ${describeValue(v)}`);
    return n;
  }

  /** `{ text: [...], label: [...] }` as ARC and OpenBookQA export their choices. */
  labelledChoices(key: string): { text: string[]; label: string[] } {
    const v = this.get(key);
    if (typeof v !== "object" || v === null || Array.isArray(v)) this.fail(`key "${key}" must be an object { text, label }, found ${describeValue(v)}`);
    const o = v as Doc;
    const text = this.stringList(`${key}.text`, o["text"]);
    const label = this.stringList(`${key}.label`, o["label"]);
    if (text.length !== label.length) this.fail(`key "${key}" has ${text.length} texts but ${label.length} labels`);
    return { text, label };
  }

  goldIn(gold: number, count: number, key: string): number {
    if (gold < 0 || gold >= count) this.fail(`key "${key}" = ${gold} is not the index of one of the ${count} choices`);
    return gold;
  }
}

/** Python's str.capitalize(): first character upper-case, the rest lower-case. */
function capitalize(s: string): string {
  const [first = "", ...rest] = [...s];
  return first.toUpperCase() + rest.join("").toLowerCase();
}

/** lm-eval's HellaSwag `preprocess`: strip, " [title]" → ". ", drop [bracketed] artifacts, squeeze double spaces once. */
export function hellaswagPreprocess(text: string): string {
  return text.trim().replaceAll(" [title]", ". ").replace(/\[.*?\]/g, "").replaceAll("  ", " ");
}

function arcLike(r: DocReader, context: string, answerKey: string): McItem {
  const { text, label } = r.labelledChoices("choices");
  const gold = label.indexOf(answerKey);
  if (gold < 0) r.fail(`answerKey ${JSON.stringify(answerKey)} is not one of the choice labels [${label.join(", ")}]`);
  return { kind: "choices", context, choices: text, gold };
}

const ADAPTERS: Record<McFormat, (r: DocReader) => McItem> = {
  native(r) {
    if ("contexts" in r.doc) {
      const contexts = r.stringList("contexts");
      return { kind: "partial", contexts, continuation: r.string("continuation"), gold: r.goldIn(r.index("gold"), contexts.length, "gold") };
    }
    const choices = r.stringList("choices");
    return { kind: "choices", context: r.string("context"), choices, gold: r.goldIn(r.index("gold"), choices.length, "gold") };
  },
  // arc_easy / arc_challenge: "Question: {{question}}\nAnswer:", choices.text, label index of answerKey.
  arc: (r) => arcLike(r, `Question: ${r.string("question")}\nAnswer:`, r.string("answerKey")),
  // openbookqa: question_stem, choices.text, label index of answerKey.lstrip().
  openbookqa: (r) => arcLike(r, r.string("question_stem"), r.string("answerKey").trimStart()),
  // piqa: "Question: {{goal}}\nAnswer:", [sol1, sol2], label.
  piqa(r) {
    const choices = [r.string("sol1"), r.string("sol2")];
    return { kind: "choices", context: `Question: ${r.string("goal")}\nAnswer:`, choices, gold: r.goldIn(r.index("label"), 2, "label") };
  },
  // hellaswag process_docs: query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()).
  hellaswag(r) {
    const ctx = "ctx_a" in r.doc || "ctx_b" in r.doc ? `${r.string("ctx_a")} ${capitalize(r.string("ctx_b"))}` : r.string("ctx");
    const choices = r.stringList("endings").map(hellaswagPreprocess);
    return { kind: "choices", context: hellaswagPreprocess(`${r.string("activity_label")}: ${ctx}`), choices, gold: r.goldIn(r.index("label"), choices.length, "label") };
  },
  // winogrande (partial evaluation): each option replaces "_" and ends its context; the rest of the
  // sentence, stripped, is the shared continuation; answer "1"/"2".
  winogrande(r) {
    const sentence = r.string("sentence");
    const blank = sentence.indexOf("_");
    if (blank < 0) r.fail(`key "sentence" has no "_" blank: ${describeValue(sentence)}`);
    const contexts = [r.string("option1"), r.string("option2")].map((option) => sentence.slice(0, blank) + option);
    const answer = r.index("answer");
    if (answer !== 1 && answer !== 2) r.fail(`key "answer" must be "1" or "2", found ${describeValue(r.doc["answer"])}`);
    return { kind: "partial", contexts, continuation: sentence.slice(blank + 1).trim(), gold: answer - 1 };
  },
};

/** The format a line's keys announce, by each format's signature key (null: none matches). */
export function detectFormat(doc: Doc): McFormat | null {
  const has = (...keys: string[]) => keys.some((k) => k in doc);
  if (has("question_stem")) return "openbookqa";
  if (has("question")) return "arc";
  if (has("endings")) return "hellaswag";
  if (has("goal", "sol1")) return "piqa";
  if (has("sentence", "option1")) return "winogrande";
  if (has("context", "contexts", "choices", "gold")) return "native";
  return null;
}

/** Turn one parsed JSONL line into an item, in the given format (or the one its keys announce). */
export function toMcItem(value: unknown, where: string, format: McFormat | "auto" = "auto"): McItem {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(`${where}: expected a JSON object per line, found ${describeValue(value)}`);
  }
  const doc = value as Doc;
  const chosen = format === "auto" ? detectFormat(doc) : format;
  if (chosen === null) {
    throw new ConfigError(
      `${where}: cannot tell the task format from keys [${Object.keys(doc).join(", ")}]; expected {"context", "choices", "gold"} ` +
        `or an lm-eval export of ARC, HellaSwag, PIQA, WinoGrande or OpenBookQA (or set "format" in the task card)`,
    );
  }
  return ADAPTERS[chosen](new DocReader(doc, where, chosen));
}
