// The committed tokenizer: loads through core's HfTokenizer (@huggingface/tokenizers), round-trips
// held-out text losslessly, agrees id for id with this package's own encoder, is what the trainer
// reproduces from the train split, and the trainer's incremental pair counts match a naive one.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { HfTokenizer } from "@ecomla/core";
import { encodeOptionsFor, encodePair } from "@ecomla/eval-harness";
import { BYTE_TO_CHAR, BpeEncoder, END_OF_TEXT, buildCorpus, countPieces, fromTokenizerJson, toTokenizerJson, trainBpe, type BpeModel } from "@ecomla/example-tiny-llama";

const exampleDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const tokenizerJson = JSON.parse(readFileSync(join(exampleDir, "tokenizer.json"), "utf8")) as Record<string, unknown>;
const hf = HfTokenizer.fromDir(exampleDir);
const own = new BpeEncoder(fromTokenizerJson(tokenizerJson));
const corpus = buildCorpus();

// Held-out sample: the first 60 sentences of every test document, and text meant to be awkward.
const heldOut = corpus.test.map((d) => d.sentences.slice(0, 60).join(" "));
const awkward = ["", " ", "  leading and trailing  ", "tabs\tand\nnew\n\nlines\r\n", "naïve café — 1,234.56 € ☃ 😀 日本語", "don't I'll we've 's 'S'", `before${END_OF_TEXT}after`, "x".repeat(300)];

t.test("loads through HfTokenizer: 4096 ids, <|endoftext|> as BOS/EOS, no BOS added", async (t) => {
  t.equal(hf.vocabSize, 4096);
  t.equal(hf.eosTokenId, 4095);
  t.equal(hf.bosTokenId, 4095);
  t.equal(hf.tokenToId(END_OF_TEXT), 4095);
  t.same(hf.encode("The jury said", { addSpecialTokens: true }), hf.encode("The jury said"), "add_bos_token false: nothing added");
  const options = encodeOptionsFor(hf, {}, "minimal-pairs");
  t.same(options, { prefixTokenId: 4095, addSpecialTokens: false }, "the harness scores an empty context after <|endoftext|>");
  t.same(encodePair(hf, "", "It was.", options).context, [4095]);
});

t.test("round trip of held-out text is lossless", async (t) => {
  // "" is left out: @huggingface/tokenizers refuses to decode an empty id list.
  for (const text of [...heldOut, ...awkward].filter((s) => s !== "")) {
    const ids = hf.encode(text);
    t.equal(hf.decode(ids), text, `HfTokenizer: ${JSON.stringify(text.slice(0, 40))}`);
    t.equal(own.decode(ids), text, `BpeEncoder: ${JSON.stringify(text.slice(0, 40))}`);
  }
});

t.test("two implementations agree id for id", async (t) => {
  let pieces = 0;
  for (const text of [...heldOut, ...awkward]) {
    t.same(own.encode(text), hf.encode(text), JSON.stringify(text.slice(0, 40)));
    pieces += text.length;
  }
  t.ok(pieces > 200_000, `${pieces} characters compared`);
});

t.test("compression on the test split", async (t) => {
  let bytes = 0, tokens = 0;
  for (const doc of corpus.test) {
    bytes += Buffer.byteLength(doc.text);
    tokens += own.encode(doc.text).length;
  }
  const bytesPerToken = bytes / tokens;
  t.comment(`test split: ${bytes} bytes, ${tokens} tokens, ${bytesPerToken.toFixed(3)} bytes/token`);
  t.ok(bytesPerToken > 3.8 && bytesPerToken < 4.3, `bytes/token ${bytesPerToken.toFixed(3)} (README: 4.03)`);
});

t.test("the committed tokenizer is what the trainer makes from the train split", async (t) => {
  const counts = new Map<string, number>();
  for (const doc of corpus.train) countPieces(doc.text, counts);
  const retrained = toTokenizerJson(trainBpe(counts, { vocabSize: 4096 }));
  t.same(retrained, tokenizerJson);
});

/** Reference trainer: recount every pair from scratch before each merge (ties: smaller ids). */
function naiveTrain(counts: Map<string, number>, vocabSize: number): BpeModel {
  const vocab = [...BYTE_TO_CHAR];
  const words = [...counts.keys()].sort().map((w) => ({ ids: Array.from(new TextEncoder().encode(w)) as number[], freq: counts.get(w)! }));
  const merges: [string, string][] = [];
  while (vocab.length < vocabSize - 1) {
    const pairs = new Map<string, { a: number; b: number; n: number }>();
    for (const { ids, freq } of words) {
      for (let i = 0; i + 1 < ids.length; i++) {
        const k = `${ids[i]},${ids[i + 1]}`;
        const p = pairs.get(k) ?? { a: ids[i]!, b: ids[i + 1]!, n: 0 };
        p.n += freq;
        pairs.set(k, p);
      }
    }
    let best: { a: number; b: number; n: number } | null = null;
    for (const p of pairs.values()) if (!best || p.n > best.n || (p.n === best.n && (p.a < best.a || (p.a === best.a && p.b < best.b)))) best = p;
    if (!best || best.n < 2) break;
    const token = vocab[best.a]! + vocab[best.b]!;
    let id = vocab.indexOf(token);
    if (id < 0) id = vocab.push(token) - 1;
    merges.push([vocab[best.a]!, vocab[best.b]!]);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.ids.length; i++) {
        if (i + 1 < w.ids.length && w.ids[i] === best.a && w.ids[i + 1] === best.b) {
          out.push(id);
          i++;
        } else out.push(w.ids[i]!);
      }
      w.ids = out;
    }
  }
  return { vocab: [...vocab, END_OF_TEXT], merges, specialTokens: [END_OF_TEXT] };
}

t.test("trainer: hand-computed merges, tie-breaking, and agreement with a naive trainer", async (t) => {
  // (a,b) occurs 5+3 = 8 times, (b,c) 3+1 = 4: merge "ab"; then (ab,c) 3 > (b,c) 1: merge "abc".
  t.same(trainBpe(new Map([["ab", 5], ["abc", 3], ["bc", 1]]), { vocabSize: 259 }).merges, [["a", "b"], ["ab", "c"]]);
  // Equal counts: the pair of smaller ids ("u" 117 < "x" 120) first.
  t.same(trainBpe(new Map([["xy", 2], ["uv", 2]]), { vocabSize: 258 }).merges, [["u", "v"]]);
  const counts = new Map<string, number>();
  for (const doc of corpus.valid.slice(0, 5)) countPieces(doc.text, counts);
  const fast = trainBpe(counts, { vocabSize: 480 });
  const naive = naiveTrain(counts, 480);
  t.same(fast.merges, naive.merges, `${fast.merges.length} merges agree`);
  t.same(fast.vocab, naive.vocab);
});
