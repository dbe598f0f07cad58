import { existsSync } from "node:fs";
import { basename, extname } from "node:path";
import type { Command } from "commander";
import { ConfigError, readPipelineConfig, type EvalResult, type Evaluator, type LanguageModel, type Pipeline, type TensorBackend } from "@ecomla/core";
import { openPipeline, resolveBackend, type GlobalOptions } from "../context.js";
import { progressBar } from "../progress.js";
import { loadModelWithProgress, loadTokenizer, numberFlag } from "./model-io.js";
import { engineLanguageModel, engineOptions, loadEngineModel, usesRuntimeEngine, type EngineFlags } from "./engine-io.js";

interface EvalOptions extends EngineFlags {
  model: string[];
  task: string[];
  batchSize?: string;
  limit?: string;
  maxLength?: string;
  stride?: string;
  backend?: string;
  json?: boolean;
}

/** Task types, each scored by the evaluator of the same name (from @ecomla/eval-harness or another plugin). */
const TASK_TYPES = ["multiple-choice", "perplexity", "last-word"] as const;

/** The evaluator every model also gets: its KV-cache size per token. */
const KV_REPORT = "kv-report";

/** One --task as the command runs it. */
interface TaskEntry {
  name: string;
  /** Evaluator name. */
  type: string;
  path: string;
}

/** One model's scores per task. */
interface ModelScores {
  path: string;
  name: string;
  tasks: Record<string, { type: string; metrics: Record<string, number>; count: number }>;
  /** Unweighted mean over tasks of each one's main metric (acc_norm, else acc); null when no task has one. */
  average: number | null;
}

/**
 * What a --task names: "TYPE:PATH", a task card (YAML/JSON with a `type`), a .txt file
 * (perplexity) or a JSONL file (multiple-choice). The card's full reading is the evaluator's.
 */
function resolveTaskArg(arg: string): TaskEntry {
  const colon = arg.indexOf(":");
  const prefix = colon > 0 ? arg.slice(0, colon) : "";
  if ((TASK_TYPES as readonly string[]).includes(prefix) || prefix === KV_REPORT) {
    const path = arg.slice(colon + 1);
    return { name: basename(path, extname(path)), type: prefix, path };
  }
  if (!existsSync(arg)) throw new ConfigError(`--task: no such file ${arg} (give a task card, a JSONL/text file, or TYPE:FILE with TYPE one of ${TASK_TYPES.join(", ")})`);
  const ext = extname(arg).toLowerCase();
  if ([".yaml", ".yml", ".json"].includes(ext)) {
    const { config } = readPipelineConfig(arg);
    const type = config["type"] ?? "multiple-choice";
    const name = config["name"] ?? basename(arg, ext);
    if (typeof type !== "string" || typeof name !== "string") throw new ConfigError(`task card ${arg}: "type" and "name" must be strings`);
    return { name, type, path: arg };
  }
  return { name: basename(arg, extname(arg)), type: [".txt", ".text", ".raw"].includes(ext) ? "perplexity" : "multiple-choice", path: arg };
}

/** Main metric of a task for the average (lm-eval style): acc_norm when reported, else acc. */
export function mainMetric(metrics: Record<string, number>): string | null {
  return "acc_norm" in metrics ? "acc_norm" : "acc" in metrics ? "acc" : null;
}

function averageOf(tasks: ModelScores["tasks"]): number | null {
  const mains = Object.values(tasks).flatMap((t) => {
    const m = mainMetric(t.metrics);
    return m ? [t.metrics[m]!] : [];
  });
  return mains.length ? mains.reduce((a, b) => a + b, 0) / mains.length : null;
}

/** Value as a percentage of the baseline's (null where either is missing or the baseline is 0). */
function retention(value: number | undefined | null, baseline: number | undefined | null): number | null {
  if (value === undefined || value === null || baseline === undefined || baseline === null || baseline === 0) return null;
  return (100 * value) / baseline;
}

function formatNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : Math.abs(v) >= 1000 ? v.toFixed(1) : v.toFixed(4);
}

/** Markdown table: one column per model, rows task/metric, then the average; later models show retention % of the first. */
export function markdownTable(models: readonly ModelScores[], tasks: readonly string[]): string {
  const header = ["task", "metric", ...models.map((m) => m.name)];
  const rows: string[][] = [];
  const cell = (m: number, value: number | undefined | null, stderr?: number, baseline?: number | null) => {
    if (value === undefined || value === null) return "—";
    let s = formatNumber(value);
    if (stderr !== undefined) s += ` ± ${formatNumber(stderr)}`;
    const pct = m > 0 ? retention(value, baseline) : null;
    if (pct !== null) s += ` (${pct.toFixed(1)}%)`;
    return s;
  };
  for (const task of tasks) {
    const first = models[0]!.tasks[task];
    const metricNames = [...new Set(models.flatMap((m) => Object.keys(m.tasks[task]?.metrics ?? {})))].filter((k) => !k.endsWith("_stderr"));
    for (const metric of metricNames) {
      rows.push([task, metric, ...models.map((m, i) => {
        const t = m.tasks[task];
        return cell(i, t?.metrics[metric], t?.metrics[`${metric}_stderr`], first?.metrics[metric]);
      })]);
    }
  }
  rows.push(["average", "acc_norm, else acc", ...models.map((m, i) => cell(i, m.average, undefined, models[0]!.average))]);
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map((_, i) => (i < 2 ? "---" : "---:"))), ...rows.map(line)].join("\n");
}

