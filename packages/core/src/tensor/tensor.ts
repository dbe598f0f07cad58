import { EcomlaError, ShapeError } from "../errors.js";
import { completeBackend } from "../backends/composed.js";
import type { CompleteBackend, DType, DeviceBuffer, HostArray, HostArrayOf, TensorBackend } from "../interfaces/backend.js";
import { TENSOR_BRAND, engine } from "./engine.js";

/**
 * Device memory shared by a tensor and its reshaped views; freed when the last holder disposes.
 * Tensors are always contiguous and row-major, so a view differs only in shape.
 */
class Storage {
  refs = 1;
  /** The backend with every fused kernel (its own, or composed from its primitives). */
  readonly backend: CompleteBackend;
  constructor(
    backend: TensorBackend,
    readonly buffer: DeviceBuffer,
  ) {
    this.backend = completeBackend(backend);
  }
  release(): void {
    if (--this.refs === 0) this.backend.free(this.buffer);
  }
}

/** The record an op leaves on the tape so backward() can reach its inputs. */
export interface GradNode {
  /** Op name, for error messages. */
  op: string;
  /** Inputs, in the order backward returns their gradients. */
  inputs: readonly Tensor[];
  /**
   * Given d(loss)/d(output), a fresh gradient tensor (or a view) for each input, null where the
   * input needs none. Never return gradOutput itself: the engine frees it after the call.
   */
  backward(gradOutput: Tensor): (Tensor | null)[];
}

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkShape(shape: readonly number[], where: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${where}: shape [${shape.join(", ")}] must hold non-negative integers`);
  }
}

/**
 * A dense, contiguous, row-major array in one backend's memory, with optional gradient.
 * Create with {@link Tensor.from} / {@link Tensor.zeros} / {@link Tensor.empty}; ops in `ops`.
 * Memory is explicit: {@link tidy} frees what a block created, {@link Tensor.dispose} frees one.
 */
export class Tensor {
  readonly [TENSOR_BRAND] = true;
  /** Whether gradients flow to this tensor (set on parameters; ops propagate it). */
  requiresGrad = false;
  /** Accumulated gradient after backward() (leaf tensors that require grad). */
  grad: Tensor | null = null;
  /** The op that produced this tensor, while a gradient can flow through it. */
  node: GradNode | null = null;
  private disposed = false;
  private readonly storage: Storage;

  private constructor(storage: Storage, readonly shape: readonly number[]) {
    this.storage = storage;
    engine.track(this);
  }

  /** Wrap an existing device buffer (ownership passes to the tensor). */
  static fromBuffer(backend: TensorBackend, buffer: DeviceBuffer, shape: readonly number[]): Tensor {
    checkShape(shape, "Tensor.fromBuffer");
    if (sizeOf(shape) > buffer.length) {
      throw new ShapeError(`Tensor.fromBuffer: shape [${shape.join(", ")}] needs ${sizeOf(shape)} elements, buffer holds ${buffer.length}`);
    }
    return new Tensor(new Storage(backend, buffer), [...shape]);
  }

  /** Uninitialised tensor. */
  static empty(backend: TensorBackend, shape: readonly number[], dtype: DType = "f32"): Tensor {
    checkShape(shape, "Tensor.empty");
    return Tensor.fromBuffer(backend, backend.alloc(dtype, Math.max(1, sizeOf(shape))), shape);
  }

  /** Tensor filled with a constant. */
  static full(backend: TensorBackend, shape: readonly number[], value: number, dtype: DType = "f32"): Tensor {
    const t = Tensor.empty(backend, shape, dtype);
    backend.fill(t.buffer, value, t.size);
    return t;
  }

  /** Tensor of zeros. */
  static zeros(backend: TensorBackend, shape: readonly number[], dtype: DType = "f32"): Tensor {
    return Tensor.full(backend, shape, 0, dtype);
  }

  /** Upload host data. number[] becomes f32 unless dtype says i32. */
  static from(
    backend: TensorBackend,
    data: HostArray | readonly number[],
    shape: readonly number[],
    options: { dtype?: DType; requiresGrad?: boolean } = {},
  ): Tensor {
    const dtype: DType = options.dtype ?? (data instanceof Int32Array ? "i32" : data instanceof Uint16Array ? "bf16" : "f32");
    const host: HostArray = Array.isArray(data)
      ? dtype === "i32"
        ? Int32Array.from(data)
        : dtype === "f32"
          ? Float32Array.from(data)
          : Uint16Array.from(data)
      : (data as HostArray);
    if (host.length !== sizeOf(shape)) {
      throw new ShapeError(`Tensor.from: ${host.length} values do not fill shape [${shape.join(", ")}] (${sizeOf(shape)} elements)`);
    }
    const t = Tensor.empty(backend, shape, dtype);
    if (host.length > 0) backend.upload(t.buffer, host);
    t.requiresGrad = options.requiresGrad ?? false;
    return t;
  }

  /** The backend owning the memory (completed: every fused kernel is callable). */
  get backend(): CompleteBackend {
    return this.storage.backend;
  }

  /** The device buffer (its length may exceed size for pooled allocations). */
  get buffer(): DeviceBuffer {
    this.assertLive("buffer");
    return this.storage.buffer;
  }

  /** Element type. */
  get dtype(): DType {
    return this.storage.buffer.dtype;
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** Whether dispose() has run. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Same data, another shape of the same size (shares memory; no copy). */
  view(shape: readonly number[]): Tensor {
    this.assertLive("view");
    checkShape(shape, "view");
    if (sizeOf(shape) !== this.size) {
      throw new ShapeError(`view: cannot view [${this.shape.join(", ")}] (${this.size} elements) as [${shape.join(", ")}] (${sizeOf(shape)})`);
    }
    this.storage.refs++;
    return new Tensor(this.storage, [...shape]);
  }

  /** Copy to the host (waits for queued work). */
  async data(): Promise<HostArrayOf<DType>> {
    this.assertLive("data");
    return this.backend.download(this.storage.buffer, 0, this.size);
  }

  /** Copy to the host as a number array (f32 and i32). */
  async toArray(): Promise<number[]> {
    if (this.dtype !== "f32" && this.dtype !== "i32") throw new EcomlaError(`toArray: dtype ${this.dtype} holds raw bits; cast to f32 first`);
    return Array.from(await this.data());
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError(`item: tensor has shape [${this.shape.join(", ")}], expected one element`);
    return (await this.data())[0]!;
  }

  /** Free the memory (or drop this view's hold on it). Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.node = null;
    engine.untrack(this);
    this.storage.release();
  }

  /** Back-propagate from this tensor (a scalar unless gradOutput is given). */
  backward(gradOutput?: Tensor): void {
    engine.backward(this, gradOutput, () => Tensor.full(this.backend, this.shape, 1, this.dtype));
  }

  /** Mark as a parameter: gradients will flow to it. Returns this. */
  requireGrad(flag = true): this {
    this.requiresGrad = flag;
    return this;
  }

  /** Throw if the memory was freed. */
  assertLive(where: string): void {
    if (this.disposed) throw new EcomlaError(`${where}: tensor of shape [${this.shape.join(", ")}] was disposed`);
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(", ")}]${this.requiresGrad ? ", requiresGrad" : ""}, ${this.backend.name})`;
  }
}
