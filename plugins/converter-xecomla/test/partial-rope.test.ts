// Partial-RoPE (MHA2MLA-style) conversion: exact at full rank (MQA, RoPE on), closer to the teacher
// than the seed's re-paired RoPE at step 0, and the frequency-selection strategies.
import t from "tap";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ReferenceBackend, SafetensorsCheckpoint, Tensor, convertCheckpoint, loadLlama, tidy, type LlamaForCausalLM } from "@ecomla/core";
import { PartialRopeConverter, XEcoMlaConverter, selectFrequencies } from "@ecomla/converter-xecomla";

const here = dirname(fileURLToPath(import.meta.url));
const llamaFixtures = join(here, "../../../packages/core/test/fixtures/llama");
const be = new ReferenceBackend();

async function logitsOf(model: LlamaForCausalLM, ids: Int32Array): Promise<Float32Array> {
  const l = tidy(() => model.forward(Tensor.from(be, ids, [1, ids.length])));
  const d = (await l.data()) as Float32Array;
  l.dispose();
  return d;
}

/** Mean KL(p ‖ q) per position of two logit sets (T, V). */
function meanKl(p: Float32Array, q: Float32Array, V: number): number {
  let total = 0;
  const T = p.length / V;
  for (let t = 0; t < T; t++) {
    const lp = Array.from(p.subarray(t * V, (t + 1) * V));
    const lq = Array.from(q.subarray(t * V, (t + 1) * V));
    const lse = (a: number[]) => Math.max(...a) + Math.log(a.reduce((s, v) => s + Math.exp(v - Math.max(...a)), 0));
    const zp = lse(lp), zq = lse(lq);
    for (let j = 0; j < V; j++) total += Math.exp(lp[j]! - zp) * (lp[j]! - zp - (lq[j]! - zq));
  }
  return total / T;
}

t.test("all frequencies kept at full rank reproduce an MQA model with RoPE on", async (t) => {
  const src = join(llamaFixtures, "gqa-f32-headdim"); // 2 heads, 1 KV head, head_dim 24, hidden 32
  const out = mkdtempSync(join(tmpdir(), "ecomla-prope-"));
  const report = await convertCheckpoint(src, out, new PartialRopeConverter(), be.capabilities, {
    kvLoraRank: 32, qLoraRank: 32, qkRopeHeadDim: 24, qkNopeHeadDim: 0, vHeadDim: 24, ropeSelection: "uniform",
  });
  t.equal(report.layers[0]!.report["rope_frequencies"], Array.from({ length: 12 }, (_, i) => i).join(","));
  const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
  t.same(config.mla_rope_frequency_indices["0"], Array.from({ length: 12 }, (_, i) => i), "the kept frequencies are recorded per layer");
  const expected = await SafetensorsCheckpoint.open(join(src, "expected.safetensors"));
  const ids = await expected.readI32("input_ids");
  const want = await expected.readF32("logits");
  await expected.close();
  const { model } = await loadLlama(out, be);
  const got = await logitsOf(model, ids);
  const err = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!)), 0);
  t.ok(err < 1e-4, `logits max |Δ| ${err.toExponential(2)} < 1e-4 against the original model`);
  // Absorbed decode over the latent cache still equals the full forward.
  const cache = model.createCache(1, ids.length);
  let stepErr = 0;
  for (let i = 0; i < ids.length; i++) {
    const s = tidy(() => model.step(Tensor.from(be, ids.subarray(i, i + 1), [1, 1]), cache));
    const d = (await s.data()) as Float32Array;
    s.dispose();
    for (let j = 0; j < 96; j++) stepErr = Math.max(stepErr, Math.abs(d[j]! - got[i * 96 + j]!));
  }
  t.ok(stepErr < 1e-4, `incremental decode max |Δ| ${stepErr.toExponential(2)}`);
  cache.dispose();
  model.dispose();
});

t.test("at equal ranks, keeping the teacher's RoPE frequencies starts closer to the teacher", async (t) => {
  const src = join(llamaFixtures, "mha-f32");
  const expected = await SafetensorsCheckpoint.open(join(src, "expected.safetensors"));
  const ids = await expected.readI32("input_ids");
  const teacher = await expected.readF32("logits");
  await expected.close();
  const kl: Record<string, number> = {};
  for (const [name, converter, extra] of [
    ["xecomla", new XEcoMlaConverter(), { qkNopeHeadDim: 4 }],
    ["partial-rope", new PartialRopeConverter(), { qkNopeHeadDim: 4, ropeSelection: "norm" as const }],
  ] as const) {
    const out = mkdtempSync(join(tmpdir(), "ecomla-prope-"));
    await convertCheckpoint(src, out, converter, be.capabilities, { kvLoraRank: 24, qLoraRank: 32, qkRopeHeadDim: 4, vHeadDim: 8, ...extra });
    const { model } = await loadLlama(out, be);
    kl[name] = meanKl(teacher, await logitsOf(model, ids), 96);
    model.dispose();
  }
  t.ok(kl["partial-rope"]! < kl["xecomla"]!, `KL to the teacher at step 0: partial-rope ${kl["partial-rope"]!.toExponential(2)} < xecomla ${kl["xecomla"]!.toExponential(2)}`);
});

t.test("frequency strategies", async (t) => {
  const l = { d: 4, heads: 1, kvHeads: 1, headDim: 8, nope: 4, rope: 4, vDim: 8, divisor: 8 };
  const q = new Float32Array(8 * 4);
  const k = new Float32Array(8 * 4);
  // Make frequency 2 (rows 2 and 6) dominant in both q and k, then frequency 3.
  for (let c = 0; c < 4; c++) {
    q[2 * 4 + c] = q[6 * 4 + c] = k[2 * 4 + c] = k[6 * 4 + c] = 3;
    q[3 * 4 + c] = k[3 * 4 + c] = 1;
  }
  const w = { q_proj: { shape: [8, 4], data: q }, k_proj: { shape: [8, 4], data: k }, v_proj: { shape: [8, 4], data: k }, o_proj: { shape: [4, 8], data: q } };
  t.same(selectFrequencies("high", 2, w, l), [0, 1]);
  t.same(selectFrequencies("low", 2, w, l), [2, 3]);
  t.same(selectFrequencies("uniform", 2, w, l), [0, 2]);
  t.same(selectFrequencies("norm", 2, w, l), [2, 3]);
  t.throws(() => selectFrequencies("high", 5, w, l), /5 frequencies asked, a head has 4/);

});
