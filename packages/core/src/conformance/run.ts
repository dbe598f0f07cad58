// runConformance: every kernel of the TensorBackend contract on the backend under test and on the
// reference, with identical seeded inputs, compared under the tolerance table (tolerances.ts).
import { ReferenceBackend } from "../backends/reference/index.js";
import type { TensorBackend } from "../interfaces/backend.js";
import { attentionCases } from "./cases-attention.js";
import { layoutCases } from "./cases-layout.js";
import { lossCases } from "./cases-loss.js";
import { mathCases } from "./cases-math.js";
import { nnCases } from "./cases-nn.js";
import { type CaseSink, type ConformanceCheck, type ConformanceOptions, DEFAULT_SEED, Inputs, PairContext, type PairCase, caseSeed, errorCheck } from "./harness.js";

/** Every kernel the suite covers, in the order it runs them ("memory" is upload/download plus the leak check). */
export const CONFORMANCE_KERNELS = [
  "memory", "fill", "copyStrided", "cast", "embedding", "embeddingBackward",
  "gemm", "binary", "unary", "unaryBackward", "reduceLastAxis", "sumToShape",
  "softmax", "softmaxBackward", "rmsNorm", "rmsNormBackward", "rope", "swiglu", "swigluBackward", "adamw",
  "attention", "attentionBackward", "crossEntropy", "klDiv",
] as const;

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

/**
 * Run every kernel of `backend` against the reference backend on seeded random inputs (odd sizes,
 * size-1 dims, batches, transposes, broadcasts, strided views, special values) and return one
 * check per compared output, plus a final "memory" check that the suite freed all it allocated.
 * A kernel that throws fails its case and the suite continues.
 */
export async function runConformance(backend: TensorBackend, options: ConformanceOptions = {}): Promise<ConformanceCheck[]> {
  const reference = options.reference ?? new ReferenceBackend({ precision: "f32" });
  const seed = options.seed ?? DEFAULT_SEED;
  const selected = options.kernels ? new Set(options.kernels) : undefined;
  const checks: ConformanceCheck[] = [];
  const liveBefore = backend.memoryStats().liveBuffers;
  for (const c of conformanceCases()) {
    if (selected && !selected.has(c.kernel)) continue;
    const ctx = new PairContext(backend, reference, c.kernel, c.name, checks, new Inputs(caseSeed(seed, c.kernel, c.name)));
    try {
      await c.run(ctx);
    } catch (err) {
      checks.push(errorCheck(c.kernel, c.name, err));
    } finally {
      try {
        ctx.dispose();
      } catch (err) {
        checks.push(errorCheck(c.kernel, `${c.name}: free`, err));
      }
    }
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
