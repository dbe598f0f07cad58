// A 2-layer Llama-style model learns a copy task with AdamW, and memory stays flat while it trains.
import t from "tap";
import { AdamW, ReferenceBackend, Rng, Tensor, TinyLM, copyBatch, ops, tidy } from "@ecomla/core";

const cfg = { vocab: 10, hidden: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 8, intermediate: 64, maxPositions: 32 };

function trainStep(model: TinyLM, opt: AdamW, rng: Rng, batch: number, n: number): Tensor {
  const be = model.backend;
  const { ids, labels, seqLen } = copyBatch(rng, batch, n, cfg.vocab);
  const loss = tidy(() => {
    const x = Tensor.from(be, ids, [batch, seqLen]);
    const y = Tensor.from(be, labels, [batch * seqLen]);
    const logits = ops.reshape(model.forward(x), [batch * seqLen, cfg.vocab]);
    const counted = labels.reduce((c, l) => c + (l >= 0 ? 1 : 0), 0);
    const l = ops.crossEntropy(logits, y, { scale: 1 / counted });
    l.backward();
    return l;
  });
  opt.step();
  opt.zeroGrad();
  return loss;
}

t.test("2-layer block learns the copy task in 50 AdamW steps", async (t) => {
  const be = new ReferenceBackend();
  const model = new TinyLM(be, cfg, 1);
  const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 });
  const rng = new Rng(3);
  const losses: number[] = [];
  for (let step = 0; step < 50; step++) {
    const l = trainStep(model, opt, rng, 16, 5);
    losses.push(await l.item());
    l.dispose();
  }
  const first = losses[0]!;
  const last = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
  t.ok(Math.abs(first - Math.log(cfg.vocab - 1)) < 0.6, `initial loss ${first.toFixed(3)} ≈ ln 9 = ${Math.log(9).toFixed(3)} (uniform guess)`);
  t.ok(last < 0.1, `mean loss of the last 5 steps ${last.toFixed(3)} < 0.1`, { losses });
  model.dispose();
  opt.dispose();
  t.equal(be.memoryStats().liveBuffers, 0, "everything freed after dispose");
});

t.test("backend memory stays flat over 100 training steps", async (t) => {
  const be = new ReferenceBackend();
  const model = new TinyLM(be, { ...cfg, hidden: 16, intermediate: 32, heads: 2, kvHeads: 1 }, 2);
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const rng = new Rng(4);
  const samples: { live: number; bytes: number }[] = [];
  for (let step = 0; step < 100; step++) {
    trainStep(model, opt, rng, 2, 4).dispose();
    const s = be.memoryStats();
    samples.push({ live: s.liveBuffers, bytes: s.liveBytes });
  }
  const ref = samples[1]!; // step 0 allocates the optimizer moments
  t.ok(samples.slice(1).every((s) => s.live === ref.live && s.bytes === ref.bytes), `live buffers stay ${ref.live} and bytes ${ref.bytes} from step 1 to 99`, { first: samples[0], last: samples[99] });
  const params = model.parameters();
  t.equal(ref.live, params.length * 3 + 2, "live = parameters + two moments each + the two rope tables");
  model.dispose();
  opt.dispose();
  t.equal(be.memoryStats().liveBuffers, 0);
});
