import { existsSync, readFileSync } from "node:fs";
import { dirname, extname, isAbsolute, resolve } from "node:path";
import YAML from "yaml";
import { ConfigError } from "@ecomla/core";
import { parseRemoteTeacher, type RemoteTeacherSpec } from "./remote-teacher.js";
import { parseHubId, resolveDatasetSource, resolveModelSource, type ResolveOptions } from "@ecomla/hub";

/** How to build the student from a base model: `student: {base: DIR, convert: {...}}`. */
export interface StudentConvertSpec {
  base: string;
  convert: {
    converter: string;
    kvRank: number;
    qRank: number | null;
    ropeDim?: number;
    nopeDim?: number;
    layers?: number[];
    kvEnergy?: number;
    qEnergy?: number;
    seed?: number;
  };
}

/** A parsed training config (`ecomla distill` / `ecomla dpo`); paths resolved against the config's folder. */
export interface TrainConfig {
  file: string;
  /** A model folder, or a base model plus a conversion spec. */
  student: string | StudentConvertSpec;
  teacher?: string;
  teacherTopk?: string;
  /** A teacher served over the OpenAI completions protocol (`teacher: {url, model, top_k}`). */
  teacherRemote?: RemoteTeacherSpec;
  /** Tokenizer folder (default: the student's, else the base's). */
  tokenizer?: string;
  /** Files (JSONL, text, parquet) or Hub dataset ids; model entries above may be Hub ids too (resolved by {@link resolveSources}). */
  dataset: string[];
  /** The column/field holding the text (default: auto-detected: "text", else "messages" rendered with the chat template). */
  textField?: string;
  validationSplit: number;
  seqLen: number;
  batchSize: number;
  gradientAccumulationSteps: number;
  learningRate: number;
  minLr: number;
  warmupRatio: number;
  scheduler: "cosine" | "constant";
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  maxGradNorm: number;
  klWeight?: number;
  ceWeight?: number;
  temperature?: number;
  maxSteps?: number;
  maxTokens?: number;
  numTrainEpochs?: number;
  evalSteps: number;
  evalBatches?: number;
  saveSteps: number;
  saveTotalLimit: number;
  maxBadSteps: number;
  outputDir: string;
  seed: number;
  backend?: string;
  loss: string;
  freezeNonMla: boolean;
  cacheDir?: string;
  /** DPO: β of the sigmoid loss. */
  beta: number;
  plugins?: string[];
  /** Pretraining: the architecture of the model to build (HF LlamaConfig keys; vocab_size from the tokenizer). */
  model?: Record<string, unknown>;
  /** The raw mapping, as read. */
  raw: Record<string, unknown>;
}

const COMMON_KEYS = [
  "student", "model_name_or_path", "tokenizer", "dataset", "validation_split", "seq_len", "max_seq_length", "per_device_train_batch_size",
  "gradient_accumulation_steps", "learning_rate", "min_lr", "warmup_ratio", "lr_scheduler_type", "weight_decay", "adam_beta1", "adam_beta2",
  "adam_epsilon", "max_grad_norm", "max_steps", "max_tokens", "num_train_epochs", "eval_steps", "eval_batches", "save_steps",
  "save_total_limit", "max_bad_steps", "output_dir", "seed", "backend", "freeze_non_mla", "cache_dir", "plugins", "text_field",
] as const;
const DISTILL_KEYS = ["teacher", "teacher_model_name_or_path", "teacher_topk", "kl_weight", "ce_weight", "temperature", "loss"] as const;
const DPO_KEYS = ["beta"] as const;
const PRETRAIN_KEYS = ["model"] as const;

/** What a config is for. */
export type TrainKind = "distill" | "dpo" | "pretrain";
const CONVERT_KEYS = ["converter", "kv_rank", "kv_lora_rank", "q_rank", "q_lora_rank", "rope_dim", "qk_rope_head_dim", "nope_dim", "qk_nope_head_dim", "layers", "mla_layers", "kv_energy", "q_energy", "seed"] as const;

