#!/usr/bin/env node
// Build the evaluation tasks from the held-out test split: tasks/<name>.jsonl + tasks/<name>.yaml.
// Usage: node scripts/build-tasks.mjs [--count 1000] [--out DIR]
// (run `npx tsc -b` at the repo root first; reads the committed tokenizer.json to keep items short)
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BpeEncoder, DEFAULT_TASK_OPTIONS, buildContinuation, buildCorpus, buildLastWord, buildMinimalPairs, fromTokenizerJson } from "../dist/index.js";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const { values } = parseArgs({
  options: {
    count: { type: "string", default: String(DEFAULT_TASK_OPTIONS.count) },
    out: { type: "string", default: join(here, "tasks") },
  },
});
const out = resolve(values.out);
const options = { ...DEFAULT_TASK_OPTIONS, count: Number(values.count) };
const encoder = new BpeEncoder(fromTokenizerJson(JSON.parse(readFileSync(join(here, "tokenizer.json"), "utf8"))));
const countTokens = (text) => encoder.encode(text).length;
const test = buildCorpus().test;
const testSource = `the test split (${test.length} documents: ${test.filter((d) => d.source === "sotu").length} State of the Union addresses, ${test.filter((d) => d.source === "brown").length} Brown corpus files)`;

const tasks = [
  {
    name: "last-word",
    type: "last-word",
    items: buildLastWord(test, countTokens, options),
    metrics: ["acc", "perplexity"],
    description:
      `LAMBADA-style last-word prediction from ${testSource}: the context is a sentence without its last word, ` +
      `preceded by the earlier sentences that fit in ${options.maxContextTokens} tokens; the target is " " + that word ` +
      `(letters only, its closing punctuation dropped), and it occurs earlier in the context. acc = greedy match of every target token.`,
  },
  {
    name: "continuation-4way",
    type: "multiple-choice",
    items: buildContinuation(test, countTokens, options),
    metrics: ["acc", "acc_norm"],
    description:
      `Next-sentence choice from ${testSource}: a passage of up to ${options.maxContextTokens} tokens, then the true next ` +
      `sentence among three of similar length (±25% characters) from other test documents of the same source; gold placed at random.`,
  },
  {
    name: "minimal-pairs",
    type: "multiple-choice",
    items: buildMinimalPairs(test, countTokens, options),
    metrics: ["acc"],
    target_delimiter: "",
    description:
      `BLiMP-style minimal pairs from ${testSource}: a sentence against the same sentence with two adjacent lower-case ` +
      `words swapped, empty context (scored after the end-of-text token), whole-sentence log-likelihoods compared.`,
  },
];

mkdirSync(out, { recursive: true });
const yamlString = (s) => JSON.stringify(s);
for (const task of tasks) {
  writeFileSync(join(out, `${task.name}.jsonl`), task.items.map((item) => JSON.stringify(item) + "\n").join(""));
  const card = [
    `name: ${task.name}`,
    `type: ${task.type}`,
    `data: ${task.name}.jsonl`,
    `metrics: [${task.metrics.join(", ")}]`,
    ...(task.target_delimiter !== undefined ? [`target_delimiter: ${yamlString(task.target_delimiter)}`] : []),
    `description: ${yamlString(task.description)}`,
  ];
  writeFileSync(join(out, `${task.name}.yaml`), card.join("\n") + "\n");
  const contextTokens = task.items.map((i) => countTokens(i.context));
  console.log(`${task.name.padEnd(18)} ${String(task.items.length).padStart(5)} items, context tokens mean ${(contextTokens.reduce((a, b) => a + b, 0) / contextTokens.length).toFixed(1)} max ${Math.max(...contextTokens)}`);
}
console.log(`wrote ${out}`);
