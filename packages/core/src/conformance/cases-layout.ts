// Conformance cases for data movement: upload/download, fill, copyStrided, cast, embedding and its
// scatter-add backward. All exact except the scatter-add, whose sums may run in any order.
import type { DType, DeviceBuffer } from "../interfaces/backend.js";
import { BITWISE, type CaseSink, type PairBuf, type PairContext, compareArrays, contiguousStrides } from "./harness.js";
import { TOLERANCES } from "./tolerances.js";

/** f32 values of raw bit patterns (builds exact specials: ties, subnormals, NaN). */
function fromBits(bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

/** The value of a bf16 or f16 bit pattern, decoded here so the comparison trusts neither backend. */
export function halfToNumber(bits: number, dtype: "bf16" | "f16"): number {
  if (dtype === "bf16") return fromBits([(bits & 0xffff) << 16])[0]!;
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Compare 16-bit outputs by value: any NaN matches any NaN (payloads may differ), −0 ≠ +0. */
async function expectHalf(ctx: PairContext, p: PairBuf, dtype: "bf16" | "f16", label: string): Promise<void> {
  const got = Array.from(await ctx.test.download(p.t as DeviceBuffer & { dtype: "bf16" }), (b) => halfToNumber(b, dtype));
  const want = Array.from(await ctx.ref.download(p.r as DeviceBuffer & { dtype: "bf16" }), (b) => halfToNumber(b, dtype));
  ctx.checks.push({ kernel: ctx.kernel, case: `${ctx.caseName}: ${label}`, ...compareArrays(got, want, BITWISE) });
}

function randomBits16(ctx: PairContext, n: number): Uint16Array {
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = ctx.gen.rng.int(0x10000);
  return out;
}

function hostData(ctx: PairContext, dtype: DType, n: number): Float32Array | Int32Array | Uint16Array {
  if (dtype === "f32") return ctx.gen.uniform(n);
  if (dtype === "i32") return ctx.gen.ints(n, 1 << 30);
  return randomBits16(ctx, n);
}

/** Specials for f32 → bf16: ties to even both ways, overflow to Inf, f32 subnormals, NaN, ±0. */
const BF16_SPECIALS = fromBits([
  0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001,
  0x3f808000, // 1 + 2^-8: a tie, rounds down to the even 1
  0x3f818000, // 1 + 3·2^-8: a tie, rounds up to the even 1 + 2^-6
  0x3f808001, // just above the tie: rounds up
  0xbf818000, // negative tie
  0x7f7fffff, // max f32: rounds to Inf
  0x7f7f7fff, // just below the bf16 max + half ulp: stays finite
  0x00000001, 0x00008000, 0x00018000, 0x007fffff, 0x80000001, // f32 subnormals (bf16 keeps them)
  0x00800000, 0x0080ffff,
]);

/** Specials for f32 → f16: overflow, the largest finite, subnormal ties, underflow, NaN, ±0. */
const F16_SPECIALS = new Float32Array([
  0, -0, 1, -1, Infinity, -Infinity, NaN, -NaN, 65504, 65519, 65520, -65520, 1e5, 1e-10, -1e-10,
  2 ** -24, 2 ** -25, 3 * 2 ** -25, 5 * 2 ** -25, 2 ** -25 + 2 ** -35, 2 ** -14, 2 ** -14 - 2 ** -24, 2 ** -14 - 2 ** -25,
  1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, 2048 + 1, 2048 + 3, 1e-45, 3.4e38,
]);

function catenate(...parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Random f32 values spread over many binades (so casts see every rounding regime). */
function wideRange(ctx: PairContext, n: number, minExp: number, maxExp: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (ctx.gen.rng.next() < 0.5 ? -1 : 1) * (1 + ctx.gen.rng.next()) * 2 ** (minExp + ctx.gen.rng.int(maxExp - minExp));
  return out;
}

export interface CopyCase {
  name: string;
  dtype: DType;
  srcLength: number;
  dstLength: number;
  copies: { srcOffset: number; srcStrides: number[]; dstOffset: number; dstStrides: number[]; shape: number[]; accumulate?: boolean }[];
}

/** Strides of `shape` permuted by `perm`, as read from a contiguous source of `shape`. */
function permutedStrides(shape: number[], perm: number[]): { shape: number[]; srcStrides: number[] } {
  const strides = contiguousStrides(shape);
  return { shape: perm.map((p) => shape[p]!), srcStrides: perm.map((p) => strides[p]!) };
}

/** The strided-copy variants (shared with the adjointness gradient checks). */
export function copyCases(): CopyCase[] {
  const p3 = permutedStrides([2, 3, 4], [2, 0, 1]);
  const p6 = permutedStrides([2, 1, 3, 2, 1, 3], [5, 3, 0, 4, 2, 1]);
  const pAcc = permutedStrides([5, 7], [1, 0]);
  return [
    { name: "permute (2,3,4)->(4,2,3)", dtype: "f32", srcLength: 24, dstLength: 24, copies: [{ srcOffset: 0, srcStrides: p3.srcStrides, dstOffset: 0, dstStrides: contiguousStrides(p3.shape), shape: p3.shape }] },
    { name: "rank-6 permute", dtype: "f32", srcLength: 36, dstLength: 36, copies: [{ srcOffset: 0, srcStrides: p6.srcStrides, dstOffset: 0, dstStrides: contiguousStrides(p6.shape), shape: p6.shape }] },
    { name: "slice rows 1..4 cols 2..6 of (5,7)", dtype: "f32", srcLength: 35, dstLength: 14, copies: [{ srcOffset: 9, srcStrides: [7, 1], dstOffset: 1, dstStrides: [4, 1], shape: [3, 4] }] },
    { name: "broadcast (1,5)->(3,5) by stride 0", dtype: "f32", srcLength: 5, dstLength: 15, copies: [{ srcOffset: 0, srcStrides: [0, 1], dstOffset: 0, dstStrides: [5, 1], shape: [3, 5] }] },
    {
      name: "concat (3,4)|(3,5) -> (3,9)",
      dtype: "f32",
      srcLength: 27,
      dstLength: 27,
      copies: [
        { srcOffset: 0, srcStrides: [4, 1], dstOffset: 0, dstStrides: [9, 1], shape: [3, 4] },
        { srcOffset: 12, srcStrides: [5, 1], dstOffset: 4, dstStrides: [9, 1], shape: [3, 5] },
      ],
    },
    { name: "accumulate transposed (5,7) into (7,5)", dtype: "f32", srcLength: 35, dstLength: 35, copies: [{ srcOffset: 0, srcStrides: pAcc.srcStrides, dstOffset: 0, dstStrides: [5, 1], shape: pAcc.shape, accumulate: true }] },
    { name: "single element", dtype: "f32", srcLength: 3, dstLength: 3, copies: [{ srcOffset: 2, srcStrides: [1], dstOffset: 1, dstStrides: [1], shape: [1] }] },
    { name: "i32 permute", dtype: "i32", srcLength: 24, dstLength: 24, copies: [{ srcOffset: 0, srcStrides: p3.srcStrides, dstOffset: 0, dstStrides: contiguousStrides(p3.shape), shape: p3.shape }] },
    { name: "bf16 strided slice", dtype: "bf16", srcLength: 35, dstLength: 14, copies: [{ srcOffset: 9, srcStrides: [7, 1], dstOffset: 1, dstStrides: [4, 1], shape: [3, 4] }] },
    { name: "f16 broadcast", dtype: "f16", srcLength: 5, dstLength: 15, copies: [{ srcOffset: 0, srcStrides: [0, 1], dstOffset: 0, dstStrides: [5, 1], shape: [3, 5] }] },
  ];
}

/** Register the data-movement cases. */
export function layoutCases(add: CaseSink): void {
  for (const dtype of ["f32", "i32", "bf16", "f16"] as const) {
    add("memory", `upload/download ${dtype} with offsets`, async (ctx) => {
      const p = ctx.input(hostData(ctx, dtype, 37), dtype);
      const patch = hostData(ctx, dtype, 20);
      ctx.run((be, pick) => be.upload(pick(p), patch, 5));
      await ctx.expect(p, BITWISE, "whole buffer");
      await ctx.expect(p, BITWISE, "range [3, 30)", 3, 27);
    });
  }

  for (const [n, offset, value] of [[1, 0, 2.5], [1037, 11, -0.75], [64, 3, -Infinity], [5, 0, 0]] as const) {
    add("fill", `n=${n} offset=${offset} value=${value}`, async (ctx) => {
      const out = ctx.input(ctx.gen.uniform(n + offset + 7));
      ctx.run((be, pick) => be.fill(pick(out), value, n, offset));
      await ctx.expect(out, BITWISE);
    });
  }

  for (const c of copyCases()) {
    add("copyStrided", c.name, async (ctx) => {
      const src = ctx.input(hostData(ctx, c.dtype, c.srcLength), c.dtype);
      const dst = ctx.input(hostData(ctx, c.dtype, c.dstLength), c.dtype);
      for (const copy of c.copies) {
        ctx.run((be, pick) => be.copyStrided({ src: pick(src), dst: pick(dst), ...copy }));
      }
      if (c.dtype === "bf16" || c.dtype === "f16") await expectHalf(ctx, dst, c.dtype, "dst");
      else await ctx.expect(dst, BITWISE);
    });
  }

  for (const dtype of ["bf16", "f16"] as const) {
    add("cast", `f32 -> ${dtype}: ties to even, NaN, Inf, subnormals, random`, async (ctx) => {
      const specials = dtype === "bf16" ? BF16_SPECIALS : F16_SPECIALS;
      const data = dtype === "bf16" ? catenate(specials, wideRange(ctx, 1000, -140, 128), ctx.gen.normal(500)) : catenate(specials, wideRange(ctx, 1000, -26, 17), ctx.gen.normal(500, 100));
      const src = ctx.input(data);
      const dst = ctx.output(data.length, 0x1234, dtype);
      ctx.run((be, pick) => be.cast(pick(src), pick(dst), data.length));
      await expectHalf(ctx, dst, dtype, dtype);
    });
    add("cast", `${dtype} -> f32: all 65536 bit patterns`, async (ctx) => {
      const bits = new Uint16Array(65536);
      for (let i = 0; i < bits.length; i++) bits[i] = i;
      const src = ctx.input(bits, dtype);
      const dst = ctx.output(bits.length);
      ctx.run((be, pick) => be.cast(pick(src), pick(dst), bits.length));
      await ctx.expect(dst, BITWISE);
    });
  }
  add("cast", "i32 -> f32 incl. values past 2^24", async (ctx) => {
    const data = Int32Array.from([0, 1, -1, 2 ** 24, 2 ** 24 + 1, 2 ** 24 + 3, -(2 ** 24 + 1), 2147483647, -2147483648, ...ctx.gen.ints(200, 1 << 30)]);
    const src = ctx.input(data);
    const dst = ctx.output(data.length);
    ctx.run((be, pick) => be.cast(pick(src), pick(dst), data.length));
    await ctx.expect(dst, BITWISE);
  });
  add("cast", "f32 -> i32 of integer values", async (ctx) => {
    const data = Float32Array.from([0, -0, 1, -1, 16777216, -16777216, 2 ** 30, ...Array.from(ctx.gen.ints(200, 2000000), (x) => x - 1000000)]);
    const src = ctx.input(data);
    const dst = ctx.output(data.length, 99, "i32");
    ctx.run((be, pick) => be.cast(pick(src), pick(dst), data.length));
    await ctx.expect(dst, BITWISE);
  });

  for (const [n, vocab, dim] of [[1, 1, 1], [33, 50, 17], [7, 5, 65]] as const) {
    const name = `n=${n} vocab=${vocab} dim=${dim}, repeated ids`;
    add("embedding", name, async (ctx) => {
      const ids = ctx.input(ctx.gen.ints(n, Math.min(vocab, 4)));
      const table = ctx.input(ctx.gen.normal(vocab * dim));
      const out = ctx.output(n * dim);
      ctx.run((be, pick) => be.embedding(pick(ids), pick(table), pick(out), n, vocab, dim));
      await ctx.expect(out, BITWISE);
    });
    add("embeddingBackward", name, async (ctx) => {
      // Ids crowd onto a few rows so the scatter-add must combine repeats; dTable starts non-zero
      // because the kernel accumulates.
      const ids = ctx.input(ctx.gen.ints(n, Math.min(vocab, 4)));
      const dOut = ctx.input(ctx.gen.normal(n * dim));
      const dTable = ctx.input(ctx.gen.normal(vocab * dim));
      ctx.run((be, pick) => be.embeddingBackward(pick(ids), pick(dOut), pick(dTable), n, vocab, dim));
      await ctx.expect(dTable, TOLERANCES.embeddingBackward);
    });
  }
}
