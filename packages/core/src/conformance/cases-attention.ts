// Conformance cases for attention and its backward: GQA ratios 1/2/4, unequal q·k and v dims,
// causal with S > T (decode T = 1) and non-causal, and strided q/k/v views (sliced out of one fused
// QKV projection, or padded between heads and tokens).
import type { AttentionArgs, AttentionView, DeviceBuffer } from "../interfaces/backend.js";
import type { CaseSink } from "./harness.js";
import { TOLERANCES } from "./tolerances.js";

export interface AttentionCase {
  name: string;
  batch: number;
  queryLen: number;
  keyLen: number;
  numHeads: number;
  numKvHeads: number;
  qkDim: number;
  vDim: number;
  causal: boolean;
  /** Default qkDim^-1/2. */
  scale?: number;
  /** contiguous q/k/v; `fused`: all three sliced from one (B, T, (Hq+2Hkv)·D) buffer; `padded`: gaps between heads, tokens and batches. */
  layout: "contiguous" | "fused" | "padded";
  /** Omit the lse output (inference). */
  noLse?: boolean;
}

/** The attention variants exercised by conformance, composition and gradient checks. */
export const ATTENTION_CASES: AttentionCase[] = [
  { name: "tiny B=1 T=S=1 H=1 D=1 non-causal", batch: 1, queryLen: 1, keyLen: 1, numHeads: 1, numKvHeads: 1, qkDim: 1, vDim: 1, causal: false, layout: "contiguous" },
  { name: "MHA Hq=Hkv=4 causal T=S=7 D=16", batch: 1, queryLen: 7, keyLen: 7, numHeads: 4, numKvHeads: 4, qkDim: 16, vDim: 16, causal: true, layout: "contiguous" },
  { name: "GQA Hq/Hkv=2 causal B=2 T=S=9 D=8", batch: 2, queryLen: 9, keyLen: 9, numHeads: 4, numKvHeads: 2, qkDim: 8, vDim: 8, causal: true, layout: "contiguous" },
  { name: "GQA Hq/Hkv=4 causal B=2 T=S=5 D=8", batch: 2, queryLen: 5, keyLen: 5, numHeads: 4, numKvHeads: 1, qkDim: 8, vDim: 8, causal: true, layout: "contiguous" },
  { name: "unequal dims Dqk=24 Dv=16 GQA 2 causal", batch: 1, queryLen: 6, keyLen: 6, numHeads: 4, numKvHeads: 2, qkDim: 24, vDim: 16, causal: true, layout: "contiguous" },
  { name: "causal S>T (T=3 S=17) GQA 2", batch: 2, queryLen: 3, keyLen: 17, numHeads: 2, numKvHeads: 1, qkDim: 8, vDim: 4, causal: true, layout: "contiguous" },
  { name: "decode T=1 S=33 causal GQA 4", batch: 2, queryLen: 1, keyLen: 33, numHeads: 8, numKvHeads: 2, qkDim: 16, vDim: 16, causal: true, layout: "contiguous" },
  { name: "non-causal T=5 S=9 odd dims Dqk=3 Dv=5", batch: 3, queryLen: 5, keyLen: 9, numHeads: 2, numKvHeads: 2, qkDim: 3, vDim: 5, causal: false, layout: "contiguous" },
  { name: "fused QKV view B=2 T=S=6 Hq=4 Hkv=2 D=8 causal", batch: 2, queryLen: 6, keyLen: 6, numHeads: 4, numKvHeads: 2, qkDim: 8, vDim: 8, causal: true, layout: "fused" },
  { name: "padded views B=2 T=4 S=7 Dqk=6 Dv=5 causal", batch: 2, queryLen: 4, keyLen: 7, numHeads: 4, numKvHeads: 2, qkDim: 6, vDim: 5, causal: true, layout: "padded" },
  { name: "long T=S=65 Hq=2 Hkv=1 D=32 scale=0.3 causal", batch: 1, queryLen: 65, keyLen: 65, numHeads: 2, numKvHeads: 1, qkDim: 32, vDim: 32, causal: true, scale: 0.3, layout: "contiguous" },
  { name: "no lse (inference) T=4 S=4 non-causal", batch: 1, queryLen: 4, keyLen: 4, numHeads: 2, numKvHeads: 1, qkDim: 8, vDim: 8, causal: false, layout: "contiguous", noLse: true },
];

/** Where one of q/k/v lives: which host buffer, its first element and [batch, token, head] strides. */
export interface ViewSpec {
  /** Index into {@link AttentionLayout.buffers}. */
  buffer: number;
  offset: number;
  strides: [number, number, number];
}

/** Host buffer sizes and the q/k/v views of a case. */
export interface AttentionLayout {
  buffers: number[];
  q: ViewSpec;
  k: ViewSpec;
  v: ViewSpec;
}

function contiguousView(buffer: number, tokens: number, heads: number, dim: number): ViewSpec {
  return { buffer, offset: 0, strides: [tokens * heads * dim, heads * dim, dim] };
}

