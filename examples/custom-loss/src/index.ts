import { EcomlaError, differentiateLoss, ops, provide } from "@ecomla/core";
import type { DistillationBatch, DistillationLoss, EcomlaPlugin, LossResult } from "@ecomla/core";

/** Hinton-style distillation: KL(teacher ‖ student) at temperature τ, times τ² so gradients keep their size. */
export class TemperedKl implements DistillationLoss {
  readonly name = "tempered-kl";
  constructor(readonly temperature = 2) {}
  compute({ studentLogits, teacher, mask }: DistillationBatch): LossResult {
    if (teacher?.kind !== "logits") throw new EcomlaError(`tempered-kl: needs dense teacher logits, found ${teacher?.kind ?? "none"}`);
    const tau = this.temperature;
    const scale = (tau * tau) / studentLogits.shape[0]!;
    return differentiateLoss(studentLogits, (s) => ops.klDiv(s, { logits: teacher.logits }, { temperature: tau, weights: mask, scale }));
  }
}

const plugin: EcomlaPlugin = {
  name: "@ecomla/example-custom-loss",
  version: "0.1.0",
  register: (container) => provide(container, "loss", "tempered-kl", { useValue: new TemperedKl() }, { description: "KL at τ=2, scaled by τ²" }),
};
export default plugin;
