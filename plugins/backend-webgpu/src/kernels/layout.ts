// Data-movement kernels: fill, copyStrided (rank ≤ 6, any dtype, accumulate), cast, embedding
// gather and its scatter-add. 16-bit dtypes are packed two per u32 word; kernels that write single
// halves of a word other invocations may share use atomicAnd/atomicOr on that word.
import type { DType } from "@ecomla/core";
import { type Launcher, Params, WGSL_BITS, entry1d, entryRows, grid1d, gridRows, storage, uniform } from "./common.js";

/** Storage shape of a dtype inside a shader. */
const is16 = (dtype: DType): boolean => dtype === "bf16" || dtype === "f16";

/** WGSL expression: the f32 bits of element `e` of `buf` of dtype. */
function readBits(dtype: DType, buf: string, e: string): string {
  if (dtype === "f32") return `${buf}[${e}]`;
  if (dtype === "i32") return `i32ToF32Bits(bitcast<i32>(${buf}[${e}]))`;
  const half = `((${buf}[(${e}) >> 1u] >> (((${e}) & 1u) * 16u)) & 0xffffu)`;
  return dtype === "bf16" ? `bf16ToF32Bits(${half})` : `f16ToF32Bits(${half})`;
}

/** WGSL expression: the stored bits (a u32: 32 bits, or 16 in the low half) of f32 bits `b` as dtype. */
function encodeBits(dtype: DType, b: string): string {
  if (dtype === "f32") return b;
  if (dtype === "i32") return `bitcast<u32>(f32BitsToI32(${b}))`;
  return dtype === "bf16" ? `f32BitsToBf16(${b})` : `f32BitsToF16(${b})`;
}

/** out[offset .. offset+n) = bits (the value already encoded as the dtype's bits). */
export function fill(l: Launcher, dtype: DType, out: GPUBuffer, bits: number, n: number, offset: number): void {
  if (n === 0) return;
  const half = is16(dtype);
  const words = half ? (((offset + n - 1) >> 1) - (offset >> 1) + 1) : n;
  const source = () => /* wgsl */ `
struct Params { bits: u32, n: u32, offset: u32, words: u32 }
${storage(0, "out", "array<u32>", true)}
${uniform(1)}
${entry1d()}
  if (i >= p.words) { return; }
  ${
    half
      ? `let w = (p.offset >> 1u) + i;
  var word = out[w];
  for (var h = 0u; h < 2u; h++) {
    let e = 2u * w + h;
    if (e >= p.offset && e < p.offset + p.n) { word = (word & ~(0xffffu << (16u * h))) | (p.bits << (16u * h)); }
  }
  out[w] = word;`
      : `out[p.offset + i] = p.bits;`
  }
}`;
  l.launch(`fill:${half ? 16 : 32}`, source, [{ buffer: out, write: true }], new Params().u32(bits, n, offset, words).bytes(), grid1d(words));
}

/** Rank ≤ 6 strided copy dst (+)= src; see TensorBackend.copyStrided. */
export function copyStrided(
  l: Launcher,
  dtype: DType,
  src: GPUBuffer, // strided view of shape
  srcOffset: number,
  srcStrides: readonly number[],
  dst: GPUBuffer, // strided view of shape
  dstOffset: number,
  dstStrides: readonly number[],
  shape: readonly number[],
  accumulate: boolean,
): void {
  const total = shape.reduce((a, b) => a * b, 1);
  if (total === 0) return;
  const pad = 6 - shape.length;
  const shape6 = [...new Array<number>(pad).fill(1), ...shape];
  const src6 = [...new Array<number>(pad).fill(0), ...srcStrides];
  const dst6 = [...new Array<number>(pad).fill(0), ...dstStrides];
  const half = is16(dtype);
  let store: string;
  if (!half) {
    if (!accumulate) store = `dst[d] = src[s];`;
    else if (dtype === "i32") store = `dst[d] = bitcast<u32>(bitcast<i32>(dst[d]) + bitcast<i32>(src[s]));`;
    else store = `dst[d] = bitcast<u32>(bitcast<f32>(dst[d]) + bitcast<f32>(src[s]));`;
  } else {
    const incoming = `((src[s >> 1u] >> ((s & 1u) * 16u)) & 0xffffu)`;
    const value = !accumulate
      ? incoming
      : (() => {
          const decode = dtype === "bf16" ? "bf16ToF32Bits" : "f16ToF32Bits";
          const encode = dtype === "bf16" ? "f32BitsToBf16" : "f32BitsToF16";
          return `${encode}(bitcast<u32>(bitcast<f32>(${decode}((atomicLoad(&dst[d >> 1u]) >> ((d & 1u) * 16u)) & 0xffffu)) + bitcast<f32>(${decode}(${incoming}))))`;
        })();
    store = `let v = ${value};
  let sh = (d & 1u) * 16u;
  atomicAnd(&dst[d >> 1u], ~(0xffffu << sh));
  atomicOr(&dst[d >> 1u], v << sh);`;
  }
  const source = () => /* wgsl */ `
${WGSL_BITS}
struct Params { shape: array<vec4<u32>, 2>, srcStrides: array<vec4<u32>, 2>, dstStrides: array<vec4<u32>, 2>, n: u32, srcOffset: u32, dstOffset: u32 }
${storage(0, "src", "array<u32>")}
${storage(1, "dst", half ? "array<atomic<u32>>" : "array<u32>", true)}
${uniform(2)}
${entry1d()}
  if (i >= p.n) { return; }
  var rem = i;
  var si = bitcast<i32>(p.srcOffset);
  var di = bitcast<i32>(p.dstOffset);
  for (var k = 5; k >= 0; k--) {
    let size = p.shape[k / 4][k % 4];
    let c = i32(rem % size);
    rem = rem / size;
    si += c * bitcast<i32>(p.srcStrides[k / 4][k % 4]);
    di += c * bitcast<i32>(p.dstStrides[k / 4][k % 4]);
  }
  let s = u32(si);
  let d = u32(di);
  ${store}
}`;
  const params = new Params().u32x4(shape6, 2).u32x4(src6, 2).u32x4(dst6, 2).u32(total, srcOffset, dstOffset).bytes();
  l.launch(`copyStrided:${dtype}:${accumulate}`, source, [{ buffer: src }, { buffer: dst, write: true }], params, grid1d(total));
}

