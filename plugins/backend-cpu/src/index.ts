// @ecomla/backend-cpu: registers the native CPU backend as backend "cpu".
import type { DependencyContainer } from "tsyringe";
import { provide, type EcomlaPlugin } from "@ecomla/core";
import { CpuBackend } from "./backend.js";

export { CpuBackend, CpuBuffer, type CpuBackendOptions } from "./backend.js";
export { bucketBytes, type PoolStats } from "./pool.js";

/** The plugin: `backend: cpu` in a pipeline config resolves to one {@link CpuBackend} per container. */
const plugin: EcomlaPlugin = {
  name: "@ecomla/backend-cpu",
  version: "0.0.0",
  register(container: DependencyContainer) {
    let backend: CpuBackend | undefined;
    provide(container, "backend", "cpu", { useFactory: () => (backend ??= new CpuBackend()) }, {
      description: "native CPU: OpenBLAS sgemm, LAPACK SVD, multi-threaded fused C++ kernels",
    });
  },
};

export default plugin;
