// Data-movement kernels: fill, copyStrided (rank ≤ 6, any dtype, accumulate), cast, embedding
// gather and its scatter-add. 16-bit dtypes are packed two per u32 word; kernels that write single
// halves of a word other invocations may share use atomicAnd/atomicOr on that word. Buffers larger
// than a storage binding are walked in windows (element ranges, boxes of a strided copy, token and
// table-row ranges of the embedding kernels).
import { DTYPE_BYTES, type DType } from "@ecomla/core";
import {
  type Launcher, Params, WGSL_BITS, alignedChunks, boxSpan, chunks, entry1d, entryRows, grid1d, gridRows, rowsPerChunk, spanBudget, splitBoxes, storage, uniform, window,
} from "./common.js";

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
  // Chunks run one after another, so a 16-bit word two chunks share is updated by each in turn.
  const elementBytes = DTYPE_BYTES[dtype];
  const first = alignedChunks(l, n, [elementBytes]);
  for (const [start, count] of first) {
    const w = window(l, out, elementBytes, offset + start, count, true);
    const words = half ? ((w.skew + count - 1) >> 1) - (w.skew >> 1) + 1 : count;
    l.launch(`fill:${half ? 16 : 32}`, source, [w.arg], new Params().u32(bits, count, w.skew, words).bytes(), grid1d(words));
  }
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
  const elementBytes = DTYPE_BYTES[dtype];
  const walks = [{ strides: src6, elementBytes }, { strides: dst6, elementBytes }];
  for (const box of splitBoxes(shape6, walks, spanBudget(l.limits))) {
    const count = box.shape.reduce((a, b) => a * b, 1);
    const s = boxSpan(box, srcOffset, src6);
    const d = boxSpan(box, dstOffset, dst6);
    const ws = window(l, src, elementBytes, s.first, s.count);
    const wd = window(l, dst, elementBytes, d.first, d.count, true);
    const params = new Params()
      .u32x4(box.shape, 2)
      .u32x4(src6, 2)
      .u32x4(dst6, 2)
      .u32(count, ws.skew + s.base - s.first, wd.skew + d.base - d.first)
      .bytes();
    l.launch(`copyStrided:${dtype}:${accumulate}`, source, [ws.arg, wd.arg], params, grid1d(count));
  }
}

/** dst[0..n) = convert(src[0..n)); all conversions go through exact f32 bit patterns. */
export function cast(l: Launcher, srcDtype: DType, src: GPUBuffer, dstDtype: DType, dst: GPUBuffer, n: number): void {
  if (n === 0) return;
  const half = is16(dstDtype);
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
  // Aligned chunk starts: both windows start at the chunk's first element (skew 0), on a word boundary.
  for (const [start, count] of alignedChunks(l, n, [DTYPE_BYTES[srcDtype], DTYPE_BYTES[dstDtype]])) {
    const units = half ? Math.ceil(count / 2) : count;
    const ws = window(l, src, DTYPE_BYTES[srcDtype], start, count);
    const wd = window(l, dst, DTYPE_BYTES[dstDtype], start, count, true);
    l.launch(`cast:${srcDtype}:${dstDtype}`, source, [ws.arg, wd.arg], new Params().u32(count, units).bytes(), grid1d(units));
  }
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
  if (n * dim === 0) return;
  // One dispatch per (chunk of tokens, chunk of table rows): it writes the tokens whose id falls in
  // its table rows, and the table's first chunk also writes zeros for out-of-range ids.
  const source = () => /* wgsl */ `
struct Params { total: u32, vocab: u32, dim: u32, idsOff: u32, tableOff: u32, outOff: u32, firstId: u32, idCount: u32 }
${storage(0, "ids", "array<i32>")}
${storage(1, "table", "array<u32>")}
${storage(2, "out", "array<u32>", true)}
${uniform(3)}
${entry1d()}
  if (i >= p.total) { return; }
  let token = i / p.dim;
  let c = i % p.dim;
  let id = ids[p.idsOff + token];
  let at = p.outOff + i;
  if (id < 0 || u32(id) >= p.vocab) {
    if (p.firstId == 0u) { out[at] = 0u; }
    return;
  }
  let row = u32(id) - p.firstId;
  if (u32(id) < p.firstId || row >= p.idCount) { return; }
  out[at] = table[p.tableOff + row * p.dim + c];
}`;
  const tableRows = rowsPerChunk(l, "embedding", dim * 4);
  const tokenRows = rowsPerChunk(l, "embedding", dim * 4);
  for (const [token0, tokens] of chunks(n, tokenRows)) {
    const wi = window(l, ids, 4, token0, tokens);
    const wo = window(l, out, 4, token0 * dim, tokens * dim, true);
    for (const [id0, idCount] of chunks(Math.max(1, vocab), tableRows)) {
      const wt = window(l, table, 4, id0 * dim, idCount * dim);
      const params = new Params().u32(tokens * dim, vocab, dim, wi.skew, wt.skew, wo.skew, id0, idCount).bytes();
      l.launch("embedding", source, [wi.arg, wt.arg, wo.arg], params, grid1d(tokens * dim));
    }
  }
}

/**
 * dTable[ids[i]] += dOut[i], deterministically and without float atomics: within a chunk of
 * tokens, the workgroup of the first token carrying an id owns that table row and adds every later
 * token of the chunk with the same id, in token order; chunks run in token order, so the sums
 * follow the reference's order bit for bit. Table rows are walked in chunks too.
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
struct Params { n: u32, vocab: u32, dim: u32, idsOff: u32, dOutOff: u32, tableOff: u32, firstId: u32, idCount: u32 }
${storage(0, "ids", "array<i32>")}
${storage(1, "dOut", "array<f32>")}
${storage(2, "dTable", "array<f32>", true)}
${uniform(3)}
var<workgroup> seenBefore: atomic<u32>;
var<workgroup> skipShared: u32;
${entryRows(wg)}
  if (row >= p.n) { return; }
  let id = ids[p.idsOff + row];
  for (var j = lid; j < row; j += ${wg}u) {
    if (ids[p.idsOff + j] == id) { atomicStore(&seenBefore, 1u); }
  }
  workgroupBarrier();
  if (lid == 0u) { skipShared = atomicLoad(&seenBefore); }
  let skip = workgroupUniformLoad(&skipShared);
  if (skip != 0u || id < 0 || u32(id) >= p.vocab || u32(id) < p.firstId || u32(id) - p.firstId >= p.idCount) { return; }
  let base = p.tableOff + (u32(id) - p.firstId) * p.dim;
  for (var j = row; j < p.n; j++) {
    if (ids[p.idsOff + j] != id) { continue; }
    for (var c = lid; c < p.dim; c += ${wg}u) { dTable[base + c] = dTable[base + c] + dOut[p.dOutOff + j * p.dim + c]; }
  }
}`;
  const rows = rowsPerChunk(l, "embeddingBackward", dim * 4);
  for (const [token0, tokens] of chunks(n, rows)) {
    const wi = window(l, ids, 4, token0, tokens);
    const wd = window(l, dOut, 4, token0 * dim, tokens * dim);
    for (const [id0, idCount] of chunks(Math.max(1, vocab), rows)) {
      const wt = window(l, dTable, 4, id0 * dim, idCount * dim, true);
      const params = new Params().u32(tokens, vocab, dim, wi.skew, wd.skew, wt.skew, id0, idCount).bytes();
      l.launch("embeddingBackward", source, [wi.arg, wd.arg, wt.arg], params, gridRows(tokens));
    }
  }
}
