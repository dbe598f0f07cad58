// Scalar math for the elementwise kernels: an erf/erfc accurate to ~1e-15 (for exact GELU) and
// the forward and derivative of every UnaryOp, in float64.
import type { UnaryOp } from "../../interfaces/backend.js";

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const INV_SQRT_PI = 1 / Math.sqrt(Math.PI);
const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
// Below this |x| erf uses the all-positive series (no cancellation); above it the continued
// fraction, which converges in a few dozen terms there.
const SERIES_LIMIT = 2.5;
// erfc switches to the continued fraction earlier, because 1 − erf(x) loses relative accuracy
// as erf(x) → 1 (a few hundred terms at x = 1, still cheap).
const ERFC_FRACTION_LIMIT = 1;

/** erf(x) = 2/√π·e^{−x²}·Σ 2ⁿx^{2n+1}/(1·3···(2n+1)); every term is positive, so no cancellation. */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/** erfc(x) for x ≥ ERFC_FRACTION_LIMIT by the continued fraction e^{−x²}/√π · 1/(x + ½/(x + 1/(x + 3⁄2/(x + …)))) (modified Lentz). */
function erfcContinuedFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? 1 / tiny : 1 / d;
    c = x + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return (INV_SQRT_PI * Math.exp(-x * x)) / f;
}

/** The error function, accurate to ~1e-15 relative. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  const value = ax < SERIES_LIMIT ? erfSeries(ax) : 1 - erfcContinuedFraction(ax);
  return x < 0 ? -value : value;
}

/** The complementary error function 1 − erf(x), accurate in the tails too. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x >= ERFC_FRACTION_LIMIT) return erfcContinuedFraction(x);
  if (x <= -ERFC_FRACTION_LIMIT) return 2 - erfcContinuedFraction(-x);
  return 1 - (x < 0 ? -erfSeries(-x) : erfSeries(x));
}

/** Logistic sigmoid without overflow for large |x|. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** Exact GELU 0.5·x·(1 + erf(x/√2)) written with erfc so the negative tail keeps its relative accuracy. */
export function gelu(x: number): number {
  return 0.5 * x * erfc(-x * INV_SQRT2);
}

/** f(x) for a unary op. */
export function unaryForward(op: UnaryOp, x: number, alpha: number): number {
  switch (op) {
    case "neg":
      return -x;
    case "exp":
      return Math.exp(x);
    case "log":
      return Math.log(x);
    case "sqrt":
      return Math.sqrt(x);
    case "rsqrt":
      return 1 / Math.sqrt(x);
    case "abs":
      return Math.abs(x);
    case "square":
      return x * x;
    case "reciprocal":
      return 1 / x;
    case "relu":
      return x > 0 ? x : Number.isNaN(x) ? NaN : 0;
    case "sigmoid":
      return sigmoid(x);
    case "silu":
      return x * sigmoid(x);
    case "tanh":
      return Math.tanh(x);
    case "gelu":
      return gelu(x);
    case "scale":
      return alpha * x;
    case "addScalar":
      return x + alpha;
    case "powScalar":
      return Math.pow(x, alpha);
  }
}

/** f'(x) for a unary op, always recomputed from x (abs and relu give 0 at 0, as documented). */
export function unaryDerivative(op: UnaryOp, x: number, alpha: number): number {
  switch (op) {
    case "neg":
      return -1;
    case "exp":
      return Math.exp(x);
    case "log":
      return 1 / x;
    case "sqrt":
      return 0.5 / Math.sqrt(x);
    case "rsqrt":
      return -0.5 / (x * Math.sqrt(x));
    case "abs":
      return x > 0 ? 1 : x < 0 ? -1 : Number.isNaN(x) ? NaN : 0;
    case "square":
      return 2 * x;
    case "reciprocal":
      return -1 / (x * x);
    case "relu":
      return x > 0 ? 1 : Number.isNaN(x) ? NaN : 0;
    case "sigmoid": {
      const s = sigmoid(x);
      return s * (1 - s);
    }
    case "silu": {
      const s = sigmoid(x);
      return s * (1 + x * (1 - s));
    }
    case "tanh": {
      const t = Math.tanh(x);
      return 1 - t * t;
    }
    case "gelu":
      return 0.5 * erfc(-x * INV_SQRT2) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
    case "scale":
      return alpha;
    case "addScalar":
      return 1;
    case "powScalar":
      // d/dx x^0 = 0 everywhere (avoids 0·x^-1 = NaN at x = 0).
      return alpha === 0 ? 0 : alpha * Math.pow(x, alpha - 1);
  }
}
