import type { LossResult } from "./interfaces/loss.js";
import { engine, tidy } from "./tensor/engine.js";
import type { Tensor } from "./tensor/tensor.js";

/**
 * Build a {@link LossResult} from a loss written with differentiable ops: runs `lossFn` on a
 * detached view of the logits (no data is copied), back-propagates, and returns the scalar and
 * d loss / d logits. Lets a DistillationLoss plugin be a few lines of `ops` calls.
 */
export function differentiateLoss(studentLogits: Tensor, lossFn: (logits: Tensor) => Tensor): LossResult {
  let gradLogits: Tensor | null = null;
  const loss = engine.enableGrad(() =>
    tidy(() => {
      const leaf = studentLogits.view(studentLogits.shape).requireGrad();
      const value = lossFn(leaf);
      value.backward();
      gradLogits = leaf.grad;
      leaf.grad = null;
      return value.view([]);
    }),
  );
  // Leaf gradients are kept out of scopes by the engine; hand this one to the caller's scope.
  engine.track(gradLogits!);
  return { loss, gradLogits: gradLogits! };
}
