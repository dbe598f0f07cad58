// `ecomla eval`: two fixture checkpoints side by side (--json parsed, retention recomputed), the
// first model's multiple-choice scores checked against full forwards computed here.
import t from "tap";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ReferenceBackend, Tensor, loadLlama, tidy } from "@ecomla/core";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, "../dist/bin.js");
const fixtures = resolve(here, "../../core/test/fixtures/llama");
const work = mkdtempSync(join(tmpdir(), "ecomla-eval-cli-"));

// Model folders: a fixture checkpoint plus a word-level tokenizer "w0" … "w95" (<s> = 1, </s> = 2).
function modelDir(name: string, fixture: string, tokenizer = true): string {
  const dir = join(work, name);
  cpSync(join(fixtures, fixture), dir, { recursive: true });
  rmSync(join(dir, "expected.safetensors"));
  if (!tokenizer) return dir;
  const vocab: Record<string, number> = {};
  for (let i = 0; i < 96; i++) vocab[i === 1 ? "<s>" : i === 2 ? "</s>" : `w${i}`] = i;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify({
    version: "1.0", truncation: null, padding: null, added_tokens: [special(1, "<s>"), special(2, "</s>")],
    normalizer: null, pre_tokenizer: { type: "WhitespaceSplit" }, post_processor: null, decoder: null,
    model: { type: "WordLevel", vocab, unk_token: "w0" },
  }));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ bos_token: "<s>", eos_token: "</s>" }));
  return dir;
}
const teacher = modelDir("teacher", "mha-f32");
const student = modelDir("student", "gqa-f32-headdim");

const items = [
  { context: "w5 w6", choices: ["w7", "w8 w9", "w10"], gold: 1 },
  { context: "", choices: ["w3", "w4 w4"], gold: 0 },
  { context: "w11 w12 w13", choices: ["w7 w7", "w8"], gold: 0 },
  { context: "w20", choices: ["w21", "w22", "w23 w24 w25"], gold: 2 },
];
const mcFile = join(work, "mini-mc.jsonl");
writeFileSync(mcFile, items.map((i) => JSON.stringify(i)).join("\n") + "\n");
writeFileSync(join(work, "lambada.jsonl"), [{ text: "w5 w6 w7 w8" }, { text: "w9 w10 w11" }].map((l) => JSON.stringify(l)).join("\n"));
const card = join(work, "lambada.yaml");
writeFileSync(card, "name: lambada-mini\ntype: last-word\ndata: lambada.jsonl\ndescription: last word of a short text\n");
const text = join(work, "doc.txt");
writeFileSync(text, "w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16");

