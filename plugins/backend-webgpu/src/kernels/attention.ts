// Fused causal attention, flash style: nothing of size T×S is ever stored.
// Forward: one 32-lane workgroup per query row (b, t, h); keys stream in blocks of 32 (one score
// per lane), an online softmax rescales the running output (each lane owns Dv/32 output dims).
// Backward: δ = dO·out per row, then dq per query row (same block walk, P recomputed from lse), and
// dk/dv per key row (b, s, kvHead), walking every query of the head group, so no atomics and
// deterministic sums. Works on strided q/k/v views, GQA, unequal qk/v dims and the causal S−T offset.
// Tensors larger than a storage binding are walked in chunks of whole batch elements (one batch
// element's q, k, v must fit a binding); the *Off params are the windows' skews.
import { ShapeError, type AttentionArgs } from "@ecomla/core";
import { type Arg, type Launcher, Params, WGSL_BITS, chunks, entry1d, grid1d, gridRows, spanBudget, storage, uniform, wgslGroupReductions, window } from "./common.js";

/** Lanes per workgroup = keys (or queries) per block. */
const LANES = 32;

/** The GPU buffers behind q, k, v. */
export interface Views {
  q: GPUBuffer; // (B, T, Hq, Dqk) strided
  k: GPUBuffer; // (B, S, Hkv, Dqk) strided
  v: GPUBuffer; // (B, S, Hkv, Dv) strided
}

/** WGSL: 32-lane workgroup reductions and the shared params struct. */
const WGSL_ATTENTION = /* wgsl */ `
${WGSL_BITS}
struct Params {
  batch: u32, T: u32, S: u32, Hq: u32, Hkv: u32, Dqk: u32, Dv: u32, group: u32, causal: u32, scale: f32,
  qOffset: u32, qsb: u32, qst: u32, qsh: u32, kOffset: u32, ksb: u32, kst: u32, ksh: u32, vOffset: u32, vsb: u32, vst: u32, vsh: u32,
  oOff: u32, lseOff: u32, deltaOff: u32, dqOff: u32, dkOff: u32, dvOff: u32,
}
${wgslGroupReductions(LANES, "max", "lane")}
fn qAt(b: u32, t: u32, h: u32) -> u32 { return p.qOffset + b * p.qsb + t * p.qst + h * p.qsh; }
fn kAt(b: u32, s: u32, h: u32) -> u32 { return p.kOffset + b * p.ksb + s * p.kst + h * p.ksh; }
fn vAt(b: u32, s: u32, h: u32) -> u32 { return p.vOffset + b * p.vsb + s * p.vst + h * p.vsh; }
/** Keys visible to query t: all S, or s ≤ t + (S − T) when causal. */
fn visibleKeys(t: u32) -> u32 { return select(p.S, min(p.S, t + p.S - p.T + 1u), p.causal != 0u); }
fn score(b: u32, t: u32, h: u32, s: u32, kvh: u32) -> f32 {
  let qi = qAt(b, t, h);
  let ki = kAt(b, s, kvh);
  var dot = 0.0;
  for (var c = 0u; c < p.Dqk; c++) { dot += q[qi + c] * k[ki + c]; }
  return p.scale * dot;
}
`;

/** The (batch, token, head) strides of a view, contiguous when not given. */
function viewStrides(s: readonly [number, number, number] | undefined, tokens: number, heads: number, dim: number): [number, number, number] {
  return s ? [s[0], s[1], s[2]] : [tokens * heads * dim, heads * dim, dim];
}

/** Operands of an attention kernel, by how a batch element maps onto them. */
interface Operand {
  name: "q" | "k" | "v" | "o" | "lse" | "delta" | "dq" | "dk" | "dv";
  buffer: GPUBuffer;
  write?: boolean;
}

/** One batch chunk's windows: the bindings in operand order, and each operand's skew. */
interface Chunk {
  batch0: number;
  batches: number;
  args: Arg[];
  skew: Record<Operand["name"], number>;
}

