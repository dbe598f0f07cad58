// Fused log-softmax + loss (+ gradient) per row of logits, one 256-lane workgroup per row:
// cross-entropy against labels, and forward KL against a dense or top-k teacher, with temperature
// and per-row weights. A grad that aliases the logits reads a copy (WebGPU forbids the alias).
// Logits larger than a storage binding (2048 × 32000 f32 is 262 MB) are walked in chunks of rows;
// `bigOff`, `rowOff` and `kOff` are the window skews of the (N, V), (N) and (N, K) operands.
import { type Arg, type Launcher, Params, WGSL_BITS, chunks, entryRows, gridRows, rowsPerChunk, storage, uniform, wgslGroupReductions, window } from "./common.js";

const LANES = 256;

/** Shared inputs of both losses. */
export interface GpuLoss {
  rows: number;
  vocab: number;
  temperature: number;
  logits: GPUBuffer; // (N, V)
  loss: GPUBuffer; // (N)
  grad: GPUBuffer | null; // (N, V)
  weights: GPUBuffer | null; // (N)
}

const WGSL_ROW = /* wgsl */ `
${WGSL_BITS}
${wgslGroupReductions(LANES)}
`;

/** WGSL: `lse_<name>` = log Σ exp(src[base + j]/τ) over the row, computed by the whole workgroup. */
function rowLse(name: string, src: string): string {
  return `var m_${name} = negInf();
  for (var j = lid; j < p.vocab; j += ${LANES}u) { m_${name} = max(m_${name}, ${src}[base + j] * invT); }
  let max_${name} = groupMax(m_${name}, lid);
  var s_${name} = 0.0;
  for (var j = lid; j < p.vocab; j += ${LANES}u) { s_${name} += exp(${src}[base + j] * invT - max_${name}); }
  let lse_${name} = max_${name} + log(groupSum(s_${name}, lid));`;
}

/** How an operand is indexed: by (row, vocab), by row, or by (row, k). */
type Layout = "big" | "row" | "k";

/** Bindings list and their WGSL declarations, numbered in order. */
function bindings(list: [string, string, GPUBuffer | null, boolean, Layout][]): { decl: string; operands: { buffer: GPUBuffer; write: boolean; layout: Layout }[] } {
  const present = list.filter(([, , buffer]) => buffer !== null);
  const decl = present.map(([name, type, , write], i) => storage(i, name, type, write)).join("\n") + "\n" + uniform(present.length);
  return { decl, operands: present.map(([, , buffer, write, layout]) => ({ buffer: buffer!, write, layout })) };
}

/** Launch a loss kernel over chunks of rows; `params(rows, offsets)` packs the chunk's params. */
function launchRows(
  l: Launcher,
  kernel: string,
  key: string,
  source: () => string,
  operands: readonly { buffer: GPUBuffer; write: boolean; layout: Layout }[],
  rows: number,
  vocab: number,
  topK: number,
  params: (count: number, bigOff: number, rowOff: number, kOff: number) => ArrayBuffer,
): void {
  const widths: Record<Layout, number> = { big: vocab, row: 1, k: topK };
  for (const [row0, count] of chunks(rows, rowsPerChunk(l, kernel, Math.max(vocab, topK) * 4))) {
    const skews: Record<Layout, number> = { big: 0, row: 0, k: 0 };
    const args: Arg[] = operands.map((o) => {
      const w = window(l, o.buffer, 4, row0 * widths[o.layout], count * widths[o.layout], o.write);
      skews[o.layout] = w.skew;
      return w.arg;
    });
    l.launch(key, source, args, params(count, skews.big, skews.row, skews.k), gridRows(count));
  }
}

/** Fused cross-entropy; label < 0 rows give zero loss and gradient. */
export function crossEntropy(l: Launcher, c: GpuLoss & { labels: GPUBuffer /* (N) i32 */ }): void {
  if (c.rows === 0) return;
  const hasGrad = c.grad !== null;
  const hasWeights = c.weights !== null;
  const b = bindings([
    ["logits", "array<f32>", c.logits, false, "big"],
    ["labels", "array<i32>", c.labels, false, "row"],
    ["weights", "array<f32>", c.weights, false, "row"],
    ["loss", "array<f32>", c.loss, true, "row"],
    ["grad", "array<f32>", c.grad, true, "big"],
  ]);
  const source = () => /* wgsl */ `
struct Params { rows: u32, vocab: u32, temperature: f32, bigOff: u32, rowOff: u32 }
${b.decl}
${WGSL_ROW}
${entryRows(LANES)}
  if (row >= p.rows) { return; }
  let base = p.bigOff + row * p.vocab;
  let at = p.rowOff + row;
  let label = labels[at];
  if (label < 0) {
    if (lid == 0u) { loss[at] = 0.0; }
    ${hasGrad ? `for (var j = lid; j < p.vocab; j += ${LANES}u) { grad[base + j] = 0.0; }` : ""}
    return;
  }
  let invT = 1.0 / p.temperature;
  let w = ${hasWeights ? "weights[at]" : "1.0"};
  ${rowLse("z", "logits")}
  if (lid == 0u) { loss[at] = w * (lse_z - logits[base + u32(label)] * invT); }
  ${
    hasGrad
      ? `let gscale = w * invT;
  for (var j = lid; j < p.vocab; j += ${LANES}u) {
    grad[base + j] = gscale * (exp(logits[base + j] * invT - lse_z) - select(0.0, 1.0, j == u32(label)));
  }`
      : ""
  }
}`;
  launchRows(l, "crossEntropy", `crossEntropy:${hasGrad}:${hasWeights}`, source, b.operands, c.rows, c.vocab, 0, (count, bigOff, rowOff) =>
    new Params().u32(count, c.vocab).f32(c.temperature).u32(bigOff, rowOff).bytes(),
  );
}

