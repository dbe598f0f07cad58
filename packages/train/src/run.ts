import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  ConfigError,
  HfTokenizer,
  convertCheckpoint,
  loadLlama,
  readLlamaConfig,
  tidyAsync,
  type AttentionConverter,
  type DistillationLoss,
  type LlamaForCausalLM,
  type Teacher,
  type TensorBackend,
} from "@ecomla/core";
import type { DownloadProgress } from "@ecomla/hub";
import { readTrainConfig, resolveSources, totalStepsOf, type TrainConfig } from "./config.js";
import { PackedDataSource, tokenizerFingerprint } from "./data.js";
import { distill } from "./distill.js";
import { RemoteTeacher } from "./remote-teacher.js";
import { dpo, readPairs } from "./dpo.js";
import type { LoopOptions, RunSummary, StepReport } from "./loop.js";
import { ModelTeacher, TopKFileTeacher, TopKWriter } from "./teacher.js";
import { hubIdOf, readCardFrontMatter, writeModelCard, type ModelCardInfo } from "./model-card.js";

/** What a command supplies to run a config: the backend, and the registry look-ups. */
export interface RunEnvironment {
  backend: TensorBackend;
  /** The loss registered under `name`, configured with the config's loss options. */
  loss?: (name: string, options: { temperature?: number; klWeight?: number; ceWeight?: number }) => DistillationLoss;
  converter?: (name: string) => AttentionConverter;
  onStep?: (report: StepReport) => void;
  onEval?: (step: number, metrics: Record<string, number>) => void;
  /** Progress messages (conversion, loading). */
  log?: (message: string) => void;
  /** Bytes fetched from the Hub for models and datasets given as Hub ids. */
  onDownload?: DownloadProgress;
}

/** A config from a file or as parsed, with its Hub ids resolved to cached folders and files. */
async function configOf(config: TrainConfig | string, kind: "distill" | "dpo", env: RunEnvironment): Promise<TrainConfig> {
  const c = typeof config === "string" ? readTrainConfig(config, kind) : config;
  return resolveSources(c, { onProgress: env.onDownload });
}

/** The student's folder: the config's, or output_dir/student-init converted from the base model (once; reused on resume). */
export async function prepareStudent(c: TrainConfig, env: RunEnvironment): Promise<string> {
  if (typeof c.student === "string") return c.student;
  const out = join(c.outputDir, "student-init");
  if (existsSync(join(out, "config.json")) && existsSync(join(out, "model.safetensors"))) return out;
  if (!env.converter) throw new ConfigError(`${c.file}: student.convert needs a converter, and none is available`);
  const { base, convert } = c.student;
  const hd = readLlamaConfig(join(base, "config.json")).headDim;
  const rope = convert.ropeDim ?? hd / 2;
  env.log?.(`converting ${base} → ${out} (${convert.converter}, kv_rank ${convert.kvRank})`);
  mkdirSync(c.outputDir, { recursive: true });
  await convertCheckpoint(base, out, env.converter(convert.converter), env.backend.capabilities, {
    kvLoraRank: convert.kvRank, qLoraRank: convert.qRank, qkRopeHeadDim: rope, qkNopeHeadDim: convert.nopeDim ?? hd - rope, vHeadDim: hd,
    kvEnergy: convert.kvEnergy, qEnergy: convert.qEnergy, seed: convert.seed, layers: convert.layers,
  });
  await writeModelCard({ dir: out, base, kind: "convert", ...convertRecipe(c) });
  return out;
}

function convertRecipe(c: TrainConfig): Pick<ModelCardInfo, "converter" | "recipe"> {
  if (typeof c.student === "string") return {};
  const v = c.student.convert;
  return { converter: v.converter, recipe: { kv_lora_rank: v.kvRank, q_lora_rank: v.qRank ?? "full", qk_rope_head_dim: v.ropeDim, qk_nope_head_dim: v.nopeDim, layers: v.layers?.join(",") ?? "all", kv_energy: v.kvEnergy, q_energy: v.qEnergy } };
}

/**
 * The model card of a finished distill/DPO run in output_dir: the base is the config's
 * student.base, else the base named by the student folder's own card, else the teacher.
 */
