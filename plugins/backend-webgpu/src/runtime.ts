// The WebGPU runtime under the backend: device acquisition, a pipeline cache keyed by shader
// variant, one command encoder that batches every kernel until a sync/download (or until it grows
// long), a params ring for the kernels' uniforms, and counters that let tests prove there is no
// readback inside a training step.
import { EcomlaError } from "@ecomla/core";
import { create, globals } from "webgpu";

/** One storage binding of a dispatch. */
export interface Binding {
  buffer: GPUBuffer;
  /** The kernel writes it (read-write storage). */
  write?: boolean;
  /** Bind `size` bytes from byte `offset` (a multiple of minStorageBufferOffsetAlignment) instead of the whole buffer. */
  offset?: number;
  size?: number;
}

/** Counters of device traffic since the runtime was created. */
export interface RuntimeCounters {
  /** queue.submit calls. */
  submits: number;
  /** mapAsync calls (readbacks). */
  maps: number;
  /** Compute dispatches recorded. */
  dispatches: number;
  /** Pipelines compiled (shader variants). */
  pipelines: number;
  /** queue.writeBuffer calls for user data (uploads). */
  uploads: number;
}

/** Bytes reserved per dispatch in the params ring (minUniformBufferOffsetAlignment). */
const PARAM_SLOT_BYTES = 256;
/** Dispatches recorded before the encoder is submitted without being asked. */
const MAX_DISPATCHES_PER_SUBMIT = 512;

let gpuSingleton: GPU | undefined;

/** Acquire a Dawn device (Vulkan on Linux: a real GPU or Mesa lavapipe). */
export async function requestDevice(powerPreference: GPUPowerPreference = "high-performance"): Promise<{ device: GPUDevice; adapterInfo: string }> {
  // Dawn's Vulkan loader wants a runtime dir; containers and CI shells often lack one.
  if (process.env.XDG_RUNTIME_DIR === undefined) process.env.XDG_RUNTIME_DIR = "/tmp";
  Object.assign(globalThis, globals);
  gpuSingleton ??= create([]);
  // The first requestAdapter of a process enumerates the Vulkan devices. On lavapipe Dawn then
  // prints two "maxDynamic{Uniform,Storage}BuffersPerPipelineLayout artificially reduced from
  // 1000000 to 16" warnings: lavapipe reports 1,000,000 dynamic buffers per descriptor set and
  // Dawn's NormalizeLimits clamps that to its internal 16, printing with fprintf(stderr). They are
  // harmless, independent of the limits requested below, and Dawn offers no toggle or callback to
  // mute them; only redirecting the process's fd 2 around this call would, which races with any
  // other thread opening files, so they are left alone.
  const adapter = await gpuSingleton.requestAdapter({ powerPreference });
  if (adapter === null) {
    throw new EcomlaError(
      "webgpu: no GPU adapter found (Dawn needs a Vulkan driver: a GPU's, or Mesa lavapipe ≥ 25 from bookworm-backports: apt-get install -t bookworm-backports mesa-vulkan-drivers)",
    );
  }
  const limits = adapter.limits;
  // Ask for what the adapter offers where more helps: the largest buffers and bindings (Dawn's
  // defaults are 256 MiB and 128 MiB), and the finest binding-offset alignment (default 256 bytes;
  // lavapipe offers 16), which the chunked kernels use to bind sub-ranges of large tensors.
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBuffersPerShaderStage: Math.min(limits.maxStorageBuffersPerShaderStage, 10),
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      minStorageBufferOffsetAlignment: limits.minStorageBufferOffsetAlignment,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
    },
  });
  const info = adapter.info;
  const adapterInfo = [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(" ") || "unknown adapter";
  return { device, adapterInfo };
}

/** Batches kernels into one encoder; see the file comment. */
export class GpuRuntime {
  readonly counters: RuntimeCounters = { submits: 0, maps: 0, dispatches: 0, pipelines: 0, uploads: 0 };
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pending = 0;
  private readonly paramsHost = new ArrayBuffer(MAX_DISPATCHES_PER_SUBMIT * PARAM_SLOT_BYTES);
  private paramsUsed = 0;
  private readonly paramsBuffer: GPUBuffer;
  /** Buffers to hand back once the current encoder is submitted. */
  private afterSubmit: (() => void)[] = [];
  private deviceError: string | null = null;

