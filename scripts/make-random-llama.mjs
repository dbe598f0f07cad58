#!/usr/bin/env node
// Writes a Llama-family checkpoint with random bf16 weights for load/throughput checks (never
// commit its output). Default shape: Llama-3.2-1B (vocab 128256, hidden 2048, 16 layers, 32/8
// heads, intermediate 8192, tied embeddings, llama3 rope scaling). Usage:
//   node scripts/make-random-llama.mjs OUT_DIR [--layers N] [--tokenizer DIR_WITH_tokenizer.json]
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Rng, writeShardedSafetensors } from "@ecomla/core";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { layers: { type: "string", default: "16" }, tokenizer: { type: "string" }, seed: { type: "string", default: "0" } },
});
const out = positionals[0];
if (!out) {
  console.error("usage: node scripts/make-random-llama.mjs OUT_DIR [--layers N] [--tokenizer DIR]");
  process.exit(2);
}
const cfg = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192,
  num_hidden_layers: Number(values.layers), num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64,
  rms_norm_eps: 1e-5, rope_theta: 500000,
  rope_scaling: { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  max_position_embeddings: 131072, tie_word_embeddings: true, bos_token_id: 128000, eos_token_id: 128001,
  torch_dtype: "bfloat16", hidden_act: "silu", attention_bias: false, mlp_bias: false,
};
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "config.json"), JSON.stringify(cfg, null, 2));
if (values.tokenizer) {
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) if (existsSync(join(values.tokenizer, f))) copyFileSync(join(values.tokenizer, f), join(out, f));
}

const rng = new Rng(Number(values.seed));
// Random normals are slow in JS; uniform noise with the same std (0.02) is enough for timing and memory.
const random = (n, std) => () => {
  const a = new Float32Array(n);
  const h = std * Math.sqrt(3);
  for (let i = 0; i < n; i++) a[i] = (rng.next() * 2 - 1) * h;
  return a;
};
const ones = (n) => () => new Float32Array(n).fill(1);
const { hidden_size: d, intermediate_size: ff, num_attention_heads: h, num_key_value_heads: kv, head_dim: hd, vocab_size: V } = cfg;
const tensors = [{ name: "model.embed_tokens.weight", shape: [V, d], data: random(V * d, 0.02) }, { name: "model.norm.weight", shape: [d], data: ones(d) }];
for (let i = 0; i < cfg.num_hidden_layers; i++) {
  const p = `model.layers.${i}.`;
  tensors.push(
    { name: p + "self_attn.q_proj.weight", shape: [h * hd, d], data: random(h * hd * d, 0.02) },
    { name: p + "self_attn.k_proj.weight", shape: [kv * hd, d], data: random(kv * hd * d, 0.02) },
    { name: p + "self_attn.v_proj.weight", shape: [kv * hd, d], data: random(kv * hd * d, 0.02) },
    { name: p + "self_attn.o_proj.weight", shape: [d, h * hd], data: random(d * h * hd, 0.02) },
    { name: p + "mlp.gate_proj.weight", shape: [ff, d], data: random(ff * d, 0.02) },
    { name: p + "mlp.up_proj.weight", shape: [ff, d], data: random(ff * d, 0.02) },
    { name: p + "mlp.down_proj.weight", shape: [d, ff], data: random(d * ff, 0.02) },
    { name: p + "input_layernorm.weight", shape: [d], data: ones(d) },
    { name: p + "post_attention_layernorm.weight", shape: [d], data: ones(d) },
  );
}
const t0 = performance.now();
const written = await writeShardedSafetensors(out, tensors.map((t) => ({ ...t, dtype: "BF16" })), { maxShardBytes: 2 ** 30 });
console.log(JSON.stringify({ out, files: written.files?.length ?? undefined, seconds: +((performance.now() - t0) / 1000).toFixed(1) }));