/** dst[0..n) = convert(src[0..n)); all conversions go through exact f32 bit patterns. */
export function cast(l: Launcher, srcDtype: DType, src: GPUBuffer, dstDtype: DType, dst: GPUBuffer, n: number): void {
  if (n === 0) return;
  const half = is16(dstDtype);
  const units = half ? Math.ceil(n / 2) : n;
  const body = half
    ? `let e0 = 2u * i;
  var word = dst[i];
  let lo = ${encodeBits(dstDtype, readBits(srcDtype, "src", "e0"))};
  word = (word & 0xffff0000u) | lo;
  if (e0 + 1u < p.n) {
    let e1 = e0 + 1u;
    let hi = ${encodeBits(dstDtype, readBits(srcDtype, "src", "e1"))};
    word = (word & 0xffffu) | (hi << 16u);
  }
  dst[i] = word;`
    : `dst[i] = ${encodeBits(dstDtype, readBits(srcDtype, "src", "i"))};`;
  const source = () => /* wgsl */ `
${WGSL_BITS}
struct Params { n: u32, units: u32 }
${storage(0, "src", "array<u32>")}
${storage(1, "dst", "array<u32>", true)}
${uniform(2)}
${entry1d()}
  if (i >= p.units) { return; }
  ${body}
}`;
  l.launch(`cast:${srcDtype}:${dstDtype}`, source, [{ buffer: src }, { buffer: dst, write: true }], new Params().u32(n, units).bytes(), grid1d(units));
}

/** out[i] = table[ids[i]] (zeros for an out-of-range id). */
export function embedding(
  l: Launcher,
  ids: GPUBuffer, // (n) i32
  table: GPUBuffer, // (vocab, dim)
  out: GPUBuffer, // (n, dim)
  n: number,
  vocab: number,
  dim: number,
): void {
  const total = n * dim;
  if (total === 0) return;
  const source = () => /* wgsl */ `
struct Params { total: u32, vocab: u32, dim: u32 }
${storage(0, "ids", "array<i32>")}
${storage(1, "table", "array<u32>")}
${storage(2, "out", "array<u32>", true)}
${uniform(3)}
${entry1d()}
  if (i >= p.total) { return; }
  let token = i / p.dim;
  let c = i % p.dim;
  let id = ids[token];
  if (id < 0 || u32(id) >= p.vocab) { out[i] = 0u; return; }
  out[i] = table[u32(id) * p.dim + c];
}`;
  l.launch("embedding", source, [{ buffer: ids }, { buffer: table }, { buffer: out, write: true }], new Params().u32(total, vocab, dim).bytes(), grid1d(total));
}

/**
 * dTable[ids[i]] += dOut[i], deterministically and without float atomics: the workgroup of the
 * first token carrying an id owns that table row and adds every later token with the same id, in
 * token order (the reference's order, so the sums match bit for bit).
 */
export function embeddingBackward(
  l: Launcher,
  ids: GPUBuffer, // (n) i32
  dOut: GPUBuffer, // (n, dim)
  dTable: GPUBuffer, // (vocab, dim)
  n: number,
  vocab: number,
  dim: number,
): void {
  if (n === 0 || dim === 0) return;
  const wg = 64;
  const source = () => /* wgsl */ `
struct Params { n: u32, vocab: u32, dim: u32 }
${storage(0, "ids", "array<i32>")}
${storage(1, "dOut", "array<f32>")}
${storage(2, "dTable", "array<f32>", true)}
${uniform(3)}
var<workgroup> seenBefore: atomic<u32>;
var<workgroup> skipShared: u32;
${entryRows(wg)}
  if (row >= p.n) { return; }
  let id = ids[row];
  for (var j = lid; j < row; j += ${wg}u) {
    if (ids[j] == id) { atomicStore(&seenBefore, 1u); }
  }
  workgroupBarrier();
  if (lid == 0u) { skipShared = atomicLoad(&seenBefore); }
  let skip = workgroupUniformLoad(&skipShared);
  if (skip != 0u || id < 0 || u32(id) >= p.vocab) { return; }
  let base = u32(id) * p.dim;
  for (var j = row; j < p.n; j++) {
    if (ids[j] != id) { continue; }
    for (var c = lid; c < p.dim; c += ${wg}u) { dTable[base + c] = dTable[base + c] + dOut[j * p.dim + c]; }
  }
}`;
  l.launch("embeddingBackward", source, [{ buffer: ids }, { buffer: dOut }, { buffer: dTable, write: true }], new Params().u32(n, vocab, dim).bytes(), gridRows(n));
}
