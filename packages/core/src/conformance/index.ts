// The backend conformance suite (ggml's test-backend-ops is the model): every kernel against the
// reference backend, fused kernels against compositions of primitives, and finite-difference
// gradient checks; plus tap adapters for backend plugins' tests.
export type { ConformanceCheck, ConformanceOptions, Tolerance } from "./harness.js";
export { TOLERANCES, reduceTolerance } from "./tolerances.js";
export { CONFORMANCE_KERNELS, composedLabel, runConformance } from "./run.js";
export { type CompositionOptions, runCompositionChecks } from "./composition.js";
export { type F64Backend, type GradCheckOptions, FD_EPS, FD_TOLERANCE, runGradChecks } from "./gradcheck.js";
export { type TapLike, conformanceTap, gradCheckTap } from "./tap.js";
export { TinyLM, copyBatch, type TinyConfig } from "./tiny-lm.js";
