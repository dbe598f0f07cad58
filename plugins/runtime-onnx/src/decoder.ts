// The decoder-with-past graph of a loaded Llama / MLA / hybrid model, in Hugging Face Optimum's
// naming. GQA layers cache key/value; MLA layers cache only the latent c_kv and the rotated k_pe and
// attend in the absorbed form (queries multiplied into the latent space, values read from it).
import {
  CausalSelfAttention, ConfigError, MultiHeadLatentAttention, ShapeError,
  type LlamaForCausalLM, type Linear, type RMSNorm, type RotaryEmbedding, type Tensor,
} from "@ecomla/core";
import { GraphBuilder, onnx, type Dim, type WeightDtype } from "./graph.js";

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
/** Added to masked scores: far below any real score, yet finite so fully masked rows stay NaN-free. */
const MASKED_SCORE = -1e9;

/** Cached tensors of one layer, as ecomla-onnx.json describes them. */
export interface LayerCacheLayout {
  layer: number;
  kind: "gqa" | "mla";
  /** Past input names → their shape (symbolic dims "batch", "past_sequence_length"). */
  tensors: { name: string; present: string; shape: Dim[] }[];
  /** Cached elements per token (2·n_kv·d_h for GQA; r_kv + d_rope for MLA). */
  elementsPerToken: number;
}

/** What the graph's cache looks like. */
export interface DecoderLayout {
  layers: LayerCacheLayout[];
  elementsPerToken: number;
  vocabSize: number;
  maxPositions: number;
}

/** Host values of a tensor: a parameter is read from the checkpoint by name, anything else (RoPE tables) from the tensor. */
export type WeightReader = (t: Tensor) => Promise<Float32Array>;

async function host(t: Tensor): Promise<Float32Array> {
  return Float32Array.from((await t.data()) as Float32Array);
}

/** Graph builder state shared by the layers: dynamic shapes, the mask, gathered RoPE tables. */
class DecoderGraph {
  readonly g: GraphBuilder;
  /** Shape(input_ids) = [B, S] (int64). */
  readonly batchSeq: string;
  /** Additive attention bias (B, 1, S, T): 0 where a query may see a key, MASKED_SCORE elsewhere. */
  readonly bias: string;
  private readonly rope = new Map<RotaryEmbedding, { cos: string; sin: string }>();
  private readonly shapes = new Map<string, string>();

  constructor(g: GraphBuilder, readonly dtype: WeightDtype, readonly read: WeightReader, readonly ids: string, readonly mask: string, readonly positions: string) {
    this.g = g;
    this.batchSeq = g.op("Shape", [ids]);
    const seq = g.op("Gather", [this.batchSeq, g.int64([1], true)]);
    const total = g.op("Gather", [g.op("Shape", [mask]), g.int64([1], true)]);
    const past = g.op("Sub", [total, seq]);
    const zero = g.int64([0], true);
    const one = g.int64([1], true);
    const keyIndex = g.unsqueeze(g.op("Range", [zero, total, one]), [0]); // (1, T)
    const queryIndex = g.unsqueeze(g.op("Add", [g.op("Range", [zero, seq, one]), past]), [1]); // (S, 1)
    const causal = g.op("LessOrEqual", [keyIndex, queryIndex]); // (S, T)
    const padding = g.unsqueeze(g.op("Cast", [mask], { to: onnx.TensorProto.DataType.BOOL }), [1, 2]); // (B, 1, 1, T)
    const allowed = g.op("And", [causal, padding]); // (B, 1, S, T)
    this.bias = g.op("Where", [allowed, g.float(0), g.float(MASKED_SCORE)], {}, "attention_bias");
  }

  /** [B, S, ...tail] as an int64 shape tensor. */
  shapeBS(tail: number[]): string {
    const key = tail.join(",");
    let name = this.shapes.get(key);
    if (!name) {
      name = this.g.op("Concat", [this.batchSeq, this.g.int64(tail)], { axis: 0 });
      this.shapes.set(key, name);
    }
    return name;
  }

