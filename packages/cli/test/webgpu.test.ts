// `ecomla logits` and `ecomla generate` with `--backend webgpu` (Mesa lavapipe in CI) on the bundled
// tiny teacher (examples/tiny-llama: 6 layers, GQA, tied embeddings, bf16 weights), checked against
// the CPU backend's numbers.
import t from "tap";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HfTokenizer, SafetensorsCheckpoint } from "@ecomla/core";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, "../dist/bin.js");
const teacher = resolve(here, "../../../examples/tiny-llama");
const out = mkdtempSync(join(tmpdir(), "ecomla-webgpu-"));
t.teardown(() => rmSync(out, { recursive: true, force: true }));

/** Largest allowed |logit_webgpu − logit_cpu| (f32 on both, different summation orders; logits reach ~10; measured ~4e-6). */
const LOGIT_TOL = 1e-4;
const PROMPT = "The old man walked to the";

function ecomla(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Logits [T, vocab] of `ids` written by `ecomla logits` on a backend. */
async function logits(backend: string, ids: number[]): Promise<{ data: Float32Array; vocab: number }> {
  const file = join(out, `${backend}-${ids.length}.safetensors`);
  const r = ecomla(["logits", "-m", teacher, "--ids", ids.join(","), "-o", file, "-b", backend, "--json"]);
  if (r.code !== 0) throw new Error(`ecomla logits -b ${backend} failed: ${r.stderr}`);
  const summary = JSON.parse(r.stdout) as { backend: string; vocab: number };
  if (summary.backend !== backend) throw new Error(`ecomla logits ran on ${summary.backend}, expected ${backend}`);
  const checkpoint = await SafetensorsCheckpoint.open(file);
  const data = await checkpoint.readF32("logits");
  await checkpoint.close();
  return { data, vocab: summary.vocab };
}

const promptIds = HfTokenizer.fromDir(teacher).encode(PROMPT);

t.test(`logits: webgpu matches cpu within ${LOGIT_TOL}`, async (t) => {
  const gpu = await logits("webgpu", promptIds);
  const cpu = await logits("cpu", promptIds);
  t.equal(gpu.data.length, promptIds.length * cpu.vocab, "[T, vocab]");
  let worst = 0;
  for (let i = 0; i < cpu.data.length; i++) worst = Math.max(worst, Math.abs(gpu.data[i]! - cpu.data[i]!));
  t.ok(worst <= LOGIT_TOL, `max |Δlogit| ${worst.toExponential(2)} ≤ ${LOGIT_TOL}`);
});

t.test("generate (greedy): each webgpu token is the cpu model's argmax (within the logit tolerance)", async (t) => {
  const newTokens = 12;
  const r = ecomla(["generate", "-m", teacher, "--prompt", PROMPT, "-n", String(newTokens), "-b", "webgpu", "--json"]);
  t.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { tokens: number[]; backend: string; promptTokens: number; text: string };
  t.equal(result.backend, "webgpu");
  t.equal(result.promptTokens, promptIds.length);
  t.ok(result.tokens.length >= 1 && result.tokens.length <= newTokens, `${result.tokens.length} tokens`);
  // One cpu forward over prompt + generated tokens: row promptLen − 1 + i predicts token i.
  const { data, vocab } = await logits("cpu", [...promptIds, ...result.tokens.slice(0, -1)]);
  result.tokens.forEach((token, i) => {
    const row = data.subarray((promptIds.length - 1 + i) * vocab, (promptIds.length + i) * vocab);
    const max = row.reduce((m, v) => Math.max(m, v), -Infinity);
    t.ok(row[token]! >= max - LOGIT_TOL, `token ${i} (${token}): cpu logit ${row[token]!.toFixed(5)}, cpu max ${max.toFixed(5)}`);
  });
  const cpu = ecomla(["generate", "-m", teacher, "--prompt", PROMPT, "-n", String(newTokens), "-b", "cpu", "--json"]);
  t.equal(cpu.code, 0, cpu.stderr);
  t.same(result.tokens, (JSON.parse(cpu.stdout) as { tokens: number[] }).tokens, "the same greedy tokens as generate on cpu");
});
