import { EcomlaError, ShapeError } from "../errors.js";
import type { TensorBackend } from "../interfaces/backend.js";
import type { Rng } from "../random.js";
import { keep } from "../tensor/engine.js";
import { Tensor } from "../tensor/tensor.js";

/**
 * A layer: named parameters and sub-layers, so whole models list their weights under Hugging
 * Face names ("layers.0.self_attn.q_proj.weight") for checkpoints and optimizers.
 */
export abstract class Module {
  private readonly params = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  constructor(readonly backend: TensorBackend) {}

  /** Register a parameter (kept alive outside tidy scopes; requires grad). */
  protected param(name: string, t: Tensor): Tensor {
    this.params.set(name, keep(t).requireGrad());
    return t;
  }

  /** Register a sub-layer. */
  protected child<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /** Every parameter with its dotted name, depth first in registration order. */
  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.params) out.push([prefix + n, t]);
    for (const [n, m] of this.children) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** Every parameter. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Total number of parameter elements. */
  parameterCount(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  /** Replace a parameter's values from host data (shape must match); `name` is dotted. */
  setParameter(name: string, data: Float32Array): void {
    const t = this.namedParameters().find(([n]) => n === name)?.[1];
    if (!t) throw new EcomlaError(`setParameter: no parameter "${name}"`);
    if (data.length !== t.size) throw new ShapeError(`setParameter: "${name}" has ${t.size} elements [${t.shape.join(", ")}], got ${data.length}`);
    this.backend.upload(t.buffer, data);
  }

  /** Free every parameter and its gradient. */
  dispose(): void {
    for (const t of this.parameters()) {
      t.grad?.dispose();
      t.grad = null;
      t.dispose();
    }
  }
}

/**
 * A parameter tensor drawn from N(0, std²); uninitialised when rng is null (weights about to be
 * loaded from a checkpoint, where drawing billions of samples would be wasted time).
 */
export function normalParam(backend: TensorBackend, shape: readonly number[], rng: Rng | null, std: number): Tensor {
  if (!rng) return Tensor.empty(backend, shape);
  return Tensor.from(backend, rng.normalArray(shape.reduce((a, b) => a * b, 1), 0, std), shape);
}
