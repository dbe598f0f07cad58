import { packageVersion, provide, type EcomlaPlugin } from "@ecomla/core";
import { PartialRopeConverter } from "./partial-rope.js";
import { RandomMlaConverter } from "./random.js";
import { XEcoMlaConverter } from "./xecomla.js";

export { XEcoMlaConverter } from "./xecomla.js";
export { RandomMlaConverter } from "./random.js";
export { PartialRopeConverter, selectFrequencies } from "./partial-rope.js";
export { energyRank, materialize, rankedStackSvd, roundUp, stackSpectrum, stackSvd, type RowStack, type StackSvd } from "./linalg.js";

const plugin: EcomlaPlugin = {
  name: "@ecomla/converter-xecomla",
  version: packageVersion(import.meta.url),
  register(container) {
    provide(container, "converter", "xecomla", { useClass: XEcoMlaConverter }, { description: "X-EcoMLA SVD initialisation (the seed's)" });
    provide(container, "converter", "partial-rope", { useClass: PartialRopeConverter }, { description: "MHA2MLA-style: keep chosen RoPE frequencies, joint SVD of the rest" });
    provide(container, "converter", "random", { useClass: RandomMlaConverter }, { description: "same shapes, random init (ablation)" });
  },
};
export default plugin;
