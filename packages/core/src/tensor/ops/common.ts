import { ShapeError } from "../../errors.js";
import type { CompleteBackend, DType } from "../../interfaces/backend.js";
import { engine } from "../engine.js";
import { Tensor, type GradNode } from "../tensor.js";

/** The backend shared by all inputs of an op (mixing backends is an error naming the op). */
export function backendOf(op: string, ...inputs: Tensor[]): CompleteBackend {
  const b = inputs[0]!.backend;
  for (const t of inputs) {
    t.assertLive(op);
    if (t.backend !== b) throw new ShapeError(`${op}: inputs live on different backends (${b.name} and ${t.backend.name})`);
  }
  return b;
}

/** Throw unless t has the given dtype. */
export function expectDtype(op: string, what: string, t: Tensor, dtype: DType): void {
  if (t.dtype !== dtype) throw new ShapeError(`${op}: ${what} must be ${dtype}, found ${t.dtype}`);
}

/** Throw unless t has the given rank. */
export function expectRank(op: string, what: string, t: Tensor, rank: number): void {
  if (t.rank !== rank) throw new ShapeError(`${op}: ${what} must have rank ${rank}, found shape [${t.shape.join(", ")}]`);
}

/** Format a shape for messages. */
export function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Record an op on the tape when grad mode is on and an input requires grad. Returns out. */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], backward: GradNode["backward"]): Tensor {
  if (engine.gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

/** Whether op outputs will be recorded (so forward can skip saving what backward needs). */
export function needsGrad(...inputs: Tensor[]): boolean {
  return engine.gradEnabled && inputs.some((t) => t.requiresGrad);
}

/** Numpy broadcast of two shapes (right-aligned; each dim equal or 1). */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new ShapeError(`${op}: shapes ${fmt(a)} and ${fmt(b)} do not broadcast (dim ${i}: ${da} vs ${db})`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Resolve a possibly negative axis. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new ShapeError(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}
