// The machinery shared by the conformance, composition and gradient checks: the result record,
// tolerances, host-side comparison, and a case context that mirrors every input on two backends
// and frees everything it allocated, whatever happens.
import { completeBackend } from "../backends/composed.js";
import type { CompleteBackend, DType, DeviceBuffer, HostArray, TensorBackend } from "../interfaces/backend.js";
import { Rng } from "../random.js";

/** One compared output of one case of one kernel. */
export interface ConformanceCheck {
  /** Kernel under test (a TensorBackend method name, or "memory"). */
  kernel: string;
  /** What the case exercised, e.g. "transA transB m=17 n=33 k=65 beta=0.5". */
  case: string;
  pass: boolean;
  /** Largest |got − expected| over the compared elements. */
  maxAbsErr: number;
  /** Largest |got − expected| / |expected| over the elements where |expected| > atol. */
  maxRelErr: number;
  atol: number;
  rtol: number;
  /** The first failing element, an exception message, or other notes. */
  detail?: string;
}

/** Options of {@link runConformance}. */
export interface ConformanceOptions {
  /** Seed of the input generator (same seed, same inputs). Default 1234. */
  seed?: number;
  /** Run only these kernels (method names, plus "memory"). Default: all. */
  kernels?: string[];
  /** The oracle. Default: a fresh `new ReferenceBackend({ precision: "f32" })`. */
  reference?: TensorBackend;
  /**
   * Also run every fused kernel the backend implements as core's composition of its primitives
   * (checks filed under "KERNEL (composed)"). Default true.
   */
  composed?: boolean;
}

/** An element passes when |got − expected| ≤ atol + rtol·|expected|. `bitwise` demands identical values (NaN = NaN, −0 ≠ +0). */
export interface Tolerance {
  atol: number;
  rtol: number;
  bitwise?: boolean;
}

export const BITWISE: Tolerance = { atol: 0, rtol: 0, bitwise: true };

/** The default seed of every check family. */
export const DEFAULT_SEED = 1234;

type NumArray = ArrayLike<number>;

/** Compare got with expected element by element; returns the check's numeric fields. */
export function compareArrays(got: NumArray, expected: NumArray, tol: Tolerance): Omit<ConformanceCheck, "kernel" | "case"> {
  let maxAbsErr = 0;
  let maxRelErr = 0;
  let failures = 0;
  let firstFailure = "";
  if (got.length !== expected.length) {
    return { pass: false, maxAbsErr: Infinity, maxRelErr: Infinity, atol: tol.atol, rtol: tol.rtol, detail: `length ${got.length}, expected ${expected.length}` };
  }
  for (let i = 0; i < got.length; i++) {
    const a = got[i]!;
    const b = expected[i]!;
    let ok: boolean;
    let err: number;
    if (tol.bitwise) {
      ok = Object.is(a, b);
      err = ok ? 0 : Number.isNaN(a) || Number.isNaN(b) ? Infinity : Math.abs(a - b);
    } else if (Number.isNaN(b) || Number.isNaN(a)) {
      ok = Number.isNaN(a) && Number.isNaN(b);
      err = ok ? 0 : Infinity;
    } else if (!Number.isFinite(b) || !Number.isFinite(a)) {
      ok = a === b;
      err = ok ? 0 : Infinity;
    } else {
      err = Math.abs(a - b);
      ok = err <= tol.atol + tol.rtol * Math.abs(b);
      if (Math.abs(b) > tol.atol && err / Math.abs(b) > maxRelErr) maxRelErr = err / Math.abs(b);
    }
    if (err > maxAbsErr) maxAbsErr = err;
    if (!ok) {
      if (failures === 0) firstFailure = `element ${i}: got ${a}, expected ${b}`;
      failures++;
    }
  }
  if (!Number.isFinite(maxAbsErr)) maxRelErr = Infinity;
  const check: Omit<ConformanceCheck, "kernel" | "case"> = { pass: failures === 0, maxAbsErr, maxRelErr, atol: tol.atol, rtol: tol.rtol };
  if (failures > 0) check.detail = `${failures} of ${got.length} elements out of tolerance; first ${firstFailure}`;
  return check;
}

/** A failed check carrying an exception (a kernel that throws fails its case, the suite goes on). */
export function errorCheck(kernel: string, caseName: string, err: unknown): ConformanceCheck {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return { kernel, case: caseName, pass: false, maxAbsErr: Infinity, maxRelErr: Infinity, atol: 0, rtol: 0, detail: `threw ${message}` };
}

/** Seeded input generators on top of the core PRNG. */
export class Inputs {
  readonly rng: Rng;
  constructor(seed: number) {
    this.rng = new Rng(seed);
  }
  uniform(n: number, lo = -1, hi = 1): Float32Array {
    return this.rng.uniformArray(n, lo, hi);
  }
  normal(n: number, std = 1): Float32Array {
    return this.rng.normalArray(n, 0, std);
  }
  /** Values with |x| in [lo, hi] and a random sign (keeps divisors and kinks away from zero). */
  awayFromZero(n: number, lo: number, hi: number): Float32Array {
    const out = this.rng.uniformArray(n, lo, hi);
    for (let i = 0; i < n; i++) if (this.rng.next() < 0.5) out[i] = -out[i]!;
    return out;
  }
  ints(n: number, hi: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.rng.int(hi);
    return out;
  }
  /** k distinct integers in [0, hi). */
  distinct(k: number, hi: number): number[] {
    const chosen = new Set<number>();
    while (chosen.size < k) chosen.add(this.rng.int(hi));
    return [...chosen];
  }
}