  async weight(name: string, t: Tensor): Promise<string> {
    return this.g.weight(name, await this.read(t), t.shape, this.dtype);
  }

  /** x (N, in) → (N, out) through a Linear's weight (out, in) and bias. */
  async linear(x: string, layer: Linear, name: string): Promise<string> {
    const w = await this.weight(`${name}.weight`, layer.weight);
    const inputs = [x, w];
    if (layer.bias) inputs.push(await this.weight(`${name}.bias`, layer.bias));
    return this.g.op("Gemm", inputs, { transB: 1 });
  }

  /** RMSNorm over the last axis in float32, as HF's LlamaRMSNorm. */
  async rmsNorm(x: string, norm: RMSNorm, name: string): Promise<string> {
    const g = this.g;
    const w = await this.weight(`${name}.weight`, norm.weight);
    const variance = g.meanLastAxis(g.op("Mul", [x, x]));
    const inv = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [variance, g.float(norm.eps)])])]);
    return g.op("Mul", [g.op("Mul", [x, inv]), w]);
  }

  /**
   * cos/sin rows (B, S, D/2) of a RoPE table gathered at position_ids; the tables are the model's
   * own (RotaryEmbedding.tables), multiplied by its scale (YaRN's attention factor).
   */
  private async tables(rotary: RotaryEmbedding): Promise<{ cos: string; sin: string }> {
    let found = this.rope.get(rotary);
    if (!found) {
      const scale = rotary.options.scale ?? 1;
      const id = this.rope.size;
      const dims = [rotary.maxPositions, rotary.headDim / 2];
      const scaled = async (t: Tensor) => (await host(t)).map((v) => v * scale);
      // Always float32: f16 tables would move the angles by ~1e-3.
      const cosTable = this.g.weight(`rope.${id}.cos`, await scaled(rotary.tables.cos), dims, "f32");
      const sinTable = this.g.weight(`rope.${id}.sin`, await scaled(rotary.tables.sin), dims, "f32");
      found = {
        cos: this.g.op("Gather", [cosTable, this.positions]),
        sin: this.g.op("Gather", [sinTable, this.positions]),
      };
      this.rope.set(rotary, found);
    }
    return found;
  }

  /** x (B, S, H, D) rotated at position_ids in the table's layout ("half": HF rotate-half; "interleaved": pairs). */
  async applyRope(x: string, rotary: RotaryEmbedding, heads: number): Promise<string> {
    const g = this.g;
    const { cos, sin } = await this.tables(rotary);
    const d = rotary.headDim;
    const half = d / 2;
    if ((rotary.options.layout ?? "half") === "half") {
      const c = g.unsqueeze(cos, [2]); // (B, S, 1, D/2)
      const s = g.unsqueeze(sin, [2]);
      const a = g.slice(x, 3, 0, half);
      const b = g.slice(x, 3, half, d);
      const outA = g.op("Sub", [g.op("Mul", [a, c]), g.op("Mul", [b, s])]);
      const outB = g.op("Add", [g.op("Mul", [b, c]), g.op("Mul", [a, s])]);
      return g.op("Concat", [outA, outB], { axis: 3 });
    }
    const c = g.unsqueeze(cos, [2, 4]); // (B, S, 1, D/2, 1)
    const s = g.unsqueeze(sin, [2, 4]);
    const pairs = g.reshape(x, this.shapeBS([heads, half, 2])); // (B, S, H, D/2, 2)
    const a = g.slice(pairs, 4, 0, 1);
    const b = g.slice(pairs, 4, 1, 2);
    const outA = g.op("Sub", [g.op("Mul", [a, c]), g.op("Mul", [b, s])]);
    const outB = g.op("Add", [g.op("Mul", [b, c]), g.op("Mul", [a, s])]);
    return g.reshape(g.op("Concat", [outA, outB], { axis: 4 }), this.shapeBS([heads, d]));
  }

  /** softmax(scores · scale + bias) over keys; scores (B, H, S, T). */
  probabilities(scores: string, scale: number): string {
    const g = this.g;
    return g.op("Softmax", [g.op("Add", [g.op("Mul", [scores, g.float(scale)]), this.bias])], { axis: -1 });
  }
}

