import { EcomlaError, ShapeError } from "../errors.js";
import type { GradNode, Tensor } from "./tensor.js";

/**
 * Engine state: memory scopes and grad mode. Native and GPU memory is invisible to the JS garbage
 * collector, so every tensor is recorded in the innermost open scope and freed when it closes,
 * unless returned from it or kept.
 */
class Engine {
  private scopes: Set<Tensor>[] = [];
  private gradDepth = 0;

  /** Whether ops record themselves on the tape. */
  get gradEnabled(): boolean {
    return this.gradDepth === 0;
  }

  track(t: Tensor): void {
    this.scopes[this.scopes.length - 1]?.add(t);
  }

  untrack(t: Tensor): void {
    this.scopes[this.scopes.length - 1]?.delete(t);
  }

  /** Remove t from every open scope: it outlives them (the caller disposes it). */
  keep<T extends Tensor>(t: T): T {
    for (const s of this.scopes) s.delete(t);
    return t;
  }

  tidy<R>(fn: () => R): R {
    const scope = this.openScope();
    let result: R;
    try {
      result = fn();
    } catch (err) {
      this.closeScope(scope, undefined);
      throw err;
    }
    if (result instanceof Promise) {
      this.closeScope(scope, undefined);
      throw new EcomlaError("tidy: the function returned a Promise; use tidyAsync for async blocks");
    }
    this.closeScope(scope, result);
    return result;
  }

  async tidyAsync<R>(fn: () => Promise<R>): Promise<R> {
    // Async blocks cannot nest scopes safely (other tasks interleave), so concurrent use is refused.
    const scope = this.openScope();
    let result: R | undefined;
    try {
      result = await fn();
    } finally {
      if (this.scopes[this.scopes.length - 1] !== scope) {
        // eslint-disable-next-line no-unsafe-finally
        throw new EcomlaError("tidyAsync: scopes were interleaved by concurrent async work; run tidyAsync blocks one at a time");
      }
      this.closeScope(scope, result);
    }
    return result as R;
  }

  private openScope(): Set<Tensor> {
    const scope = new Set<Tensor>();
    this.scopes.push(scope);
    return scope;
  }

  /** Pop the scope; tensors reachable from `result` move to the parent scope, the rest are freed. */
  private closeScope(scope: Set<Tensor>, result: unknown): void {
    this.scopes.pop();
    const survivors = new Set<Tensor>();
    collectTensors(result, survivors);
    const parent = this.scopes[this.scopes.length - 1];
    for (const t of scope) {
      if (survivors.has(t)) parent?.add(t);
      else t.dispose();
    }
  }

  /** Run fn with the tape on, even inside noGrad (losses that need their own gradient). */
  enableGrad<R>(fn: () => R): R {
    const saved = this.gradDepth;
    this.gradDepth = 0;
    try {
      return fn();
    } finally {
      this.gradDepth = saved;
    }
  }

  noGrad<R>(fn: () => R): R {
    this.gradDepth++;
    try {
      return fn();
    } finally {
      this.gradDepth--;
    }
  }

