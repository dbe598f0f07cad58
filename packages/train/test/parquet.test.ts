// Parquet datasets: the same documents read from parquet (written by hyparquet-writer, several row
// groups) and from JSONL give identical token streams, for a text column and a chat `messages`
// column; text_field picks another column; errors name the file and the columns.
import t from "tap";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";
import { HfTokenizer } from "@ecomla/core";
import { parquetColumns, parseTrainConfig, readDocuments, tokenizeFile, documentsOf } from "@ecomla/train";
import { syntheticDocs } from "./helpers/fixtures.js";

const here = dirname(fileURLToPath(import.meta.url));
const tok = HfTokenizer.fromDir(resolve(here, "../../../examples/tiny-llama"));

const MESSAGES_SCHEMA = [
  { name: "root", num_children: 1 },
  { name: "messages", repetition_type: "OPTIONAL" as const, converted_type: "LIST" as const, num_children: 1 },
  { name: "list", repetition_type: "REPEATED" as const, num_children: 1 },
  { name: "element", repetition_type: "OPTIONAL" as const, num_children: 2 },
  { name: "role", type: "BYTE_ARRAY" as const, converted_type: "UTF8" as const, repetition_type: "OPTIONAL" as const },
  { name: "content", type: "BYTE_ARRAY" as const, converted_type: "UTF8" as const, repetition_type: "OPTIONAL" as const },
];

/** A parquet file written by hyparquet-writer (in a plain Node child: see helpers/write-parquet.mjs). */
export function writeParquet(file: string, columnData: { name: string; data: unknown[]; type?: "STRING" }[], rowGroupSize: number, schema?: typeof MESSAGES_SCHEMA) {
  const r = spawnSync(process.execPath, [join(here, "helpers/write-parquet.mjs")], { input: JSON.stringify({ file, columnData, rowGroupSize, schema }), encoding: "utf8" });
  if (r.status !== 0) throw new Error(`write-parquet: ${r.stderr}`);
}

t.test("parquet and JSONL give identical token streams (text column, 5 row groups)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ecomla-parquet-"));
  const docs = syntheticDocs(47, 3).map((d, i) => (i % 5 === 0 ? `${d} — “unicode” ✓` : d));
  writeFileSync(join(dir, "docs.jsonl"), docs.map((text) => JSON.stringify({ text })).join("\n") + "\n");
  writeParquet(join(dir, "docs.parquet"), [{ name: "id", data: docs.map((_, i) => `doc-${i}`), type: "STRING" }, { name: "text", data: docs, type: "STRING" }], 10);
  t.same(await parquetColumns(join(dir, "docs.parquet")), { columns: ["id", "text"], rows: 47, rowGroups: 5 });
  const fromJsonl = await tokenizeFile(join(dir, "docs.jsonl"), tok, { tokenizerHash: "h", cacheDir: null });
  const fromParquet = await tokenizeFile(join(dir, "docs.parquet"), tok, { tokenizerHash: "h", cacheDir: null });
  t.ok(fromJsonl.ids.length > 500, `${fromJsonl.ids.length} tokens`);
  t.same(Array.from(fromParquet.ids), Array.from(fromJsonl.ids), "the same ids");
  t.same(Array.from(fromParquet.offsets), Array.from(fromJsonl.offsets), "the same document boundaries");
  // The parquet read goes through the token cache like any file (keyed by the file's hash and the text field).
  const cached = await tokenizeFile(join(dir, "docs.parquet"), tok, { tokenizerHash: "h", cacheDir: join(dir, "cache") });
  t.same(Array.from(cached.ids), Array.from(fromJsonl.ids));
  const ids = [];
  for await (const d of documentsOf(join(dir, "docs.parquet"), tok, "id")) ids.push(d);
  t.same(ids.slice(0, 2), ["doc-0", "doc-1"], "text_field picks another column");
  await t.rejects(tokenizeFile(join(dir, "docs.parquet"), tok, { tokenizerHash: "h", cacheDir: null, textField: "body" }), { message: `${join(dir, "docs.parquet")}: text_field "body" is not a column; columns: id, text` });
  writeParquet(join(dir, "no-text.parquet"), [{ name: "body", data: ["a"], type: "STRING" }], 10);
  await t.rejects(tokenizeFile(join(dir, "no-text.parquet"), tok, { tokenizerHash: "h", cacheDir: null }), /no "text" or "messages" column; set text_field to one of: body/);
  writeFileSync(join(dir, "bad.parquet"), "not parquet at all");
  await t.rejects(tokenizeFile(join(dir, "bad.parquet"), tok, { tokenizerHash: "h", cacheDir: null }), /bad.parquet: not a readable parquet file/);
});

t.test("a messages column (list of {role, content}) renders with the chat template, as in JSONL", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ecomla-parquet-"));
  const chats = syntheticDocs(12, 5).map((d, i) => [{ role: "user", content: `question ${i}` }, { role: "assistant", content: d }]);
  writeFileSync(join(dir, "chat.jsonl"), chats.map((messages) => JSON.stringify({ messages })).join("\n") + "\n");
  writeParquet(join(dir, "chat.parquet"), [{ name: "messages", data: chats }], 5, MESSAGES_SCHEMA);
  const docs = [];
  for await (const d of documentsOf(join(dir, "chat.parquet"), tok)) docs.push(d);
  t.same(docs, readDocuments(join(dir, "chat.jsonl"), tok));
  const a = await tokenizeFile(join(dir, "chat.jsonl"), tok, { tokenizerHash: "h", cacheDir: null });
  const b = await tokenizeFile(join(dir, "chat.parquet"), tok, { tokenizerHash: "h", cacheDir: null });
  t.same(Array.from(b.ids), Array.from(a.ids));
});

t.test("text_field in a config; JSONL honours it too", async (t) => {
  const c = parseTrainConfig({ student: "/s", teacher: "/t", dataset: ["org/data", "/x.parquet"], text_field: "content", max_steps: 1, output_dir: "/o" }, "distill", "/cfg/c.yaml");
  t.equal(c.textField, "content");
  t.same(c.dataset, ["org/data", "/x.parquet"], "a Hub dataset id stays an id until the run resolves it");
  const dir = mkdtempSync(join(tmpdir(), "ecomla-parquet-"));
  writeFileSync(join(dir, "c.jsonl"), '{"content": "hello"}\n');
  t.same(readDocuments(join(dir, "c.jsonl"), tok, "content"), ["hello"]);
});