/** Grouped-query attention with a key/value cache; x (N, d) → (N, d). */
async function gqaLayer(dg: DecoderGraph, x: string, attn: CausalSelfAttention, prefix: string, i: number, layout: LayerCacheLayout[]): Promise<string> {
  const g = dg.g;
  const { numHeads: h, numKvHeads: kv, headDim: hd } = attn.shape;
  if (attn.rotary.headDim !== hd) throw new ShapeError(`${prefix}: RoPE tables cover ${attn.rotary.headDim} dims, head_dim is ${hd}`);
  const heads = (t: string, n: number) => g.reshape(t, dg.shapeBS([n, hd])); // (B, S, n, D)
  const q = g.transpose(await dg.applyRope(heads(await dg.linear(x, attn.q_proj, `${prefix}.q_proj`), h), attn.rotary, h), [0, 2, 1, 3]);
  const k = g.transpose(await dg.applyRope(heads(await dg.linear(x, attn.k_proj, `${prefix}.k_proj`), kv), attn.rotary, kv), [0, 2, 1, 3]);
  const v = g.transpose(heads(await dg.linear(x, attn.v_proj, `${prefix}.v_proj`), kv), [0, 2, 1, 3]);
  const names = { pastK: `past_key_values.${i}.key`, pastV: `past_key_values.${i}.value`, presentK: `present.${i}.key`, presentV: `present.${i}.value` };
  const cacheShape = (len: string): Dim[] => ["batch", kv, len, hd];
  g.input(names.pastK, FLOAT, cacheShape("past_sequence_length"));
  g.input(names.pastV, FLOAT, cacheShape("past_sequence_length"));
  const keys = g.op("Concat", [names.pastK, k], { axis: 2 }, names.presentK); // (B, Hkv, T, D)
  const values = g.op("Concat", [names.pastV, v], { axis: 2 }, names.presentV);
  g.output(names.presentK, FLOAT, cacheShape("total_sequence_length"));
  g.output(names.presentV, FLOAT, cacheShape("total_sequence_length"));
  layout.push({
    layer: i, kind: "gqa", elementsPerToken: attn.cachedElementsPerToken(),
    tensors: [
      { name: names.pastK, present: names.presentK, shape: cacheShape("past_sequence_length") },
      { name: names.pastV, present: names.presentV, shape: cacheShape("past_sequence_length") },
    ],
  });
  // Each key/value head serves h/kv query heads: (B, Hkv, T, D) → (B, H, T, D).
  const repeat = (t: string) => (h === kv ? t : g.reshape(g.op("Expand", [g.unsqueeze(t, [2]), g.int64([1, 1, h / kv, 1, 1])]), [0, h, -1, hd]));
  const scores = g.op("MatMul", [q, g.transpose(repeat(keys), [0, 1, 3, 2])]); // (B, H, S, T)
  const ctx = g.op("MatMul", [dg.probabilities(scores, 1 / Math.sqrt(hd)), repeat(values)]); // (B, H, S, D)
  const merged = g.reshape(g.transpose(ctx, [0, 2, 1, 3]), [-1, h * hd]);
  return dg.linear(merged, attn.o_proj, `${prefix}.o_proj`);
}

/**
 * Absorbed MLA over a latent cache; x (N, d) → (N, d). Per head q̃ = q_nope · W_UK, score =
 * q̃·c_kv + q_pe·k_pe, context = softmax · c_kv · W_UVᵀ. Only c_kv (r_kv) and k_pe (d_rope) are cached.
 */