/**
 * Chunks of whole batch elements whose windows of every operand fit a binding (one chunk when the
 * tensors fit). q, k, v are strided views; the others are contiguous per batch element.
 */
function batchChunks(l: Launcher, kernel: string, a: AttentionArgs, operands: readonly Operand[]): Chunk[] {
  const { queryLen: T, keyLen: S, numHeads: Hq, numKvHeads: Hkv, qkDim, vDim } = a;
  const qs = viewStrides(a.q.strides, T, Hq, qkDim);
  const ks = viewStrides(a.k.strides, S, Hkv, qkDim);
  const vs = viewStrides(a.v.strides, S, Hkv, vDim);
  // Per operand: its first element, elements per batch element, and elements one batch element spans.
  const geometry: Record<Operand["name"], { offset: number; perBatch: number; inner: number }> = {
    q: { offset: a.q.offset ?? 0, perBatch: qs[0], inner: (T - 1) * qs[1] + (Hq - 1) * qs[2] + qkDim },
    k: { offset: a.k.offset ?? 0, perBatch: ks[0], inner: (S - 1) * ks[1] + (Hkv - 1) * ks[2] + qkDim },
    v: { offset: a.v.offset ?? 0, perBatch: vs[0], inner: (S - 1) * vs[1] + (Hkv - 1) * vs[2] + vDim },
    o: { offset: 0, perBatch: T * Hq * vDim, inner: T * Hq * vDim },
    lse: { offset: 0, perBatch: Hq * T, inner: Hq * T },
    delta: { offset: 0, perBatch: T * Hq, inner: T * Hq },
    dq: { offset: 0, perBatch: T * Hq * qkDim, inner: T * Hq * qkDim },
    dk: { offset: 0, perBatch: S * Hkv * qkDim, inner: S * Hkv * qkDim },
    dv: { offset: 0, perBatch: S * Hkv * vDim, inner: S * Hkv * vDim },
  };
  const budget = Math.floor(spanBudget(l.limits) / 4);
  let per = a.batch;
  for (const o of operands) {
    const g = geometry[o.name];
    if (g.inner > budget) {
      throw new ShapeError(`WebGpuBackend.${kernel}: one batch element of '${o.name}' spans ${g.inner * 4} bytes, more than fits the device's ${l.limits.maxBytes}-byte storage binding limit`);
    }
    if (g.perBatch > 0) per = Math.min(per, 1 + Math.floor((budget - g.inner) / g.perBatch));
  }
  return chunks(a.batch, Math.max(1, per)).map(([batch0, batches]) => {
    const skew = { q: 0, k: 0, v: 0, o: 0, lse: 0, delta: 0, dq: 0, dk: 0, dv: 0 };
    const args = operands.map((o) => {
      const g = geometry[o.name];
      const w = window(l, o.buffer, 4, g.offset + batch0 * g.perBatch, (batches - 1) * g.perBatch + g.inner, o.write);
      skew[o.name] = w.skew;
      return w.arg;
    });
    return { batch0, batches, args, skew };
  });
}

function params(a: AttentionArgs, c: Chunk): ArrayBuffer {
  const { queryLen: T, keyLen: S, numHeads: Hq, numKvHeads: Hkv, qkDim, vDim } = a;
  const k = c.skew;
  return new Params()
    .u32(c.batches, T, S, Hq, Hkv, qkDim, vDim, Hq / Hkv, a.causal ? 1 : 0)
    .f32(a.scale)
    .u32(k.q, ...viewStrides(a.q.strides, T, Hq, qkDim))
    .u32(k.k, ...viewStrides(a.k.strides, S, Hkv, qkDim))
    .u32(k.v, ...viewStrides(a.v.strides, S, Hkv, vDim))
    .u32(k.o, k.lse, k.delta, k.dq, k.dk, k.dv)
    .bytes();
}