/** A buffer mirrored on the backend under test (`t`) and on the reference (`r`). */
export interface PairBuf {
  t: DeviceBuffer;
  r: DeviceBuffer;
  dtype: DType;
  length: number;
}

/** Which side a kernel call is built for: maps a mirrored buffer to that side's buffer. */
export type Pick = (p: PairBuf) => DeviceBuffer;

function emptyLike(dtype: DType, n: number): HostArray {
  return dtype === "f32" ? new Float32Array(n) : dtype === "i32" ? new Int32Array(n) : new Uint16Array(n);
}

/**
 * One case: buffers allocated through it are mirrored on both backends with identical content and
 * freed by dispose(); expect() downloads both sides and records a check.
 */
export class PairContext {
  private readonly owned: PairBuf[] = [];
  /** The backend under test and the oracle, completed (fused kernels they lack are composed). */
  readonly test: CompleteBackend;
  readonly ref: CompleteBackend;
  constructor(
    test: TensorBackend,
    ref: TensorBackend,
    readonly kernel: string,
    readonly caseName: string,
    readonly checks: ConformanceCheck[],
    readonly gen: Inputs,
  ) {
    this.test = completeBackend(test);
    this.ref = completeBackend(ref);
  }

  /** A mirrored buffer holding `data` on both sides (f32 data for f32, raw bits for bf16/f16). */
  input(data: HostArray, dtype: DType = data instanceof Int32Array ? "i32" : data instanceof Uint16Array ? "bf16" : "f32"): PairBuf {
    const p: PairBuf = { t: this.test.alloc(dtype, data.length), r: this.ref.alloc(dtype, data.length), dtype, length: data.length };
    this.owned.push(p);
    this.test.upload(p.t, data);
    this.ref.upload(p.r, data);
    return p;
  }

  /** An output buffer pre-filled on both sides with `init` (default: NaN, so unwritten elements show). */
  output(length: number, init?: HostArray | number, dtype: DType = "f32"): PairBuf {
    let data: HostArray;
    if (init === undefined || typeof init === "number") {
      data = emptyLike(dtype, length);
      if (dtype === "f32") (data as Float32Array).fill(init ?? NaN);
      else if (dtype === "i32") (data as Int32Array).fill(init ?? -1);
      else (data as Uint16Array).fill(init ?? 0x7fc0);
    } else data = init;
    return this.input(data, dtype);
  }

  /** Run the same kernel call on both backends. */
  run(call: (backend: CompleteBackend, pick: Pick) => void): void {
    call(this.test, (p) => p.t);
    call(this.ref, (p) => p.r);
  }

  /** A mirrored input whose content is computed by the reference alone (e.g. a forward's output fed to a backward). */
  async fromReference(length: number, call: (ref: CompleteBackend, pick: (p: PairBuf) => DeviceBuffer, out: DeviceBuffer) => void): Promise<PairBuf> {
    const scratch = this.ref.alloc("f32", length);
    try {
      call(this.ref, (p) => p.r, scratch);
      const data = await this.ref.download(scratch as DeviceBuffer & { dtype: "f32" });
      return this.input(data, "f32");
    } finally {
      this.ref.free(scratch);
    }
  }

  /** Download `p` (or `[offset, offset+length)` of it) from both sides and record the comparison. */
  async expect(p: PairBuf, tol: Tolerance, label?: string, offset = 0, length = p.length - offset): Promise<ConformanceCheck> {
    const got = await this.test.download(p.t, offset, length);
    const want = await this.ref.download(p.r, offset, length);
    const check: ConformanceCheck = { kernel: this.kernel, case: label ? `${this.caseName}: ${label}` : this.caseName, ...compareArrays(got, want, tol) };
    this.checks.push(check);
    return check;
  }

  dispose(): void {
    for (const p of this.owned.splice(0)) {
      this.test.free(p.t);
      this.ref.free(p.r);
    }
  }
}

/** A conformance case: a kernel, a name and the body that runs it on both sides. */
export interface PairCase {
  kernel: string;
  name: string;
  run(ctx: PairContext): Promise<void>;
}

/** Collects cases; each kernel file registers its cases through `add`. */
export type CaseSink = (kernel: string, name: string, run: (ctx: PairContext) => Promise<void>) => void;

/** Row-major contiguous strides of a shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return strides;
}

/** Product of the dimensions. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** start .. start+n−1 */
export function range(n: number, start = 0): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}

/**
 * A per-case seed from the suite seed and the case's identity (FNV-1a), so a case's inputs do not
 * change when other cases are added or filtered out.
 */
export function caseSeed(seed: number, kernel: string, caseName: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (const ch of `${kernel}\u0000${caseName}`) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
