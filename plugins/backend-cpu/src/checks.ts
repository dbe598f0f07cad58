// Argument checks shared by the CpuBackend kernels: everything JS can see without reading device
// data, so bad input raises a ShapeError/EcomlaError instead of touching memory it does not own.
import { ArgumentChecks, EcomlaError, type DType } from "@ecomla/core";

export { stridedSpan } from "@ecomla/core";

export function sizeOfShape(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// The plain-argument checks every backend shares (core's ArgumentChecks), named for this one.
const args = new ArgumentChecks("CpuBackend");

/** Throws a ShapeError naming the kernel. */
export function fail(kernel: string, message: string): never {
  return args.fail(kernel, message);
}

export function checkInts(kernel: string, values: Record<string, number>, min = 0): void {
  args.ints(kernel, values, min);
}

/** At most rank 6 (the native kernels' limit). */
export function checkShape(kernel: string, arg: string, shape: readonly number[]): void {
  args.shape(kernel, arg, shape, 6);
}

export function checkBroadcast(kernel: string, arg: string, shape: readonly number[], targetArg: string, target: readonly number[]): void {
  args.broadcast(kernel, arg, shape, targetArg, target);
}

/** `shape` left-padded with 1s to `rank`. */
export function padShape(shape: readonly number[], rank: number): number[] {
  return [...new Array<number>(rank - shape.length).fill(1), ...shape];
}

export const DTYPE_CODE: Readonly<Record<DType, number>> = { f32: 0, bf16: 1, f16: 2, i32: 3 };

export const BINARY_CODE: Readonly<Record<string, number>> = { add: 0, sub: 1, mul: 2, div: 3, max: 4, min: 5, pow: 6 };

export const UNARY_CODE: Readonly<Record<string, number>> = {
  neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, abs: 5, square: 6, reciprocal: 7, relu: 8,
  sigmoid: 9, silu: 10, tanh: 11, gelu: 12, scale: 13, addScalar: 14, powScalar: 15,
};

export const REDUCE_CODE: Readonly<Record<string, number>> = { sum: 0, max: 1, mean: 2, sumsq: 3 };

/** The op's code, or a ShapeError listing the known ones. */
export function opCode(kernel: string, table: Readonly<Record<string, number>>, op: string): number {
  const code = table[op];
  if (code === undefined) fail(kernel, `unknown op ${JSON.stringify(op)}; expected one of ${Object.keys(table).join(", ")}`);
  return code;
}

/** Re-raise a native RangeError (data-dependent bad input found by a kernel) as an EcomlaError. */
export function nativeCall<T>(kernel: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RangeError) throw new EcomlaError(`CpuBackend.${kernel}: ${err.message}`, { cause: err });
    throw err;
  }
}
