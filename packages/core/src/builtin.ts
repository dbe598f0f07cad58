import { ReferenceBackend } from "./backends/reference/index.js";
import { provide, type EcomlaPlugin } from "./plugin.js";
import { packageVersion } from "./version.js";

/** Core's own plugin: the implementations that ship inside @ecomla/core. */
export const corePlugin: EcomlaPlugin = {
  name: "@ecomla/core",
  version: packageVersion(import.meta.url),
  register(container) {
    provide(container, "backend", "reference", { useClass: ReferenceBackend }, { description: "pure TypeScript oracle (float64 accumulation); slow, exact" });
  },
};
