// X-EcoMLA checkpoints written in the seed's layout by an independent PyTorch implementation of the
// seed's conversion and MLA forward (scripts/fixtures/make_mla_fixtures.py): they load here, their
// logits match, and absorbed incremental decode over the latent cache equals the full forward.
import t from "tap";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ReferenceBackend, SafetensorsCheckpoint, Tensor, cacheElementsPerLayer, loadLlama, parseLlamaConfig, ropeFrequencies, seedYarnScaling, tidy } from "@ecomla/core";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "mla");
const be = new ReferenceBackend();
const TOL = 1e-4;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, bOffset = 0, n = a.length): number {
  let m = 0;
  for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(a[i]! - b[bOffset + i]!));
  return m;
}

for (const [name, mlaLayers] of [["mha-f32-full", [0, 1]], ["mha-f32-hybrid", [1]], ["gqa-bf16-tied-full", [0, 1]], ["gqa-bf16-tied-hybrid", [1]]] as const) {
  t.test(name, async (t) => {
    const { model, mla } = await loadLlama(join(fixtures, name), be);
    t.same(mla?.mlaLayers, mlaLayers, "MLA layers = all layers not in MLA_config.json's attn_layers");
    t.same(model.model.layers.map((l) => l.attention.constructor.name), [0, 1].map((i) => ((mlaLayers as readonly number[]).includes(i) ? "MultiHeadLatentAttention" : "CausalSelfAttention")));
    const expected = await SafetensorsCheckpoint.open(join(fixtures, name, "expected.safetensors"));
    const ids = await expected.readI32("input_ids");
    const want = await expected.readF32("logits");
    const T = ids.length;
    const V = model.vocabSize;
    const full = tidy(() => model.forward(Tensor.from(be, ids, [1, T])));
    const got = (await full.data()) as Float32Array;
    full.dispose();
    const err = maxAbsDiff(got, want);
    t.ok(err <= TOL, `full-sequence logits within ${TOL} of the seed-faithful forward (max |Δ| ${err.toExponential(2)})`);

    // Prefill 8 tokens, then decode one at a time: MLA layers run absorbed over c_kv ‖ k_pe.
    const cache = model.createCache(1, T);
    const pre = tidy(() => model.step(Tensor.from(be, ids.subarray(0, 8), [1, 8]), cache));
    let stepErr = maxAbsDiff((await pre.data()) as Float32Array, got, 0, 8 * V);
    pre.dispose();
    for (let i = 8; i < T; i++) {
      const step = tidy(() => model.step(Tensor.from(be, ids.subarray(i, i + 1), [1, 1]), cache));
      stepErr = Math.max(stepErr, maxAbsDiff((await step.data()) as Float32Array, got, i * V));
      step.dispose();
    }
    t.ok(stepErr <= TOL, `absorbed incremental decode equals the full forward (max |Δ| ${stepErr.toExponential(2)})`);
    const latent = cache.layers.filter((l) => l.constructor.name === "LatentKVCache").length;
    t.equal(latent, mlaLayers.length, "MLA layers cache only the latent");
    t.equal(model.kvCacheElementsPerToken(), mlaLayers.length * (16 + 4) + (2 - mlaLayers.length) * 2 * model.config.numKeyValueHeads * 8);
    cache.dispose();
    await expected.close();
    model.dispose();
  });
}

t.test("the YaRN replacement matches the seed's tables at Llama-3.2 shapes (d_rope 32, θ 5e5, factor 32)", async (t) => {
  const expected = await SafetensorsCheckpoint.open(join(fixtures, "gqa-bf16-tied-full", "expected.safetensors"));
  const want = await expected.readF32("yarn_reference_inv_freq_d32_theta5e5_factor32");
  await expected.close();
  const scaling = seedYarnScaling({ rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
  const { inverseFrequencies, attentionFactor } = ropeFrequencies(32, 500000, scaling);
  const rel = Math.max(...Array.from(want, (w, i) => Math.abs(inverseFrequencies[i]! - w) / w));
  t.ok(rel < 1e-6, `inverse frequencies within 1e-6 relative (${rel.toExponential(2)})`);
  t.ok(Math.abs(attentionFactor - (0.1 * Math.log(32) + 1)) < 1e-12, `cos/sin multiplier 0.1·ln 32 + 1 = ${attentionFactor.toFixed(4)}`);
});

t.test("KV cache accounting matches the closed form on Llama-3.2-1B shapes", async (t) => {
  const base = parseLlamaConfig({ vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8 });
  const layers = Array.from({ length: 16 }, (_, i) => i);
  for (const [rank, ratio] of [[512, 1.9], [256, 3.6], [128, 6.4], [64, 10.7], [48, 12.8]] as const) {
    const mla = { mlaLayers: layers, kvLoraRank: rank, qLoraRank: 1344, qkRopeHeadDim: 32, qkNopeHeadDim: 32, vHeadDim: 64, useLoraLayerNorm: false, layerRanks: new Map(), ropeScaling: null };
    const baseTotal = cacheElementsPerLayer(base, null).reduce((a, b) => a + b, 0);
    const total = cacheElementsPerLayer(base, mla).reduce((a, b) => a + b, 0);
    t.equal(baseTotal, 16 * 1024);
    t.equal(total, 16 * (rank + 32));
    t.equal(+(baseTotal / total).toFixed(1), ratio, `r_kv ${rank}: ${(baseTotal / total).toFixed(2)}× ≈ ${ratio}×`);
  }
});

t.test("the parameter-matched query rank reproduces the seed's Llama-3.2-1B choices", async (t) => {
  const { paramMatchedQRank } = await import("@ecomla/core");
  const base = parseLlamaConfig({ vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8 });
  t.same([512, 256, 128, 48].map((r) => paramMatchedQRank(base, r, 32, 32)), [864, 1184, 1344, 1440]);
});
