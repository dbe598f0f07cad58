// `ecomla logits -b tfjs` (the wasm tfjs backend) on the bundled tiny teacher (examples/tiny-llama:
// 6 layers, GQA, tied embeddings, bf16 weights) against the CPU backend's logits, and what
// `ecomla plugins` says about the tfjs backend. The CLI runs as a user runs it, in a child process.
import t from "tap";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HfTokenizer, SafetensorsCheckpoint } from "@ecomla/core";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, "../../../packages/cli/dist/bin.js");
const teacher = resolve(here, "../../../examples/tiny-llama");
const out = mkdtempSync(join(tmpdir(), "ecomla-tfjs-"));
t.teardown(() => rmSync(out, { recursive: true, force: true }));

/** Largest allowed |logit_tfjs − logit_cpu| (f32 on both, different summation orders; logits reach ~10; measured 1.7e-5 on wasm). */
const LOGIT_TOL = 1e-4;
const PROMPT = "The old man walked to the";

function ecomla(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", env: { ...process.env, ECOMLA_TFJS_BACKEND: "wasm" } });
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

t.test(`logits: tfjs (wasm) matches cpu within ${LOGIT_TOL}`, async (t) => {
  const tfjs = await logits("tfjs", promptIds);
  const cpu = await logits("cpu", promptIds);
  t.equal(tfjs.data.length, promptIds.length * cpu.vocab, "[T, vocab]");
  let worst = 0;
  for (let i = 0; i < cpu.data.length; i++) worst = Math.max(worst, Math.abs(tfjs.data[i]! - cpu.data[i]!));
  t.ok(worst <= LOGIT_TOL, `max |Δlogit| ${worst.toExponential(2)} ≤ ${LOGIT_TOL}`);
});

t.test("generate (greedy) on tfjs gives the cpu backend's tokens", async (t) => {
  const run = (backend: string) => ecomla(["generate", "-m", teacher, "--prompt", PROMPT, "-n", "8", "-b", backend, "--json"]);
  const [tfjs, cpu] = [run("tfjs"), run("cpu")];
  t.equal(tfjs.code, 0, tfjs.stderr);
  t.equal(cpu.code, 0, cpu.stderr);
  t.same((JSON.parse(tfjs.stdout) as { tokens: number[] }).tokens, (JSON.parse(cpu.stdout) as { tokens: number[] }).tokens);
});

t.test("ecomla plugins: the tfjs backend's active tfjs backend, why the better ones are not, its native kernels", async (t) => {
  const r = ecomla(["plugins", "--json"]);
  t.equal(r.code, 0, r.stderr);
  const plugins = (JSON.parse(r.stdout) as { plugins: { name: string; provides: { name: string; kernels?: { native: string[]; probe?: { available: boolean; detail?: string } } }[] }[] }).plugins;
  const tfjs = plugins.find((p) => p.name === "@ecomla/backend-tfjs")?.provides.find((r) => r.name === "tfjs");
  t.ok(tfjs, "backend tfjs is listed");
  t.equal(tfjs?.kernels?.probe?.available, true);
  t.match(tfjs?.kernels?.probe?.detail ?? "", /tfjs-node-gpu: not tried \(ECOMLA_TFJS_BACKEND=wasm\).*wasm: active/);
  t.ok(tfjs?.kernels?.native.includes("softmax"), "softmax is native");
});