async function mlaLayer(dg: DecoderGraph, x: string, attn: MultiHeadLatentAttention, prefix: string, i: number, layout: LayerCacheLayout[]): Promise<string> {
  const g = dg.g;
  const { numHeads: h, kvLoraRank: r, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv, softmaxScale } = attn.shape;
  let q: string;
  if (attn.q_proj) q = await dg.linear(x, attn.q_proj, `${prefix}.q_proj`);
  else {
    let a = await dg.linear(x, attn.q_a_proj!, `${prefix}.q_a_proj`);
    if (attn.q_a_layernorm) a = await dg.rmsNorm(a, attn.q_a_layernorm, `${prefix}.q_a_layernorm`);
    q = await dg.linear(a, attn.q_b_proj!, `${prefix}.q_b_proj`);
  }
  const q4 = g.reshape(q, dg.shapeBS([h, dn + dr])); // (B, S, H, d_nope + d_rope)
  const qNope = g.transpose(g.slice(q4, 3, 0, dn), [0, 2, 1, 3]); // (B, H, S, d_nope)
  const qPe = g.transpose(await dg.applyRope(g.slice(q4, 3, dn, dn + dr), attn.rotary, h), [0, 2, 1, 3]); // (B, H, S, d_rope)

  const a = await dg.linear(x, attn.kv_a_proj_with_mqa, `${prefix}.kv_a_proj_with_mqa`); // (N, r + d_rope)
  let cKv = g.slice(a, 1, 0, r);
  if (attn.kv_a_layernorm) cKv = await dg.rmsNorm(cKv, attn.kv_a_layernorm, `${prefix}.kv_a_layernorm`);
  const kPe = g.reshape(await dg.applyRope(g.reshape(g.slice(a, 1, r, r + dr), dg.shapeBS([1, dr])), attn.rotary, 1), dg.shapeBS([dr])); // (B, S, d_rope)

  const names = {
    pastLatent: `past_key_values.${i}.kv_latent`, pastRope: `past_key_values.${i}.k_rope`,
    presentLatent: `present.${i}.kv_latent`, presentRope: `present.${i}.k_rope`,
  };
  const shape = (len: string, n: number): Dim[] => ["batch", len, n];
  g.input(names.pastLatent, FLOAT, shape("past_sequence_length", r));
  g.input(names.pastRope, FLOAT, shape("past_sequence_length", dr));
  const latent = g.op("Concat", [names.pastLatent, g.reshape(cKv, dg.shapeBS([r]))], { axis: 1 }, names.presentLatent); // (B, T, r)
  const rope = g.op("Concat", [names.pastRope, kPe], { axis: 1 }, names.presentRope); // (B, T, d_rope)
  g.output(names.presentLatent, FLOAT, shape("total_sequence_length", r));
  g.output(names.presentRope, FLOAT, shape("total_sequence_length", dr));
  layout.push({
    layer: i, kind: "mla", elementsPerToken: attn.cachedElementsPerToken(),
    tensors: [
      { name: names.pastLatent, present: names.presentLatent, shape: shape("past_sequence_length", r) },
      { name: names.pastRope, present: names.presentRope, shape: shape("past_sequence_length", dr) },
    ],
  });

  // kv_b (H·(d_nope + d_v), r) split per head into W_UK (H, d_nope, r) and W_UVᵀ (H, r, d_v).
  const kvB = await dg.read(attn.kv_b_proj.weight);
  const wUK = new Float32Array(h * dn * r);
  const wUVt = new Float32Array(h * r * dv);
  for (let head = 0; head < h; head++) {
    const base = head * (dn + dv) * r;
    wUK.set(kvB.subarray(base, base + dn * r), head * dn * r);
    for (let j = 0; j < dv; j++) for (let c = 0; c < r; c++) wUVt[(head * r + c) * dv + j] = kvB[base + (dn + j) * r + c]!;
  }
  const dtype = dg.dtype;
  const uk = g.weight(`${prefix}.kv_b_proj.w_uk`, wUK, [h, dn, r], dtype);
  const uvT = g.weight(`${prefix}.kv_b_proj.w_uv_t`, wUVt, [h, r, dv], dtype);

  const qLatent = g.op("MatMul", [qNope, uk]); // (B, H, S, r)
  const latent4 = g.unsqueeze(latent, [1]); // (B, 1, T, r)
  const rope4 = g.unsqueeze(rope, [1]); // (B, 1, T, d_rope)
  const scores = g.op("Add", [
    g.op("MatMul", [qLatent, g.transpose(latent4, [0, 1, 3, 2])]),
    g.op("MatMul", [qPe, g.transpose(rope4, [0, 1, 3, 2])]),
  ]); // (B, H, S, T)
  const ctxLatent = g.op("MatMul", [dg.probabilities(scores, softmaxScale), latent4]); // (B, H, S, r)
  const ctx = g.op("MatMul", [ctxLatent, uvT]); // (B, H, S, d_v)
  const merged = g.reshape(g.transpose(ctx, [0, 2, 1, 3]), [-1, h * dv]);
  return dg.linear(merged, attn.out_proj, `${prefix}.out_proj`);
}

