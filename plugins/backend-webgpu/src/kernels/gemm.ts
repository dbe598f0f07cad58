// Batched strided GEMM C = alpha·op(A)·op(B) + beta·C, tiled in workgroup memory. A workgroup
// computes a TM×TN tile of C over K in steps of TK: it stages the A and B tiles in workgroup memory
// as vec4s (four rows of A, four columns of B per element), then each invocation accumulates an
// RM×RN block of C in registers, reading RM/4 + RN/4 vec4s per step of k for RM·RN FMAs.
// Global tile loads read four consecutive stored elements per invocation: one vec4 load when the
// operand's offset, leading dimension, batch stride and stored width are multiples of 4, else four
// bounds-checked scalar loads. beta = 0 never reads C (NaN in C does not leak).
//
// Tile shapes were tuned on Mesa lavapipe (each workgroup runs on one CPU thread, invocations
// vectorised 8 wide), where the register block per invocation dominates: 4×4 blocks with scalar
// workgroup reads gave 0.5 GFLOP/s, 8×8 blocks with vec4 reads ~3. Small M (decode, short
// prompts) uses shorter tiles so a 1-row product does not pay for 128 rows.
import { ShapeError, type GemmArgs } from "@ecomla/core";
import { type Launcher, Params, spanBudget, storage, uniform, window } from "./common.js";

/** A tile shape: TM×TN outputs per workgroup over TK-deep slices, RM×RN per invocation. */
export interface GemmTile {
  tm: number;
  tn: number;
  tk: number;
  rm: number;
  rn: number;
}

/** The tile for an m×n product: the tallest tile m fills (4 ≤ RM, RN; multiples of 4). */
export function gemmTile(m: number): GemmTile {
  if (m > 64) return { tm: 128, tn: 128, tk: 16, rm: 8, rn: 8 };
  if (m > 16) return { tm: 64, tn: 128, tk: 16, rm: 8, rn: 8 };
  if (m > 4) return { tm: 16, tn: 128, tk: 16, rm: 4, rn: 8 };
  return { tm: 4, tn: 128, tk: 16, rm: 4, rn: 4 };
}

/** GemmArgs with the GPU buffers resolved. */
export type GpuGemmArgs = Omit<GemmArgs, "a" | "b" | "c"> & { a: GPUBuffer; b: GPUBuffer; c: GPUBuffer };

/** WGSL: load4X(row, col) for stored operand X: four consecutive stored elements, zero outside. */
function loader(name: string, vec: boolean): string {
  if (vec) {
    return `fn load4${name}(base: u32, ld: u32, rows: u32, cols: u32, r: u32, c: u32) -> vec4<f32> {
  if (r >= rows || c >= cols) { return vec4<f32>(0.0); }
  return ${name}[(base + r * ld + c) / 4u];
}`;
  }
  return `fn load4${name}(base: u32, ld: u32, rows: u32, cols: u32, r: u32, c: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (r >= rows) { return v; }
  let at = base + r * ld + c;
  for (var i = 0u; i < 4u; i++) { if (c + i < cols) { v[i] = ${name}[at + i]; } }
  return v;
}`;
}

