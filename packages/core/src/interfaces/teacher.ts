import type { TokenBatch } from "./data.js";
import type { TeacherTargets } from "./loss.js";

/** A source of distillation targets: an in-process model, precomputed top-k files, or a service. */
export interface Teacher {
  /** Registry name of the implementation. */
  readonly name: string;
  /** Targets for every input position of the batch (N = batch·seqLen rows). */
  targets(batch: TokenBatch): Promise<TeacherTargets>;
}
