import { ConfigError, Tensor, noGrad, ops, tidyAsync, type DistillationLoss, type LlamaForCausalLM, type Teacher, type TokenBatch } from "@ecomla/core";
import { splitBatch, type PackedDataSource } from "./data.js";
import { runLoop, type LoopOptions, type MicroResult, type RunSummary, type TaskHooks } from "./loop.js";
import { disposeTargets, klToTeacher, type StatefulTeacher } from "./teacher.js";

/** A teacher that can start a batch's work early (a remote one: its requests overlap the student's step). */
export interface PrefetchingTeacher extends Teacher {
  prefetch(batch: TokenBatch): void;
  discardPrefetched(): void;
}

/** Inputs of {@link distill}. */
export interface DistillInputs {
  /** The student (parameters train). */
  student: LlamaForCausalLM;
  /** Targets for every position: an in-process model or a top-k file. */
  teacher: Teacher;
  /** The registered loss (e.g. forward-kl), applied to student logits (N, V) and the teacher's targets. */
  loss: DistillationLoss;
  data: PackedDataSource;
  /** Validation batches per validation (default: all). */
  evalBatches?: number;
}

/** Student forward over a batch: logits (N, V) plus inputs and labels on the device. */
function studentLogits(student: LlamaForCausalLM, batch: TokenBatch): { logits: Tensor; labels: Tensor } {
  const be = student.backend;
  const { inputs, labels } = splitBatch(batch);
  const ids = Tensor.from(be, inputs, [batch.batch, batch.seqLen]); // (B, T)
  const out = student.forward(ids); // (B, T, V)
  return { logits: ops.reshape(out, [batch.batch * batch.seqLen, student.vocabSize]), labels: Tensor.from(be, labels, [labels.length], { dtype: "i32" }) };
}

/**
 * The distillation task: student forward → logits (N, V) → loss.compute → gradLogits →
 * logits.backward(gradLogits), with the teacher run per micro-batch; validation reports the
 * loss, CE, perplexity and the mean KL(teacher ‖ student) per position.
 */
export class DistillTask implements TaskHooks {
  readonly kind = "distill";
  /** A batch read ahead so a remote teacher's requests overlap the student's step, and the data state before it. */
  private ahead: { batch: TokenBatch | null; stateBefore: unknown } | null = null;
  constructor(readonly inputs: DistillInputs) {
    if (inputs.teacher.name === "model") {
      const tv = (inputs.teacher as unknown as { model: { vocabSize: number } }).model.vocabSize;
      if (tv !== inputs.student.vocabSize) throw new ConfigError(`teacher vocabulary (${tv}) differs from the student's (${inputs.student.vocabSize}); distillation needs a shared vocabulary`);
    }
  }

  async micro(gradScale: number): Promise<MicroResult | null> {
    const { student, teacher, loss, data } = this.inputs;
    const batch = this.ahead ? this.ahead.batch : await data.next();
    this.ahead = null;
    if (!batch) return null;
    const prefetching = teacher as Partial<PrefetchingTeacher>;
    if (prefetching.prefetch) {
      const stateBefore = data.state();
      const next = await data.next();
      if (next) prefetching.prefetch(next);
      this.ahead = { batch: next, stateBefore };
    }
    const targets = await teacher.targets(batch);
    const { logits, labels } = studentLogits(student, batch);
    const result = loss.compute({ studentLogits: logits, teacher: targets, labels });
    const grad = gradScale === 1 ? result.gradLogits : noGrad(() => ops.scale(result.gradLogits, gradScale));
    logits.backward(grad);
    return { loss: result.loss, tokens: batch.batch * batch.seqLen };
  }

  async evaluate(): Promise<Record<string, number>> {
    const { student, teacher, loss, data, evalBatches } = this.inputs;
    const batches = data.validationBatches(evalBatches);
    if (batches.length === 0) return {};
    let rows = 0;
    const sums = { loss: 0, ce: 0, kl: 0 };
    // A file teacher is positioned on the training stream; validation needs a live model teacher.
    const live = teacher.name !== "topk-file";
    for (const batch of batches) {
      const v = await tidyAsync(async () => {
        const { logits, labels } = noGrad(() => studentLogits(student, batch));
        const ce = noGrad(() => ops.crossEntropy(logits, labels));
        if (!live) return ce.data();
        const targets = await teacher.targets(batch);
        const l = loss.compute({ studentLogits: logits, teacher: targets, labels }).loss;
        const kl = klToTeacher(logits, targets);
        const out = noGrad(() => ops.concat([ce.view([1]), l.view([1]), kl.view([1])], 0));
        disposeTargets(targets);
        return out.data();
      });
      const n = batch.batch * batch.seqLen;
      rows += n;
      sums.ce += v[0]! * n;
      if (live) {
        sums.loss += v[1]! * n;
        sums.kl += v[2]! * n;
      }
    }
    const ce = sums.ce / rows;
    return live ? { loss: sums.loss / rows, ce, perplexity: Math.exp(ce), kl: sums.kl / rows } : { loss: ce, ce, perplexity: Math.exp(ce) };
  }

  dataState(): unknown {
    // The batch read ahead has not been trained on yet.
    return this.ahead ? this.ahead.stateBefore : this.inputs.data.state();
  }

  restoreData(state: unknown): void {
    this.ahead = null;
    (this.inputs.teacher as Partial<PrefetchingTeacher>).discardPrefetched?.();
    this.inputs.data.restore(state);
  }

  teacherState(): unknown {
    const t = this.inputs.teacher as Partial<StatefulTeacher>;
    return t.state?.();
  }

  restoreTeacher(state: unknown): void {
    (this.inputs.teacher as Partial<StatefulTeacher>).restore?.(state);
  }
}

/** Distil `student` from `teacher` (see {@link DistillTask} and {@link runLoop}); `resume` continues from the newest checkpoint. */
export function distill(inputs: DistillInputs, options: LoopOptions, resume = false): Promise<RunSummary> {
  return runLoop(inputs.student, new DistillTask(inputs), options, resume);
}
