// Finite-difference gradient checks of every kernel with a backward, in float64 on the reference
// backend. Each check projects the forward output on a fixed random r (loss = Σ r ⊙ out) so one
// backward call, fed dOut = r, yields the whole analytic gradient; central differences with
// eps = 1e-6 then give O(eps²) truncation and ~1e-10 rounding error in float64.
import { ReferenceBackend } from "../backends/reference/index.js";
import type { BackendPrimitives, DeviceBuffer, FusedKernels } from "../interfaces/backend.js";
import { gradCases } from "./grad-cases.js";
import { type ConformanceCheck, DEFAULT_SEED, Inputs, caseSeed, errorCheck, range } from "./harness.js";

/** A backend with every kernel whose f32 buffers can be read and written in float64 (the f64 reference backend). */
export interface F64Backend extends BackendPrimitives, FusedKernels {
  readF64(buf: DeviceBuffer): Float64Array;
  writeF64(buf: DeviceBuffer, data: Float64Array | number[], offset?: number): void;
}

/** Options of {@link runGradChecks}. */
export interface GradCheckOptions {
  /** Seed of the input generator. Default 1234. */
  seed?: number;
  /** Run only the checks of these kernels. Default: all. */
  kernels?: string[];
  /** The backend to check. Default: `new ReferenceBackend({ precision: "f64" })`. */
  backend?: F64Backend;
}

/** Central-difference step. */
export const FD_EPS = 1e-6;
/** A check passes when ‖fd − analytic‖ / max(‖fd‖, ‖analytic‖, 1e-12) is below this. */
export const FD_TOLERANCE = 1e-6;
/** Elements perturbed per parameter at most (a seeded sample beyond that keeps checks fast). */
const MAX_PERTURBED = 96;

/** Buffers on the f64 backend, freed by dispose(); inputs are drawn from the case's generator. */
export class F64Scratch {
  private readonly owned: DeviceBuffer[] = [];
  constructor(
    readonly be: F64Backend,
    readonly gen: Inputs,
  ) {}
  /** An f32 buffer holding `data` exactly (stored in float64). */
  input(data: ArrayLike<number>): DeviceBuffer {
    const buf = this.be.alloc("f32", data.length);
    this.owned.push(buf);
    this.be.writeF64(buf, Float64Array.from(data));
    return buf;
  }
  ints(data: Int32Array): DeviceBuffer {
    const buf = this.be.alloc("i32", data.length);
    this.owned.push(buf);
    this.be.upload(buf, data);
    return buf;
  }
  filled(n: number, value = 0): DeviceBuffer {
    return this.input(new Float64Array(n).fill(value));
  }
  read(buf: DeviceBuffer): Float64Array {
    return this.be.readF64(buf);
  }
  /** Σ r ⊙ buf over the first r.length elements, in float64 on the host. */
  project(buf: DeviceBuffer, r: ArrayLike<number>): number {
    const values = this.be.readF64(buf);
    let sum = 0;
    for (let i = 0; i < r.length; i++) sum += r[i]! * values[i]!;
    return sum;
  }
  /** Sum of the first n elements of buf. */
  total(buf: DeviceBuffer, n: number): number {
    const values = this.be.readF64(buf);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[i]!;
    return sum;
  }
  dispose(): void {
    for (const buf of this.owned.splice(0)) this.be.free(buf);
  }
}

/** A differentiable input: analytic element i is buffer element indices[i]. */
export interface GradParam {
  name: string;
  buf: DeviceBuffer;
  indices: number[];
}

/** A scalar function of the params evaluated on the device, with its analytic gradient. */
export interface GradProblem {
  params: GradParam[];
  /** The loss at the buffers' current contents (forward only). */
  loss(): number;
  /** The analytic gradient of each param (same order, indexed like its `indices`). */
  analytic(): ArrayLike<number>[];
}

/** A gradient check: builds its problem on a scratch. */
export interface GradCase {
  kernel: string;
  name: string;
  build(s: F64Scratch): GradProblem;
}

function norm(v: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i]! * v[i]!;
  return Math.sqrt(sum);
}

function checkProblem(kernel: string, caseName: string, s: F64Scratch, problem: GradProblem): ConformanceCheck[] {
  const analytic = problem.analytic();
  return problem.params.map((param, p) => {
    const full = analytic[p]!;
    let sample = range(param.indices.length);
    if (sample.length > MAX_PERTURBED) sample = s.gen.distinct(MAX_PERTURBED, sample.length).sort((a, b) => a - b);
    const fd = new Float64Array(sample.length);
    const an = new Float64Array(sample.length);
    const current = s.read(param.buf);
    sample.forEach((i, j) => {
      const at = param.indices[i]!;
      const x0 = current[at]!;
      s.be.writeF64(param.buf, [x0 + FD_EPS], at);
      const plus = problem.loss();
      s.be.writeF64(param.buf, [x0 - FD_EPS], at);
      const minus = problem.loss();
      s.be.writeF64(param.buf, [x0], at);
      fd[j] = (plus - minus) / (2 * FD_EPS);
      an[j] = full[i]!;
    });
    const diff = fd.map((v, j) => v - an[j]!);
    const scale = Math.max(norm(fd), norm(an), 1e-12);
    const relErr = norm(diff) / scale;
    let maxAbsErr = 0;
    for (const d of diff) maxAbsErr = Math.max(maxAbsErr, Math.abs(d));
    const pass = relErr < FD_TOLERANCE;
    const check: ConformanceCheck = { kernel, case: `${caseName}: d${param.name}`, pass, maxAbsErr, maxRelErr: relErr, atol: 0, rtol: FD_TOLERANCE };
    if (!pass) {
      const worst = diff.reduce((w, d, j) => (Math.abs(d) > Math.abs(diff[w]!) ? j : w), 0);
      check.detail = `‖fd − analytic‖/‖·‖ = ${relErr.toExponential(3)} over ${sample.length} elements; worst element ${param.indices[sample[worst]!]}: fd ${fd[worst]}, analytic ${an[worst]}`;
    }
    return check;
  });
}

/**
 * Finite-difference gradient checks of every backward kernel (softmaxBackward, rmsNormBackward,
 * rope inverse, attentionBackward, swigluBackward, unaryBackward, embeddingBackward, the
 * crossEntropy and klDiv gradients, sumToShape, copyStrided and gemm adjoints) on the f64
 * reference backend; one check per differentiated input.
 */
export async function runGradChecks(options: GradCheckOptions = {}): Promise<ConformanceCheck[]> {
  const backend = options.backend ?? new ReferenceBackend({ precision: "f64" });
  const seed = options.seed ?? DEFAULT_SEED;
  const selected = options.kernels ? new Set(options.kernels) : undefined;
  const results: ConformanceCheck[] = [];
  for (const c of gradCases()) {
    if (selected && !selected.has(c.kernel)) continue;
    const s = new F64Scratch(backend, new Inputs(caseSeed(seed, c.kernel, c.name)));
    try {
      results.push(...checkProblem(c.kernel, c.name, s, c.build(s)));
    } catch (err) {
      results.push(errorCheck(c.kernel, c.name, err));
    } finally {
      s.dispose();
    }
  }
  return results;
}
