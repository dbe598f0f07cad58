// The minimal backend runs the CLI end to end on the bundled tiny teacher (examples/tiny-llama: 6
// layers, GQA, tied embeddings, bf16 weights), loaded by package name from a pipeline config, and
// every number is checked against the same command on the CPU backend (OpenBLAS + fused C++).
import t from "tap";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HfTokenizer, SafetensorsCheckpoint } from "@ecomla/core";

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bin = resolve(pkgDir, "../../packages/cli/dist/bin.js");
const teacher = resolve(pkgDir, "../tiny-llama");
const tasks = join(teacher, "tasks");
/** plugins: ["@ecomla/example-minimal-backend"], backend: minimal — resolved from the package's own folder. */
const pipeline = join(pkgDir, "pipeline.yaml");
const out = mkdtempSync(join(tmpdir(), "ecomla-minimal-"));
t.teardown(() => rmSync(out, { recursive: true, force: true }));

/** Largest allowed |logit_minimal − logit_cpu|: f32 on both sides, different summation orders; logits reach ~10 (measured ~1.5e-5). */
const LOGIT_TOL = 1e-4;
/** Relative tolerance of losses, gradient norms and perplexities after a few training steps (measured ≤ 1e-5). */
const METRIC_RTOL = 1e-4;
const PROMPT = "The old man walked to the";
const promptIds = HfTokenizer.fromDir(teacher).encode(PROMPT);

/** Run the CLI; `on` is "minimal" (through the pipeline config) or "cpu" (-b cpu). */
function ecomla(on: "minimal" | "cpu", command: string, args: string[], cwd = pkgDir) {
  const argv = on === "minimal" ? ["--config", pipeline, command, ...args] : [command, ...args, "-b", "cpu"];
  const r = spawnSync(process.execPath, [bin, ...argv], { encoding: "utf8", cwd });
  if (r.status !== 0) throw new Error(`ecomla ${argv.join(" ")} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Logits [T, vocab] of `ids` on a model folder, written by `ecomla logits`. */
async function logits(on: "minimal" | "cpu", model: string, ids: number[]): Promise<{ data: Float32Array; vocab: number }> {
  const file = join(out, `logits-${on}-${Math.random().toString(36).slice(2)}.safetensors`);
  const summary = JSON.parse(ecomla(on, "logits", ["-m", model, "--ids", ids.join(","), "-o", file, "--json"])) as { backend: string; vocab: number };
  if (summary.backend !== on) throw new Error(`ecomla logits ran on ${summary.backend}, expected ${on}`);
  const checkpoint = await SafetensorsCheckpoint.open(file);
  const data = await checkpoint.readF32("logits");
  await checkpoint.close();
  return { data, vocab: summary.vocab };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

function relDiff(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
}

t.test(`logits: minimal (loaded by package name) matches cpu within ${LOGIT_TOL}`, async (t) => {
  const minimal = await logits("minimal", teacher, promptIds);
  const cpu = await logits("cpu", teacher, promptIds);
  t.equal(minimal.data.length, promptIds.length * cpu.vocab, "[T, vocab]");
  const worst = maxAbsDiff(minimal.data, cpu.data);
  t.ok(worst <= LOGIT_TOL, `max |Δlogit| ${worst.toExponential(2)} ≤ ${LOGIT_TOL}`);
});

t.test("generate (greedy): the same tokens as cpu", async (t) => {
  const args = ["-m", teacher, "--prompt", PROMPT, "-n", "8", "--json"];
  const minimal = JSON.parse(ecomla("minimal", "generate", args)) as { tokens: number[]; backend: string };
  const cpu = JSON.parse(ecomla("cpu", "generate", args)) as { tokens: number[] };
  t.equal(minimal.backend, "minimal", "ran on minimal");
  t.equal(minimal.tokens.length, 8, "8 new tokens");
  t.same(minimal.tokens, cpu.tokens, `tokens ${minimal.tokens.join(",")}`);
});

// convert asks the backend only for its optional SVD; the minimal backend has none, so core's Jacobi
// SVD runs, where cpu calls LAPACK. The factors differ in sign and rounding, not in what they keep.
const student = join(out, "mla-minimal");
t.test("convert: the same ranks and kept energy as cpu, and the student runs on minimal", async (t) => {
  const args = (dir: string) => ["-m", teacher, "-o", dir, "--kv-rank", "64", "--json"];
  type Report = { svd: string; layers: { layer: number; report: Record<string, number> }[]; elementsPerToken: number };
  const minimal = JSON.parse(ecomla("minimal", "convert", args(student))) as Report;
  const cpu = JSON.parse(ecomla("cpu", "convert", args(join(out, "mla-cpu")))) as Report;
  t.same([minimal.svd, cpu.svd], ["jacobi (reference)", "cpu"], "SVD: core's Jacobi on minimal, LAPACK on cpu");
  t.equal(minimal.elementsPerToken, cpu.elementsPerToken, `KV elements per token ${minimal.elementsPerToken}`);
  for (const [i, layer] of minimal.layers.entries()) {
    const want = cpu.layers[i]!.report;
    t.same([layer.report.q_rank, layer.report.kv_rank], [want.q_rank, want.kv_rank], `layer ${layer.layer}: ranks`);
    // Reported to 6 decimals.
    t.ok(Math.abs(layer.report.kv_energy_kept! - want.kv_energy_kept!) <= 2e-6 && Math.abs(layer.report.q_energy_kept! - want.q_energy_kept!) <= 2e-6, `layer ${layer.layer}: kept energy ${layer.report.kv_energy_kept} / ${layer.report.q_energy_kept}`);
  }
  const onMinimal = await logits("minimal", student, promptIds);
  const onCpu = await logits("cpu", student, promptIds);
  const worst = maxAbsDiff(onMinimal.data, onCpu.data);
  t.ok(worst <= LOGIT_TOL, `the converted student's logits, minimal vs cpu: max |Δ| ${worst.toExponential(2)} ≤ ${LOGIT_TOL}`);
  // Both factorisations keep the same subspace; the bf16 rounding of different factors moves logits by ~1e-3.
  const otherStudent = await logits("cpu", join(out, "mla-cpu"), promptIds);
  const apart = maxAbsDiff(onCpu.data, otherStudent.data);
  t.ok(apart <= 1e-2, `students converted with Jacobi vs LAPACK SVD, both on cpu: max |Δlogit| ${apart.toExponential(2)} ≤ 1e-2`);
});

