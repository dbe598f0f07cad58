import { EcomlaError, ShapeError, differentiateLoss, ops, tidy } from "@ecomla/core";
import type { DistillationBatch, DistillationLoss, LossResult, Tensor, TeacherTargets } from "@ecomla/core";
import { countedPositions, logSoftmax, reduceRows, rowReduction } from "./compose.js";
import { resolveLossOptions, type LossOptions, type ResolvedLossOptions } from "./options.js";

/** Rows of student logits (N, V), checked to be a matrix. */
function rowsOf(loss: string, logits: Tensor): number {
  if (logits.rank !== 2) throw new ShapeError(`${loss}: studentLogits must be (N, V), found [${logits.shape.join(", ")}]`);
  return logits.shape[0]!;
}

function denseTeacher(loss: string, teacher: TeacherTargets | undefined): Tensor {
  if (teacher?.kind !== "logits") throw new EcomlaError(`${loss}: needs dense teacher logits (N, V), found ${teacher ? `"${teacher.kind}" targets` : "no teacher"}`);
  return teacher.logits;
}

/** Shared by the losses: resolved options and the row reduction of a batch. */
abstract class BaseLoss implements DistillationLoss {
  abstract readonly name: string;
  readonly options: ResolvedLossOptions;
  constructor(options: LossOptions | Record<string, unknown> = {}) {
    this.options = resolveLossOptions(options);
  }
  abstract compute(batch: DistillationBatch): LossResult;
  /** The reduction of this loss over the batch's counted positions (labels: also drop label < 0). */
  protected reduction(rows: number, mask?: Tensor, labels?: Tensor, mean = false) {
    const { reduction, seqLen } = this.options;
    return rowReduction(this.name, rows, mean ? "mean" : reduction, seqLen, countedPositions(this.name, rows, mask, labels));
  }
}

/**
 * Forward KL(p_t^τ ‖ p_s^τ) summed over the vocabulary, × τ², reduced over positions (default:
 * mean over counted ones). The fused kernel; takes dense or top-k teacher targets. With τ = 1 and
 * reduction "batchmean" it is the seed's F.kl_div(log_softmax(s), softmax(t), reduction="batchmean").
 */
export class ForwardKl extends BaseLoss {
  readonly name: string = "forward-kl";
  compute({ studentLogits, teacher, mask }: DistillationBatch): LossResult {
    if (!teacher) throw new EcomlaError(`${this.name}: needs teacher targets, found none`);
    const rows = rowsOf(this.name, studentLogits);
    const tau = this.options.temperature;
    return differentiateLoss(studentLogits, (s) => {
      const red = this.reduction(rows, mask);
      const target = teacher.kind === "logits" ? { logits: teacher.logits } : { indices: teacher.indices, logprobs: teacher.logprobs };
      return ops.klDiv(s, target, { temperature: tau, weights: red.weights, scale: red.scale * tau * tau });
    });
  }
}

/**
 * Top-k sparse KL: Σ_k p_k (log p_k − log q^τ_{j_k}) over the teacher's k ids, × τ²; the teacher's
 * log-probs are used as given (the mass outside the top k is dropped), or renormalised over the k
 * ids with `renormalize`. The fused kernel.
 */
export class TopKKl extends BaseLoss {
  readonly name = "topk-kl";
  compute({ studentLogits, teacher, mask }: DistillationBatch): LossResult {
    if (teacher?.kind !== "topk") throw new EcomlaError(`${this.name}: needs top-k teacher targets (indices, logprobs), found ${teacher ? `"${teacher.kind}" targets` : "no teacher"}`);
    const rows = rowsOf(this.name, studentLogits);
    const tau = this.options.temperature;
    return differentiateLoss(studentLogits, (s) => {
      const red = this.reduction(rows, mask);
      const logprobs = this.options.renormalize ? logSoftmax(teacher.logprobs) : teacher.logprobs;
      return ops.klDiv(s, { indices: teacher.indices, logprobs }, { temperature: tau, weights: red.weights, scale: red.scale * tau * tau });
    });
  }
}

/** Reverse KL(p_s^τ ‖ p_t^τ) summed over the vocabulary, × τ² (mode-seeking); composed from primitive ops. */
export class ReverseKl extends BaseLoss {
  readonly name = "reverse-kl";
  compute({ studentLogits, teacher, mask }: DistillationBatch): LossResult {
    const teacherLogits = denseTeacher(this.name, teacher);
    const rows = rowsOf(this.name, studentLogits);
    const tau = this.options.temperature;
    return differentiateLoss(studentLogits, (s) => {
      const logQ = logSoftmax(s, tau);
      const logP = logSoftmax(teacherLogits, tau);
      const perRow = ops.sum(ops.mul(ops.exp(logQ), ops.sub(logQ, logP))); // (N)
      return reduceRows(perRow, this.reduction(rows, mask), tau * tau);
    });
  }
}

