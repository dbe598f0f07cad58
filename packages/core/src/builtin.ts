import { ReferenceBackend } from "./backends/reference/index.js";
import { EcomlaEngine } from "./models/engine.js";
import { provide, type EcomlaPlugin } from "./plugin.js";
import { packageVersion } from "./version.js";

/** Core's own plugin: the implementations that ship inside @ecomla/core. */
export const corePlugin: EcomlaPlugin = {
  name: "@ecomla/core",
  version: packageVersion(import.meta.url),
  register(container) {
    provide(container, "backend", "reference", { useClass: ReferenceBackend }, { description: "pure TypeScript oracle (float64 accumulation); slow, exact" });
    provide(container, "engine", "ecomla", { useValue: new EcomlaEngine() }, { description: "ecomla's own Llama / MLA / hybrid forward on a tensor backend (latent cache for MLA layers)" });
  },
};
