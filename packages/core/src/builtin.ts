import type { EcomlaPlugin } from "./plugin.js";
import { packageVersion } from "./version.js";

/** Core's own plugin: the implementations that ship inside @ecomla/core. */
export const corePlugin: EcomlaPlugin = {
  name: "@ecomla/core",
  version: packageVersion(import.meta.url),
  register() {
    // Filled as core gains built-in implementations (the reference backend).
  },
};
