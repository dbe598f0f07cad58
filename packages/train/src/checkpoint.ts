import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import {
  AdamW,
  ConfigError,
  SafetensorsCheckpoint,
  Tensor,
  checkpointWeights,
  keep,
  loadWeights,
  writeSafetensors,
  type Module,
  type TensorToWrite,
} from "@ecomla/core";
import { writeFileAtomically } from "./atomic.js";

/** Files of a model folder, besides the weights, that a checkpoint carries so `loadLlama` can open it. */
export const MODEL_SIDE_FILES = [
  "config.json", "MLA_config.json", "mla_layer_config.json", "generation_config.json",
  "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
] as const;

/** Everything besides tensors that a resumed run needs (trainer_state.json). */
export interface TrainerState {
  /** "distill" or "dpo". */
  kind: string;
  /** Optimizer steps taken. */
  step: number;
  /** Training positions (tokens) consumed. */
  tokens: number;
  /** Steps skipped by the NaN/inf guard. */
  skippedSteps: number;
  /** Rng state of the trainer. */
  rng: number;
  /** The data source's cursor. */
  data: unknown;
  /** A file teacher's position, when there is one. */
  teacher?: unknown;
  /** The run's config, as resolved. */
  config: unknown;
}

const CHECKPOINT_DIR = /^checkpoint-(\d+)$/;

/** Write every parameter of `model` as F32 safetensors (HF names) plus the side files of `modelDir` into `dir`. */
export async function writeModelFolder(dir: string, model: Module, modelDir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tensors: TensorToWrite[] = model.namedParameters().map(([name, t]) => ({
    name, dtype: "F32", shape: [...t.shape], data: async () => (await t.data()) as Float32Array,
  }));
  await writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
  for (const f of MODEL_SIDE_FILES) {
    if (existsSync(join(modelDir, f))) await writeFileAtomically(join(dir, f), readFileSync(join(modelDir, f)));
  }
}

/** What {@link saveCheckpoint} writes. */
export interface CheckpointContents {
  model: Module;
  optimizer: AdamW;
  /** Names of the trained parameters (their moments are saved). */
  trainable: readonly [string, Tensor][];
  /** Folder whose config/tokenizer files the checkpoint copies. */
  modelDir: string;
  state: TrainerState;
}

/**
 * Write `outputDir/checkpoint-{step}` atomically (built in a temporary folder, then renamed), then
 * delete all but the newest `keepLast` checkpoints.
 */
export async function saveCheckpoint(outputDir: string, c: CheckpointContents, keepLast: number): Promise<string> {
  const final = join(outputDir, `checkpoint-${c.state.step}`);
  const temporary = join(outputDir, `.checkpoint-${c.state.step}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await writeModelFolder(temporary, c.model, c.modelDir);
    const moments: TensorToWrite[] = [];
    for (const [name, p] of c.trainable) {
      const s = c.optimizer.moments(p);
      if (!s) continue;
      moments.push({ name: `${name}.exp_avg`, dtype: "F32", shape: [...p.shape], data: async () => (await s.m.data()) as Float32Array });
      moments.push({ name: `${name}.exp_avg_sq`, dtype: "F32", shape: [...p.shape], data: async () => (await s.v.data()) as Float32Array });
    }
    await writeSafetensors(join(temporary, "optimizer.safetensors"), moments, { step_count: String(c.optimizer.stepCount) });
    await writeFileAtomically(join(temporary, "trainer_state.json"), JSON.stringify(c.state, null, 2) + "\n");
    rmSync(final, { recursive: true, force: true });
    renameSync(temporary, final);
  } catch (err) {
    rmSync(temporary, { recursive: true, force: true });
    throw err;
  }
  pruneCheckpoints(outputDir, keepLast);
  return final;
}

/** Complete checkpoints in `outputDir` (those with trainer_state.json), oldest first. */
export function listCheckpoints(outputDir: string): { step: number; dir: string }[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((f) => ({ m: CHECKPOINT_DIR.exec(f), f }))
    .filter(({ m, f }) => m && existsSync(join(outputDir, f, "trainer_state.json")))
    .map(({ m, f }) => ({ step: Number(m![1]), dir: join(outputDir, f) }))
    .sort((a, b) => a.step - b.step);
}

/** Remove all but the newest `keepLast` checkpoints, and leftovers of interrupted writes. */
export function pruneCheckpoints(outputDir: string, keepLast: number): void {
  const all = listCheckpoints(outputDir);
  if (keepLast > 0) for (const c of all.slice(0, Math.max(0, all.length - keepLast))) rmSync(c.dir, { recursive: true, force: true });
  for (const f of readdirSync(outputDir)) {
    if (/^\.checkpoint-\d+\.tmp-(\d+)-/.exec(f)?.[1] === String(process.pid)) continue; // ours, being written
    if (f.startsWith(".checkpoint-")) rmSync(join(outputDir, f), { recursive: true, force: true });
  }
}

/**
 * Restore model weights, optimizer moments and step count from a checkpoint folder; returns its
 * trainer state. Moments are created through one AdamW step with lr 0 on zero gradients (which
 * leaves every weight unchanged bit for bit) and then overwritten with the saved values.
 */
export async function loadCheckpoint(dir: string, model: Module, optimizer: AdamW, trainable: readonly [string, Tensor][]): Promise<TrainerState> {
  const statePath = join(dir, "trainer_state.json");
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(statePath, "utf8")) as TrainerState;
  } catch (err) {
    throw new ConfigError(`${statePath}: cannot read trainer state: ${(err as Error).message}`, { cause: err });
  }
  const weights = await SafetensorsCheckpoint.open(join(dir, "model.safetensors"));
  try {
    await loadWeights(model, checkpointWeights(weights, dir));
  } finally {
    await weights.close();
  }
  const moments = await SafetensorsCheckpoint.open(join(dir, "optimizer.safetensors"));
  try {
    const saved = trainable.filter(([name]) => moments.has(`${name}.exp_avg`));
    if (saved.length) {
      for (const [, p] of saved) p.grad = keep(Tensor.zeros(p.backend, p.shape));
      optimizer.step({ lr: 0 });
      optimizer.zeroGrad();
      for (const [name, p] of saved) {
        const s = optimizer.moments(p)!;
        p.backend.upload(s.m.buffer, await moments.readF32(`${name}.exp_avg`));
        p.backend.upload(s.v.buffer, await moments.readF32(`${name}.exp_avg_sq`));
      }
    }
    const stepCount = Number(moments.files[0]?.metadata?.["step_count"] ?? state.step);
    optimizer.stepCount = stepCount;
  } finally {
    await moments.close();
  }
  return state;
}
