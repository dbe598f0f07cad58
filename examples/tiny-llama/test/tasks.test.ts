// The committed task files: well-formed for the eval harness's loaders, ≥ 500 items each, gold in
// range, distinct choices, short contexts, built from test-split documents only, true to their
// construction rules, and byte-identical to what the builders make now.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { HfTokenizer } from "@ecomla/core";
import { loadLastWordItems, loadMcItems, readTaskCard } from "@ecomla/eval-harness";
import { BpeEncoder, DEFAULT_TASK_OPTIONS, fromTokenizerJson, buildContinuation, buildCorpus, buildLastWord, buildMinimalPairs, type ChoiceItem, type LastWordItem } from "@ecomla/example-tiny-llama";

const exampleDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const tasksDir = join(exampleDir, "tasks");
const hf = HfTokenizer.fromDir(exampleDir);
const countTokens = (text: string) => hf.encode(text).length;
const corpus = buildCorpus();
const testDocs = new Map(corpus.test.map((d) => [d.id, d]));
const otherIds = new Set([...corpus.train, ...corpus.valid].map((d) => d.id));

function rawItems<T>(name: string): T[] {
  return readFileSync(join(tasksDir, `${name}.jsonl`), "utf8").trim().split("\n").map((line) => JSON.parse(line) as T);
}

const cards = {
  "last-word": readTaskCard(join(tasksDir, "last-word.yaml")),
  "continuation-4way": readTaskCard(join(tasksDir, "continuation-4way.yaml")),
  "minimal-pairs": readTaskCard(join(tasksDir, "minimal-pairs.yaml")),
};

t.test("task cards: names, types, data beside them", async (t) => {
  t.same(Object.values(cards).map((c) => [c.name, c.type]), [["last-word", "last-word"], ["continuation-4way", "multiple-choice"], ["minimal-pairs", "multiple-choice"]]);
  for (const card of Object.values(cards)) {
    t.equal(card.data, join(tasksDir, `${card.name}.jsonl`));
    t.ok(card.description && card.description.length > 40, `${card.name} has a description`);
    t.ok(card.settings.metrics && card.settings.metrics.length > 0, `${card.name} lists metrics`);
  }
  t.equal(cards["minimal-pairs"].settings.targetDelimiter, "", "minimal pairs score the bare sentence after <|endoftext|>");
});

t.test("last-word: ≥ 500 items, contexts ≤ 60 tokens, target a word that occurs in its context", async (t) => {
  const items = loadLastWordItems(cards["last-word"].data);
  const raw = rawItems<LastWordItem>("last-word");
  t.ok(items.length >= 500, `${items.length} items`);
  let bad = 0;
  items.forEach((item, i) => {
    const word = item.continuation.slice(1);
    const ok =
      item.continuation.startsWith(" ") && /^[A-Za-z]{3,}$/.test(word) && item.context.trim() === item.context &&
      countTokens(item.context) <= 60 && new RegExp(`\\b${word}\\b`, "i").test(item.context) &&
      testDocs.get(raw[i]!.doc)!.sentences.join(" ").includes(item.context + item.continuation);
    if (!ok) bad++;
  });
  t.equal(bad, 0, "every item well-formed and found verbatim in its test document");
});

t.test("continuation-4way: ≥ 500 items, 4 distinct choices, gold = the next sentence", async (t) => {
  const items = loadMcItems(cards["continuation-4way"].data);
  const raw = rawItems<ChoiceItem>("continuation-4way");
  t.ok(items.length >= 500, `${items.length} items`);
  const golds = [0, 0, 0, 0];
  let bad = 0;
  items.forEach((item, i) => {
    if (item.kind !== "choices") return bad++;
    const doc = testDocs.get(raw[i]!.doc);
    const ok =
      doc !== undefined && item.choices.length === 4 && new Set(item.choices).size === 4 && item.gold >= 0 && item.gold < 4 &&
      countTokens(item.context) <= 60 && item.choices.every((c) => countTokens(c) <= 40) &&
      doc.sentences.join(" ").includes(`${item.context} ${item.choices[item.gold]}`) &&
      item.choices.every((c, k) => k === item.gold || !doc.sentences.includes(c));
    if (!ok) bad++;
    golds[item.gold]!++;
  });
  t.equal(bad, 0, "every item well-formed; distractors come from other documents");
  t.ok(golds.every((n) => n > items.length * 0.2), `gold positions spread: ${golds.join(" ")}`);
});

t.test("minimal-pairs: ≥ 500 items, empty context, original vs one adjacent swap", async (t) => {
  const items = loadMcItems(cards["minimal-pairs"].data);
  const raw = rawItems<ChoiceItem>("minimal-pairs");
  t.ok(items.length >= 500, `${items.length} items`);
  const golds = [0, 0];
  let bad = 0;
  items.forEach((item, i) => {
    if (item.kind !== "choices") return bad++;
    const [original, corrupted] = [item.choices[item.gold]!, item.choices[1 - item.gold]!];
    const a = original.split(" "), b = corrupted.split(" ");
    const diff = a.flatMap((w, k) => (w === b[k] ? [] : [k]));
    const ok =
      item.context === "" && item.choices.length === 2 && original !== corrupted && a.length === b.length &&
      diff.length === 2 && diff[1] === diff[0]! + 1 && a[diff[0]!] === b[diff[1]!] && a[diff[1]!] === b[diff[0]!] &&
      countTokens(original) <= 60 && testDocs.get(raw[i]!.doc)!.sentences.includes(original);
    if (!ok) bad++;
    golds[item.gold]!++;
  });
  t.equal(bad, 0, "every item is a sentence of its test document against one adjacent swap");
  t.ok(golds.every((n) => n > items.length * 0.4), `gold positions spread: ${golds.join(" ")}`);
});

t.test("items come only from the held-out test split", async (t) => {
  for (const name of Object.keys(cards)) {
    const docs = new Set(rawItems<{ doc: string }>(name).map((item) => item.doc));
    t.ok([...docs].every((id) => testDocs.has(id) && !otherIds.has(id)), `${name}: ${docs.size} test documents`);
  }
});

t.test("the committed files are what the builders make now", async (t) => {
  // As scripts/build-tasks.mjs: lengths from this package's encoder (it caches pieces, and agrees
  // with HfTokenizer id for id: tokenizer.test.ts).
  const own = new BpeEncoder(fromTokenizerJson(JSON.parse(readFileSync(join(exampleDir, "tokenizer.json"), "utf8")) as Record<string, unknown>));
  const ownCount = (text: string) => own.encode(text).length;
  const built = {
    "last-word": buildLastWord(corpus.test, ownCount, DEFAULT_TASK_OPTIONS),
    "continuation-4way": buildContinuation(corpus.test, ownCount, DEFAULT_TASK_OPTIONS),
    "minimal-pairs": buildMinimalPairs(corpus.test, ownCount, DEFAULT_TASK_OPTIONS),
  };
  for (const [name, items] of Object.entries(built)) {
    t.equal(items.map((item) => JSON.stringify(item) + "\n").join(""), readFileSync(join(tasksDir, `${name}.jsonl`), "utf8"), name);
  }
});
