// The X-EcoMLA converter against an independent PyTorch implementation of the seed's conversion
// (packages/core/test/fixtures/mla), the exactness of full-rank conversion without RoPE, and ranks.
import t from "tap";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ReferenceBackend, SafetensorsCheckpoint, Tensor, allocateKvRanks, convertCheckpoint, loadLlama, readLlamaConfig, tidy,
  type AttentionLayerWeights, type HostTensor, type MlaConversionOptions,
} from "@ecomla/core";
import { RandomMlaConverter, XEcoMlaConverter, energyRank } from "@ecomla/converter-xecomla";

const here = dirname(fileURLToPath(import.meta.url));
const llamaFixtures = join(here, "../../../packages/core/test/fixtures/llama");
const mlaFixtures = join(here, "../../../packages/core/test/fixtures/mla");
const be = new ReferenceBackend();
const converter = new XEcoMlaConverter();
const OPTIONS: MlaConversionOptions = { kvLoraRank: 16, qLoraRank: 24, qkRopeHeadDim: 4, qkNopeHeadDim: 4, vHeadDim: 8 };

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** (m, k)·(k, n) in float64. */
function matmul(a: HostTensor, b: HostTensor): Float64Array {
  const [m, k] = a.shape as [number, number];
  const n = b.shape[1]!;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) {
    const av = a.data[i * k + p]!;
    for (let j = 0; j < n; j++) out[i * n + j]! += av * b.data[p * n + j]!;
  }
  return out;
}

async function layerInputs(dir: string, layer: number) {
  const cfg = readLlamaConfig(join(dir, "config.json"));
  const ckpt = await SafetensorsCheckpoint.open(dir);
  const w: Partial<AttentionLayerWeights> = {};
  for (const n of ["q_proj", "k_proj", "v_proj", "o_proj"] as const) {
    const name = `model.layers.${layer}.self_attn.${n}.weight`;
    w[n] = { shape: [...ckpt.info(name).shape], data: await ckpt.readF32(name) };
  }
  await ckpt.close();
  const config = {
    hiddenSize: cfg.hiddenSize, numHeads: cfg.numAttentionHeads, numKvHeads: cfg.numKeyValueHeads, headDim: cfg.headDim,
    ropeTheta: cfg.ropeTheta, ropeScaling: null, layerIndex: layer, numLayers: cfg.numHiddenLayers,
  };
  return { config, weights: w as AttentionLayerWeights };
}

for (const [source, fixture] of [["mha-f32", "mha-f32-full"], ["gqa-bf16-tied", "gqa-bf16-tied-full"]] as const) {
  t.test(`${source}: sign-invariant products match the seed-faithful conversion`, async (t) => {
    const expected = await SafetensorsCheckpoint.open(join(mlaFixtures, fixture, "expected.safetensors"));
    for (const layer of [0, 1]) {
      const { config, weights } = await layerInputs(join(llamaFixtures, source), layer);
      const out = await converter.convert(config, weights, OPTIONS, { capabilities: be.capabilities });
      t.same(out.config, { q_rank: 24, kv_rank: 16, qk_rope_head_dim: 4, qk_nope_head_dim: 4, v_head_dim: 8 });
      const kvA = out.weights["kv_a_proj_with_mqa"]!;
      const latentRows: HostTensor = { shape: [16, kvA.shape[1]!], data: kvA.data.subarray(0, 16 * kvA.shape[1]!) };
      const kvb = maxAbsDiff(matmul(out.weights["kv_b_proj"]!, latentRows), await expected.readF32(`model.layers.${layer}.mla.kvb_times_kva`));
      const qb = maxAbsDiff(matmul(out.weights["q_b_proj"]!, out.weights["q_a_proj"]!), await expected.readF32(`model.layers.${layer}.mla.qb_times_qa`));
      t.ok(kvb < 1e-5 && qb < 1e-5, `layer ${layer}: kv_b·kv_a max |Δ| ${kvb.toExponential(2)}, q_b·q_a max |Δ| ${qb.toExponential(2)}`);
      // The rope key is the head average of W_k's last d_rope rows, bit for bit (no SVD involved).
      const kpe = kvA.data.subarray(16 * 32);
      const k = weights.k_proj.data;
      const heads = config.numKvHeads;
      let kpeErr = 0;
      for (let r = 0; r < 4; r++) for (let c = 0; c < 32; c++) {
        let avg = 0;
        for (let h = 0; h < heads; h++) avg += k[(h * 8 + 4 + r) * 32 + c]! / heads;
        kpeErr = Math.max(kpeErr, Math.abs(avg - kpe[r * 32 + c]!));
      }
      t.ok(kpeErr < 1e-6, `layer ${layer}: k_pe rows = mean over kv heads of W_k's last d_rope rows`);
      t.equal(out.weights["out_proj"]!.data, weights.o_proj.data, "o_proj kept as out_proj");
    }
    await expected.close();
  });
}

