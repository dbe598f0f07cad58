// The cosine schedule with warmup and the global-norm clip against closed forms.
import t from "tap";
import { ReferenceBackend, Tensor } from "@ecomla/core";
import { clipFactor, gradSquaredNorm, learningRateAt, warmupStepsFor } from "@ecomla/train";

t.test("warmup then cosine to 0 or to min_lr", async (t) => {
  const total = 100;
  const warmup = warmupStepsFor(0.1, total);
  t.equal(warmup, 10);
  t.equal(warmupStepsFor(0.01, 150), 2, "ceil(1.5), as transformers");
  const s = { lr: 1e-3, totalSteps: total, warmupSteps: warmup };
  t.equal(learningRateAt(s, 0), 0);
  t.equal(learningRateAt(s, 5), 5e-4);
  t.equal(learningRateAt(s, 10), 1e-3, "peak at the end of warmup");
  for (const step of [10, 37, 55, 99, 100]) {
    const closed = 1e-3 * 0.5 * (1 + Math.cos((Math.PI * (step - 10)) / 90));
    t.ok(Math.abs(learningRateAt(s, step) - closed) < 1e-15, `step ${step}: ${learningRateAt(s, step)} = ½·lr·(1 + cos(π·${step - 10}/90))`);
  }
  t.ok(Math.abs(learningRateAt(s, 55) - 5e-4) < 1e-15, "half way down at the middle of the decay");
  const m = { ...s, minLr: 1e-4 };
  t.ok(Math.abs(learningRateAt(m, 100) - 1e-4) < 1e-15, "ends at min_lr");
  t.ok(Math.abs(learningRateAt(m, 55) - (1e-4 + 0.9e-3 * 0.5)) < 1e-15, "min_lr + (lr − min_lr)/2 at the middle");
  t.equal(learningRateAt({ ...s, kind: "constant" }, 80), 1e-3);
});

t.test("global gradient norm on the device and the clip factor", async (t) => {
  const be = new ReferenceBackend();
  const a = Tensor.from(be, [3, 4], [2]);
  const b = Tensor.from(be, [[1, 2], [2, 4]].flat(), [2, 2]);
  const sq = gradSquaredNorm([a, b]);
  t.equal(await sq.item(), 9 + 16 + 1 + 4 + 4 + 16, "Σ‖g‖² = 50");
  const norm = Math.sqrt(50);
  t.equal(clipFactor(norm, 1), 1 / (norm + 1e-6), "max/(norm + 1e-6), as torch.nn.utils.clip_grad_norm_");
  t.equal(clipFactor(norm, 10), 1, "no clipping below the threshold");
  t.equal(clipFactor(norm, 0), 1, "0 disables");
  t.equal(clipFactor(NaN, 1), 1, "a non-finite norm is the NaN guard's business");
  for (const x of [a, b, sq]) x.dispose();
});