function ecomla(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** acc and acc_norm of the items on one model, from full forwards and float64 log-softmax here. */
async function referenceScores(dir: string): Promise<{ acc: number; acc_norm: number }> {
  const be = new ReferenceBackend();
  const { model } = await loadLlama(dir, be);
  const ids = (s: string) => s.split(" ").filter(Boolean).map((w) => Number(w.slice(1)));
  let acc = 0;
  let accNorm = 0;
  for (const item of items) {
    const context = item.context === "" ? [2] : ids(item.context);
    const lls: number[] = [];
    for (const choice of item.choices) {
      const seq = [...context, ...ids(choice)];
      const logits = tidy(() => model.forward(Tensor.from(be, Int32Array.from(seq), [1, seq.length])));
      const data = (await logits.data()) as Float32Array;
      logits.dispose();
      let ll = 0;
      for (let j = context.length; j < seq.length; j++) {
        const row = data.subarray((j - 1) * 96, j * 96);
        const max = Math.max(...row);
        ll += row[seq[j]!]! - max - Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      }
      lls.push(ll);
    }
    const argmax = (v: number[]) => v.indexOf(Math.max(...v));
    acc += argmax(lls) === item.gold ? 1 : 0;
    accNorm += argmax(lls.map((ll, i) => ll / item.choices[i]!.length)) === item.gold ? 1 : 0;
  }
  model.dispose();
  return { acc: acc / items.length, acc_norm: accNorm / items.length };
}

t.test("two models side by side: --json with per-task metrics, counts, average and retention", async (t) => {
  const r = ecomla(["eval", "-m", teacher, "--model", student, "--task", mcFile, "--task", card, "--task", text, "--batch-size", "3", "-b", "reference", "--json"]);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.equal(out.models.length, 2);
  const [a, b] = out.models;
  t.same(Object.keys(a.tasks), ["mini-mc", "lambada-mini", "doc", "kv-report"]);
  t.match(a.tasks["mini-mc"], { type: "multiple-choice", count: 4 });
  t.match(a.tasks["lambada-mini"], { type: "last-word", count: 2 });
  t.match(a.tasks["doc"], { type: "perplexity", count: 12 });
  t.same(a.tasks["kv-report"].metrics, { kv_elements_per_token: 2 * 2 * 4 * 8, kv_bytes_per_token: 2 * 2 * 4 * 8 * 2 });
  t.same(b.tasks["kv-report"].metrics, { kv_elements_per_token: 2 * 2 * 1 * 24, kv_bytes_per_token: 2 * 2 * 1 * 24 * 2 });
  for (const m of [a, b]) {
    const want = await referenceScores(m.path);
    t.ok(Math.abs(m.tasks["mini-mc"].metrics.acc - want.acc) < 1e-12 && Math.abs(m.tasks["mini-mc"].metrics.acc_norm - want.acc_norm) < 1e-12,
      `${m.name}: acc ${m.tasks["mini-mc"].metrics.acc} / acc_norm ${m.tasks["mini-mc"].metrics.acc_norm} match full forwards (${want.acc} / ${want.acc_norm})`);
    // Unweighted mean of each task's main metric: acc_norm for mini-mc, acc for lambada; perplexity and KV have none.
    t.ok(Math.abs(m.average - (m.tasks["mini-mc"].metrics.acc_norm + m.tasks["lambada-mini"].metrics.acc) / 2) < 1e-12, `${m.name} average ${m.average}`);
  }
  t.notOk("retention" in a, "the first model is the baseline");
  t.equal(b.retention.tasks["kv-report"].kv_bytes_per_token, 75, "192 of 256 bytes per token");
  t.ok(Math.abs(b.retention.tasks["doc"].perplexity - (100 * b.tasks["doc"].metrics.perplexity) / a.tasks["doc"].metrics.perplexity) < 1e-9);
  if (a.average > 0) t.ok(Math.abs(b.retention.average - (100 * b.average) / a.average) < 1e-9, `retention ${b.retention.average}%`);
});

t.test("the markdown table: a column per model, task/metric rows, average, retention", async (t) => {
  const r = ecomla(["eval", "-m", teacher, student, "-t", mcFile, "-t", "perplexity:" + text, "--limit", "2", "-b", "reference"]);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  t.equal(lines[0], "| task | metric | teacher | student |");
  t.match(r.stdout, /\| mini-mc \| acc \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \([\d.]+%\) \|/);
  t.match(r.stdout, /\| doc \| word_perplexity \| [\d.]+ \| [\d.]+ \([\d.]+%\) \|/);
  t.match(r.stdout, /\| kv-report \| kv_bytes_per_token \| 256 \| 192 \(75\.0%\) \|/);
  t.match(lines[lines.length - 1], /^\| average \| acc_norm, else acc \| /);
});

t.test("clear errors: no tokenizer.json, a malformed task line, an unknown task file", async (t) => {
  const bare = modelDir("bare", "mha-f32", false);
  const noTok = ecomla(["eval", "-m", teacher, "-m", bare, "-t", mcFile, "-b", "reference"]);
  t.equal(noTok.code, 2);
  t.match(noTok.stderr, /bare: no tokenizer\.json/);
  const bad = join(work, "bad.jsonl");
  writeFileSync(bad, JSON.stringify(items[0]) + "\n" + JSON.stringify({ context: "w5", choices: "w6" , gold: 0 }) + "\n");
  const malformed = ecomla(["eval", "-m", teacher, "-t", bad, "-b", "reference"]);
  t.equal(malformed.code, 2);
  t.match(malformed.stderr, /bad\.jsonl:2: key "choices" must be a non-empty list of strings, found string "w6"/);
  const missing = ecomla(["eval", "-m", teacher, "-t", join(work, "nope.jsonl"), "-b", "reference"]);
  t.match(missing.stderr, /--task: no such file .*nope\.jsonl/);
});
