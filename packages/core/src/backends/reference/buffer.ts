// Buffers of the reference backend and the small helpers its validation shares.
import type { DType, DeviceBuffer } from "../../interfaces/backend.js";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, f32ToI32 } from "../../dtype.js";
import type { Store } from "./kernels-basic.js";

/** A reference-backend allocation: the typed array plus its lifetime flag. */
export class ReferenceBuffer implements DeviceBuffer {
  readonly backend = "reference";
  freed = false;
  constructor(
    /** The backend instance that allocated it (two reference backends never share buffers). */
    readonly owner: object,
    readonly dtype: DType,
    readonly length: number,
    public data: Store,
  ) {}
}

/** The host array type upload() accepts for each dtype. */
export const HOST_ARRAY_OF: Record<DType, string> = { f32: "Float32Array", i32: "Int32Array", bf16: "Uint16Array", f16: "Uint16Array" };

/** Constructor name of a host array, for error messages. */
export function hostArrayName(data: unknown): string {
  return (data as object)?.constructor?.name ?? typeof data;
}

/** Stored value → number, for every dtype (bf16/f16 decode their bits). */
export function decode(dtype: DType, raw: number): number {
  if (dtype === "bf16") return bf16BitsToF32(raw);
  if (dtype === "f16") return f16BitsToF32(raw);
  return raw;
}

/** Number → stored value for a dtype (f32 rounding happens in the typed array itself). */
export function encode(dtype: DType, value: number): number {
  if (dtype === "bf16") return f32ToBf16Bits(value);
  if (dtype === "f16") return f32ToF16Bits(value);
  if (dtype === "i32") return f32ToI32(value);
  return value;
}

/** A copy of `input` when it is the same storage as one of the outputs, so kernels read pre-call values. */
export function unalias<T extends Store>(input: T, ...outputs: Store[]): T {
  return outputs.includes(input) ? (input.slice() as T) : input;
}
