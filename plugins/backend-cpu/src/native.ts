// Loads the N-API addon built by scripts/build-native.mjs and types its surface.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EcomlaError } from "@ecomla/core";

type Buf = ArrayBuffer;
type Opt = ArrayBuffer | null;

/** The addon's functions; buffers are the ArrayBuffers it allocated, numbers are element counts/offsets. */
export interface NativeAddon {
  alloc(bytes: number): ArrayBuffer;
  info(): { isa: string; threads: number; blasThreads: number; blasConfig: string };
  setThreads(n: number): void;
  fill(out: Buf, dtype: number, value: number, n: number, offset: number): void;
  copyStrided(src: Buf, srcOffset: number, dst: Buf, dstOffset: number, dtype: number, packed: Float64Array, accumulate: number): void;
  cast(src: Buf, srcDtype: number, dst: Buf, dstDtype: number, n: number): void;
  gemm(a: Buf, b: Buf, c: Buf, packed: Float64Array): void;
  binary(op: number, a: Buf, b: Buf, out: Buf, packed: Float64Array): void;
  unary(op: number, x: Buf, out: Buf, n: number, alpha: number): void;
  unaryBackward(op: number, x: Buf, y: Buf, dy: Buf, dx: Buf, n: number, alpha: number): void;
  reduceLastAxis(op: number, x: Buf, out: Buf, rows: number, cols: number): void;
  sumToShape(x: Buf, out: Buf, packed: Float64Array): void;
  softmax(x: Buf, out: Buf, rows: number, cols: number): void;
  softmaxBackward(y: Buf, dy: Buf, dx: Buf, rows: number, cols: number): void;
  rmsNorm(x: Buf, w: Buf, out: Buf, rstd: Buf, rows: number, cols: number, eps: number): void;
  rmsNormBackward(x: Buf, w: Buf, rstd: Buf, dy: Buf, dx: Buf, dw: Buf, rows: number, cols: number): void;
  rope(x: Buf, out: Buf, cos: Buf, sin: Buf, positions: Opt, packed: Float64Array): void;
  attention(q: Buf, k: Buf, v: Buf, out: Buf, lse: Opt, packed: Float64Array): void;
  attentionBackward(q: Buf, k: Buf, v: Buf, out: Buf, lse: Buf, dOut: Buf, dq: Buf, dk: Buf, dv: Buf, packed: Float64Array): void;
  swiglu(gate: Buf, up: Buf, out: Buf, n: number): void;
  swigluBackward(gate: Buf, up: Buf, dOut: Buf, dGate: Buf, dUp: Buf, n: number): void;
  embedding(ids: Buf, table: Buf, out: Buf, n: number, vocab: number, dim: number): void;
  embeddingBackward(ids: Buf, dOut: Buf, dTable: Buf, n: number, vocab: number, dim: number): void;
  crossEntropy(logits: Buf, labels: Buf, weights: Opt, loss: Buf, grad: Opt, rows: number, vocab: number, temperature: number): void;
  klDiv(logits: Buf, teacherLogits: Opt, teacherIndices: Opt, teacherLogprobs: Opt, weights: Opt, loss: Buf, grad: Opt, rows: number, vocab: number, temperature: number, topK: number): void;
  adamw(param: Buf, grad: Buf, m: Buf, v: Buf, packed: Float64Array): void;
  svd(a: Float64Array | Float32Array, m: number, n: number): { u: Float64Array; s: Float64Array; vt: Float64Array };
  benchSgemm(m: number, n: number, k: number, repetitions: number): Float64Array;
}

let cached: NativeAddon | undefined;

/** The addon, loaded once per process (its thread pool is process-wide). */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  const pkgDir = dirname(dirname(fileURLToPath(import.meta.url)));
  const path = join(pkgDir, "build", "Release", "ecomla_cpu.node");
  if (!existsSync(path)) {
    throw new EcomlaError(
      `@ecomla/backend-cpu: native addon not found at ${path}; build it with \`pnpm --filter @ecomla/backend-cpu build:native\` (needs a C++17 compiler and libopenblas-dev)`,
    );
  }
  cached = createRequire(import.meta.url)(path) as NativeAddon;
  return cached;
}
