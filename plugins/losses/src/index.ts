// Public API of @ecomla/losses: the distillation losses, `createLoss` for trainers, and the plugin.
import { ConfigError, packageVersion, provide } from "@ecomla/core";
import type { DistillationLoss, EcomlaPlugin } from "@ecomla/core";
import { CrossEntropy, ForwardKl, Jsd, KlCeMix, ReverseKl, TopKKl } from "./losses.js";
import type { LossOptions } from "./options.js";

export { CrossEntropy, ForwardKl, Jsd, KlCeMix, ReverseKl, TopKKl } from "./losses.js";
export { resolveLossOptions, type LossOptions, type Reduction, type ResolvedLossOptions } from "./options.js";
export { logSoftmax } from "./compose.js";

type LossClass = new (options?: LossOptions | Record<string, unknown>) => DistillationLoss;

/** Every loss of this package by registry name, with the line `ecomla plugins` shows. */
const LOSSES: Record<string, { make: LossClass; description: string }> = {
  "forward-kl": { make: ForwardKl, description: "KL(teacher ‖ student) at τ, × τ² (fused kernel; dense or top-k teacher)" },
  "reverse-kl": { make: ReverseKl, description: "KL(student ‖ teacher) at τ, × τ²" },
  jsd: { make: Jsd, description: "generalised Jensen-Shannon divergence with β (TRL's GKD convention)" },
  ce: { make: CrossEntropy, description: "cross-entropy on the labels (fused kernel)" },
  "kl-ce-mix": { make: KlCeMix, description: "kl_weight · forward KL + ce_weight · CE (the seed's KDTrainer)" },
  "topk-kl": { make: TopKKl, description: "forward KL against a teacher's top-k log-probs (fused kernel)" },
};

/** Names of the losses this package provides. */
export const LOSS_NAMES: readonly string[] = Object.keys(LOSSES);

/** A loss by name with options (camelCase or the seed's `kl_weight`/`ce_weight` keys); what a trainer calls with its config. */
export function createLoss(name: string, options: LossOptions | Record<string, unknown> = {}): DistillationLoss {
  const entry = LOSSES[name];
  if (!entry) throw new ConfigError(`createLoss: unknown loss "${name}"; expected one of ${LOSS_NAMES.join(", ")}`);
  return new entry.make(options);
}

/** The plugin: registers every loss under its name with default options (τ = 1, β = 0.5, kl_weight 1, ce_weight 0, mean). */
const plugin: EcomlaPlugin = {
  name: "@ecomla/losses",
  version: packageVersion(import.meta.url),
  register(container) {
    for (const [name, { make, description }] of Object.entries(LOSSES)) provide(container, "loss", name, { useFactory: () => new make() }, { description });
  },
};
export default plugin;
