// @ecomla/example-minimal-backend: a community-style backend plugin. It registers backend "minimal",
// which implements only the required primitives; core composes the fused kernels from them.
import { provide, type EcomlaPlugin } from "@ecomla/core";
import { MinimalBackend } from "./backend.js";

export { MinimalBackend, MinimalBuffer } from "./backend.js";

/** The plugin: `backend: minimal` in a pipeline config resolves to one {@link MinimalBackend} per container. */
const plugin: EcomlaPlugin = {
  name: "@ecomla/example-minimal-backend",
  version: "0.1.0",
  register(container) {
    let backend: MinimalBackend | undefined;
    provide(container, "backend", "minimal", { useFactory: () => (backend ??= new MinimalBackend()) }, {
      description: "the required primitives only, plain TypeScript loops; every fused kernel composed by core",
    });
  },
};

export default plugin;
