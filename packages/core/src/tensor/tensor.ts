import type { DType, DeviceBuffer, TensorBackend } from "../interfaces/backend.js";

/** A dense, contiguous, row-major array living in one backend's memory. */
export class Tensor {
  constructor(
    readonly backend: TensorBackend,
    readonly buffer: DeviceBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType = buffer.dtype,
  ) {}

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
}
