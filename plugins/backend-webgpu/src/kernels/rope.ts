// Rotary position embedding, forward and inverse (the backward), both pair layouts. One invocation
// per rotated pair reads both elements before writing either, so out may alias x.
import type { RopeArgs } from "@ecomla/core";
import { type Launcher, Params, entry1d, grid1d, storage, uniform } from "./common.js";

/** RopeArgs with GPU buffers resolved; positions null when absent. */
export type GpuRopeArgs = Omit<RopeArgs, "x" | "out" | "cos" | "sin" | "positions"> & {
  x: GPUBuffer; // (B, T, H, D)
  out: GPUBuffer; // (B, T, H, D)
  cos: GPUBuffer; // (P, D/2)
  sin: GPUBuffer; // (P, D/2)
  positions: GPUBuffer | null; // (B, T) i32
};

export function rope(l: Launcher, r: GpuRopeArgs): void {
  const half = r.headDim / 2;
  const pairs = r.batch * r.seqLen * r.numHeads * half;
  if (pairs === 0) return;
  const explicit = r.positions !== null;
  const interleaved = r.layout === "interleaved";
  const source = () => /* wgsl */ `
struct Params { pairs: u32, seqLen: u32, numHeads: u32, half: u32, posOffset: u32, scale: f32, sinSign: f32 }
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
  let token = vec / p.numHeads; // b·T + t
  let pos = ${explicit ? "u32(positions[token])" : "p.posOffset + token % p.seqLen"};
  let c = p.scale * cosT[pos * p.half + pair];
  let s = p.sinSign * p.scale * sinT[pos * p.half + pair];
  let base = vec * 2u * p.half;
  let ia = base + ${interleaved ? "2u * pair" : "pair"};
  let ib = base + ${interleaved ? "2u * pair + 1u" : "pair + p.half"};
  let xa = x[ia];
  let xb = x[ib];
  out[ia] = xa * c - xb * s;
  out[ib] = xb * c + xa * s;
}`;
  const args = [{ buffer: r.x }, { buffer: r.out, write: true }, { buffer: r.cos }, { buffer: r.sin }, ...(explicit ? [{ buffer: r.positions! }] : [])];
  const params = new Params()
    .u32(pairs, r.seqLen, r.numHeads, half, r.posOffset ?? 0)
    .f32(r.scale ?? 1, r.inverse ? -1 : 1)
    .bytes();
  l.launch(`rope:${r.layout}:${explicit ? "positions" : "offset"}`, source, args, params, grid1d(pairs));
}
