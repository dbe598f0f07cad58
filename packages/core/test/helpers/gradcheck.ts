// Finite-difference gradient checks of ops and layers on the float64 reference backend.
import { ReferenceBackend, Rng, Tensor, noGrad, ops, tidy } from "@ecomla/core";

export const f64 = new ReferenceBackend({ precision: "f64" });

/** A float tensor of N(0, std²) values on the f64 backend, requiring grad. */
export function randn(rng: Rng, shape: number[], std = 1, requiresGrad = true): Tensor {
  const t = Tensor.from(f64, rng.normalArray(shape.reduce((a, b) => a * b, 1), 0, std), shape);
  return requiresGrad ? t.requireGrad() : t;
}

export interface GradCheckResult {
  /** ‖fd − analytic‖ / max(‖fd‖, ‖analytic‖) over the sampled entries of every input. */
  relErr: number;
  /** Per input: the same measure. */
  perInput: number[];
  checked: number;
}

/**
 * Compare backward() with central differences of loss = Σ R ⊙ f(inputs) for a random R.
 * Samples at most `maxEntries` entries per input.
 */
export function gradCheck(inputs: Tensor[], f: () => Tensor, options: { seed?: number; eps?: number; maxEntries?: number } = {}): GradCheckResult {
  const rng = new Rng(options.seed ?? 7);
  const eps = options.eps ?? 1e-6;
  const maxEntries = options.maxEntries ?? 48;
  const shape = tidy(() => noGrad(() => f()).shape);
  const proj = Tensor.from(f64, rng.normalArray(shape.reduce((a, b) => a * b, 1)), shape);
  const loss = () => ops.sumAll(ops.mul(f(), proj));
  const lossValue = () => tidy(() => f64.readF64(noGrad(loss).buffer)[0]!);

  for (const x of inputs) {
    x.grad?.dispose();
    x.grad = null;
  }
  tidy(() => loss().backward());

  const perInput: number[] = [];
  let num = 0;
  let den1 = 0;
  let den2 = 0;
  let checked = 0;
  for (const x of inputs) {
    if (!x.requiresGrad) continue;
    const analytic = x.grad ? f64.readF64(x.grad.buffer) : new Float64Array(x.size);
    const picks = x.size <= maxEntries ? [...Array(x.size).keys()] : Array.from({ length: maxEntries }, () => rng.int(x.size));
    let n = 0;
    let d1 = 0;
    let d2 = 0;
    for (const i of picks) {
      const orig = f64.readF64(x.buffer)[i]!;
      f64.writeF64(x.buffer, [orig + eps], i);
      const plus = lossValue();
      f64.writeF64(x.buffer, [orig - eps], i);
      const minus = lossValue();
      f64.writeF64(x.buffer, [orig], i);
      const fd = (plus - minus) / (2 * eps);
      const an = analytic[i]!;
      n += (fd - an) ** 2;
      d1 += fd * fd;
      d2 += an * an;
      checked++;
    }
    perInput.push(Math.sqrt(n) / Math.max(Math.sqrt(d1), Math.sqrt(d2), 1e-12));
    num += n;
    den1 += d1;
    den2 += d2;
  }
  proj.dispose();
  return { relErr: Math.sqrt(num) / Math.max(Math.sqrt(den1), Math.sqrt(den2), 1e-12), perInput, checked };
}
