// Argument checks shared by the CpuBackend kernels: everything JS can see without reading device
// data, so bad input raises a ShapeError/EcomlaError instead of touching memory it does not own.
import { ArgumentChecks, BINARY_OPS, DTYPES, EcomlaError, REDUCE_OPS, UNARY_OPS, opIds } from "@ecomla/core";

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

// name → native id, from core's op table: the same ids native/ops.generated.h gives the kernels.
export const DTYPE_CODE = opIds(DTYPES);
export const BINARY_CODE = opIds(BINARY_OPS);
export const UNARY_CODE = opIds(UNARY_OPS);
export const REDUCE_CODE = opIds(REDUCE_OPS);

/** The op's code, or a ShapeError listing the known ones. */
export function opCode(kernel: string, table: Readonly<Record<string, number>>, op: string): number {
  const code = Object.hasOwn(table, op) ? table[op] : undefined;
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
