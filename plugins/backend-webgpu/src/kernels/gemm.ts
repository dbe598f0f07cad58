// Batched strided GEMM C = alpha·op(A)·op(B) + beta·C. A workgroup of 16×16 invocations computes a
// 64×64 tile of C, each invocation a 4×4 block, over K in steps of 16 staged in workgroup memory.
// Tile loads read four consecutive stored elements per invocation: one vec4 load when the operand's
// offset, leading dimension, batch stride and stored width are multiples of 4, else four
// bounds-checked scalar loads. beta = 0 never reads C (NaN in C does not leak).
import { ShapeError, type GemmArgs } from "@ecomla/core";
import { type Launcher, Params, storage, uniform } from "./common.js";

const TILE_M = 64;
const TILE_N = 64;
const TILE_K = 16;

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

function gemmSource(transA: boolean, transB: boolean, vecA: boolean, vecB: boolean): string {
  // Stored A is (K, M) when transposed, else (M, K); stored B is (N, K) when transposed, else (K, N).
  const loadA = transA
    ? `let kk = lid / 16u; let mq = (lid % 16u) * 4u;
    let va = load4A(aBase, p.lda, p.k, p.m, k0 + kk, tileRow + mq);
    for (var i = 0u; i < 4u; i++) { As[kk * ${TILE_M}u + mq + i] = va[i]; }`
    : `let r = lid / 4u; let kq = (lid % 4u) * 4u;
    let va = load4A(aBase, p.lda, p.m, p.k, tileRow + r, k0 + kq);
    for (var i = 0u; i < 4u; i++) { As[(kq + i) * ${TILE_M}u + r] = va[i]; }`;
  const loadB = transB
    ? `let r = lid / 4u; let kq = (lid % 4u) * 4u;
    let vb = load4B(bBase, p.ldb, p.n, p.k, tileCol + r, k0 + kq);
    for (var i = 0u; i < 4u; i++) { Bs[(kq + i) * ${TILE_N}u + r] = vb[i]; }`
    : `let kk = lid / 16u; let nq = (lid % 16u) * 4u;
    let vb = load4B(bBase, p.ldb, p.k, p.n, k0 + kk, tileCol + nq);
    for (var i = 0u; i < 4u; i++) { Bs[kk * ${TILE_N}u + nq + i] = vb[i]; }`;
  return /* wgsl */ `
struct Params { m: u32, n: u32, k: u32, lda: u32, ldb: u32, ldc: u32, aOffset: u32, bOffset: u32, cOffset: u32, strideA: u32, strideB: u32, strideC: u32, alpha: f32, beta: f32 }
${storage(0, "A", vecA ? "array<vec4<f32>>" : "array<f32>")}
${storage(1, "B", vecB ? "array<vec4<f32>>" : "array<f32>")}
${storage(2, "C", "array<f32>", true)}
${uniform(3)}
var<workgroup> As: array<f32, ${TILE_K * TILE_M}>;
var<workgroup> Bs: array<f32, ${TILE_K * TILE_N}>;
${loader("A", vecA)}
${loader("B", vecB)}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let batch = wid.z;
  let tileRow = wid.y * ${TILE_M}u;
  let tileCol = wid.x * ${TILE_N}u;
  let aBase = p.aOffset + batch * p.strideA;
  let bBase = p.bOffset + batch * p.strideB;
  let tx = lid % 16u;
  let ty = lid / 16u;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < p.k; k0 += ${TILE_K}u) {
    {
    ${loadA}
    }
    {
    ${loadB}
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TILE_K}u; kk++) {
      let a = vec4<f32>(As[kk * ${TILE_M}u + ty * 4u], As[kk * ${TILE_M}u + ty * 4u + 1u], As[kk * ${TILE_M}u + ty * 4u + 2u], As[kk * ${TILE_M}u + ty * 4u + 3u]);
      let b = vec4<f32>(Bs[kk * ${TILE_N}u + tx * 4u], Bs[kk * ${TILE_N}u + tx * 4u + 1u], Bs[kk * ${TILE_N}u + tx * 4u + 2u], Bs[kk * ${TILE_N}u + tx * 4u + 3u]);
      acc[0] += a.x * b;
      acc[1] += a.y * b;
      acc[2] += a.z * b;
      acc[3] += a.w * b;
    }
    workgroupBarrier();
  }
  let cBase = p.cOffset + batch * p.strideC;
  for (var i = 0u; i < 4u; i++) {
    let row = tileRow + ty * 4u + i;
    if (row >= p.m) { break; }
    for (var j = 0u; j < 4u; j++) {
      let col = tileCol + tx * 4u + j;
      if (col >= p.n) { break; }
      let at = cBase + row * p.ldc + col;
      var value = p.alpha * acc[i][j];
      if (p.beta != 0.0) { value += p.beta * C[at]; }
      C[at] = value;
    }
  }
}`;
}

/** C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i] for i < batch. */
export function gemm(l: Launcher, g: GpuGemmArgs): void {
  const { batch, m, n, k } = g;
  if (batch === 0 || m === 0 || n === 0) return;
  if (batch > 65535) throw new ShapeError(`WebGpuBackend.gemm: batch ${batch} exceeds 65535 (one workgroup layer per matrix)`);
  const aOffset = g.aOffset ?? 0;
  const bOffset = g.bOffset ?? 0;
  const cOffset = g.cOffset ?? 0;
  const aCols = g.transA ? m : k;
  const bCols = g.transB ? k : n;
  const aligned = (offset: number, ld: number, stride: number, cols: number) => offset % 4 === 0 && ld % 4 === 0 && stride % 4 === 0 && cols % 4 === 0;
  const vecA = aligned(aOffset, g.lda, g.strideA, aCols);
  const vecB = aligned(bOffset, g.ldb, g.strideB, bCols);
  const key = `gemm:${g.transA ? "T" : "N"}${g.transB ? "T" : "N"}:${vecA ? "v" : "s"}${vecB ? "v" : "s"}`;
  const params = new Params()
    .u32(m, n, k, g.lda, g.ldb, g.ldc, aOffset, bOffset, cOffset, g.strideA, g.strideB, g.strideC)
    .f32(g.alpha, g.beta)
    .bytes();
  const groups: [number, number, number] = [Math.ceil(n / TILE_N), Math.ceil(m / TILE_M), batch];
  l.launch(key, () => gemmSource(g.transA, g.transB, vecA, vecB), [{ buffer: g.a }, { buffer: g.b }, { buffer: g.c, write: true }], params, groups);
}
