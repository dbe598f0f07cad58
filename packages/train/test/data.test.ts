// Data: documents from text, JSONL and chat JSONL; the token cache; packing with EOS between
// documents; a document-level validation split; deterministic shuffles; a cursor that resumes exactly.
import t from "tap";
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PackedDataSource, packRows, readDocuments, tokenizeFile } from "@ecomla/train";
import { charTokenizer, syntheticDocs } from "./helpers/fixtures.js";

const tok = charTokenizer();
const EOS = tok.eosTokenId!;

t.test("documents from text, JSONL and chat JSONL", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ecomla-data-"));
  writeFileSync(join(dir, "a.txt"), "first doc\nstill first\n\nsecond doc\n");
  writeFileSync(join(dir, "b.jsonl"), '{"text": "hello"}\n\n{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n');
  t.same(readDocuments(join(dir, "a.txt"), tok), ["first doc\nstill first", "second doc"]);
  t.same(readDocuments(join(dir, "b.jsonl"), tok), ["hello", "<user>hi\n<assistant>yo\n"], "chat rendered with the tokenizer's template");
  writeFileSync(join(dir, "bad.jsonl"), '{"txt": 1}\n');
  t.throws(() => readDocuments(join(dir, "bad.jsonl"), tok), { message: `${join(dir, "bad.jsonl")}:1: expected a "text" string or a "messages" list, found keys txt` });
});

t.test("tokenised with EOS after each document, cached by file and tokenizer hash", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ecomla-data-"));
  const file = join(dir, "c.jsonl");
  writeFileSync(file, '{"text": "ab"}\n{"text": "c"}\n');
  const c = await tokenizeFile(file, tok, { tokenizerHash: "tok-a" });
  t.same(Array.from(c.ids), [...tok.encode("ab"), EOS, ...tok.encode("c"), EOS]);
  t.same(Array.from(c.offsets), [0, 3, 5]);
  const cache = readdirSync(join(dir, ".ecomla-cache"));
  t.equal(cache.length, 1, "one cache file next to the data");
  const again = await tokenizeFile(file, { ...tok, encode: () => { throw new Error("must come from the cache"); }, eosTokenId: EOS, bosTokenId: null, vocabSize: 78, decode: () => "" }, { tokenizerHash: "tok-a" });
  t.same(Array.from(again.ids), Array.from(c.ids), "second read comes from the cache");
  await tokenizeFile(file, tok, { tokenizerHash: "tok-b" });
  t.equal(readdirSync(join(dir, ".ecomla-cache")).length, 2, "another tokenizer, another cache entry");
  const noCache = mkdtempSync(join(tmpdir(), "ecomla-data-"));
  writeFileSync(join(noCache, "d.txt"), "x");
  await tokenizeFile(join(noCache, "d.txt"), tok, { tokenizerHash: "t", cacheDir: null });
  t.notOk(existsSync(join(noCache, ".ecomla-cache")), "cacheDir null writes nothing");
});

t.test("packing into rows of seq_len+1, tail dropped", async (t) => {
  const ids = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.same(packRows(ids, [[0, 3], [5, 10]], 3).map((r) => Array.from(r)), [[1, 2, 3], [6, 7, 8]], "docs 1-3 and 6-10 concatenated: 1 2 3 6 7 | 8 9 10 → rows of 3");
});

t.test("validation split by document, deterministic shuffles, and an exact cursor", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ecomla-data-"));
  const file = join(dir, "c.jsonl");
  const docs = syntheticDocs(40, 1);
  writeFileSync(file, docs.map((text) => JSON.stringify({ text })).join("\n"));
  const corpus = await tokenizeFile(file, tok, { tokenizerHash: "t", cacheDir: null });
  const opts = { seqLen: 12, batchSize: 3, seed: 5, validationFraction: 0.1 };
  const a = new PackedDataSource(corpus, opts);
  const b = new PackedDataSource(corpus, opts);
  const total = corpus.ids.length;
  const trainTokens = a.trainRows.length * 13;
  const valTokens = a.validationRows.length * 13;
  t.ok(trainTokens + valTokens <= total && trainTokens + valTokens > total - 2 * 13, `${a.trainRows.length} training + ${a.validationRows.length} validation rows of 13 from ${total} tokens`);
  t.equal(a.validationRows.length, b.validationRows.length, "the split is a function of the seed");
  t.ok(a.validationRows.length > 0, "4 of 40 documents held out give validation rows");
  const seq = async (s: PackedDataSource, n: number) => {
    const out: number[][] = [];
    for (let i = 0; i < n; i++) out.push(Array.from((await s.next())!.tokens));
    return out;
  };
  const rowsPerEpoch = a.trainRows.length;
  const first = await seq(a, Math.ceil((rowsPerEpoch * 2) / 3) + 2); // crosses into the third epoch
  t.same(await seq(b, first.length), first, "same seed, same stream");
  const c = new PackedDataSource(corpus, { ...opts, seed: 6 });
  t.notSame((await seq(c, 2))[0], first[0], "another seed, another order");

  const d = new PackedDataSource(corpus, opts);
  await seq(d, 7);
  const saved = JSON.parse(JSON.stringify(d.state()));
  const rest = await seq(d, 20);
  const e = new PackedDataSource(corpus, opts);
  e.restore(saved);
  t.same(await seq(e, 20), rest, `restore(${JSON.stringify(saved)}) continues with the same rows`);
  t.throws(() => e.restore({ epoch: 0, index: 1e9 }), { message: /does not fit this dataset/ });
  const epochOne = first.flat().length / 13;
  t.ok(epochOne > rowsPerEpoch, "the stream continued past one epoch");
});