async function writeRunCard(c: TrainConfig, studentDir: string, kind: "distill" | "dpo", summary: RunSummary, extra: Record<string, string | number | undefined>): Promise<void> {
  const studentBase = readCardFrontMatter(studentDir)?.["base_model"];
  const fromCard = typeof studentBase === "string" ? studentBase : undefined;
  // DPO tunes the student itself; distillation trains a conversion of the student's base.
  const base = kind === "dpo" ? (hubIdOf(studentDir) ?? fromCard ?? studentDir) : typeof c.student === "object" ? c.student.base : (fromCard ?? c.teacher);
  const conv = convertRecipe(c);
  const evaluation = [summary.firstEval && { name: `validation, first evaluation`, metrics: summary.firstEval }, summary.lastEval && { name: `validation, step ${summary.steps}`, metrics: summary.lastEval }].filter((r): r is { name: string; metrics: Record<string, number> } => !!r);
  await writeModelCard({
    dir: c.outputDir, base, kind, converter: conv.converter, tokens: summary.tokens, datasets: c.dataset, licenseFrom: [studentDir, ...(c.teacher ? [c.teacher] : [])],
    recipe: {
      ...conv.recipe, ...extra, steps: summary.steps, seq_len: c.seqLen, per_device_train_batch_size: c.batchSize, gradient_accumulation_steps: c.gradientAccumulationSteps,
      learning_rate: c.learningRate, min_lr: c.minLr, lr_scheduler_type: c.scheduler, warmup_ratio: c.warmupRatio, weight_decay: c.weightDecay, max_grad_norm: c.maxGradNorm,
      freeze_non_mla: c.freezeNonMla, seed: c.seed,
    },
    evaluation: evaluation.length ? { rows: evaluation } : undefined,
  });
}

function tokenizerFor(c: TrainConfig, studentDir: string): { tokenizer: HfTokenizer; dir: string } {
  const candidates = [c.tokenizer, studentDir, typeof c.student === "object" ? c.student.base : undefined].filter((d): d is string => !!d);
  const dir = candidates.find((d) => existsSync(join(d, "tokenizer.json")));
  if (!dir) throw new ConfigError(`${c.file}: no tokenizer.json in ${candidates.join(" or ")}; set "tokenizer" to a folder holding one`);
  return { tokenizer: HfTokenizer.fromDir(dir), dir };
}

function loopOptions(c: TrainConfig, studentDir: string, totalSteps: number, env: RunEnvironment): LoopOptions {
  return {
    learningRate: c.learningRate, totalSteps, gradientAccumulationSteps: c.gradientAccumulationSteps, warmupRatio: c.warmupRatio, minLr: c.minLr,
    scheduler: c.scheduler, weightDecay: c.weightDecay, beta1: c.beta1, beta2: c.beta2, eps: c.eps, maxGradNorm: c.maxGradNorm,
    freezeNonMla: c.freezeNonMla, evalSteps: c.evalSteps, saveSteps: c.saveSteps, saveTotalLimit: c.saveTotalLimit, maxBadSteps: c.maxBadSteps,
    seed: c.seed, outputDir: c.outputDir, modelDir: studentDir, config: c.raw, onStep: env.onStep, onEval: env.onEval,
  };
}

async function openData(c: TrainConfig, studentDir: string): Promise<PackedDataSource> {
  const { tokenizer, dir } = tokenizerFor(c, studentDir);
  return PackedDataSource.fromFiles(c.dataset, tokenizer, {
    seqLen: c.seqLen, batchSize: c.batchSize, seed: c.seed, validationFraction: c.validationSplit,
    tokenizerHash: tokenizerFingerprint(dir), cacheDir: c.cacheDir, textField: c.textField,
  });
}

/** Run `ecomla distill` from a parsed config (or a file): convert the student if asked, load everything, train. */
export async function runDistillConfig(config: TrainConfig | string, env: RunEnvironment, resume = false): Promise<RunSummary> {
  const c = await configOf(config, "distill", env);
  if (!env.loss) throw new ConfigError("distill: no loss registry available");
  const studentDir = await prepareStudent(c, env);
  const data = await openData(c, studentDir);
  const { model: student } = await loadLlama(studentDir, env.backend);
  let teacherModel: LlamaForCausalLM | null = null;
  let teacher: Teacher;
  let fileTeacher: TopKFileTeacher | null = null;
  try {
    if (c.teacherTopk) {
      teacher = fileTeacher = await TopKFileTeacher.open(c.teacherTopk, env.backend);
    } else if (c.teacherRemote) {
      teacher = new RemoteTeacher(c.teacherRemote, env.backend, tokenizerFor(c, studentDir).tokenizer, student.vocabSize);
    } else {
      teacherModel = (await loadLlama(c.teacher!, env.backend)).model;
      for (const [, t] of teacherModel.namedParameters()) t.requireGrad(false);
      teacher = new ModelTeacher(teacherModel, env.backend);
    }
    const loss = env.loss(c.loss, { temperature: c.temperature, klWeight: c.klWeight, ceWeight: c.ceWeight });
    const tokensPerStep = c.batchSize * c.seqLen * c.gradientAccumulationSteps;
    const stepsPerEpoch = Math.floor(data.trainRows.length / (c.batchSize * c.gradientAccumulationSteps));
    const totalSteps = totalStepsOf(c, tokensPerStep, Math.max(1, stepsPerEpoch));
    const summary = await distill({ student, teacher, loss, data, evalBatches: c.evalBatches }, loopOptions(c, studentDir, totalSteps, env), resume);
    await writeRunCard(c, studentDir, "distill", summary, {
      teacher: c.teacher ? (hubIdOf(c.teacher) ?? c.teacher) : c.teacherRemote ? `${c.teacherRemote.model} served at ${c.teacherRemote.url} (top-${c.teacherRemote.topK})` : `top-k file ${c.teacherTopk}`, loss: c.loss, temperature: c.temperature, kl_weight: c.klWeight, ce_weight: c.ceWeight,
    });
    return summary;
  } finally {
    student.dispose();
    teacherModel?.dispose();
    await fileTeacher?.close();
  }
}