/** Lay a case out in host buffers. */
export function attentionLayout(c: AttentionCase): AttentionLayout {
  const { batch: B, queryLen: T, keyLen: S, numHeads: Hq, numKvHeads: Hkv, qkDim: Dqk, vDim: Dv } = c;
  if (c.layout === "fused") {
    if (T !== S || Dqk !== Dv) throw new Error(`attention case ${c.name}: a fused QKV layout needs T = S and Dqk = Dv`);
    const width = (Hq + 2 * Hkv) * Dqk;
    const strides: [number, number, number] = [T * width, width, Dqk];
    return { buffers: [B * T * width], q: { buffer: 0, offset: 0, strides }, k: { buffer: 0, offset: Hq * Dqk, strides }, v: { buffer: 0, offset: (Hq + Hkv) * Dqk, strides } };
  }
  if (c.layout === "padded") {
    const padded = (tokens: number, heads: number, dim: number, buffer: number): { spec: ViewSpec; length: number } => {
      const headStride = dim + 2;
      const tokenStride = heads * headStride + 1;
      const batchStride = tokens * tokenStride + 3;
      return { spec: { buffer, offset: 4, strides: [batchStride, tokenStride, headStride] }, length: 4 + batch * batchStride };
    };
    const batch = B;
    const q = padded(T, Hq, Dqk, 0);
    const k = padded(S, Hkv, Dqk, 1);
    const v = padded(S, Hkv, Dv, 2);
    return { buffers: [q.length, k.length, v.length], q: q.spec, k: k.spec, v: v.spec };
  }
  return {
    buffers: [B * T * Hq * Dqk, B * S * Hkv * Dqk, B * S * Hkv * Dv],
    q: contiguousView(0, T, Hq, Dqk),
    k: contiguousView(1, S, Hkv, Dqk),
    v: contiguousView(2, S, Hkv, Dv),
  };
}

/** The AttentionArgs of a case over the given buffers (one per layout buffer). */
export function attentionArgs(c: AttentionCase, layout: AttentionLayout, buffers: DeviceBuffer[]): AttentionArgs {
  const view = (s: ViewSpec): AttentionView => ({ buf: buffers[s.buffer]!, offset: s.offset, strides: s.strides });
  return {
    batch: c.batch,
    queryLen: c.queryLen,
    keyLen: c.keyLen,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    qkDim: c.qkDim,
    vDim: c.vDim,
    scale: c.scale ?? 1 / Math.sqrt(c.qkDim),
    causal: c.causal,
    q: view(layout.q),
    k: view(layout.k),
    v: view(layout.v),
  };
}

/** Element counts of out, lse, dq, dk, dv. */
export function attentionSizes(c: AttentionCase): { out: number; lse: number; q: number; k: number; v: number } {
  return {
    out: c.batch * c.queryLen * c.numHeads * c.vDim,
    lse: c.batch * c.numHeads * c.queryLen,
    q: c.batch * c.queryLen * c.numHeads * c.qkDim,
    k: c.batch * c.keyLen * c.numKvHeads * c.qkDim,
    v: c.batch * c.keyLen * c.numKvHeads * c.vDim,
  };
}

/** Register the attention cases. */
export function attentionCases(add: CaseSink): void {
  for (const c of ATTENTION_CASES) {
    const layout = attentionLayout(c);
    const sizes = attentionSizes(c);
    add("attention", c.name, async (ctx) => {
      const inputs = layout.buffers.map((n) => ctx.input(ctx.gen.normal(n)));
      const out = ctx.output(sizes.out);
      const lse = c.noLse ? undefined : ctx.output(sizes.lse);
      ctx.run((be, pick) => be.attention({ ...attentionArgs(c, layout, inputs.map(pick)), out: pick(out), ...(lse ? { lse: pick(lse) } : {}) }));
      await ctx.expect(out, TOLERANCES.attention, "out");
      if (lse) await ctx.expect(lse, TOLERANCES.attention, "lse");
    });
    if (c.noLse) continue;
    add("attentionBackward", c.name, async (ctx) => {
      const inputs = layout.buffers.map((n) => ctx.input(ctx.gen.normal(n)));
      // The forward's out and lse come from the reference so this case tests the backward alone.
      const forward = (which: "out" | "lse") =>
        ctx.fromReference(sizes[which], (ref, pick, dst) => {
          const other = ref.alloc("f32", which === "out" ? sizes.lse : sizes.out);
          const args = attentionArgs(c, layout, inputs.map(pick));
          ref.attention(which === "out" ? { ...args, out: dst, lse: other } : { ...args, out: other, lse: dst });
          ref.free(other);
        });
      const out = await forward("out");
      const lse = await forward("lse");
      const dOut = ctx.input(ctx.gen.normal(sizes.out));
      const dq = ctx.output(sizes.q);
      const dk = ctx.output(sizes.k);
      const dv = ctx.output(sizes.v);
      ctx.run((be, pick) =>
        be.attentionBackward({ ...attentionArgs(c, layout, inputs.map(pick)), out: pick(out), lse: pick(lse), dOut: pick(dOut), dq: pick(dq), dk: pick(dk), dv: pick(dv) }),
      );
      await ctx.expect(dq, TOLERANCES.attentionBackward, "dq");
      await ctx.expect(dk, TOLERANCES.attentionBackward, "dk");
      await ctx.expect(dv, TOLERANCES.attentionBackward, "dv");
    });
  }
}