/** Forward: out (B, T, Hq, Dv) contiguous; lse (B, Hq, T) when given. */
export function forward(l: Launcher, a: AttentionArgs, views: Views, out: GPUBuffer /* (B, T, Hq, Dv) */, lse: GPUBuffer | null /* (B, Hq, T) */): void {
  const rows = a.batch * a.queryLen * a.numHeads;
  if (rows === 0) return;
  const vPer = Math.ceil(a.vDim / LANES);
  const withLse = lse !== null;
  const source = () => /* wgsl */ `
${storage(0, "q", "array<f32>")}
${storage(1, "k", "array<f32>")}
${storage(2, "v", "array<f32>")}
${storage(3, "out", "array<f32>", true)}
${withLse ? storage(4, "lse", "array<f32>", true) : ""}
${uniform(withLse ? 5 : 4)}
${WGSL_ATTENTION}
var<workgroup> probs: array<f32, ${LANES}>;
@compute @workgroup_size(${LANES})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.y * nwg.x + wid.x; // (b·T + t)·Hq + h
  if (row >= p.batch * p.T * p.Hq) { return; }
  let h = row % p.Hq;
  let t = (row / p.Hq) % p.T;
  let b = row / (p.Hq * p.T);
  let kvh = h / p.group;
  let visible = visibleKeys(t);
  var m = negInf();
  var l = 0.0;
  var acc: array<f32, ${vPer}>;
  for (var s0 = 0u; s0 < visible; s0 += ${LANES}u) {
    let s = s0 + lid;
    var sc = negInf();
    if (s < visible) { sc = score(b, t, h, s, kvh); }
    let mNew = max(m, laneMax(sc, lid));
    var pr = 0.0;
    if (s < visible) { pr = exp(sc - mNew); }
    probs[lid] = pr;
    let blockSum = laneSum(pr, lid);
    let corr = exp(m - mNew);
    l = l * corr + blockSum;
    let count = min(${LANES}u, visible - s0);
    for (var j = 0u; j < ${vPer}u; j++) {
      let c = lid + j * ${LANES}u;
      var a = acc[j] * corr;
      if (c < p.Dv) {
        for (var kk = 0u; kk < count; kk++) { a += probs[kk] * v[vAt(b, s0 + kk, kvh) + c]; }
      }
      acc[j] = a;
    }
    m = mNew;
    workgroupBarrier();
  }
  let inv = 1.0 / l;
  for (var j = 0u; j < ${vPer}u; j++) {
    let c = lid + j * ${LANES}u;
    if (c < p.Dv) { out[p.oOff + row * p.Dv + c] = acc[j] * inv; }
  }
  ${withLse ? "if (lid == 0u) { lse[p.lseOff + (b * p.Hq + h) * p.T + t] = m + log(l); }" : ""}
}`;
  const operands: Operand[] = [
    { name: "q", buffer: views.q },
    { name: "k", buffer: views.k },
    { name: "v", buffer: views.v },
    { name: "o", buffer: out, write: true },
    ...(withLse ? [{ name: "lse" as const, buffer: lse!, write: true }] : []),
  ];
  for (const c of batchChunks(l, "attention", a, operands)) {
    l.launch(`attention:v${vPer}:${withLse ? "lse" : "nolse"}`, source, c.args, params(a, c), gridRows(c.batches * a.queryLen * a.numHeads));
  }
}

/** Backward buffers. */
export interface Grads {
  out: GPUBuffer; // (B, T, Hq, Dv)
  lse: GPUBuffer; // (B, Hq, T)
  dOut: GPUBuffer; // (B, T, Hq, Dv)
  dq: GPUBuffer; // (B, T, Hq, Dqk)
  dk: GPUBuffer; // (B, S, Hkv, Dqk)
  dv: GPUBuffer; // (B, S, Hkv, Dv)
}