/** Read and check a distill or DPO config: unknown keys and wrong types are errors naming the key and the file. */
export function readTrainConfig(file: string, kind: TrainKind): TrainConfig {
  let raw: unknown;
  try {
    const text = readFileSync(file, "utf8");
    raw = extname(file).toLowerCase() === ".json" ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the config: ${(err as Error).message}`, { cause: err });
  }
  return parseTrainConfig(raw, kind, file);
}

/** Check a config mapping (see {@link readTrainConfig}); relative paths are taken from `file`'s folder. */
export function parseTrainConfig(raw: unknown, kind: TrainKind, file = "config"): TrainConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError(`${file}: expected a mapping at the top level`);
  const cfg = raw as Record<string, unknown>;
  const allowed = new Set<string>([...COMMON_KEYS, ...(kind === "distill" ? DISTILL_KEYS : kind === "dpo" ? DPO_KEYS : PRETRAIN_KEYS)]);
  if (kind === "pretrain") allowed.delete("student");
  for (const key of Object.keys(cfg)) {
    if (!allowed.has(key)) throw new ConfigError(`${file}: unknown key "${key}" for ecomla ${kind}; known keys: ${[...allowed].sort().join(", ")}`);
  }
  const base = dirname(resolve(file));
  const path = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  // A model or dataset may be a Hub id (org/name[@revision]) when no such local path exists; run.ts resolves it.
  const source = (p: string) => (!isAbsolute(p) && !existsSync(resolve(base, p)) && parseHubId(p) ? p : path(p));
  const num = (key: string, fallback: number | undefined, check: (n: number) => boolean = () => true, expected = "a number"): number | undefined => {
    const v = cfg[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || !check(v)) throw new ConfigError(`${file}: key "${key}" must be ${expected}, found ${JSON.stringify(v)}`);
    return v;
  };
  const int = (key: string, fallback: number | undefined, min = 0) => num(key, fallback, (n) => Number.isInteger(n) && n >= min, `an integer ≥ ${min}`);
  const str = (key: string): string | undefined => {
    const v = cfg[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") throw new ConfigError(`${file}: key "${key}" must be a string, found ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (key: string, fallback: boolean) => {
    const v = cfg[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") throw new ConfigError(`${file}: key "${key}" must be true or false, found ${JSON.stringify(v)}`);
    return v;
  };
  const either = (a: string, b: string) => {
    if (cfg[a] !== undefined && cfg[b] !== undefined) throw new ConfigError(`${file}: keys "${a}" and "${b}" mean the same; give one`);
    return cfg[a] !== undefined ? a : b;
  };

  const studentKey = either("student", "model_name_or_path");
  const studentRaw = cfg[studentKey];
  let model: Record<string, unknown> | undefined;
  if (kind === "pretrain") {
    const m = cfg["model"];
    if (typeof m !== "object" || m === null || Array.isArray(m)) throw new ConfigError(`${file}: key "model" must be a mapping of LlamaConfig keys (hidden_size, num_hidden_layers, …), found ${JSON.stringify(m)}`);
    model = m as Record<string, unknown>;
  }
  let student: TrainConfig["student"];
  if (kind === "pretrain") student = "";
  else if (typeof studentRaw === "string") student = source(studentRaw);
  else if (studentRaw && typeof studentRaw === "object" && !Array.isArray(studentRaw)) student = parseConvertSpec(studentRaw as Record<string, unknown>, file, source);
  else throw new ConfigError(`${file}: key "student" must be a model folder or {base: DIR, convert: {...}}, found ${JSON.stringify(studentRaw)}`);

  const datasetRaw = cfg["dataset"];
  const dataset = typeof datasetRaw === "string" ? [datasetRaw] : Array.isArray(datasetRaw) && datasetRaw.every((d) => typeof d === "string") ? (datasetRaw as string[]) : null;
  if (!dataset || dataset.length === 0) throw new ConfigError(`${file}: key "dataset" must be a file or a list of files, found ${JSON.stringify(datasetRaw)}`);
  const outputDir = str("output_dir");
  if (!outputDir) throw new ConfigError(`${file}: key "output_dir" is required`);
  const scheduler = str("lr_scheduler_type") ?? "cosine";
  if (scheduler !== "cosine" && scheduler !== "constant") throw new ConfigError(`${file}: key "lr_scheduler_type" must be "cosine" or "constant", found "${scheduler}"`);
  const pluginsRaw = cfg["plugins"];
  if (pluginsRaw !== undefined && !(Array.isArray(pluginsRaw) && pluginsRaw.every((p) => typeof p === "string"))) throw new ConfigError(`${file}: key "plugins" must be a list of package names`);

  const teacherKey = either("teacher", "teacher_model_name_or_path");
  const teacherRaw = cfg[teacherKey];
  const teacherRemote = kind === "distill" && teacherRaw !== null && typeof teacherRaw === "object" ? parseRemoteTeacher(teacherRaw, `${file}: key "${teacherKey}"`) : undefined;
  const teacher = kind === "distill" && !teacherRemote ? str(teacherKey) : undefined;
  const teacherTopk = kind === "distill" ? str("teacher_topk") : undefined;
  if ((teacher || teacherRemote) && teacherTopk) throw new ConfigError(`${file}: give "teacher" or "teacher_topk", not both`);
  if (kind === "distill" && !teacher && !teacherRemote && !teacherTopk) throw new ConfigError(`${file}: give "teacher" (a model folder, or {url, model, top_k} of a served teacher) or "teacher_topk" (a top-k file)`);
  const maxSteps = num("max_steps", undefined);
  const c: TrainConfig = {
    file, student,
    teacher: teacher ? source(teacher) : undefined,
    teacherTopk: teacherTopk ? path(teacherTopk) : undefined,
    teacherRemote,
    tokenizer: str("tokenizer") ? source(str("tokenizer")!) : undefined,
    dataset: dataset.map(source),
    textField: str("text_field"),
    validationSplit: num("validation_split", kind === "dpo" ? 0.1 : 0.05, (n) => n >= 0 && n < 1, "a fraction in [0, 1)")!,
    seqLen: int(either("seq_len", "max_seq_length"), 2048, 1)!,
    batchSize: int("per_device_train_batch_size", 8, 1)!,
    gradientAccumulationSteps: int("gradient_accumulation_steps", 1, 1)!,
    learningRate: num("learning_rate", kind === "dpo" ? 5e-7 : 8e-5, (n) => n >= 0, "a number ≥ 0")!,
    minLr: num("min_lr", 0, (n) => n >= 0, "a number ≥ 0")!,
    warmupRatio: num("warmup_ratio", 0.01, (n) => n >= 0 && n <= 1, "a fraction in [0, 1]")!,
    scheduler,
    weightDecay: num("weight_decay", 0, (n) => n >= 0, "a number ≥ 0")!,
    beta1: num("adam_beta1", 0.9, (n) => n >= 0 && n < 1, "in [0, 1)")!,
    beta2: num("adam_beta2", 0.999, (n) => n >= 0 && n < 1, "in [0, 1)")!,
    eps: num("adam_epsilon", 1e-8, (n) => n > 0, "a number > 0")!,
    maxGradNorm: num("max_grad_norm", 1, (n) => n >= 0, "a number ≥ 0 (0 disables clipping)")!,
    klWeight: num("kl_weight", undefined),
    ceWeight: num("ce_weight", undefined),
    temperature: num("temperature", undefined, (n) => n > 0, "a number > 0"),
    // The seed's configs say max_steps: -1 for "use the epochs".
    maxSteps: maxSteps === undefined || maxSteps < 0 ? undefined : int("max_steps", undefined, 1),
    maxTokens: int("max_tokens", undefined, 1),
    numTrainEpochs: num("num_train_epochs", undefined, (n) => n > 0, "a number > 0"),
    evalSteps: int("eval_steps", 0)!,
    evalBatches: int("eval_batches", undefined, 1),
    saveSteps: int("save_steps", 0)!,
    saveTotalLimit: int("save_total_limit", 2, 1)!,
    maxBadSteps: int("max_bad_steps", 10)!,
    outputDir: path(outputDir),
    seed: int("seed", 42)!,
    backend: str("backend"),
    loss: (kind === "distill" ? str("loss") : undefined) ?? "forward-kl",
    freezeNonMla: bool("freeze_non_mla", false),
    cacheDir: str("cache_dir") ? path(str("cache_dir")!) : undefined,
    beta: (kind === "dpo" ? num("beta", 0.01, (n) => n > 0, "a number > 0") : undefined) ?? 0.01,
    plugins: pluginsRaw as string[] | undefined,
    model,
    raw: cfg,
  };
  // A pretraining run's model starts in output_dir/init (written from the "model" keys).
  if (kind === "pretrain") c.student = resolve(c.outputDir, "init");
  if (c.maxSteps === undefined && c.maxTokens === undefined && c.numTrainEpochs === undefined) {
    throw new ConfigError(`${file}: say how long to train: "max_steps", "max_tokens" or "num_train_epochs"`);
  }
  return c;
}

function parseConvertSpec(spec: Record<string, unknown>, file: string, path: (p: string) => string): StudentConvertSpec {
  for (const k of Object.keys(spec)) if (k !== "base" && k !== "convert") throw new ConfigError(`${file}: unknown key "student.${k}"; expected "base" and "convert"`);
  if (typeof spec["base"] !== "string") throw new ConfigError(`${file}: key "student.base" must be a model folder`);
  const conv = (spec["convert"] ?? {}) as Record<string, unknown>;
  if (typeof conv !== "object" || Array.isArray(conv)) throw new ConfigError(`${file}: key "student.convert" must be a mapping`);
  for (const k of Object.keys(conv)) {
    if (!(CONVERT_KEYS as readonly string[]).includes(k)) throw new ConfigError(`${file}: unknown key "student.convert.${k}"; known: ${CONVERT_KEYS.join(", ")}`);
  }
  const n = (a: string, b?: string): number | undefined => {
    const v = conv[a] ?? (b ? conv[b] : undefined);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(`${file}: key "student.convert.${a}" must be a number, found ${JSON.stringify(v)}`);
    return v;
  };
  const layersRaw = conv["layers"] ?? conv["mla_layers"];
  if (layersRaw !== undefined && layersRaw !== "all" && !(Array.isArray(layersRaw) && layersRaw.every((x) => Number.isInteger(x) && x >= 0))) {
    throw new ConfigError(`${file}: key "student.convert.layers" must be "all" or a list of layer indices`);
  }
  const kvRank = n("kv_rank", "kv_lora_rank");
  if (kvRank === undefined) throw new ConfigError(`${file}: key "student.convert.kv_rank" is required`);
  const qRaw = conv["q_rank"] ?? conv["q_lora_rank"];
  return {
    base: path(spec["base"]),
    convert: {
      converter: typeof conv["converter"] === "string" ? conv["converter"] : "xecomla",
      kvRank,
      qRank: qRaw === null || qRaw === "none" ? null : (n("q_rank", "q_lora_rank") ?? null),
      ropeDim: n("rope_dim", "qk_rope_head_dim"),
      nopeDim: n("nope_dim", "qk_nope_head_dim"),
      layers: Array.isArray(layersRaw) ? (layersRaw as number[]) : undefined,
      kvEnergy: n("kv_energy"),
      qEnergy: n("q_energy"),
      seed: n("seed"),
    },
  };
}

/**
 * The config with every Hub id replaced by local paths: models and the tokenizer fetched into the
 * Hugging Face cache (or found there offline), Hub datasets expanded to their cached files.
 */
export async function resolveSources(c: TrainConfig, options: ResolveOptions = {}): Promise<TrainConfig> {
  const model = (p: string) => resolveModelSource(p, options);
  const dataset: string[] = [];
  for (const d of c.dataset) dataset.push(...(await resolveDatasetSource(d, options)));
  const student = typeof c.student === "string" ? (c.student ? await model(c.student) : c.student) : { ...c.student, base: await model(c.student.base) };
  return {
    ...c,
    student,
    teacher: c.teacher ? await model(c.teacher) : undefined,
    tokenizer: c.tokenizer ? await resolveModelSource(c.tokenizer, { ...options, only: "tokenizer" }) : undefined,
    dataset,
  };
}

/** Optimizer steps of a run: max_steps, else max_tokens / tokens per step (rounded up), else epochs × steps per epoch. */
export function totalStepsOf(c: TrainConfig, tokensPerStep: number, stepsPerEpoch: number): number {
  if (c.maxSteps !== undefined) return c.maxSteps;
  if (c.maxTokens !== undefined) return Math.max(1, Math.ceil(c.maxTokens / tokensPerStep));
  return Math.max(1, Math.ceil(c.numTrainEpochs! * stepsPerEpoch));
}
