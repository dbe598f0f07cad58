// tap adapters: one subtest per kernel, one assertion per case. Core does not depend on tap, so the
// test object is typed structurally.
import type { TensorBackend } from "../interfaces/backend.js";
import { type GradCheckOptions, runGradChecks } from "./gradcheck.js";
import type { ConformanceCheck, ConformanceOptions } from "./harness.js";
import { runConformance } from "./run.js";

/** The part of a tap `Test` the adapters use. */
export interface TapLike {
  test(name: string, fn: (t: any) => Promise<void> | void): unknown;
}

/** Emit checks as subtests of `t`, one per kernel, one `t.ok` per case. */
async function emit(t: any, checks: ConformanceCheck[]): Promise<void> {
  const byKernel = new Map<string, ConformanceCheck[]>();
  for (const check of checks) {
    const group = byKernel.get(check.kernel) ?? [];
    group.push(check);
    byKernel.set(check.kernel, group);
  }
  for (const [kernel, group] of byKernel) {
    await t.test(kernel, async (st: any) => {
      for (const c of group) {
        const diag: Record<string, unknown> = { maxAbsErr: c.maxAbsErr, maxRelErr: c.maxRelErr, atol: c.atol, rtol: c.rtol };
        if (c.detail !== undefined) diag.detail = c.detail;
        st.ok(c.pass, c.case, diag);
      }
    });
  }
}

/**
 * Run {@link runConformance} on a backend from `makeBackend` as tap subtests (call from a backend
 * plugin's test file: `conformanceTap(t, () => new MyBackend())`): every primitive, every fused
 * kernel as the completed backend runs it, and the compositions of the fused kernels it implements.
 */
export function conformanceTap(t: TapLike, makeBackend: () => TensorBackend | Promise<TensorBackend>, options: ConformanceOptions = {}): unknown {
  return t.test("backend conformance", async (tt: any) => {
    const backend = await makeBackend();
    await emit(tt, await runConformance(backend, options));
  });
}

/** Run {@link runGradChecks} as tap subtests, one per kernel. */
export function gradCheckTap(t: TapLike, options: GradCheckOptions = {}): unknown {
  return t.test("finite-difference gradient checks", async (tt: any) => {
    await emit(tt, await runGradChecks(options));
  });
}
