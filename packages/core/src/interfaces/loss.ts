import type { Tensor } from "../tensor/tensor.js";

/** What a teacher provides for N token positions: full logits, or top-k log-probabilities. */
export type TeacherTargets =
  | {
      kind: "logits";
      /** (N, V) */
      logits: Tensor;
    }
  | {
      kind: "topk";
      /** (N, K) i32 */
      indices: Tensor;
      /** (N, K) f32 log-probabilities */
      logprobs: Tensor;
    };

/** Inputs of a distillation loss for N = batch·seq positions. */
export interface DistillationBatch {
  /** (N, V) student logits. */
  studentLogits: Tensor;
  /** Teacher targets for the same N positions. */
  teacher?: TeacherTargets;
  /** (N) i32 next-token labels, negative = ignored (for CE terms). */
  labels?: Tensor;
  /** (N) f32, 1 where the position counts, 0 where it does not. */
  mask?: Tensor;
}

/** A scalar loss plus its gradient w.r.t. the student logits. */
export interface LossResult {
  /** () the loss value (mean over counted positions unless the loss documents otherwise). */
  loss: Tensor;
  /** (N, V) d loss / d studentLogits. */
  gradLogits: Tensor;
  /** Extra scalars to log (e.g. the KL and CE parts of a mix). */
  parts?: Record<string, Tensor>;
}

/** A distillation objective. Forward KL, reverse KL, JSD, CE mixes and top-k KL are plugins. */
export interface DistillationLoss {
  /** Registry name, e.g. "forward-kl". */
  readonly name: string;
  compute(batch: DistillationBatch): LossResult;
}
