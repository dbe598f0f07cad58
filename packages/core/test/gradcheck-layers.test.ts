// Every layer, checked against central finite differences in float64 (input and all parameters).
import t from "tap";
import {
  CausalSelfAttention,
  DecoderBlock,
  Embedding,
  Linear,
  RMSNorm,
  Rng,
  RotaryEmbedding,
  SwiGLUMLP,
  MultiHeadLatentAttention,
  Tensor,
  ropeInverseFrequencies,
  type Module,
} from "@ecomla/core";
import { f64, gradCheck, randn } from "./helpers/gradcheck.js";

const TOL = 1e-6;
const rng = new Rng(99);

function check(name: string, layer: Module, input: Tensor | null, f: () => Tensor): void {
  t.test(name, async (t) => {
    const params = layer.parameters();
    const inputs = input ? [input, ...params] : params;
    const r = gradCheck(inputs, f, { maxEntries: 24 });
    t.ok(r.relErr < TOL, `relative error ${r.relErr.toExponential(2)} < ${TOL} over ${r.checked} entries of ${inputs.length} tensors`, { perInput: r.perInput });
    t.equal(r.perInput.length, inputs.length, "every parameter received a gradient check");
    layer.dispose();
    input?.dispose();
  });
}

{
  const layer = new Linear(f64, 5, 3, rng, { bias: true, std: 0.5 });
  const x = randn(rng, [2, 4, 5]);
  check("Linear (with bias)", layer, x, () => layer.forward(x));
}
{
  const layer = new Embedding(f64, 11, 4, rng, { std: 1 });
  const ids = Tensor.from(f64, [3, 3, 10, 0, 7, 3], [2, 3], { dtype: "i32" });
  check("Embedding", layer, null, () => layer.forward(ids));
}
{
  const layer = new RMSNorm(f64, 6, 1e-5);
  const x = randn(rng, [3, 6]);
  check("RMSNorm", layer, x, () => layer.forward(x));
}
{
  const rotary = new RotaryEmbedding(f64, 8, 32, ropeInverseFrequencies(8, 10000));
  const x = randn(rng, [1, 5, 2, 8]);
  t.test("RotaryEmbedding", async (t) => {
    const r = gradCheck([x], () => rotary.forward(x, 3));
    t.ok(r.relErr < TOL, `relative error ${r.relErr.toExponential(2)}`);
    rotary.dispose();
  });
}
{
  const layer = new SwiGLUMLP(f64, 6, 10, rng);
  const x = randn(rng, [2, 3, 6]);
  check("SwiGLU MLP", layer, x, () => layer.forward(x));
}
{
  const shape = { hiddenSize: 8, numHeads: 4, numKvHeads: 2, headDim: 4 };
  const rotary = new RotaryEmbedding(f64, 4, 16, ropeInverseFrequencies(4, 10000));
  const layer = new CausalSelfAttention(f64, shape, new Rng(5), rotary);
  for (const p of layer.parameters()) f64.writeF64(p.buffer, Array.from(rng.normalArray(p.size, 0, 0.4)));
  const x = randn(rng, [2, 5, 8]);
  check("CausalSelfAttention (GQA 4:2)", layer, x, () => layer.forward(x));
}
{
  const shape = { hiddenSize: 8, numHeads: 2, numKvHeads: 1, headDim: 4 };
  const rotary = new RotaryEmbedding(f64, 4, 16, ropeInverseFrequencies(4, 500));
  const layer = new DecoderBlock(f64, { hiddenSize: 8, intermediateSize: 12, rmsNormEps: 1e-5 }, new Rng(6), new CausalSelfAttention(f64, shape, new Rng(7), rotary));
  for (const p of layer.parameters()) if (p.shape.length === 2) f64.writeF64(p.buffer, Array.from(rng.normalArray(p.size, 0, 0.4)));
  const x = randn(rng, [1, 4, 8]);
  check("DecoderBlock (Llama pre-norm, GQA 2:1)", layer, x, () => layer.forward(x));
}
{
  // MLA (X-EcoMLA layout): q_a/q_b, kv_a (c_kv ‖ shared k_pe), kv_b, out_proj; RoPE on d_rope only, interleaved.
  const rotary = new RotaryEmbedding(f64, 4, 16, ropeInverseFrequencies(4, 1000), { layout: "interleaved", scale: 1.2 });
  const shape = { hiddenSize: 8, numHeads: 2, qLoraRank: 6, kvLoraRank: 5, qkNopeHeadDim: 3, qkRopeHeadDim: 4, vHeadDim: 4, useLoraLayerNorm: true, softmaxScale: 0.4 };
  const layer = new MultiHeadLatentAttention(f64, shape, new Rng(8), rotary);
  for (const p of layer.parameters()) if (p.shape.length === 2) f64.writeF64(p.buffer, Array.from(rng.normalArray(p.size, 0, 0.4)));
  const x = randn(rng, [2, 4, 8]);
  check("MultiHeadLatentAttention (latent norms on)", layer, x, () => layer.forward(x));
}
