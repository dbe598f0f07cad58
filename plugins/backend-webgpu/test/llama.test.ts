// End-to-end on WebGPU: Llama fixtures' logits against the independent PyTorch values, and a
// 20-step training run that must follow the reference backend's loss curve.
import t from "tap";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AdamW, ReferenceBackend, Rng, SafetensorsCheckpoint, Tensor, TinyLM, copyBatch, loadLlama, ops, tidy, type TensorBackend } from "@ecomla/core";
import { createWebGpuBackend } from "@ecomla/backend-webgpu";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "packages", "core", "test", "fixtures", "llama");
const TOL = 1e-4;
/** Largest allowed |loss_webgpu − loss_reference| at any of the 20 steps (f32 on both, different summation orders). */
const LOSS_TOL = 1e-4;

const be = await createWebGpuBackend();
t.teardown(() => be.destroy());

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

for (const name of ["mha-f32", "gqa-bf16-tied", "gqa-f16-sharded", "gqa-f32-headdim"]) {
  t.test(`${name}: full-sequence logits match the PyTorch fixture`, async (t) => {
    const { model, config } = await loadLlama(join(fixtures, name), be);
    const expected = await SafetensorsCheckpoint.open(join(fixtures, name, "expected.safetensors"));
    const ids = await expected.readI32("input_ids");
    const want = await expected.readF32("logits");
    const logits = tidy(() => model.forward(Tensor.from(be, ids, [1, ids.length])));
    const got = (await logits.data()) as Float32Array;
    logits.dispose();
    t.equal(got.length, ids.length * config.vocabSize);
    const err = maxAbsDiff(got, want);
    t.ok(err <= TOL, `logits within ${TOL} (max |Δ| ${err.toExponential(2)})`);
    await expected.close();
    model.dispose();
  });
}

const cfg = { vocab: 10, hidden: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 8, intermediate: 64, maxPositions: 32 };

/** Loss after each of `steps` AdamW steps of the copy task on `backend` (same seeds on every backend). */
async function lossCurve(backend: TensorBackend, steps: number): Promise<number[]> {
  const model = new TinyLM(backend, cfg, 1);
  const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.01 });
  const rng = new Rng(3);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const { ids, labels, seqLen } = copyBatch(rng, 8, 5, cfg.vocab);
    const loss = tidy(() => {
      const x = Tensor.from(backend, ids, [8, seqLen]);
      const y = Tensor.from(backend, labels, [8 * seqLen]);
      const logits = ops.reshape(model.forward(x), [8 * seqLen, cfg.vocab]);
      const counted = labels.reduce((c, l) => c + (l >= 0 ? 1 : 0), 0);
      const l = ops.crossEntropy(logits, y, { scale: 1 / counted });
      l.backward();
      return l;
    });
    opt.step();
    opt.zeroGrad();
    losses.push(await loss.item());
    loss.dispose();
  }
  model.dispose();
  opt.dispose();
  return losses;
}

t.test("20 training steps follow the reference backend's loss curve", async (t) => {
  const reference = await lossCurve(new ReferenceBackend(), 20);
  const before = be.memoryStats().liveBuffers;
  const gpu = await lossCurve(be, 20);
  const diffs = gpu.map((l, i) => Math.abs(l - reference[i]!));
  const worst = Math.max(...diffs);
  t.ok(worst <= LOSS_TOL, `max |Δloss| over 20 steps ${worst.toExponential(2)} ≤ ${LOSS_TOL}`, { reference, webgpu: gpu });
  t.ok(gpu[19]! < gpu[0]! * 0.9, `the model learns: loss ${gpu[0]!.toFixed(3)} → ${gpu[19]!.toFixed(3)}`);
  t.equal(be.memoryStats().liveBuffers, before, "everything freed after dispose");
});