/** The teacher of a KL loss. */
export type GpuTeacher =
  | { kind: "dense"; logits: GPUBuffer /* (N, V) */ }
  | { kind: "topK"; topK: number; indices: GPUBuffer /* (N, K) i32 */; logprobs: GPUBuffer /* (N, K) */ };

/** Fused forward KL(teacher ‖ student). */
export function klDiv(l: Launcher, c: GpuLoss & { teacher: GpuTeacher }): void {
  if (c.rows === 0) return;
  const hasGrad = c.grad !== null;
  const hasWeights = c.weights !== null;
  const dense = c.teacher.kind === "dense";
  const t = c.teacher;
  const b = bindings([
    ["logits", "array<f32>", c.logits, false, "big"],
    ["teacher", "array<f32>", t.kind === "dense" ? t.logits : null, false, "big"],
    ["indices", "array<i32>", t.kind === "topK" ? t.indices : null, false, "k"],
    ["logprobs", "array<f32>", t.kind === "topK" ? t.logprobs : null, false, "k"],
    ["weights", "array<f32>", c.weights, false, "row"],
    ["loss", "array<f32>", c.loss, true, "row"],
    ["grad", "array<f32>", c.grad, true, "big"],
  ]);
  const denseBody = `
  ${rowLse("t", "teacher")}
  var part = 0.0;
  for (var j = lid; j < p.vocab; j += ${LANES}u) {
    let logP = teacher[base + j] * invT - lse_t;
    let prob = exp(logP);
    if (prob > 0.0) { part += prob * (logP - (logits[base + j] * invT - lse_z)); }
  }
  let total = groupSum(part, lid);
  if (lid == 0u) { loss[at] = w * total; }
  ${
    hasGrad
      ? `for (var j = lid; j < p.vocab; j += ${LANES}u) {
    grad[base + j] = w * invT * (exp(logits[base + j] * invT - lse_z) - exp(teacher[base + j] * invT - lse_t));
  }`
      : ""
  }`;
  const topKBody = `
  let kBase = p.kOff + row * p.topK;
  var part = 0.0;
  var massPart = 0.0;
  for (var kk = lid; kk < p.topK; kk += ${LANES}u) {
    let logP = logprobs[kBase + kk];
    let prob = exp(logP);
    if (prob > 0.0) {
      part += prob * (logP - (logits[base + u32(indices[kBase + kk])] * invT - lse_z));
      massPart += prob;
    }
  }
  let total = groupSum(part, lid);
  let mass = groupSum(massPart, lid);
  if (lid == 0u) { loss[at] = w * total; }
  ${
    hasGrad
      ? `for (var j = lid; j < p.vocab; j += ${LANES}u) { grad[base + j] = w * invT * exp(logits[base + j] * invT - lse_z) * mass; }
  storageBarrier();
  workgroupBarrier();
  if (lid == 0u) {
    for (var kk = 0u; kk < p.topK; kk++) {
      let prob = exp(logprobs[kBase + kk]);
      let j = u32(indices[kBase + kk]);
      grad[base + j] = grad[base + j] - w * invT * prob;
    }
  }`
      : ""
  }`;
  const source = () => /* wgsl */ `
struct Params { rows: u32, vocab: u32, temperature: f32, topK: u32, bigOff: u32, rowOff: u32, kOff: u32 }
${b.decl}
${WGSL_ROW}
${entryRows(LANES)}
  if (row >= p.rows) { return; }
  let base = p.bigOff + row * p.vocab;
  let at = p.rowOff + row;
  let invT = 1.0 / p.temperature;
  let w = ${hasWeights ? "weights[at]" : "1.0"};
  ${rowLse("z", "logits")}
  ${dense ? denseBody : topKBody}
}`;
  const topK = t.kind === "topK" ? t.topK : 0;
  launchRows(l, "klDiv", `klDiv:${t.kind}:${hasGrad}:${hasWeights}`, source, b.operands, c.rows, c.vocab, topK, (count, bigOff, rowOff, kOff) =>
    new Params().u32(count, c.vocab).f32(c.temperature).u32(topK, bigOff, rowOff, kOff).bytes(),
  );
}
