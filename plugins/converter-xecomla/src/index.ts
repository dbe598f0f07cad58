import { packageVersion, provide, type EcomlaPlugin } from "@ecomla/core";
import { RandomMlaConverter } from "./random.js";
import { XEcoMlaConverter } from "./xecomla.js";

export { XEcoMlaConverter } from "./xecomla.js";
export { RandomMlaConverter } from "./random.js";
export { energyRank, roundUp } from "./linalg.js";

const plugin: EcomlaPlugin = {
  name: "@ecomla/converter-xecomla",
  version: packageVersion(import.meta.url),
  register(container) {
    provide(container, "converter", "xecomla", { useClass: XEcoMlaConverter }, { description: "X-EcoMLA SVD initialisation (the seed's)" });
    provide(container, "converter", "random", { useClass: RandomMlaConverter }, { description: "same shapes, random init (ablation)" });
  },
};
export default plugin;