/**
 * `ecomla distill --write-topk K`: run the teacher over exactly the batches training will see (same
 * data, seed, batch size, accumulation and steps) and write their top-k log-probs to `path`.
 */
export async function writeTeacherTopK(config: TrainConfig | string, env: RunEnvironment, k: number, path?: string): Promise<{ path: string; rows: number; k: number }> {
  const c = await configOf(config, "distill", env);
  if (!c.teacher) throw new ConfigError(`${c.file}: --write-topk needs "teacher" (a model folder)`);
  const studentDir = typeof c.student === "string" ? c.student : c.student.base;
  const data = await openData(c, studentDir);
  const { model } = await loadLlama(c.teacher, env.backend);
  const writer = new TopKWriter(k);
  const out = path ?? join(c.outputDir, "teacher-topk.safetensors");
  try {
    const stepsPerEpoch = Math.floor(data.trainRows.length / (c.batchSize * c.gradientAccumulationSteps));
    const totalSteps = totalStepsOf(c, c.batchSize * c.seqLen * c.gradientAccumulationSteps, Math.max(1, stepsPerEpoch));
    const teacher = new ModelTeacher(model, env.backend);
    const batches = totalSteps * c.gradientAccumulationSteps;
    for (let b = 0; b < batches; b++) {
      const batch = await data.next();
      if (!batch) break;
      await tidyAsync(async () => {
        const t = await teacher.targets(batch);
        if (t.kind === "logits") await writer.add(t.logits);
      });
      env.onStep?.({ step: b + 1, totalSteps: batches, loss: NaN, lr: 0, gradNorm: NaN, tokens: (b + 1) * c.batchSize * c.seqLen, tokensPerSecond: NaN, skipped: false, extra: {} });
    }
    mkdirSync(c.outputDir, { recursive: true });
    const written = await writer.finish(out);
    return { path: out, ...written };
  } finally {
    model.dispose();
  }
}

/** Run `ecomla dpo` from a parsed config (or a file): the policy and a frozen reference both load from the student folder. */
export async function runDpoConfig(config: TrainConfig | string, env: RunEnvironment, resume = false): Promise<RunSummary> {
  const c = await configOf(config, "dpo", env);
  const studentDir = await prepareStudent(c, env);
  const { tokenizer } = tokenizerFor(c, studentDir);
  const pairs = c.dataset.flatMap((f) => readPairs(f, tokenizer));
  const { model: policy } = await loadLlama(studentDir, env.backend);
  const { model: reference } = await loadLlama(studentDir, env.backend);
  try {
    const trainPairs = Math.max(1, pairs.length - Math.round(c.validationSplit * pairs.length));
    const stepsPerEpoch = Math.max(1, Math.floor(trainPairs / (c.batchSize * c.gradientAccumulationSteps)));
    const totalSteps = totalStepsOf(c, c.batchSize * c.seqLen * c.gradientAccumulationSteps, stepsPerEpoch);
    const summary = await dpo(
      { policy, reference, pairs, beta: c.beta, batchSize: c.batchSize, maxLen: c.seqLen, seed: c.seed, validationFraction: c.validationSplit },
      loopOptions(c, studentDir, totalSteps, env),
      resume,
    );
    await writeRunCard(c, studentDir, "dpo", summary, { beta: c.beta, pairs: pairs.length });
    return summary;
  } finally {
    policy.dispose();
    reference.dispose();
  }
}
