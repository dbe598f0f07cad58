// Streaming a large parquet dataset: write a parquet file of about SIZE_MB (default 1024) of text
// documents, then read every document back through @ecomla/train's reader (one row group at a
// time) and report the peak resident memory. Not part of CI (it writes a gigabyte):
//
//   node packages/train/scripts/parquet-stream-rss.mjs write /tmp/big.parquet [SIZE_MB]
//   /usr/bin/time -v node packages/train/scripts/parquet-stream-rss.mjs read /tmp/big.parquet
//
// (build first: npx tsc -b packages/train). The reader's peak RSS should stay near one row
// group's decoded size whatever the file's size.
import { statSync } from "node:fs";
import { ParquetWriter, fileWriter } from "hyparquet-writer";
import { Rng } from "@ecomla/core";
import { documentsOf } from "../dist/index.js";

const [mode, file, sizeArg] = process.argv.slice(2);
if (!file || (mode !== "write" && mode !== "read")) {
  console.error("usage: parquet-stream-rss.mjs write|read FILE [SIZE_MB]");
  process.exit(2);
}

if (mode === "write") {
  const targetBytes = Number(sizeArg ?? 1024) * 1e6;
  const rng = new Rng(7);
  // Random words from a 5,000-word vocabulary: text that snappy compresses about as much as prose.
  const vocab = Array.from({ length: 5000 }, () => Array.from({ length: 3 + rng.int(8) }, () => String.fromCharCode(97 + rng.int(26))).join(""));
  const doc = () => Array.from({ length: 200 + rng.int(600) }, () => vocab[rng.int(vocab.length)]).join(" ");
  const writer = new ParquetWriter({
    writer: fileWriter(file),
    schema: [{ name: "root", num_children: 2 }, { name: "id", type: "INT64", repetition_type: "REQUIRED" }, { name: "text", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "REQUIRED" }],
  });
  const rowsPerGroup = 10_000;
  let rows = 0;
  let textBytes = 0;
  const t0 = Date.now();
  for (let group = 0; ; group++) {
    const texts = Array.from({ length: rowsPerGroup }, doc);
    textBytes += texts.reduce((n, t) => n + t.length, 0);
    writer.write({ columnData: [{ name: "id", data: BigInt64Array.from(texts, (_, i) => BigInt(rows + i)) }, { name: "text", data: texts }], rowGroupSize: rowsPerGroup });
    rows += rowsPerGroup;
    // fileWriter flushes as it goes; the size on disk tracks what was written.
    if (statSync(file).size >= targetBytes) break;
  }
  writer.finish();
  const bytes = statSync(file).size;
  console.log(JSON.stringify({ file, bytes, rows, rowGroups: rows / rowsPerGroup, textBytes, seconds: (Date.now() - t0) / 1000 }));
} else {
  const t0 = Date.now();
  let docs = 0;
  let chars = 0;
  let peakRss = 0;
  const tokenizer = { encode: () => [], decode: () => "", eosTokenId: null, bosTokenId: null, vocabSize: 0 };
  for await (const d of documentsOf(file, tokenizer)) {
    docs++;
    chars += d.length;
    if (docs % 1000 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  const seconds = (Date.now() - t0) / 1000;
  console.log(JSON.stringify({ file, bytes: statSync(file).size, docs, chars, seconds, mbPerSecond: +(statSync(file).size / 1e6 / seconds).toFixed(1), peakRssMb: Math.round(Math.max(peakRss, process.memoryUsage().rss) / 1e6), maxRssMb: Math.round(process.resourceUsage().maxRSS / 1e3) }));
}
