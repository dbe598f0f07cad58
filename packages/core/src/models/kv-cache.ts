import type { LayerCache } from "../nn/layer-cache.js";

/** A whole model's cache: one entry per layer (key/value or latent). */
export class KVCache {
  constructor(readonly layers: LayerCache[]) {}
  /** Positions filled (equal in every layer after each model step). */
  get length(): number {
    return this.layers[0]?.length ?? 0;
  }
  get bytes(): number {
    return this.layers.reduce((n, l) => n + l.bytes, 0);
  }
  dispose(): void {
    for (const l of this.layers) l.dispose();
  }
}
