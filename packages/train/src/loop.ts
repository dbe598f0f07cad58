import { existsSync, mkdirSync } from "node:fs";
import { AdamW, ConfigError, EcomlaError, Rng, Tensor, keep, noGrad, ops, tidy, tidyAsync, type LlamaForCausalLM } from "@ecomla/core";
import { listCheckpoints, loadCheckpoint, saveCheckpoint, writeModelFolder, type TrainerState } from "./checkpoint.js";
import { MetricsLog } from "./metrics.js";
import { clipFactor, gradSquaredNorm, learningRateAt, warmupStepsFor, type CosineSchedule } from "./schedule.js";

/** Optimizer, schedule and bookkeeping settings shared by distillation and DPO. */
export interface LoopOptions {
  /** Peak learning rate. */
  learningRate: number;
  /** Optimizer steps to run. */
  totalSteps: number;
  /** Micro-batches per optimizer step (default 1). */
  gradientAccumulationSteps?: number;
  /** Fraction of steps of linear warmup (default 0). */
  warmupRatio?: number;
  /** Floor of the cosine (default 0). */
  minLr?: number;
  /** "cosine" (default) or "constant". */
  scheduler?: "cosine" | "constant";
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Global-norm clipping threshold; 0 or null disables (default 1, as transformers). */
  maxGradNorm?: number | null;
  /** Train only MLA parameters (names containing `.mla.`), as the seed's freeze_non_mla. */
  freezeNonMla?: boolean;
  /** Validate every N steps (0: only at the start and the end). */
  evalSteps?: number;
  /** Checkpoint every N steps (0: only at the end). */
  saveSteps?: number;
  /** Checkpoints kept (default 2). */
  saveTotalLimit?: number;
  /** Stop after this many skipped (non-finite) steps (default 10). */
  maxBadSteps?: number;
  seed?: number;
  outputDir: string;
  /** Folder whose config and tokenizer files go with every checkpoint (the student's). */
  modelDir: string;
  /** The run's config, saved in each checkpoint. */
  config?: unknown;
  /** Called after each optimizer step (progress bars). */
  onStep?: (report: StepReport) => void;
  /** Called after each validation. */
  onEval?: (step: number, metrics: Record<string, number>) => void;
}

/** What one optimizer step did. */
export interface StepReport {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  tokensPerSecond: number;
  skipped: boolean;
  extra: Record<string, number>;
}

/** One micro-batch's result: the loss (a scalar tensor; gradients already accumulated) and its size. */
export interface MicroResult {
  loss: Tensor;
  tokens: number;
  /** Host metrics averaged over the micro-batches of a step (e.g. DPO's accuracy). */
  extra?: Record<string, number>;
}

/** What a task (distillation, DPO) plugs into the loop. */
export interface TaskHooks {
  readonly kind: string;
  /** Forward + backward of one micro-batch (gradients scaled by `gradScale`); null when the data ran out. */
  micro(gradScale: number): Promise<MicroResult | null>;
  /** Validation metrics (`loss` at least). */
  evaluate(): Promise<Record<string, number>>;
  dataState(): unknown;
  restoreData(state: unknown): void;
  teacherState?(): unknown;
  restoreTeacher?(state: unknown): void;
}

/** Summary of a finished run. */
export interface RunSummary {
  steps: number;
  tokens: number;
  skippedSteps: number;
  resumedFrom: number | null;
  /** Validation metrics at the first and the last validation of this process. */
  firstEval: Record<string, number> | null;
  lastEval: Record<string, number> | null;
  outputDir: string;
  seconds: number;
}

/** Raised when the NaN/inf guard has skipped more steps than allowed. */
export class TrainingDivergedError extends EcomlaError {}

/** Parameters that train: all, or only MLA ones; the rest stop requiring gradients. */
export function selectTrainable(model: LlamaForCausalLM, mlaOnly: boolean): [string, Tensor][] {
  const all = model.namedParameters();
  const chosen = mlaOnly ? all.filter(([n]) => n.includes(".mla.")) : all;
  if (chosen.length === 0) throw new ConfigError("freeze_non_mla: the student has no MLA parameters (names containing \".mla.\") to train");
  const set = new Set(chosen.map(([, t]) => t));
  for (const [, t] of all) t.requireGrad(set.has(t));
  return chosen;
}