function gemmSource(tile: GemmTile, transA: boolean, transB: boolean, vecA: boolean, vecB: boolean): string {
  const { tm, tn, tk, rm, rn } = tile;
  const tx = tn / rn; // invocations along n
  const wg = (tm / rm) * tx;
  const loads = (vec4s: number) => Math.ceil(vec4s / wg);
  const guard = (vec4s: number) => (vec4s % wg === 0 ? "" : `if (e >= ${vec4s}u) { break; }`);
  // Stored A is (K, M) when transposed, else (M, K); stored B is (N, K) when transposed, else (K, N).
  // As[k][m/4] holds rows m..m+3 at depth k; Bs[k][n/4] holds columns n..n+3.
  const loadA = transA
    ? `let kk = e / ${tm / 4}u; let mq = (e % ${tm / 4}u) * 4u;
      As[kk * ${tm / 4}u + mq / 4u] = load4A(aBase, p.lda, p.k, p.m, k0 + kk, tileRow + mq);`
    : `let r = e / ${tk / 4}u; let kq = (e % ${tk / 4}u) * 4u;
      let va = load4A(aBase, p.lda, p.m, p.k, tileRow + r, k0 + kq);
      for (var i = 0u; i < 4u; i++) { As[(kq + i) * ${tm / 4}u + r / 4u][r % 4u] = va[i]; }`;
  const loadB = transB
    ? `let r = e / ${tk / 4}u; let kq = (e % ${tk / 4}u) * 4u;
      let vb = load4B(bBase, p.ldb, p.n, p.k, tileCol + r, k0 + kq);
      for (var i = 0u; i < 4u; i++) { Bs[(kq + i) * ${tn / 4}u + r / 4u][r % 4u] = vb[i]; }`
    : `let kk = e / ${tn / 4}u; let nq = (e % ${tn / 4}u) * 4u;
      Bs[kk * ${tn / 4}u + nq / 4u] = load4B(bBase, p.ldb, p.k, p.n, k0 + kk, tileCol + nq);`;
  const aRegs = Array.from({ length: rm / 4 }, (_, i) => `let a${i} = As[kk * ${tm / 4}u + ty * ${rm / 4}u + ${i}u];`).join("\n      ");
  const bRegs = Array.from({ length: rn / 4 }, (_, j) => `let b${j} = Bs[kk * ${tn / 4}u + tx * ${rn / 4}u + ${j}u];`).join("\n      ");
  const fmas = Array.from({ length: rm }, (_, r) => Array.from({ length: rn / 4 }, (_, j) => `acc[${r * (rn / 4) + j}] += a${r >> 2}.${"xyzw"[r & 3]} * b${j};`).join(" ")).join("\n      ");
  return /* wgsl */ `
struct Params { m: u32, n: u32, k: u32, lda: u32, ldb: u32, ldc: u32, aOffset: u32, bOffset: u32, cOffset: u32, strideA: u32, strideB: u32, strideC: u32, alpha: f32, beta: f32 }
${storage(0, "A", vecA ? "array<vec4<f32>>" : "array<f32>")}
${storage(1, "B", vecB ? "array<vec4<f32>>" : "array<f32>")}
${storage(2, "C", "array<f32>", true)}
${uniform(3)}
var<workgroup> As: array<vec4<f32>, ${(tk * tm) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(tk * tn) / 4}>;
${loader("A", vecA)}
${loader("B", vecB)}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let batch = wid.z;
  let tileRow = wid.y * ${tm}u;
  let tileCol = wid.x * ${tn}u;
  let aBase = p.aOffset + batch * p.strideA;
  let bBase = p.bOffset + batch * p.strideB;
  let tx = lid % ${tx}u;
  let ty = lid / ${tx}u;
  var acc: array<vec4<f32>, ${(rm * rn) / 4}>;
  for (var k0 = 0u; k0 < p.k; k0 += ${tk}u) {
    for (var l = 0u; l < ${loads((tm * tk) / 4)}u; l++) {
      let e = lid + l * ${wg}u;
      ${guard((tm * tk) / 4)}
      ${loadA}
    }
    for (var l = 0u; l < ${loads((tk * tn) / 4)}u; l++) {
      let e = lid + l * ${wg}u;
      ${guard((tk * tn) / 4)}
      ${loadB}
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${tk}u; kk++) {
      ${aRegs}
      ${bRegs}
      ${fmas}
    }
    workgroupBarrier();
  }
  let cBase = p.cOffset + batch * p.strideC;
  for (var r = 0u; r < ${rm}u; r++) {
    let row = tileRow + ty * ${rm}u + r;
    if (row >= p.m) { break; }
    for (var j = 0u; j < ${rn / 4}u; j++) {
      let v = acc[r * ${rn / 4}u + j];
      let col0 = tileCol + (tx * ${rn / 4}u + j) * 4u;
      for (var c = 0u; c < 4u; c++) {
        let col = col0 + c;
        if (col >= p.n) { break; }
        let at = cBase + row * p.ldc + col;
        var value = p.alpha * v[c];
        if (p.beta != 0.0) { value += p.beta * C[at]; }
        C[at] = value;
      }
    }
  }
}`;
}

/** One block of a GEMM: matrices [b0, b0 + nb), rows [m0, m0 + mc), columns [n0, n0 + nc), depth [k0, k0 + kc). */
interface Block {
  b0: number;
  nb: number;
  m0: number;
  mc: number;
  n0: number;
  nc: number;
  k0: number;
  kc: number;
  /** beta of this block: the caller's for the first depth block, 1 for later ones (they add). */
  beta: number;
}

/** Element span of one operand over a block: first element and count. */
interface Span {
  first: number;
  count: number;
}

/** Split points land on multiples of this (a tile edge), so vec4 loads stay aligned. */
const SPLIT_STEP = 64;

/** Halve [0, size) at a multiple of SPLIT_STEP, else of 4 (vec4 loads), else anywhere. */
function half(size: number): number {
  if (size > 2 * SPLIT_STEP) return Math.ceil(size / 2 / SPLIT_STEP) * SPLIT_STEP;
  if (size > 8) return Math.ceil(size / 8) * 4;
  return Math.ceil(size / 2);
}

/**
 * The blocks of a GEMM whose A, B and C spans each fit `budget` bytes: the whole GEMM when it fits,
 * else blocks halved along the dimension that shrinks the widest operand (batch first; A by its
 * stored rows, B by its stored rows, C by rows, then columns). Depth blocks after the first add
 * into C (beta 1).
 */