/**
 * Generalised Jensen-Shannon divergence (as TRL's GKD): m = β·p_t + (1−β)·p_s,
 * JSD_β = β·KL(p_t ‖ m) + (1−β)·KL(p_s ‖ m), at τ and × τ². β = 0 is forward KL and β = 1
 * reverse KL (TRL's convention: the limits of JSD_β/β and JSD_β/(1−β)).
 */
export class Jsd extends BaseLoss {
  readonly name = "jsd";
  private readonly forward: ForwardKl;
  private readonly reverse: ReverseKl;
  constructor(options: LossOptions | Record<string, unknown> = {}) {
    super(options);
    this.forward = new ForwardKl(options);
    this.reverse = new ReverseKl(options);
  }
  compute(batch: DistillationBatch): LossResult {
    const { beta, temperature: tau } = this.options;
    if (beta === 0) return this.forward.compute(batch);
    if (beta === 1) return this.reverse.compute(batch);
    const { studentLogits, teacher, mask } = batch;
    const teacherLogits = denseTeacher(this.name, teacher);
    const rows = rowsOf(this.name, studentLogits);
    return differentiateLoss(studentLogits, (s) => {
      const logQ = logSoftmax(s, tau);
      const logP = logSoftmax(teacherLogits, tau);
      // log m = logsumexp(log p + log β, log q + log(1−β)) per element, shifted by the elementwise
      // max (taken without gradient, exact for the same reason as in logSoftmax) so it never underflows.
      const a = ops.addScalar(logP, Math.log(beta));
      const b = ops.addScalar(logQ, Math.log(1 - beta));
      const top = ops.maximum(a, b);
      const logM = ops.add(top, ops.log(ops.add(ops.exp(ops.sub(a, top)), ops.exp(ops.sub(b, top)))));
      const teacherTerm = ops.sum(ops.mul(ops.exp(logP), ops.sub(logP, logM))); // (N) KL(p_t ‖ m)
      const studentTerm = ops.sum(ops.mul(ops.exp(logQ), ops.sub(logQ, logM))); // (N) KL(p_s ‖ m)
      const perRow = ops.add(ops.scale(teacherTerm, beta), ops.scale(studentTerm, 1 - beta));
      return reduceRows(perRow, this.reduction(rows, mask), tau * tau);
    });
  }
}

/** Cross-entropy on the labels (label < 0 ignored), mean over counted positions by default (HF's causal-LM loss). The fused kernel. */
export class CrossEntropy extends BaseLoss {
  readonly name = "ce";
  compute({ studentLogits, labels, mask }: DistillationBatch): LossResult {
    if (!labels) throw new EcomlaError(`${this.name}: needs labels (N) i32, found none`);
    const rows = rowsOf(this.name, studentLogits);
    return differentiateLoss(studentLogits, (s) => {
      const red = this.reduction(rows, mask, labels);
      return ops.crossEntropy(s, ops.reshape(labels, [rows]), { weights: red.weights, scale: red.scale });
    });
  }
}

/**
 * The seed's KDTrainer objective: kl_weight · forward KL (at τ, × τ², reduced as `reduction`) +
 * ce_weight · CE on the labels (mean over counted labels). A term whose weight is 0 is not
 * computed, so a teacher (or labels) is needed only when its term counts. Logs both parts.
 */
export class KlCeMix extends BaseLoss {
  readonly name = "kl-ce-mix";
  private readonly kl: ForwardKl;
  private readonly ce: CrossEntropy;
  constructor(options: LossOptions | Record<string, unknown> = {}) {
    super(options);
    this.kl = new ForwardKl(options);
    this.ce = new CrossEntropy({ ...this.options, reduction: "mean" });
  }
  compute(batch: DistillationBatch): LossResult {
    const { klWeight, ceWeight } = this.options;
    if (klWeight === 0 && ceWeight === 0) throw new EcomlaError(`${this.name}: kl_weight and ce_weight are both 0: nothing to train on`);
    const parts: Record<string, Tensor> = {};
    const terms: [LossResult, number][] = [];
    if (klWeight > 0) {
      const kl = this.kl.compute(batch);
      parts.kl = kl.loss;
      terms.push([kl, klWeight]);
    }
    if (ceWeight > 0) {
      const ce = this.ce.compute(batch);
      parts.ce = ce.loss;
      terms.push([ce, ceWeight]);
    }
    // tidy frees the weighted temporaries; the parts keep the unweighted values.
    const combined = tidy(() => {
      let loss: Tensor | null = null;
      let gradLogits: Tensor | null = null;
      for (const [r, w] of terms) {
        const l = w === 1 ? r.loss : ops.scale(r.loss, w);
        const g = w === 1 ? r.gradLogits : ops.scale(r.gradLogits, w);
        loss = loss ? ops.add(loss, l) : l;
        gradLogits = gradLogits ? ops.add(gradLogits, g) : g;
      }
      return { loss: loss!, gradLogits: gradLogits! };
    });
    for (const [r] of terms) if (r.gradLogits !== combined.gradLogits) r.gradLogits.dispose();
    return { ...combined, parts };
  }
}