t.test("converted checkpoints reproduce the fixture logits (full and hybrid)", async (t) => {
  for (const [fixture, layers] of [["mha-f32-full", [0, 1]], ["mha-f32-hybrid", [1]]] as const) {
    const out = mkdtempSync(join(tmpdir(), "ecomla-convert-"));
    const report = await convertCheckpoint(join(llamaFixtures, "mha-f32"), out, converter, be.capabilities, { ...OPTIONS, layers: [...layers] });
    t.equal(report.compressionRatio, 128 / (layers.length * 20 + (2 - layers.length) * 64));
    const { model, mla } = await loadLlama(out, be);
    t.same(mla?.mlaLayers, layers);
    const expected = await SafetensorsCheckpoint.open(join(mlaFixtures, fixture, "expected.safetensors"));
    const ids = await expected.readI32("input_ids");
    const logits = tidy(() => model.forward(Tensor.from(be, ids, [1, ids.length])));
    const err = maxAbsDiff((await logits.data()) as Float32Array, await expected.readF32("logits"));
    t.ok(err < 1e-4, `${fixture}: logits max |Δ| ${err.toExponential(2)} < 1e-4`);
    logits.dispose();
    model.dispose();
    await expected.close();
    // The seed's side files are written too, in the seed's form.
    const mlaConfig = JSON.parse(readFileSync(join(out, "MLA_config.json"), "utf8"));
    t.same(mlaConfig.attn_layers, [0, 1].filter((i) => !(layers as readonly number[]).includes(i)));
    const layerConfig = JSON.parse(readFileSync(join(out, "mla_layer_config.json"), "utf8"));
    t.match(layerConfig, { kv_lora_rank: 16, q_lora_rank: 24, qk_rope_head_dim: 4, qk_nope_head_dim: 4, v_head_dim: 8, use_lora_layer_norm: false, rope_type: "yarn" });
    t.same(Object.keys(layerConfig.layer_rank_list), layers.map(String));
  }
});

t.test("with RoPE off and full ranks the conversion is exact", async (t) => {
  const out = mkdtempSync(join(tmpdir(), "ecomla-exact-"));
  // d_rope 0: every q/k dim goes through the joint SVD (a shared k_pe cannot be exact with n_kv > 1).
  await convertCheckpoint(join(llamaFixtures, "mha-f32"), out, converter, be.capabilities, { kvLoraRank: 32, qLoraRank: 32, qkRopeHeadDim: 0, qkNopeHeadDim: 8, vHeadDim: 8 });
  const original = await loadLlama(join(llamaFixtures, "mha-f32"), be, { disableRope: true });
  const converted = await loadLlama(out, be, { disableRope: true });
  const expected = await SafetensorsCheckpoint.open(join(mlaFixtures, "mha-f32-full", "expected.safetensors"));
  const ids = await expected.readI32("input_ids");
  const a = tidy(() => original.model.forward(Tensor.from(be, ids, [1, ids.length])));
  const b = tidy(() => converted.model.forward(Tensor.from(be, ids, [1, ids.length])));
  const la = (await a.data()) as Float32Array;
  const lb = (await b.data()) as Float32Array;
  t.ok(maxAbsDiff(la, await expected.readF32("norope_llama_logits")) < 1e-4, "the RoPE-free Llama matches the fixture's");
  const err = maxAbsDiff(la, lb);
  t.ok(err < 1e-4, `converted vs original logits max |Δ| ${err.toExponential(2)} < 1e-4`);
  t.ok(maxAbsDiff(lb, await expected.readF32("norope_mla_fullrank_drope0_logits")) < 1e-4, "and matches the fixture's full-rank MLA");
  for (const x of [a, b]) x.dispose();
  original.model.dispose();
  converted.model.dispose();
  await expected.close();
});