function planBlocks(g: GpuGemmArgs, budget: number): Block[] {
  const aOffset = g.aOffset ?? 0;
  const bOffset = g.bOffset ?? 0;
  const cOffset = g.cOffset ?? 0;
  const spans = (x: Block): [Span, Span, Span] => {
    // Stored A is (K, M) when transposed, else (M, K); stored B is (N, K) when transposed, else (K, N).
    const [aRows, aCols, aRow0, aCol0] = g.transA ? [x.kc, x.mc, x.k0, x.m0] : [x.mc, x.kc, x.m0, x.k0];
    const [bRows, bCols, bRow0, bCol0] = g.transB ? [x.nc, x.kc, x.n0, x.k0] : [x.kc, x.nc, x.k0, x.n0];
    const span = (offset: number, stride: number, ld: number, rows: number, cols: number, row0: number, col0: number): Span => ({
      first: offset + x.b0 * stride + row0 * ld + col0,
      count: (x.nb - 1) * stride + (rows - 1) * ld + cols,
    });
    return [
      span(aOffset, g.strideA, g.lda, aRows, aCols, aRow0, aCol0),
      span(bOffset, g.strideB, g.ldb, bRows, bCols, bRow0, bCol0),
      span(cOffset, g.strideC, g.ldc, x.mc, x.nc, x.m0, x.n0),
    ];
  };
  const blocks: Block[] = [];
  const split = (x: Block): void => {
    const sizes = spans(x).map((s) => s.count * 4);
    if (sizes.every((bytes) => bytes <= budget)) {
      blocks.push(x);
      return;
    }
    if (x.nb > 1) {
      const h = Math.ceil(x.nb / 2);
      split({ ...x, nb: h });
      split({ ...x, b0: x.b0 + h, nb: x.nb - h });
      return;
    }
    const widest = sizes.indexOf(Math.max(...sizes));
    // The dimension to halve: the stored rows of the widest operand, else its stored columns.
    const order: ("m" | "n" | "k")[] =
      widest === 0 ? (g.transA ? ["k", "m"] : ["m", "k"]) : widest === 1 ? (g.transB ? ["n", "k"] : ["k", "n"]) : ["m", "n"];
    const dim = order.find((d) => (d === "m" ? x.mc : d === "n" ? x.nc : x.kc) > 1);
    if (dim === undefined) throw new ShapeError(`WebGpuBackend.gemm: internal: a 1×1×1 block does not fit the ${budget}-byte binding budget`);
    if (dim === "m") {
      const h = half(x.mc);
      split({ ...x, mc: h });
      split({ ...x, m0: x.m0 + h, mc: x.mc - h });
    } else if (dim === "n") {
      const h = half(x.nc);
      split({ ...x, nc: h });
      split({ ...x, n0: x.n0 + h, nc: x.nc - h });
    } else {
      const h = half(x.kc);
      split({ ...x, kc: h });
      split({ ...x, k0: x.k0 + h, kc: x.kc - h, beta: 1 });
    }
  };
  split({ b0: 0, nb: g.batch, m0: 0, mc: g.m, n0: 0, nc: g.n, k0: 0, kc: g.k, beta: g.beta });
  return blocks.map((x) => ({ ...x, spans: spans(x) }));
}

/** C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i] for i < batch. */
export function gemm(l: Launcher, g: GpuGemmArgs): void {
  const { batch, m, n } = g;
  if (batch === 0 || m === 0 || n === 0) return;
  if (batch > 65535) throw new ShapeError(`WebGpuBackend.gemm: batch ${batch} exceeds 65535 (one workgroup layer per matrix)`);
  const aligned = (offset: number, ld: number, stride: number, cols: number) => offset % 4 === 0 && ld % 4 === 0 && stride % 4 === 0 && cols % 4 === 0;
  for (const block of planBlocks(g, spanBudget(l.limits)) as (Block & { spans: [Span, Span, Span] })[]) {
    const [sa, sb, sc] = block.spans;
    const wa = window(l, g.a, 4, sa.first, sa.count);
    const wb = window(l, g.b, 4, sb.first, sb.count);
    const wc = window(l, g.c, 4, sc.first, sc.count, true);
    // vec4 loads when the block's stored rows start, and its stored width ends, on a multiple of 4.
    const vecA = aligned(wa.skew, g.lda, g.strideA, g.transA ? block.mc : block.kc);
    const vecB = aligned(wb.skew, g.ldb, g.strideB, g.transB ? block.kc : block.nc);
    const tile = gemmTile(block.mc);
    const key = `gemm:${g.transA ? "T" : "N"}${g.transB ? "T" : "N"}:${vecA ? "v" : "s"}${vecB ? "v" : "s"}:${tile.tm}x${tile.tn}x${tile.tk}:${tile.rm}x${tile.rn}`;
    // Each window starts at the block's first element (plus the skew); strides and leading
    // dimensions are unchanged. A zero-depth block still writes beta·C.
    const params = new Params()
      .u32(block.mc, block.nc, block.kc, g.lda, g.ldb, g.ldc, wa.skew, wb.skew, wc.skew, g.strideA, g.strideB, g.strideC)
      .f32(g.alpha, block.beta)
      .bytes();
    const groups: [number, number, number] = [Math.ceil(block.nc / tile.tn), Math.ceil(block.mc / tile.tm), block.nb];
    l.launch(key, () => gemmSource(tile, g.transA, g.transB, vecA, vecB), [wa.arg, wb.arg, wc.arg], params, groups);
  }
}
