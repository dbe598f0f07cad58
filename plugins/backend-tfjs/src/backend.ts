// TfjsBackend: the primitives plus the fused kernels tfjs runs natively and faster than core's
// compositions (measured by test/bench-fused.ts); completeBackend composes the rest.
import * as tf from "@tensorflow/tfjs-core";
import type { AdamWArgs, DeviceBuffer } from "@ecomla/core";
import { numel } from "./layout.js";
import { TfjsPrimitives } from "./primitives.js";

/** The TensorFlow.js backend ("tfjs"). */
export class TfjsBackend extends TfjsPrimitives {
  sumToShape(x: DeviceBuffer, xShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    const k = "sumToShape";
    this.checks.shape(k, "xShape", xShape);
    this.checks.shape(k, "outShape", outShape);
    this.checks.broadcast(k, "outShape", outShape, "xShape", xShape);
    const xb = this.typed(k, "x", x, "f32", numel(xShape));
    const ob = this.typed(k, "out", out, "f32", numel(outShape));
    if (numel(outShape) === 0) return;
    const lead = xShape.length - outShape.length;
    const axes = xShape.map((_, d) => d).filter((d) => d < lead || (outShape[d - lead] === 1 && xShape[d] !== 1));
    this.update(ob, (old) => {
      if (axes.length > 0 && axes.every((d, i) => d === i)) {
        // Leading axes only (a bias gradient): one (1, R)·(R, C) product beats tfjs's leading-axis sum.
        const inner = numel(xShape.slice(axes.length));
        const reduced = numel(xShape) / inner;
        return this.spliced(old, 0, tf.matMul(tf.ones([1, reduced]), this.read(xb, numel(xShape), 0, [reduced, inner])));
      }
      const xt = this.read(xb, numel(xShape), 0, xShape);
      return this.spliced(old, 0, axes.length ? tf.sum(xt, axes) : xt);
    });
  }

  softmax(x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void {
    this.checks.ints("softmax", { rows, cols });
    const xb = this.typed("softmax", "x", x, "f32", rows * cols);
    const ob = this.typed("softmax", "out", out, "f32", rows * cols);
    if (rows * cols === 0) return;
    this.update(ob, (old) => this.spliced(old, 0, tf.softmax(this.read(xb, rows * cols, 0, [rows, cols]))));
  }

  softmaxBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, rows: number, cols: number): void {
    const k = "softmaxBackward";
    this.checks.ints(k, { rows, cols });
    const size = rows * cols;
    const [yb, dyb, dxb] = [this.typed(k, "y", y, "f32", size), this.typed(k, "dy", dy, "f32", size), this.typed(k, "dx", dx, "f32", size)];
    if (size === 0) return;
    this.update(dxb, (old) => {
      const yt = this.read(yb, size, 0, [rows, cols]);
      const dyt = this.read(dyb, size, 0, [rows, cols]);
      return this.spliced(old, 0, tf.mul(yt, tf.sub(dyt, tf.sum(tf.mul(dyt, yt), -1, true))));
    });
  }

  rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, out: DeviceBuffer, rstd: DeviceBuffer, rows: number, cols: number, eps: number): void {
    const k = "rmsNorm";
    this.checks.ints(k, { rows, cols });
    const size = rows * cols;
    const [xb, ob, rb] = [this.typed(k, "x", x, "f32", size), this.typed(k, "out", out, "f32", size), this.typed(k, "rstd", rstd, "f32", rows)];
    const wb = this.typed(k, "weight", weight, "f32", rows > 0 ? cols : 0);
    if (rows === 0) return;
    const r = tf.tidy(() => tf.rsqrt(tf.add(tf.mean(tf.square(this.read(xb, size, 0, [rows, cols])), -1, true), eps)));
    try {
      // out before rstd: out may not alias rstd, but weight may alias either (read first).
      this.update(ob, (old) => this.spliced(old, 0, tf.mul(tf.mul(this.read(xb, size, 0, [rows, cols]), r), this.read(wb, cols))));
      this.update(rb, (old) => this.spliced(old, 0, r));
    } finally {
      r.dispose();
    }
  }

  rmsNormBackward(x: DeviceBuffer, weight: DeviceBuffer, rstd: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, dWeight: DeviceBuffer, rows: number, cols: number): void {
    const k = "rmsNormBackward";
    this.checks.ints(k, { rows, cols });
    const size = rows * cols;
    const [xb, wb, rb] = [this.typed(k, "x", x, "f32", size), this.typed(k, "weight", weight, "f32", cols), this.typed(k, "rstd", rstd, "f32", rows)];
    const [dyb, dxb, dwb] = [this.typed(k, "dy", dy, "f32", size), this.typed(k, "dx", dx, "f32", size), this.typed(k, "dWeight", dWeight, "f32", cols)];
    if (size === 0) return;
    // Every input is read before either output is written (dx may alias an input).
    const [dxNew, dwNew] = tf.tidy(() => {
      const xt = this.read(xb, size, 0, [rows, cols]);
      const dyt = this.read(dyb, size, 0, [rows, cols]);
      const w = this.read(wb, cols);
      const r = this.read(rb, rows, 0, [rows, 1]);
      // dx = r·w·dy − x·r³·Σ(dy·w·x)/cols; dWeight += Σ_rows dy·x·r.
      const dyx = tf.mul(dyt, xt);
      const coeff = tf.div(tf.mul(tf.mul(tf.square(r), r), tf.sum(tf.mul(dyx, w), -1, true)), cols);
      const dxValue = tf.sub(tf.mul(tf.mul(r, w), dyt), tf.mul(coeff, xt));
      // The column sum as a (1, rows)·(rows, cols) product: tfjs reduces a leading axis slowly.
      return [dxValue, tf.add(this.read(dwb, cols), tf.matMul(tf.reshape(r, [1, rows]), dyx))];
    });
    try {
      this.update(dxb, (old) => this.spliced(old, 0, dxNew));
      this.update(dwb, (old) => this.spliced(old, 0, dwNew));
    } finally {
      dxNew.dispose();
      dwNew.dispose();
    }
  }

  swiglu(gate: DeviceBuffer, up: DeviceBuffer, out: DeviceBuffer, n: number): void {
    this.checks.ints("swiglu", { n });
    const [gb, ub, ob] = [this.typed("swiglu", "gate", gate, "f32", n), this.typed("swiglu", "up", up, "f32", n), this.typed("swiglu", "out", out, "f32", n)];
    if (n === 0) return;
    this.update(ob, (old) => {
      const g = this.read(gb, n);
      return this.spliced(old, 0, tf.mul(tf.mul(g, tf.sigmoid(g)), this.read(ub, n)));
    });
  }

  swigluBackward(gate: DeviceBuffer, up: DeviceBuffer, dOut: DeviceBuffer, dGate: DeviceBuffer, dUp: DeviceBuffer, n: number): void {
    const k = "swigluBackward";
    this.checks.ints(k, { n });
    const [gb, ub, ob] = [this.typed(k, "gate", gate, "f32", n), this.typed(k, "up", up, "f32", n), this.typed(k, "dOut", dOut, "f32", n)];
    const [dgb, dub] = [this.typed(k, "dGate", dGate, "f32", n), this.typed(k, "dUp", dUp, "f32", n)];
    if (n === 0) return;
    const [dg, du] = tf.tidy(() => {
      const g = this.read(gb, n);
      const s = tf.sigmoid(g);
      const dy = this.read(ob, n);
      return [tf.mul(tf.mul(tf.mul(dy, this.read(ub, n)), s), tf.add(1, tf.mul(g, tf.sub(1, s)))), tf.mul(tf.mul(dy, g), s)];
    });
    try {
      this.update(dgb, (old) => this.spliced(old, 0, dg));
      this.update(dub, (old) => this.spliced(old, 0, du));
    } finally {
      dg.dispose();
      du.dispose();
    }
  }

  adamw(args: AdamWArgs): void {
    const k = "adamw";
    const { n } = args;
    this.checks.ints(k, { n });
    const [pb, gb, mb, vb] = [this.typed(k, "param", args.param, "f32", n), this.typed(k, "grad", args.grad, "f32", n), this.typed(k, "m", args.m, "f32", n), this.typed(k, "v", args.v, "f32", n)];
    if (new Set([pb, mb, vb]).size !== 3) this.checks.fail(k, `param, m and v must be distinct buffers`);
    if (n === 0) return;
    const [m, v] = tf.tidy(() => {
      const g = tf.mul(this.read(gb, n), args.gradScale ?? 1);
      return [tf.add(tf.mul(this.read(mb, n), args.beta1), tf.mul(g, 1 - args.beta1)), tf.add(tf.mul(this.read(vb, n), args.beta2), tf.mul(tf.square(g), 1 - args.beta2))];
    });
    try {
      this.update(pb, (old) => {
        const p = this.read(pb, n);
        const step = tf.div(tf.div(m, args.biasCorrection1), tf.add(tf.sqrt(tf.div(v, args.biasCorrection2)), args.eps));
        return this.spliced(old, 0, tf.sub(tf.sub(p, tf.mul(p, args.lr * args.weightDecay)), tf.mul(step, args.lr)));
      });
      this.update(mb, (old) => this.spliced(old, 0, m));
      this.update(vb, (old) => this.spliced(old, 0, v));
    } finally {
      m.dispose();
      v.dispose();
    }
  }
}