/**
 * The training loop shared by distillation and DPO: AdamW with a warmup + cosine schedule,
 * gradient accumulation, global-norm clipping (one readback per step), a NaN/inf guard, periodic
 * validation, atomic checkpoints and a bit-exact resume.
 */
export async function runLoop(model: LlamaForCausalLM, task: TaskHooks, o: LoopOptions, resume: boolean): Promise<RunSummary> {
  const t0 = performance.now();
  const accum = o.gradientAccumulationSteps ?? 1;
  if (!(Number.isInteger(accum) && accum >= 1)) throw new ConfigError(`gradient_accumulation_steps must be an integer ≥ 1, found ${accum}`);
  if (!(Number.isInteger(o.totalSteps) && o.totalSteps >= 1)) throw new ConfigError(`the run must have at least one step, found ${o.totalSteps}`);
  mkdirSync(o.outputDir, { recursive: true });
  const trainable = selectTrainable(model, o.freezeNonMla ?? false);
  // Unset options must be left out, not passed as undefined: AdamW spreads them over its defaults.
  const optimizer = new AdamW(trainable.map(([, t]) => t), {
    lr: o.learningRate, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? 0,
  });
  const schedule: CosineSchedule = {
    lr: o.learningRate, totalSteps: o.totalSteps, warmupSteps: warmupStepsFor(o.warmupRatio ?? 0, o.totalSteps), minLr: o.minLr, kind: o.scheduler,
  };
  const rng = new Rng(o.seed ?? 0);
  const metrics = new MetricsLog(o.outputDir);
  let step = 0;
  let tokens = 0;
  let skipped = 0;
  let resumedFrom: number | null = null;

  const latest = listCheckpoints(o.outputDir).at(-1);
  if (resume && latest) {
    const state = await loadCheckpoint(latest.dir, model, optimizer, trainable);
    if (state.kind !== task.kind) throw new ConfigError(`${latest.dir}: a ${state.kind} checkpoint cannot resume a ${task.kind} run`);
    ({ step, tokens, skippedSteps: skipped } = state);
    rng.setState(state.rng);
    task.restoreData(state.data);
    if (state.teacher !== undefined) task.restoreTeacher?.(state.teacher);
    resumedFrom = step;
  } else if (latest) {
    throw new ConfigError(`${o.outputDir} already holds ${latest.dir}; pass --resume to continue it, or choose another output_dir`);
  }
  await metrics.resumeAt(resumedFrom ?? -1);

  const stateNow = (): TrainerState => ({
    kind: task.kind, step, tokens, skippedSteps: skipped, rng: rng.state, data: task.dataState(),
    teacher: task.teacherState?.(), config: o.config ?? null,
  });
  // A resumable failure (a remote teacher gone) stops the run at a checkpoint of the last finished step.
  const stopResumably = async (err: unknown, state: TrainerState): Promise<unknown> => {
    if (!(err as { resumable?: boolean } | null)?.resumable) return err;
    if (state.step > 0 && listCheckpoints(o.outputDir).at(-1)?.step !== state.step) {
      await saveCheckpoint(o.outputDir, { model, optimizer, trainable, modelDir: o.modelDir, state }, o.saveTotalLimit ?? 2);
    }
    (err as Error).message += `; stopped after step ${state.step} with a checkpoint in ${o.outputDir} (bring the teacher back and run again with --resume)`;
    return err;
  };
  let firstEval: Record<string, number> | null = null;
  let lastEval: Record<string, number> | null = null;
  const validate = async () => {
    const m = await task.evaluate();
    firstEval ??= m;
    lastEval = m;
    metrics.add({ kind: "eval", step, ...m });
    await metrics.plot(`ecomla ${task.kind}: ${o.outputDir}`);
    o.onEval?.(step, m);
  };
  if (step === 0) await validate();

  const maxBad = o.maxBadSteps ?? 10;
  let lastTick = performance.now();
  try {
    while (step < o.totalSteps) {
      const lr = learningRateAt(schedule, step);
      const lossSum = keep(Tensor.zeros(model.backend, [1]));
      let stepTokens = 0;
      let exhausted = false;
      const extra: Record<string, number> = {};
      // What a checkpoint of the last finished step holds, should this step's teacher go away.
      const atStepStart = stateNow();
      try {
        for (let a = 0; a < accum; a++) {
          // One scope per micro-batch: activations, teacher targets and loss temporaries are freed
          // here, so memory stays flat; only the parameters' gradients accumulate.
          const got = await tidyAsync(async () => {
            const r = await task.micro(1 / accum);
            if (!r) return null;
            noGrad(() => ops.addInto(lossSum, r.loss.view([1])));
            return { tokens: r.tokens, extra: r.extra };
          });
          if (!got) {
            exhausted = true;
            break;
          }
          stepTokens += got.tokens;
          for (const [k, v] of Object.entries(got.extra ?? {})) extra[k] = (extra[k] ?? 0) + v / accum;
        }
        if (exhausted) break;
        const grads = trainable.map(([, t]) => t.grad).filter((g): g is Tensor => g !== null);
        const stats = noGrad(() => tidy(() => ops.concat([gradSquaredNorm(grads).view([1]), lossSum], 0)));
        const [normSq, lossTotal] = Array.from((await stats.data()) as Float32Array) as [number, number];
        stats.dispose();
        const gradNorm = Math.sqrt(normSq);
        const loss = lossTotal / accum;
        const bad = !Number.isFinite(gradNorm) || !Number.isFinite(loss);
        if (bad) {
          skipped++;
          if (skipped > maxBad) throw new TrainingDivergedError(`training diverged: ${skipped} steps with a non-finite loss or gradient (max_bad_steps ${maxBad}); last at step ${step + 1}`);
        } else {
          optimizer.step({ lr, gradScale: clipFactor(gradNorm, o.maxGradNorm === undefined ? 1 : o.maxGradNorm) });
        }
        optimizer.zeroGrad();
        step++;
        tokens += stepTokens;
        const now = performance.now();
        const tokensPerSecond = stepTokens / Math.max(1e-9, (now - lastTick) / 1000);
        lastTick = now;
        metrics.add({ kind: "train", step, loss, lr, grad_norm: gradNorm, tokens, tokens_per_s: +tokensPerSecond.toFixed(1), skipped: bad ? 1 : 0, ...extra });
        o.onStep?.({ step, totalSteps: o.totalSteps, loss, lr, gradNorm, tokens, tokensPerSecond, skipped: bad, extra });
      } catch (err) {
        throw await stopResumably(err, atStepStart);
      } finally {
        lossSum.dispose();
        optimizer.zeroGrad();
      }
      const last = step === o.totalSteps;
      if ((o.evalSteps && step % o.evalSteps === 0) || last) {
        try {
          await validate();
        } catch (err) {
          throw await stopResumably(err, stateNow());
        }
      }
      if ((o.saveSteps && step % o.saveSteps === 0) || last) {
        await saveCheckpoint(o.outputDir, { model, optimizer, trainable, modelDir: o.modelDir, state: stateNow() }, o.saveTotalLimit ?? 2);
      }
    }
    // The final model sits in output_dir itself (as transformers' save_model), loadable by loadLlama.
    if (!existsSync(o.outputDir)) mkdirSync(o.outputDir, { recursive: true });
    await writeModelFolder(o.outputDir, model, o.modelDir);
    await metrics.plot(`ecomla ${task.kind}: ${o.outputDir}`);
  } finally {
    optimizer.dispose();
  }
  return { steps: step, tokens, skippedSteps: skipped, resumedFrom, firstEval, lastEval, outputDir: o.outputDir, seconds: (performance.now() - t0) / 1000 };
}
