// runConformance: every kernel of the TensorBackend contract on the backend under test and on the
// reference, with identical seeded inputs, compared under the tolerance table (tolerances.ts).
import { ReferenceBackend } from "../backends/reference/index.js";
import { completeBackend, primitivesOnly } from "../backends/composed.js";
import type { TensorBackend } from "../interfaces/backend.js";
import { FUSED_KERNELS, PRIMITIVE_METHODS } from "../interfaces/ops.js";
import { attentionCases } from "./cases-attention.js";
import { layoutCases } from "./cases-layout.js";
import { lossCases } from "./cases-loss.js";
import { mathCases } from "./cases-math.js";
import { nnCases } from "./cases-nn.js";
import { type CaseSink, type ConformanceCheck, type ConformanceOptions, DEFAULT_SEED, Inputs, PairContext, type PairCase, caseSeed, errorCheck } from "./harness.js";

const MEMORY_METHODS = new Set<string>(["alloc", "free", "upload", "download", "sync", "memoryStats"]);

/**
 * Every kernel the suite covers, in the order it runs them: "memory" (upload/download plus the
 * leak check), the primitive kernels, then the fused kernels — derived from the op table.
 */
export const CONFORMANCE_KERNELS: readonly string[] = ["memory", ...PRIMITIVE_METHODS.filter((m) => !MEMORY_METHODS.has(m)), ...FUSED_KERNELS];

/** The label of checks that ran a fused kernel as core's composition of primitives. */
export function composedLabel(kernel: string): string {
  return `${kernel} (composed)`;
}

const FUSED = new Set<string>(FUSED_KERNELS);

/** All cases, grouped by kernel in {@link CONFORMANCE_KERNELS} order. */
export function conformanceCases(): PairCase[] {
  const cases: PairCase[] = [];
  const add: CaseSink = (kernel, name, run) => cases.push({ kernel, name, run });
  layoutCases(add);
  mathCases(add);
  nnCases(add);
  attentionCases(add);
  lossCases(add);
  const order = new Map<string, number>(CONFORMANCE_KERNELS.map((k, i) => [k, i]));
  return cases.map((c, i) => ({ c, i })).sort((a, b) => (order.get(a.c.kernel) ?? 99) - (order.get(b.c.kernel) ?? 99) || a.i - b.i).map(({ c }) => c);
}

/** Run the cases of `kernels` with `test` against `oracle`, filing each check under label(kernel). */
export async function runCases(test: TensorBackend, oracle: TensorBackend, checks: ConformanceCheck[], seed: number, include: (kernel: string) => boolean, label: (kernel: string) => string = (k) => k): Promise<void> {
  for (const c of conformanceCases()) {
    if (!include(c.kernel)) continue;
    const kernel = label(c.kernel);
    const ctx = new PairContext(test, oracle, kernel, c.name, checks, new Inputs(caseSeed(seed, c.kernel, c.name)));
    try {
      await c.run(ctx);
    } catch (err) {
      checks.push(errorCheck(kernel, c.name, err));
    } finally {
      try {
        ctx.dispose();
      } catch (err) {
        checks.push(errorCheck(kernel, `${c.name}: free`, err));
      }
    }
  }
}

/**
 * Run every kernel of `backend` against the reference backend on seeded random inputs (odd sizes,
 * size-1 dims, batches, transposes, broadcasts, strided views, special values) and return one
 * check per compared output, plus a final "memory" check that the suite freed all it allocated.
 * The conformance follows the backend's claim: every primitive; every fused kernel as the
 * completed backend runs it (its own where it has one, filed under the kernel's name, else core's
 * composition, filed under "KERNEL (composed)"); and, unless `composed: false`, the compositions of
 * the fused kernels it does implement, on its own primitives. A kernel that throws fails its case
 * and the suite continues.
 */
export async function runConformance(backend: TensorBackend, options: ConformanceOptions = {}): Promise<ConformanceCheck[]> {
  const reference = options.reference ?? new ReferenceBackend({ precision: "f32" });
  const seed = options.seed ?? DEFAULT_SEED;
  const selected = options.kernels ? new Set(options.kernels) : undefined;
  const wanted = (kernel: string): boolean => !selected || selected.has(kernel);
  const checks: ConformanceCheck[] = [];
  const complete = completeBackend(backend);
  const native = new Set<string>(complete.nativeKernels);
  const liveBefore = backend.memoryStats().liveBuffers;
  await runCases(complete, reference, checks, seed, wanted, (k) => (FUSED.has(k) && !native.has(k) ? composedLabel(k) : k));
  if (options.composed !== false && native.size) {
    await runCases(primitivesOnly(backend), reference, checks, seed, (k) => native.has(k) && wanted(k), composedLabel);
  }
  await backend.sync();
  const liveAfter = backend.memoryStats().liveBuffers;
  checks.push({
    kernel: "memory",
    case: "liveBuffers after the suite equals before (everything allocated was freed)",
    pass: liveAfter === liveBefore,
    maxAbsErr: Math.abs(liveAfter - liveBefore),
    maxRelErr: 0,
    atol: 0,
    rtol: 0,
    detail: `liveBuffers before ${liveBefore}, after ${liveAfter}`,
  });
  return checks;
}