/** Short, distinct column names for the models (folder names, the full path where two clash). */
function modelNames(paths: readonly string[]): string[] {
  const short = paths.map((p) => basename(p.replace(/\/+$/, "")) || p);
  return short.map((s, i) => (short.indexOf(s) !== short.lastIndexOf(s) ? paths[i]! : s));
}

/** `ecomla eval`: score one or more models on tasks, side by side, with retention against the first. */
export function evalCommand(program: Command): void {
  const command = program
    .command("eval")
    .description("evaluate models on tasks with lm-evaluation-harness semantics (multiple-choice acc/acc_norm, perplexity, last-word); several models side by side with retention % of the first")
    .requiredOption("-m, --model <dir...>", "Hugging Face model folder(s) (config.json + safetensors + tokenizer.json); repeat for side-by-side")
    .requiredOption("-t, --task <file...>", "task card (YAML/JSON), task JSONL, text file (perplexity), or TYPE:FILE; repeatable")
    .option("--batch-size <n>", "requests per forward", "4")
    .option("--limit <n>", "score only the first N items of each task")
    .option("--max-length <n>", "context window in tokens (default: the model's max_position_embeddings)")
    .option("--stride <n>", "perplexity window stride (default: the max length)")
    .option("-b, --backend <name>", "tensor backend (default: cpu when installed, else reference)")
    .option("--json", "print one JSON object instead of the markdown table");
  engineOptions(command)
    .action(async (opts: EvalOptions, cmd: Command) => {
      const positive = (n: number) => Number.isInteger(n) && n >= 1;
      const batchSize = numberFlag(opts.batchSize, "--batch-size", 4, positive, "an integer ≥ 1");
      const limit = opts.limit === undefined ? undefined : numberFlag(opts.limit, "--limit", 0, positive, "an integer ≥ 1");
      const maxLength = opts.maxLength === undefined ? undefined : numberFlag(opts.maxLength, "--max-length", 0, positive, "an integer ≥ 1");
      const stride = opts.stride === undefined ? undefined : numberFlag(opts.stride, "--stride", 0, positive, "an integer ≥ 1");
      // Every model's tokenizer first: a missing tokenizer.json fails before any weights load.
      const tokenizers = opts.model.map((dir) => loadTokenizer(dir));
      const tasks = opts.task.map(resolveTaskArg);
      const seen = new Map<string, number>();
      for (const t of tasks) {
        const n = (seen.get(t.name) ?? 0) + 1;
        seen.set(t.name, n);
        if (n > 1) t.name = `${t.name}#${n}`;
      }
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      const runtime = usesRuntimeEngine(opts);
      // With a runtime engine, --backend only scores the engine's logits (log-softmax over the continuation).
      const backend = await resolveBackend(pipeline, runtime ? undefined : opts.backend);
      // Resolved by name through the registry: any plugin may provide these evaluators.
      const evaluators = new Map<string, Evaluator>();
      for (const type of new Set([...tasks.map((t) => t.type), KV_REPORT])) evaluators.set(type, pipeline.get("evaluator", type));
      const names = modelNames(opts.model);
      const results: ModelScores[] = [];
      for (const [i, dir] of opts.model.entries()) {
        const { model } = runtime ? await loadRuntimeModel(pipeline, opts, dir, backend) : await loadModelWithProgress(dir, backend);
        const scores: ModelScores = { path: dir, name: names[i]!, tasks: {}, average: null };
        try {
          for (const task of tasks) {
            const bar = progressBar(`${names[i]} ${task.name}`);
            let result: EvalResult;
            try {
              result = await evaluators.get(task.type)!.evaluate(model, tokenizers[i]!, {
                name: task.name, path: task.path,
                options: { batchSize, limit, maxLength, stride, onProgress: (done: number, total: number) => bar.update(done, total) },
              });
            } finally {
              bar.stop();
            }
            scores.tasks[task.name] = { type: task.type, metrics: result.metrics, count: result.count };
          }
          const kv = await evaluators.get(KV_REPORT)!.evaluate(model, tokenizers[i]!, { name: KV_REPORT });
          scores.tasks[KV_REPORT] = { type: KV_REPORT, metrics: kv.metrics, count: kv.count };
        } finally {
          model.dispose();
        }
        scores.average = averageOf(scores.tasks);
        results.push(scores);
      }
      const taskNames = [...tasks.map((t) => t.name), KV_REPORT];
      if (opts.json) {
        const base = results[0]!;
        const retentionOf = (m: ModelScores) => ({
          average: retention(m.average, base.average),
          tasks: Object.fromEntries(taskNames.map((t) => [t, Object.fromEntries(Object.entries(m.tasks[t]?.metrics ?? {})
            .filter(([k]) => !k.endsWith("_stderr"))
            .map(([k, v]) => [k, retention(v, base.tasks[t]?.metrics[k])]))])),
        });
        const out = {
          ...(runtime ? { engine: opts.engine } : {}),
          backend: backend.name,
          averageMetric: "unweighted mean over tasks of acc_norm, else acc",
          models: results.map((m, i) => ({ ...m, ...(i > 0 ? { retention: retentionOf(m) } : {}) })),
        };
        process.stdout.write(JSON.stringify(out) + "\n");
      } else {
        process.stdout.write(markdownTable(results, taskNames) + "\n");
      }
    });
}

/** A model run by a runtime engine (--engine), as the evaluators see it. */
async function loadRuntimeModel(pipeline: Pipeline, flags: EngineFlags, dir: string, backend: TensorBackend): Promise<{ model: LanguageModel & { dispose(): void } }> {
  const { model } = await loadEngineModel(pipeline, flags, dir);
  return { model: { ...engineLanguageModel(model, backend, dir), dispose: () => void model.free() } };
}
