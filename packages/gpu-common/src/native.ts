// Loading a GPU backend's N-API addon and saying, without a device, why it cannot run: the build
// outcome (build/gpu-status.json, written at install), the addon load, the driver/device probe.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { EcomlaError } from "@ecomla/core";

/** Which GPU stack a build targets. */
export type GpuFlavor = "cuda" | "rocm";

type P = number;
type OptP = number | null;

/** The addon's functions; P are device addresses, sizes in elements unless named bytes. */
export interface GpuAddon {
  readonly flavor: GpuFlavor;
  readonly compiledTargets: string;
  readonly attentionMaxHeadDim: number;
  probe(): DeviceProbe;
  init(): void;
  loadBlas(paths: string[]): { ok: boolean; path: string; errors: string };
  dlopenCheck(path: string): string;
  alloc(bytes: number): P;
  free(ptr: P): void;
  upload(dst: P, byteOffset: number, data: Float32Array | Int32Array | Uint16Array): void;
  copyDevice(dst: P, src: P, bytes: number): void;
  download(src: P, byteOffset: number, bytes: number): Promise<ArrayBuffer>;
  sync(): Promise<void>;
  memInfo(): { freeBytes: number; totalBytes: number; stagingBytes: number };
  fill(out: P, dtype: number, value: number, n: number, offset: number): void;
  copyStrided(src: P, srcOffset: number, dst: P, dstOffset: number, dtype: number, packed: Float64Array, accumulate: boolean): void;
  cast(src: P, srcDtype: number, dst: P, dstDtype: number, n: number): void;
  gemm(a: P, b: P, c: P, packed: Float64Array, tf32: boolean): void;
  benchSgemm(m: number, n: number, k: number, repetitions: number): number;
  binary(op: number, a: P, b: P, out: P, packed: Float64Array): void;
  unary(op: number, x: P, out: P, n: number, alpha: number): void;
  unaryBackward(op: number, x: P, y: P, dy: P, dx: P, n: number, alpha: number): void;
  reduceLastAxis(op: number, x: P, out: P, rows: number, cols: number): void;
  sumToShape(x: P, out: P, packed: Float64Array): void;
  embedding(ids: P, table: P, out: P, n: number, vocab: number, dim: number, flag: P): void;
  embeddingBackward(ids: P, dOut: P, dTable: P, n: number, vocab: number, dim: number, flag: P): void;
  softmax(x: P, out: P, rows: number, cols: number): void;
  softmaxBackward(y: P, dy: P, dx: P, rows: number, cols: number): void;
  rmsNorm(x: P, w: P, out: P, rstd: P, rows: number, cols: number, eps: number): void;
  rmsNormBackwardScratch(rows: number, cols: number): number;
  rmsNormBackward(x: P, w: P, rstd: P, dy: P, dx: P, dw: P, rows: number, cols: number, scratch: P): void;
  rope(x: P, out: P, cos: P, sin: P, positions: OptP, packed: Float64Array, flag: P): void;
  swiglu(gate: P, up: P, out: P, n: number): void;
  swigluBackward(gate: P, up: P, dOut: P, dGate: P, dUp: P, n: number): void;
  crossEntropy(logits: P, labels: P, weights: OptP, loss: P, grad: OptP, rows: number, vocab: number, temperature: number, flag: P): void;
  klDiv(logits: P, teacher: OptP, indices: OptP, logprobs: OptP, weights: OptP, loss: P, grad: OptP, rows: number, vocab: number, temperature: number, topK: number, flag: P): void;
  adamw(param: P, grad: P, m: P, v: P, packed: Float64Array): void;
  attention(q: P, k: P, v: P, out: P, lse: OptP, packed: Float64Array): void;
  attentionBackward(q: P, k: P, v: P, out: P, lse: P, dOut: P, dq: P, dk: P, dv: P, packed: Float64Array, scratch: P): void;
  mlaDecodeScratch(packed: Float64Array, splits: number): number;
  mlaDecodeSplits(packed: Float64Array): number;
  mlaDecode(qLatent: P, qRope: P, cache: P, lengths: OptP, out: P, lse: OptP, scratch: P, packed: Float64Array, splits: number): void;
}

/** What the driver says about device 0 (no context or stream is created). */
export interface DeviceProbe {
  ok: boolean;
  error: string;
  flavor: string;
  name: string;
  arch: string;
  driverVersion: number;
  runtimeVersion: number;
  deviceCount: number;
  multiProcessors: number;
  totalBytes: number;
  compiledTargets: string;
}

/** The outcome of the install-time build (build/gpu-status.json). */
export interface BuildStatus {
  available: boolean;
  reason?: string;
  flavor?: GpuFlavor;
  compiler?: string;
  targets?: string[];
  kernelSeconds?: number;
  addonSeconds?: number;
}

/** The backend cannot run here; `reason` names what is missing (a compiler, a library, a device). */
export class BackendUnavailableError extends EcomlaError {
  constructor(readonly backend: string, readonly reason: string) {
    super(`backend "${backend}" is unavailable: ${reason}`);
    this.name = "BackendUnavailableError";
  }
}

/** Where a package keeps its build outputs. */
export function addonPath(pkgDir: string): string {
  return join(pkgDir, "build", "gyp", "build", "Release", "ecomla_gpu.node");
}

/** The install-time build outcome of the package at pkgDir. */
export function readBuildStatus(pkgDir: string, pkgName: string): BuildStatus {
  const file = join(pkgDir, "build", "gpu-status.json");
  if (!existsSync(file)) {
    return { available: false, reason: `${pkgName} was not built (no ${file}): run \`pnpm install\` or \`pnpm --filter ${pkgName} build:native\`` };
  }
  try {
    return JSON.parse(readFileSync(file, "utf8")) as BuildStatus;
  } catch (error) {
    return { available: false, reason: `${file} is unreadable: ${(error as Error).message}` };
  }
}

const loaded = new Map<string, GpuAddon>();

/** The addon of the package at pkgDir, or a BackendUnavailableError with the build's or the loader's reason. */
export function loadAddon(pkgDir: string, pkgName: string, backend: string): GpuAddon {
  const cached = loaded.get(pkgDir);
  if (cached) return cached;
  const status = readBuildStatus(pkgDir, pkgName);
  if (!status.available) throw new BackendUnavailableError(backend, status.reason ?? "the native build failed");
  const path = addonPath(pkgDir);
  if (!existsSync(path)) throw new BackendUnavailableError(backend, `${path} is missing although the build reported success; rebuild with \`pnpm --filter ${pkgName} build:native\``);
  let addon: GpuAddon;
  try {
    addon = createRequire(import.meta.url)(path) as GpuAddon;
  } catch (error) {
    // E.g. libamdhip64.so.5 missing at run time (the HIP runtime is linked dynamically).
    throw new BackendUnavailableError(backend, `loading ${path} failed: ${(error as Error).message}`);
  }
  loaded.set(pkgDir, addon);
  return addon;
}
