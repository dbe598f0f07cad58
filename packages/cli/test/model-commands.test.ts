// `ecomla logits` and `ecomla generate` on a tiny fixture checkpoint, checked against the PyTorch
// fixture logits and against a greedy chain recomputed here with full forwards.
import t from "tap";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ReferenceBackend, SafetensorsCheckpoint, Tensor, argmax, loadLlama, tidy } from "@ecomla/core";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, "../dist/bin.js");
const fixture = resolve(here, "../../core/test/fixtures/llama/mha-f32");

// A model folder: the fixture checkpoint plus a word-level tokenizer "w0" … "w95" (<s> = 1, </s> = 2).
const modelDir = mkdtempSync(join(tmpdir(), "ecomla-model-"));
cpSync(fixture, modelDir, { recursive: true });
rmSync(join(modelDir, "expected.safetensors"));
const vocab: Record<string, number> = {};
for (let i = 0; i < 96; i++) vocab[i === 1 ? "<s>" : i === 2 ? "</s>" : `w${i}`] = i;
const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
writeFileSync(join(modelDir, "tokenizer.json"), JSON.stringify({
  version: "1.0", truncation: null, padding: null, added_tokens: [special(1, "<s>"), special(2, "</s>")],
  normalizer: null, pre_tokenizer: { type: "WhitespaceSplit" }, post_processor: null, decoder: null,
  model: { type: "WordLevel", vocab, unk_token: "w0" },
}));
writeFileSync(join(modelDir, "tokenizer_config.json"), JSON.stringify({ bos_token: "<s>", eos_token: "</s>" }));

function ecomla(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test("logits --ids writes the fixture's logits", async (t) => {
  const expected = await SafetensorsCheckpoint.open(join(fixture, "expected.safetensors"));
  const ids = Array.from(await expected.readI32("input_ids"));
  const want = await expected.readF32("logits");
  await expected.close();
  const out = join(modelDir, "logits.safetensors");
  const r = ecomla(["logits", "-m", modelDir, "--ids", ids.join(","), "-o", out, "-b", "reference", "--json"]);
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { tokens: ids.length, vocab: 96, backend: "reference" });
  const file = await SafetensorsCheckpoint.open(out);
  t.same(file.info("logits").shape, [ids.length, 96]);
  t.equal(file.info("logits").dtype, "F32");
  const got = await file.readF32("logits");
  await file.close();
  const err = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!)), 0);
  t.ok(err <= 1e-4, `max |Δ| ${err.toExponential(2)} ≤ 1e-4`);
});

t.test("logits --text tokenizes with the model's tokenizer", async (t) => {
  const out = join(modelDir, "text.safetensors");
  const r = ecomla(["logits", "-m", modelDir, "--text", "w5 w17 unknownword", "-o", out, "-b", "reference", "--json"]);
  t.equal(r.code, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).tokens, 3, "three words, the unknown one mapped to unk");
});

t.test("generate (greedy) follows the argmax of full forwards", async (t) => {
  const r = ecomla(["generate", "-m", modelDir, "--prompt", "w5 w17 w33", "-n", "6", "-b", "reference", "--json"]);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { tokens: number[]; text: string; decodeTokensPerSecond: number; promptTokens: number };
  t.equal(out.promptTokens, 3);
  t.ok(out.decodeTokensPerSecond > 0, "reports decode tokens/s");
  // Independent path: no cache, the whole sequence re-run at every step.
  const be = new ReferenceBackend();
  const { model } = await loadLlama(modelDir, be);
  const seq = [5, 17, 33];
  const chain: number[] = [];
  while (chain.length < out.tokens.length) {
    const logits = tidy(() => model.forward(Tensor.from(be, Int32Array.from(seq), [1, seq.length])));
    const data = (await logits.data()) as Float32Array;
    logits.dispose();
    const next = argmax(data.subarray((seq.length - 1) * 96));
    chain.push(next);
    seq.push(next);
    if (next === 2) break;
  }
  model.dispose();
  t.same(out.tokens, chain);
  t.equal(out.text, chain.map((id) => (id === 1 ? "<s>" : id === 2 ? "</s>" : `w${id}`)).join(" "));
});

t.test("generate with a seed is reproducible", async (t) => {
  const args = ["generate", "-m", modelDir, "--prompt", "w9", "-n", "10", "-t", "1.2", "--top-p", "0.9", "--seed", "7", "-b", "reference", "--json"];
  const a = JSON.parse(ecomla(args).stdout).tokens;
  const b = JSON.parse(ecomla(args).stdout).tokens;
  t.same(a, b);
  t.equal(a.length > 0, true);
});

t.test("bad input gives clear errors", async (t) => {
  const both = ecomla(["logits", "-m", modelDir, "--ids", "1", "--text", "w3", "-o", "/tmp/x.safetensors", "-b", "reference"]);
  t.equal(both.code, 2);
  t.match(both.stderr, /give exactly one of --ids or --text/);
  const range = ecomla(["logits", "-m", modelDir, "--ids", "3,400", "-o", "/tmp/x.safetensors", "-b", "reference"]);
  t.match(range.stderr, /--ids: token id 400 is out of range for a vocabulary of 96/);
  const missing = ecomla(["logits", "-m", join(modelDir, "nope"), "--ids", "3", "-o", "/tmp/x.safetensors", "-b", "reference"]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /cannot read .*nope\/config\.json/);
  const topP = ecomla(["generate", "-m", modelDir, "--prompt", "w3", "--top-p", "1.5", "-b", "reference"]);
  t.match(topP.stderr, /--top-p: expected a number in \(0, 1\], found "1.5"/);
});