t.test("dynamic ranks from energy, rounded up to the divisor; first and last layer fixed", async (t) => {
  const s = Float64Array.from([4, 2, 1, 1, 0.5]); // energies 16, 4, 1, 1, 0.25 of 22.25
  t.equal(energyRank(s, 0.7, 1), 1, "16/22.25 = 0.72 > 0.7: none fits, so at least 1");
  t.equal(energyRank(s, 0.9, 1), 2, "(16+4)/22.25 = 0.899 ≤ 0.9");
  t.equal(energyRank(s, 0.9, 8), 8, "rounded up to a multiple of 8");
  t.equal(energyRank(s, 1, 1), 5);
  const out = mkdtempSync(join(tmpdir(), "ecomla-dyn-"));
  const fixed = await convertCheckpoint(join(llamaFixtures, "mha-f32"), out, converter, be.capabilities, { ...OPTIONS, kvEnergy: 0.5, qEnergy: 0.5 });
  t.same(fixed.layers.map((l) => l.report["kv_rank"]), [16, 16], "layers 0 and L−1 keep the configured ranks");
  const dyn = await convertCheckpoint(join(llamaFixtures, "mha-f32"), out, converter, be.capabilities, { ...OPTIONS, kvEnergy: 0.5, qEnergy: 0.5, fixedFirstLast: false, rankDivisor: 4 });
  for (const l of dyn.layers) {
    t.equal((l.report["kv_rank"] as number) % 4, 0);
    t.ok((l.report["kv_energy_kept"] as number) >= 0.5 - 1e-9 && (l.report["kv_rank"] as number) < 16, `layer ${l.layer}: rank ${l.report["kv_rank"]} keeps ${l.report["kv_energy_kept"]} of the energy`);
  }
});

t.test("a KV budget spreads ranks by energy and fills the budget", async (t) => {
  const spectra = new Map([[0, Float64Array.from({ length: 64 }, (_, i) => Math.exp(-i / 4))], [1, Float64Array.from({ length: 64 }, (_, i) => Math.exp(-i / 20))]]);
  const ranks = allocateKvRanks(spectra, 48, 8);
  t.equal(ranks.get(0)! + ranks.get(1)!, 48, "the whole budget is used");
  t.ok(ranks.get(1)! > ranks.get(0)!, `the flatter spectrum gets more rank (${ranks.get(0)} vs ${ranks.get(1)})`);
  t.throws(() => allocateKvRanks(spectra, 8, 8), /kv budget too small/);
  const out = mkdtempSync(join(tmpdir(), "ecomla-budget-"));
  const report = await convertCheckpoint(join(llamaFixtures, "mha-f32"), out, converter, be.capabilities, { ...OPTIONS, kvBudget: 0.25 });
  t.ok(report.elementsPerToken <= 0.25 * 128, `cache ${report.elementsPerToken} ≤ 25% of ${128}`);
  t.ok(report.elementsPerToken > 0.25 * 128 - 2 * 8, "and within one rank step of it");
});

t.test("random converter: same shapes, o_proj kept, deterministic by seed", async (t) => {
  const { config, weights } = await layerInputs(join(llamaFixtures, "gqa-bf16-tied"), 1);
  const svdOut = await converter.convert(config, weights, OPTIONS, { capabilities: be.capabilities });
  const random = new RandomMlaConverter();
  const a = await random.convert(config, weights, { ...OPTIONS, seed: 3 });
  const b = await random.convert(config, weights, { ...OPTIONS, seed: 3 });
  for (const [name, w] of Object.entries(svdOut.weights)) t.same(a.weights[name]!.shape, w.shape, name);
  t.same(a.weights["kv_b_proj"]!.data, b.weights["kv_b_proj"]!.data);
  t.equal(a.weights["out_proj"]!.data, weights.o_proj.data);
  const bound = 1 / Math.sqrt(32);
  t.ok(a.weights["q_a_proj"]!.data.every((v) => Math.abs(v) <= bound), "PyTorch's default Linear init range");
});

t.test("bad options are refused with the option named", async (t) => {
  const { config, weights } = await layerInputs(join(llamaFixtures, "mha-f32"), 0);
  await t.rejects(converter.convert(config, weights, { ...OPTIONS, vHeadDim: 4 }, { capabilities: be.capabilities }), /v_head_dim must equal the head dim 8/);
  await t.rejects(converter.convert(config, weights, { ...OPTIONS, qkRopeHeadDim: 3 }, { capabilities: be.capabilities }), /qk_rope_head_dim must be an even integer/);
  await t.rejects(converter.convert(config, weights, { ...OPTIONS, kvLoraRank: 40 }, { capabilities: be.capabilities }), /kv_lora_rank: rank 40 exceeds min\(64, 32\) = 32/);
});