  /**
   * Reverse-mode differentiation from `root`. Gradients of leaf tensors that require grad are
   * accumulated into `.grad` (kept outside scopes: the optimizer owns them); intermediate
   * gradients are freed as soon as they are consumed; the tape is cut afterwards. Without
   * `gradOutput` the seed is `ones()` (a scalar root only).
   */
  backward(root: Tensor, gradOutput?: Tensor, ones?: () => Tensor): void {
    root.assertLive("backward");
    if (!root.requiresGrad) throw new EcomlaError(`backward: ${root} does not require grad (no parameter reaches it, or it was computed under noGrad)`);
    let seed = gradOutput;
    if (!seed) {
      if (root.size !== 1) throw new ShapeError(`backward: root has shape [${root.shape.join(", ")}]; pass gradOutput for a non-scalar`);
      if (!ones) throw new EcomlaError("backward: no gradOutput and no way to make the default seed of ones");
      seed = ones();
    } else if (seed.size !== root.size) {
      throw new ShapeError(`backward: gradOutput shape [${seed.shape.join(", ")}] does not match root [${root.shape.join(", ")}]`);
    }

    // Topological order by depth-first search over the tape.
    const order: Tensor[] = [];
    const seen = new Set<Tensor>();
    const stack: [Tensor, boolean][] = [[root, false]];
    while (stack.length) {
      const [t, done] = stack.pop()!;
      if (done) {
        order.push(t);
        continue;
      }
      if (seen.has(t)) continue;
      seen.add(t);
      stack.push([t, true]);
      for (const input of t.node?.inputs ?? []) if (input.requiresGrad && !seen.has(input)) stack.push([input, false]);
    }

    this.gradDepth++;
    const grads = new Map<Tensor, Tensor>([[root, seed]]);
    const ownedSeed = !gradOutput;
    try {
      for (let i = order.length - 1; i >= 0; i--) {
        const t = order[i]!;
        const g = grads.get(t);
        if (!g) continue;
        grads.delete(t);
        const node: GradNode | null = t.node;
        if (!node) {
          this.accumulateLeaf(t, g);
          continue;
        }
        const inputGrads = node.backward(g);
        if (g !== seed || ownedSeed) g.dispose();
        node.inputs.forEach((input, k) => {
          const ig = inputGrads[k];
          if (!ig) return;
          if (!input.requiresGrad) {
            ig.dispose();
            return;
          }
          if (ig.size !== input.size) {
            throw new ShapeError(`backward of ${node.op}: gradient of input ${k} has shape [${ig.shape.join(", ")}], input has [${input.shape.join(", ")}]`);
          }
          const prev = grads.get(input);
          if (prev) {
            addInto(prev, ig);
            ig.dispose();
          } else {
            grads.set(input, ig);
          }
        });
      }
    } finally {
      this.gradDepth--;
      for (const g of grads.values()) g.dispose();
      for (const t of order) t.node = null;
    }
  }

  private accumulateLeaf(t: Tensor, g: Tensor): void {
    if (t.grad && !t.grad.isDisposed) {
      addInto(t.grad, g);
      g.dispose();
    } else {
      t.grad = this.keep(g.shape.length === t.shape.length && g.shape.every((d, i) => d === t.shape[i]) ? g : reshapeOwned(g, t.shape));
    }
  }
}

// backward() needs two ops. It does not import tensor/ops (which import the engine): the default
// seed comes from the caller (Tensor.backward), and gradient accumulation is done here, so the
// engine depends on the Tensor type only and no module installs anything.

/** target += source (same size), in place, outside autograd: gradient accumulation. */
function addInto(target: Tensor, source: Tensor): void {
  const b = target.backend;
  if (source.backend !== b) throw new ShapeError(`backward: gradients live on different backends (${b.name} and ${source.backend.name})`);
  if (target.size !== source.size) throw new ShapeError(`backward: gradient sizes differ ([${target.shape.join(", ")}] vs [${source.shape.join(", ")}])`);
  b.binary("add", target.buffer, [target.size], source.buffer, [source.size], target.buffer, [target.size]);
}

function reshapeOwned(g: Tensor, shape: readonly number[]): Tensor {
  const v = g.view(shape);
  g.dispose();
  return v;
}

/** Brand set on every Tensor, so scopes recognise tensors without importing the class. */
export const TENSOR_BRAND: unique symbol = Symbol.for("ecomla.tensor");

function collectTensors(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (value === null || typeof value !== "object" || depth > 4) return;
  if ((value as { [TENSOR_BRAND]?: boolean })[TENSOR_BRAND]) {
    out.add(value as Tensor);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collectTensors(v, out, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) collectTensors(v, out, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collectTensors(v, out, depth + 1);
}

/** The engine singleton. */
export const engine = new Engine();

/** Run fn; free every tensor it created except those it returns (also inside arrays/objects). */
export function tidy<R>(fn: () => R): R {
  return engine.tidy(fn);
}

/** tidy for async blocks (one at a time). */
export function tidyAsync<R>(fn: () => Promise<R>): Promise<R> {
  return engine.tidyAsync(fn);
}

/** Run fn without recording ops on the tape (inference, teachers, optimizer updates). */
export function noGrad<R>(fn: () => R): R {
  return engine.noGrad(fn);
}

/** Keep t alive past every open tidy scope; the caller disposes it. */
export function keep<T extends Tensor>(t: T): T {
  return engine.keep(t);
}
