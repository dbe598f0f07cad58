// A plugin for CLI tests: registers a minimal forward KL as "forward-kl" until @ecomla/losses is installed.
import { differentiateLoss, ops, provide } from "@ecomla/core";

export default {
  name: "ecomla-test-forward-kl",
  version: "0.0.0",
  register(container) {
    provide(container, "loss", "forward-kl", {
      useValue: {
        name: "forward-kl",
        compute({ studentLogits, teacher, mask }) {
          const t = teacher.kind === "logits" ? { logits: teacher.logits } : { indices: teacher.indices, logprobs: teacher.logprobs };
          return differentiateLoss(studentLogits, (s) => ops.klDiv(s, t, { weights: mask }));
        },
      },
    });
  },
};
