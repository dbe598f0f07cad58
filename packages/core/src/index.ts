// Public API of @ecomla/core. Everything a plugin or a user needs is exported here and only here.
import "reflect-metadata";

export * from "./errors.js";
export * from "./di.js";
export * from "./plugin.js";
export * from "./config.js";
export * from "./interfaces/backend.js";
export * from "./interfaces/host.js";
export * from "./interfaces/converter.js";
export * from "./interfaces/loss.js";
export * from "./interfaces/tokenizer.js";
export * from "./interfaces/data.js";
export * from "./interfaces/model.js";
export * from "./interfaces/teacher.js";
export * from "./interfaces/evaluator.js";
export { Tensor, sizeOf, type GradNode } from "./tensor/tensor.js";
export { tidy, tidyAsync, noGrad, keep } from "./tensor/engine.js";
export * as ops from "./tensor/ops/index.js";
export { Rng } from "./random.js";
export * from "./nn/index.js";
export { differentiateLoss } from "./loss-helpers.js";
export * from "./backends/reference/index.js";
export * from "./linalg/svd.js";
export * from "./conformance/index.js";
export { corePlugin } from "./builtin.js";
export { packageVersion } from "./version.js";
