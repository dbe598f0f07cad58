// Self-consistency of one backend: each fused kernel it implements against core's composition of
// the same kernel from its own primitives (backends/composed.ts), on the conformance cases. They
// never consult the reference, so they validate the reference itself too; the compositions avoid
// the fused kernels (attention builds its softmax from max/sub/exp/sum/div), so a broken fused
// kernel shows up under its own name only.
import { completeBackend, primitivesOnly } from "../backends/composed.js";
import type { TensorBackend } from "../interfaces/backend.js";
import { type ConformanceCheck, DEFAULT_SEED } from "./harness.js";
import { runCases } from "./run.js";

/** Options of {@link runCompositionChecks}. */
export interface CompositionOptions {
  /** Seed of the input generator. Default 1234. */
  seed?: number;
  /** Run only the checks of these kernels. Default: all the backend implements. */
  kernels?: string[];
}

/**
 * Check the fused kernels a backend implements against their compositions from the same backend's
 * primitives. Needs no reference backend.
 */
export async function runCompositionChecks(backend: TensorBackend, options: CompositionOptions = {}): Promise<ConformanceCheck[]> {
  const seed = options.seed ?? DEFAULT_SEED;
  const selected = options.kernels ? new Set(options.kernels) : undefined;
  const complete = completeBackend(backend);
  const native = new Set<string>(complete.nativeKernels);
  const results: ConformanceCheck[] = [];
  const liveBefore = backend.memoryStats().liveBuffers;
  await runCases(complete, primitivesOnly(backend), results, seed, (k) => native.has(k) && (!selected || selected.has(k)));
  await backend.sync();
  const liveAfter = backend.memoryStats().liveBuffers;
  results.push({
    kernel: "memory",
    case: "composition checks: liveBuffers after equals before",
    pass: liveAfter === liveBefore,
    maxAbsErr: Math.abs(liveAfter - liveBefore),
    maxRelErr: 0,
    atol: 0,
    rtol: 0,
    detail: `liveBuffers before ${liveBefore}, after ${liveAfter}`,
  });
  return results;
}