/** Backward: dq, dk, dv overwritten (contiguous). */
export function backward(l: Launcher, a: AttentionArgs, views: Views, g: Grads): void {
  const queryRows = a.batch * a.queryLen * a.numHeads;
  const keyRows = a.batch * a.keyLen * a.numKvHeads;
  if (queryRows === 0 && keyRows === 0) return;
  const qkPer = Math.ceil(a.qkDim / LANES);
  const vPer = Math.ceil(a.vDim / LANES);
  const delta = l.scratch(Math.max(1, queryRows) * 4); // (B, T, Hq): dO·out per query row
  const deltaSource = () => /* wgsl */ `
struct Params { rows: u32, Dv: u32, oOff: u32, deltaOff: u32 }
${storage(0, "out", "array<f32>")}
${storage(1, "dOut", "array<f32>")}
${storage(2, "delta", "array<f32>", true)}
${uniform(3)}
${entry1d(64)}
  if (i >= p.rows) { return; }
  var s = 0.0;
  for (var c = 0u; c < p.Dv; c++) { s += dOut[p.oOff + i * p.Dv + c] * out[p.oOff + i * p.Dv + c]; }
  delta[p.deltaOff + i] = s;
}`;
  const deltaOperands: Operand[] = [{ name: "o", buffer: g.out }, { name: "o", buffer: g.dOut }, { name: "delta", buffer: delta, write: true }];
  for (const c of batchChunks(l, "attentionBackward", a, deltaOperands)) {
    const rows = c.batches * a.queryLen * a.numHeads;
    l.launch("attentionBackward:delta", deltaSource, c.args, new Params().u32(rows, a.vDim, c.skew.o, c.skew.delta).bytes(), grid1d(rows, 64));
  }

  const common = `
${storage(0, "q", "array<f32>")}
${storage(1, "k", "array<f32>")}
${storage(2, "v", "array<f32>")}
${storage(3, "lse", "array<f32>")}
${storage(4, "dOut", "array<f32>")}
${storage(5, "delta", "array<f32>")}`;
  const dqSource = () => /* wgsl */ `
${common}
${storage(6, "dq", "array<f32>", true)}
${uniform(7)}
${WGSL_ATTENTION}
var<workgroup> dsBlock: array<f32, ${LANES}>;
@compute @workgroup_size(${LANES})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.y * nwg.x + wid.x; // (b·T + t)·Hq + h
  if (row >= p.batch * p.T * p.Hq) { return; }
  let h = row % p.Hq;
  let t = (row / p.Hq) % p.T;
  let b = row / (p.Hq * p.T);
  let kvh = h / p.group;
  let visible = visibleKeys(t);
  let rowLse = lse[p.lseOff + (b * p.Hq + h) * p.T + t];
  let rowDelta = delta[p.deltaOff + row];
  var acc: array<f32, ${qkPer}>;
  for (var s0 = 0u; s0 < visible; s0 += ${LANES}u) {
    let s = s0 + lid;
    var ds = 0.0;
    if (s < visible) {
      let prob = exp(score(b, t, h, s, kvh) - rowLse);
      let vi = vAt(b, s, kvh);
      var dp = 0.0;
      for (var c = 0u; c < p.Dv; c++) { dp += dOut[p.oOff + row * p.Dv + c] * v[vi + c]; }
      ds = prob * (dp - rowDelta);
    }
    dsBlock[lid] = ds;
    workgroupBarrier();
    let count = min(${LANES}u, visible - s0);
    for (var j = 0u; j < ${qkPer}u; j++) {
      let c = lid + j * ${LANES}u;
      if (c < p.Dqk) {
        var a = acc[j];
        for (var kk = 0u; kk < count; kk++) { a += dsBlock[kk] * k[kAt(b, s0 + kk, kvh) + c]; }
        acc[j] = a;
      }
    }
    workgroupBarrier();
  }
  for (var j = 0u; j < ${qkPer}u; j++) {
    let c = lid + j * ${LANES}u;
    if (c < p.Dqk) { dq[p.dqOff + row * p.Dqk + c] = p.scale * acc[j]; }
  }
}`;
  const inputs: Operand[] = [
    { name: "q", buffer: views.q },
    { name: "k", buffer: views.k },
    { name: "v", buffer: views.v },
    { name: "lse", buffer: g.lse },
    { name: "o", buffer: g.dOut },
    { name: "delta", buffer: delta },
  ];
  for (const c of batchChunks(l, "attentionBackward", a, [...inputs, { name: "dq", buffer: g.dq, write: true }])) {
    l.launch(`attentionBackward:dq:${qkPer}`, dqSource, c.args, params(a, c), gridRows(c.batches * a.queryLen * a.numHeads));
  }

  const dkvSource = () => /* wgsl */ `
${common}
${storage(6, "dk", "array<f32>", true)}
${storage(7, "dv", "array<f32>", true)}
${uniform(8)}
${WGSL_ATTENTION}
var<workgroup> pBlock: array<f32, ${LANES}>;
var<workgroup> dsBlock: array<f32, ${LANES}>;
@compute @workgroup_size(${LANES})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.y * nwg.x + wid.x; // (b·S + s)·Hkv + kvh
  if (row >= p.batch * p.S * p.Hkv) { return; }
  let kvh = row % p.Hkv;
  let s = (row / p.Hkv) % p.S;
  let b = row / (p.Hkv * p.S);
  // Queries of the head group that see key s: t ≥ s − (S − T) when causal.
  var firstT = 0u;
  if (p.causal != 0u && s + p.T > p.S) { firstT = s + p.T - p.S; }
  let perHead = p.T - min(firstT, p.T);
  let total = perHead * p.group;
  var dkAcc: array<f32, ${qkPer}>;
  var dvAcc: array<f32, ${vPer}>;
  let vi = vAt(b, s, kvh);
  for (var i0 = 0u; i0 < total; i0 += ${LANES}u) {
    let idx = i0 + lid;
    var prob = 0.0;
    var ds = 0.0;
    if (idx < total) {
      let h = kvh * p.group + idx / perHead;
      let t = firstT + idx % perHead;
      let qRow = (b * p.T + t) * p.Hq + h;
      prob = exp(score(b, t, h, s, kvh) - lse[p.lseOff + (b * p.Hq + h) * p.T + t]);
      var dp = 0.0;
      for (var c = 0u; c < p.Dv; c++) { dp += dOut[p.oOff + qRow * p.Dv + c] * v[vi + c]; }
      ds = prob * (dp - delta[p.deltaOff + qRow]);
    }
    pBlock[lid] = prob;
    dsBlock[lid] = ds;
    workgroupBarrier();
    let count = min(${LANES}u, total - i0);
    for (var kk = 0u; kk < count; kk++) {
      let h = kvh * p.group + (i0 + kk) / perHead;
      let t = firstT + (i0 + kk) % perHead;
      let qRow = (b * p.T + t) * p.Hq + h;
      let qi = qAt(b, t, h);
      let pk = pBlock[kk];
      let dsk = dsBlock[kk];
      for (var j = 0u; j < ${vPer}u; j++) {
        let c = lid + j * ${LANES}u;
        if (c < p.Dv) { dvAcc[j] += pk * dOut[p.oOff + qRow * p.Dv + c]; }
      }
      for (var j = 0u; j < ${qkPer}u; j++) {
        let c = lid + j * ${LANES}u;
        if (c < p.Dqk) { dkAcc[j] += dsk * q[qi + c]; }
      }
    }
    workgroupBarrier();
  }
  for (var j = 0u; j < ${vPer}u; j++) {
    let c = lid + j * ${LANES}u;
    if (c < p.Dv) { dv[p.dvOff + row * p.Dv + c] = dvAcc[j]; }
  }
  for (var j = 0u; j < ${qkPer}u; j++) {
    let c = lid + j * ${LANES}u;
    if (c < p.Dqk) { dk[p.dkOff + row * p.Dqk + c] = p.scale * dkAcc[j]; }
  }
}`;
  for (const c of batchChunks(l, "attentionBackward", a, [...inputs, { name: "dk", buffer: g.dk, write: true }, { name: "dv", buffer: g.dv, write: true }])) {
    l.launch(`attentionBackward:dkv:${qkPer}:${vPer}`, dkvSource, c.args, params(a, c), gridRows(c.batches * a.keyLen * a.numKvHeads));
  }
  l.release(delta);
}