/**
 * Add the whole decoder to `g`; returns the cache layout. `model` gives the structure and the RoPE
 * tables; `read` gives each parameter's values (by default the model's own).
 */
export async function buildDecoder(g: GraphBuilder, model: LlamaForCausalLM, dtype: WeightDtype, read: WeightReader = host, onLayer?: (done: number, total: number) => void): Promise<DecoderLayout> {
  const config = model.config;
  const ids = g.input("input_ids", INT64, ["batch", "sequence_length"]);
  const mask = g.input("attention_mask", INT64, ["batch", "total_sequence_length"]);
  const positions = g.input("position_ids", INT64, ["batch", "sequence_length"]);
  const dg = new DecoderGraph(g, dtype, read, ids, mask, positions);
  const d = config.hiddenSize;
  const embed = await dg.weight("model.embed_tokens.weight", model.model.embed_tokens.weight);
  let hidden = g.reshape(g.op("Gather", [embed, ids]), [-1, d]); // (N, d) with N = B·S
  const layers: LayerCacheLayout[] = [];
  const total = model.model.layers.length;
  for (let i = 0; i < total; i++) {
    const block = model.model.layers[i]!;
    const prefix = `model.layers.${i}`;
    const attn = block.attention;
    const x = await dg.rmsNorm(hidden, block.input_layernorm, `${prefix}.input_layernorm`);
    let attended: string;
    if (attn instanceof MultiHeadLatentAttention) attended = await mlaLayer(dg, x, attn, `${prefix}.mla`, i, layers);
    else if (attn instanceof CausalSelfAttention) attended = await gqaLayer(dg, x, attn, `${prefix}.self_attn`, i, layers);
    else throw new ConfigError(`ONNX export: layer ${i}'s attention (${attn.constructor.name}) has no ONNX graph; supported: Llama GQA/MHA attention and X-EcoMLA MLA`);
    hidden = g.op("Add", [hidden, attended]);
    const y = await dg.rmsNorm(hidden, block.post_attention_layernorm, `${prefix}.post_attention_layernorm`);
    const gate = await dg.linear(y, block.mlp.gate_proj, `${prefix}.mlp.gate_proj`);
    const up = await dg.linear(y, block.mlp.up_proj, `${prefix}.mlp.up_proj`);
    const act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up]);
    hidden = g.op("Add", [hidden, await dg.linear(act, block.mlp.down_proj, `${prefix}.mlp.down_proj`)]);
    onLayer?.(i + 1, total);
  }
  const normed = await dg.rmsNorm(hidden, model.model.norm, "model.norm");
  // A tied head reuses the embedding table (Gemm with transB reads it as (V, d)).
  const headWeight = model.lm_head ? await dg.weight("lm_head.weight", model.lm_head.weight) : embed;
  const logits2d = g.op("Gemm", [normed, headWeight], { transB: 1 }); // (N, V)
  g.op("Reshape", [logits2d, dg.shapeBS([config.vocabSize])], {}, "logits"); // (B, S, V)
  g.output("logits", FLOAT, ["batch", "sequence_length", config.vocabSize]);
  g.outputs.unshift(g.outputs.pop()!); // Optimum's order: logits, then present.*
  const maxPositions = model.rotary.maxPositions;
  return { layers, elementsPerToken: layers.reduce((n, l) => n + l.elementsPerToken, 0), vocabSize: config.vocabSize, maxPositions };
}