t.test(`distill (4 steps): every logged loss and gradient norm matches cpu within ${METRIC_RTOL} relative`, async (t) => {
  // A small corpus from the tiny teacher's own task texts.
  const dataset = join(out, "corpus.jsonl");
  const items = readFileSync(join(tasks, "last-word.jsonl"), "utf8").trim().split("\n").slice(0, 64);
  writeFileSync(dataset, items.map((line) => JSON.stringify({ text: (({ context, continuation }) => context + continuation)(JSON.parse(line)) })).join("\n") + "\n");
  const config = (backend: string): string => {
    const file = join(out, `distill-${backend}.yaml`);
    writeFileSync(file, [
      `student: ${student}`, `teacher: ${teacher}`, `dataset: ${dataset}`, `backend: ${backend}`, "loss: forward-kl",
      "seq_len: 32", "per_device_train_batch_size: 2", "gradient_accumulation_steps: 1", "learning_rate: 1.0e-3", "warmup_ratio: 0",
      "weight_decay: 0.01", "max_grad_norm: 1.0", "max_steps: 4", "eval_steps: 4", "save_steps: 4", "seed: 42", `output_dir: ${join(out, `distill-${backend}`)}`,
    ].join("\n") + "\n");
    return file;
  };
  // The distill config lives in a scratch folder, so the plugin comes by package name through
  // --plugin, resolved from the working directory (this package's folder).
  const run = (backend: string, plugin: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...plugin, "--config", config(backend), "distill", "--json"], { encoding: "utf8", cwd: pkgDir });
    t.equal(r.status, 0, `distill on ${backend}`, { stderr: r.stderr.slice(-2000) });
    return readFileSync(join(out, `distill-${backend}`, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number | string>);
  };
  const minimal = run("minimal", ["--plugin", "@ecomla/example-minimal-backend"]);
  const cpu = run("cpu", []);
  t.same(minimal.map((m) => `${m.kind}@${m.step}`), cpu.map((m) => `${m.kind}@${m.step}`), "the same eval and train records");
  t.same(minimal.map((m) => `${m.kind}@${m.step}`), ["eval@0", "train@1", "train@2", "train@3", "train@4", "eval@4"], "an eval, 4 steps, an eval");
  for (const [i, m] of minimal.entries()) {
    for (const key of ["loss", "grad_norm", "ce"]) {
      if (typeof m[key] !== "number") continue;
      const d = relDiff(m[key] as number, cpu[i]![key] as number);
      t.ok(d <= METRIC_RTOL, `${m.kind}@${m.step} ${key}: minimal ${m[key]}, cpu ${cpu[i]![key]} (rel ${d.toExponential(1)})`);
    }
  }
});

t.test("eval (4 items per task, teacher and distilled student): the same accuracies as cpu, perplexities within 1e-4", async (t) => {
  const args = ["-m", teacher, "-m", join(out, "distill-minimal"), ...["last-word", "continuation-4way", "minimal-pairs"].flatMap((task) => ["-t", join(tasks, `${task}.yaml`)]), "--limit", "4", "--json"];
  type Eval = { backend: string; models: { name: string; tasks: Record<string, { metrics: Record<string, number> }> }[] };
  const minimal = JSON.parse(ecomla("minimal", "eval", args)) as Eval;
  const cpu = JSON.parse(ecomla("cpu", "eval", args)) as Eval;
  t.equal(minimal.backend, "minimal", "ran on minimal");
  t.equal(minimal.models.length, 2, "teacher and student");
  for (const [i, model] of minimal.models.entries()) {
    for (const [task, { metrics }] of Object.entries(model.tasks)) {
      const want = cpu.models[i]!.tasks[task]!.metrics;
      t.same(Object.keys(metrics), Object.keys(want), `${model.name} ${task}: metrics`);
      for (const [key, value] of Object.entries(metrics)) {
        // Accuracies are argmax decisions (identical unless two choices tie within ~1e-5); perplexity is exp of a mean log-likelihood.
        if (key.includes("perplexity")) t.ok(relDiff(value, want[key]!) <= METRIC_RTOL, `${model.name} ${task} ${key}: ${value} vs cpu ${want[key]}`);
        else t.equal(value, want[key], `${model.name} ${task} ${key} = ${value}`);
      }
    }
  }
});