  constructor(readonly device: GPUDevice) {
    this.paramsBuffer = device.createBuffer({ size: this.paramsHost.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    device.addEventListener("uncapturederror", (event) => {
      const message = (event as GPUUncapturedErrorEvent).error.message;
      this.deviceError ??= message;
    });
  }

  /** Throw the first asynchronous device error (a WGSL or validation error) if one occurred. */
  checkErrors(): void {
    if (this.deviceError !== null) {
      const message = this.deviceError;
      this.deviceError = null;
      throw new EcomlaError(`webgpu: device error: ${message}`);
    }
  }

  /** The pipeline of a shader variant, compiled once. `key` must identify `source` uniquely. */
  pipeline(key: string, source: () => string): GPUComputePipeline {
    let pipeline = this.pipelines.get(key);
    if (pipeline === undefined) {
      const module = this.device.createShaderModule({ code: source(), label: key });
      pipeline = this.device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" }, label: key });
      this.pipelines.set(key, pipeline);
      this.counters.pipelines++;
    }
    return pipeline;
  }

  private ensureEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    if (this.pass !== null) {
      this.pass.end();
      this.pass = null;
    }
  }

  /**
   * Record one dispatch: storage bindings 0..n-1 in order, then the params (a uniform) at binding n
   * when given. Workgroup counts over 65535 per dimension are the caller's to fold.
   */
  dispatch(pipeline: GPUComputePipeline, bindings: readonly Binding[], params: ArrayBuffer | null, groups: readonly [number, number?, number?]): void {
    const [x, y = 1, z = 1] = groups;
    if (x === 0 || y === 0 || z === 0) return;
    if (this.pending >= MAX_DISPATCHES_PER_SUBMIT) this.flush();
    const entries: GPUBindGroupEntry[] = bindings.map((b, i) => ({
      binding: i,
      resource: b.size === undefined ? { buffer: b.buffer } : { buffer: b.buffer, offset: b.offset ?? 0, size: b.size },
    }));
    if (params !== null) {
      if (params.byteLength > PARAM_SLOT_BYTES) throw new EcomlaError(`webgpu: kernel params of ${params.byteLength} bytes exceed the ${PARAM_SLOT_BYTES}-byte slot`);
      const offset = this.paramsUsed;
      new Uint8Array(this.paramsHost, offset, params.byteLength).set(new Uint8Array(params));
      this.paramsUsed += PARAM_SLOT_BYTES;
      entries.push({ binding: bindings.length, resource: { buffer: this.paramsBuffer, offset, size: Math.max(16, Math.ceil(params.byteLength / 16) * 16) } });
    }
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    const encoder = this.ensureEncoder();
    this.pass ??= encoder.beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(x, y, z);
    this.pending++;
    this.counters.dispatches++;
  }

  /** Record a buffer-to-buffer copy (byte offsets and size multiples of 4). */
  copy(src: GPUBuffer, srcByte: number, dst: GPUBuffer, dstByte: number, bytes: number): void {
    if (bytes === 0) return;
    this.endPass();
    this.ensureEncoder().copyBufferToBuffer(src, srcByte, dst, dstByte, bytes);
    this.pending++;
  }

  /** Run `fn` after the commands recorded so far are submitted (e.g. return a temporary to a pool). */
  whenSubmitted(fn: () => void): void {
    if (this.encoder === null) fn();
    else this.afterSubmit.push(fn);
  }

  /** Submit what is recorded; queued user writes (uploads) then see every earlier kernel's effect. */
  flush(): void {
    if (this.encoder === null) return;
    this.endPass();
    if (this.paramsUsed > 0) this.device.queue.writeBuffer(this.paramsBuffer, 0, this.paramsHost, 0, this.paramsUsed);
    this.device.queue.submit([this.encoder.finish()]);
    this.counters.submits++;
    this.encoder = null;
    this.pending = 0;
    this.paramsUsed = 0;
    const callbacks = this.afterSubmit;
    this.afterSubmit = [];
    for (const fn of callbacks) fn();
  }

  /** Write host bytes into a buffer in program order (earlier kernels are submitted first). */
  write(buffer: GPUBuffer, byteOffset: number, data: ArrayBufferView): void {
    this.flush();
    this.device.queue.writeBuffer(buffer, byteOffset, data.buffer, data.byteOffset, data.byteLength);
    this.counters.uploads++;
  }

  /** Copy `bytes` from `src` at `srcByte` into a mappable staging buffer and read it back. */
  async read(src: GPUBuffer, srcByte: number, bytes: number): Promise<ArrayBuffer> {
    const staging = this.device.createBuffer({ size: Math.max(4, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      this.copy(src, srcByte, staging, 0, bytes);
      this.flush();
      this.counters.maps++;
      await staging.mapAsync(GPUMapMode.READ, 0, Math.max(4, bytes));
      this.checkErrors();
      return staging.getMappedRange(0, Math.max(4, bytes)).slice(0, bytes);
    } finally {
      staging.destroy();
    }
  }

  /** Wait until every submitted command finished. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.checkErrors();
  }
}

/** Little-endian packer of a kernel's uniform params; WGSL structs mirror the call order. */
export class Params {
  private readonly view = new DataView(new ArrayBuffer(PARAM_SLOT_BYTES));
  private at = 0;
  u32(...values: number[]): this {
    for (const v of values) {
      this.view.setUint32(this.at, v >>> 0, true);
      this.at += 4;
    }
    return this;
  }
  i32(...values: number[]): this {
    for (const v of values) {
      this.view.setInt32(this.at, v | 0, true);
      this.at += 4;
    }
    return this;
  }
  f32(...values: number[]): this {
    for (const v of values) {
      this.view.setFloat32(this.at, v, true);
      this.at += 4;
    }
    return this;
  }
  /** A vec4<u32>-array field of `slots` vec4s (values padded with `pad`); aligned to 16 bytes. */
  u32x4(values: readonly number[], slots: number, pad = 0): this {
    this.at = Math.ceil(this.at / 16) * 16;
    for (let i = 0; i < slots * 4; i++) this.u32(i < values.length ? values[i]! : pad);
    return this;
  }
  /** The packed bytes (rounded up to 16). */
  bytes(): ArrayBuffer {
    return this.view.buffer.slice(0, Math.max(16, Math.ceil(this.at / 16) * 16));
  }
}
