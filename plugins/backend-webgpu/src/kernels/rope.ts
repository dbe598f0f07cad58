// Rotary position embedding, forward and inverse (the backward), both pair layouts. One invocation
// per rotated pair reads both elements before writing either, so out may alias x. Tensors larger
// than a storage binding are walked in chunks of tokens.
import { ShapeError, type RopeArgs } from "@ecomla/core";
import { type Launcher, Params, chunks, entry1d, grid1d, rowsPerChunk, spanBudget, storage, uniform, window } from "./common.js";

/** RopeArgs with GPU buffers resolved; positions null when absent. */
export type GpuRopeArgs = Omit<RopeArgs, "x" | "out" | "cos" | "sin" | "positions"> & {
  x: GPUBuffer; // (B, T, H, D)
  out: GPUBuffer; // (B, T, H, D)
  cos: GPUBuffer; // (P, D/2)
  sin: GPUBuffer; // (P, D/2)
  positions: GPUBuffer | null; // (B, T) i32
  /** Elements of the cos (and sin) table. */
  tableLength: number;
};

export function rope(l: Launcher, r: GpuRopeArgs): void {
  const half = r.headDim / 2;
  const pairs = r.batch * r.seqLen * r.numHeads * half;
  if (pairs === 0) return;
  const explicit = r.positions !== null;
  const interleaved = r.layout === "interleaved";
  const source = () => /* wgsl */ `
struct Params { pairs: u32, seqLen: u32, numHeads: u32, half: u32, posOffset: u32, scale: f32, sinSign: f32, firstToken: u32, xOff: u32, outOff: u32, positionsOff: u32, tableFirst: u32, tableOff: u32 }
${storage(0, "x", "array<f32>")}
${storage(1, "out", "array<f32>", true)}
${storage(2, "cosT", "array<f32>")}
${storage(3, "sinT", "array<f32>")}
${explicit ? storage(4, "positions", "array<i32>") : ""}
${uniform(explicit ? 5 : 4)}
${entry1d()}
  if (i >= p.pairs) { return; }
  let pair = i % p.half;
  let vec = i / p.half; // (b·T + t)·H + h
  let token = p.firstToken + vec / p.numHeads; // b·T + t
  let pos = ${explicit ? "u32(positions[p.positionsOff + vec / p.numHeads])" : "p.posOffset + token % p.seqLen"};
  let at = p.tableOff + (pos - p.tableFirst) * p.half + pair;
  let c = p.scale * cosT[at];
  let s = p.sinSign * p.scale * sinT[at];
  let base = vec * 2u * p.half;
  let ia = base + ${interleaved ? "2u * pair" : "pair"};
  let ib = base + ${interleaved ? "2u * pair + 1u" : "pair + p.half"};
  let xa = x[p.xOff + ia];
  let xb = x[p.xOff + ib];
  out[p.outOff + ia] = xa * c - xb * s;
  out[p.outOff + ib] = xb * c + xa * s;
}`;
  // The cos/sin rows bound: positions posOffset .. posOffset + T − 1, or (explicit positions) all.
  const tableFirst = explicit ? 0 : (r.posOffset ?? 0);
  const tableCount = explicit ? r.tableLength : Math.max(1, Math.min(r.seqLen * half, r.tableLength - tableFirst * half));
  if (tableCount * 4 > spanBudget(l.limits)) {
    throw new ShapeError(`WebGpuBackend.rope: the cos/sin rows used take ${tableCount * 4} bytes, more than the device's ${l.limits.maxBytes}-byte storage binding limit`);
  }
  const wc = window(l, r.cos, 4, tableFirst * half, tableCount);
  const wsin = window(l, r.sin, 4, tableFirst * half, tableCount);
  const tokenElements = r.numHeads * r.headDim;
  const tokens = r.batch * r.seqLen;
  for (const [token0, count] of chunks(tokens, rowsPerChunk(l, "rope", tokenElements * 4))) {
    const wx = window(l, r.x, 4, token0 * tokenElements, count * tokenElements);
    const wo = window(l, r.out, 4, token0 * tokenElements, count * tokenElements, true);
    const wp = explicit ? window(l, r.positions!, 4, token0, count) : null;
    const args = [wx.arg, wo.arg, wc.arg, wsin.arg, ...(wp ? [wp.arg] : [])];
    const chunkPairs = count * r.numHeads * half;
    const params = new Params()
      .u32(chunkPairs, r.seqLen, r.numHeads, half, r.posOffset ?? 0)
      .f32(r.scale ?? 1, r.inverse ? -1 : 1)
      .u32(token0, wx.skew, wo.skew, wp?.skew ?? 0, tableFirst, wc.skew)
      .bytes();
    l.launch(`rope:${r.layout}:${explicit ? "positions" : "offset"}`, source, args, params, grid1d(chunkPairs));
  }
}
