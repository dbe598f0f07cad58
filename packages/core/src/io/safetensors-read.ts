// Streaming safetensors reader: opening a file reads only the length prefix and the header;
// each tensor is read from its own byte range, so a model is never held whole in memory.
import { open, stat, type FileHandle } from "node:fs/promises";
import { endianness } from "node:os";
import { f16BitsToF32 } from "../dtype.js";
import {
  SAFETENSORS_DTYPE_BYTES,
  SafetensorsError,
  SUPPORTED_DTYPES,
  parseHeaderLength,
  parseSafetensorsHeader,
  sameShape,
  shapeMismatch,
  tensorNotFound,
  tensorsMissing,
  type SafetensorsDtype,
  type TensorInfo,
} from "./safetensors.js";

/** One tensor's raw little-endian bytes as stored. */
export interface RawTensor {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** byteLength = numel × dtype size, row-major little-endian. */
  readonly data: Uint8Array;
}

/** What both a single file and a (sharded) checkpoint offer: look up, validate and read tensors by name. */
export interface SafetensorsSource {
  /** Tensor names, in header order (shard by shard for a checkpoint). */
  names(): string[];
  has(name: string): boolean;
  /** Where a tensor lives; throws "tensor X not found in …" when absent. */
  info(name: string): TensorInfo;
  /** The tensor's stored bytes, read from its offset (any dtype). */
  read(name: string): Promise<RawTensor>;
  /** The tensor as f32 (F32, F16 and BF16 are converted exactly). */
  readF32(name: string): Promise<Float32Array>;
  /** Elements [start, start+count) of the tensor as f32 (row-major), for streaming large tensors. */
  readF32Range(name: string, start: number, count: number): Promise<Float32Array>;
  /** The tensor as i32 (I32 only). */
  readI32(name: string): Promise<Int32Array>;
  /** Throws one error listing every name that is absent. */
  requireTensors(names: Iterable<string>, context?: string): void;
  /** The tensor's info, after checking it exists with exactly this shape. */
  expectShape(name: string, shape: readonly number[], context?: string): TensorInfo;
  close(): Promise<void>;
}

// Node refuses single reads above 2 GiB; 1 GiB chunks also keep one syscall's latency bounded.
const MAX_READ_BYTES = 1 << 30;

const littleEndianHost = endianness() === "LE";

/** Fills `target` from `position` of the file; a short read means the file shrank since it was opened. */
async function readFully(handle: FileHandle, target: Uint8Array, position: number, file: string, what: string): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const length = Math.min(target.byteLength - done, MAX_READ_BYTES);
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(target, done, length, position + done));
    } catch (error) {
      throw new SafetensorsError(`${file}: reading ${what} at byte ${position + done} failed: ${(error as Error).message}`, { cause: error });
    }
    if (bytesRead === 0) {
      throw new SafetensorsError(
        `${file}: unexpected end of file reading ${what}: expected ${target.byteLength} bytes from byte ${position}, found ${done} (file truncated while open?)`,
      );
    }
    done += bytesRead;
  }
}

// f16 → f32 for all 65536 bit patterns (256 KiB), built on first use: a lookup beats per-element arithmetic.
let f16Table: Float32Array | undefined;
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) f16Table[bits] = f16BitsToF32(bits);
  }
  return f16Table;
}

/**
 * Reads elements [start, start+count) of a tensor and widens 16-bit floats in place, so only the
 * f32 result is ever allocated.
 */
async function readAsF32(handle: FileHandle, info: TensorInfo, start = 0, count?: number): Promise<Float32Array> {
  const elementBytes = SAFETENSORS_DTYPE_BYTES[info.dtype];
  const total = info.byteLength / elementBytes;
  const numel = count ?? total - start;
  if (!Number.isInteger(start) || !Number.isInteger(numel) || start < 0 || numel < 0 || start + numel > total) {
    throw new SafetensorsError(`tensor ${info.name} in ${info.file}: elements [${start}, ${start + numel}) are out of range for its ${total}`);
  }
  const what = `tensor ${info.name}`;
  const position = info.byteOffset + start * elementBytes;
  if (info.dtype === "F32") {
    const out = new Float32Array(numel);
    await readFully(handle, new Uint8Array(out.buffer), position, info.file, what);
    return out;
  }
  if (info.dtype !== "BF16" && info.dtype !== "F16") throw unreadable(info, "readF32");
  // The 16-bit source goes into the upper half of the f32 buffer. Widening ascending, element i
  // writes 16-bit slots 2i and 2i+1, which are ≤ numel+i: it never clobbers an unread source.
  const buffer = new ArrayBuffer(numel * 4);
  await readFully(handle, new Uint8Array(buffer, numel * 2, numel * 2), position, info.file, what);
  const halves = new Uint16Array(buffer);
  if (info.dtype === "BF16") {
    const words = new Uint32Array(buffer);
    for (let i = 0; i < numel; i++) words[i] = halves[numel + i]! << 16;
  } else {
    const table = f16ToF32Table();
    const out = new Float32Array(buffer);
    for (let i = 0; i < numel; i++) out[i] = table[halves[numel + i]!]!;
  }
  return new Float32Array(buffer);
}

function unreadable(info: TensorInfo, method: string): SafetensorsError {
  const wanted = method === "readI32" ? "I32" : "F32, F16, BF16";
  const supported = (SUPPORTED_DTYPES as readonly string[]).includes(info.dtype);
  return new SafetensorsError(
    supported
      ? `tensor ${info.name} in ${info.file}: ${method} reads dtype ${wanted}, found ${info.dtype} (use ${info.dtype === "I32" ? "readI32" : "readF32"})`
      : `tensor ${info.name} in ${info.file}: unsupported dtype ${info.dtype}; supported: ${SUPPORTED_DTYPES.join(", ")}`,
  );
}

/** One .safetensors file, opened lazily: header parsed and validated at open, tensors read on demand. */
export class SafetensorsFile implements SafetensorsSource {
  #handle: FileHandle | undefined;

  private constructor(
    /** The file's path as given to open(). */
    readonly path: string,
    handle: FileHandle,
    /** Size of the whole file in bytes. */
    readonly fileSize: number,
    /** Header length N (JSON bytes incl. padding). */
    readonly headerByteLength: number,
    /** `__metadata__` (empty when absent). */
    readonly metadata: Readonly<Record<string, string>>,
    private readonly tensors: ReadonlyMap<string, TensorInfo>,
  ) {
    this.#handle = handle;
  }

  /** Opens a file and validates its header; reads 8 + N bytes, never the data section. */
  static async open(path: string): Promise<SafetensorsFile> {
    if (!littleEndianHost) throw new SafetensorsError(`${path}: safetensors data is little-endian; this host is big-endian (unsupported)`);
    let handle: FileHandle;
    try {
      // Checked before open(): opening a FIFO for reading would block until a writer appears.
      const kind = await stat(path);
      if (!kind.isFile()) throw new SafetensorsError(`${path}: expected a regular .safetensors file, found a ${kind.isDirectory() ? "directory" : "special file"}`);
      handle = await open(path, "r");
    } catch (error) {
      if (error instanceof SafetensorsError) throw error;
      throw new SafetensorsError(`${path}: cannot open safetensors file: ${(error as Error).message}`, { cause: error });
    }
    try {
      const fileSize = (await handle.stat()).size;
      const prefix = new Uint8Array(8);
      if (fileSize >= 8) await readFully(handle, prefix, 0, path, "the header length");
      const headerByteLength = parseHeaderLength(prefix, fileSize, path);
      const headerBytes = new Uint8Array(headerByteLength);
      await readFully(handle, headerBytes, 8, path, "the header");
      const header = parseSafetensorsHeader(headerBytes, fileSize, path);
      return new SafetensorsFile(path, handle, fileSize, headerByteLength, header.metadata, header.tensors);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  /** Absolute offset of the data section (8 + N). */
  get dataOffset(): number {
    return 8 + this.headerByteLength;
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw tensorNotFound(name, this.path, this.names());
    return info;
  }

  async read(name: string): Promise<RawTensor> {
    const info = this.info(name);
    const data = new Uint8Array(info.byteLength);
    await readFully(this.handle(name), data, info.byteOffset, this.path, `tensor ${name}`);
    return { dtype: info.dtype, shape: info.shape, data };
  }

  async readF32(name: string): Promise<Float32Array> {
    const info = this.info(name);
    return readAsF32(this.handle(name), info);
  }

  async readF32Range(name: string, start: number, count: number): Promise<Float32Array> {
    return readAsF32(this.handle(name), this.info(name), start, count);
  }

  async readI32(name: string): Promise<Int32Array> {
    const info = this.info(name);
    if (info.dtype !== "I32") throw unreadable(info, "readI32");
    const out = new Int32Array(info.byteLength / 4);
    await readFully(this.handle(name), new Uint8Array(out.buffer), info.byteOffset, this.path, `tensor ${name}`);
    return out;
  }

  requireTensors(names: Iterable<string>, context?: string): void {
    const required = [...names];
    const missing = required.filter((name) => !this.tensors.has(name));
    if (missing.length > 0) throw tensorsMissing(missing, required.length, this.path, this.names(), context);
  }

  expectShape(name: string, shape: readonly number[], context?: string): TensorInfo {
    const info = this.info(name);
    if (!sameShape(info.shape, shape)) throw shapeMismatch(info, shape, context);
    return info;
  }

  /** Releases the file descriptor; later reads throw. Idempotent. */
  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }

  private handle(name: string): FileHandle {
    if (!this.#handle) throw new SafetensorsError(`${this.path}: cannot read tensor ${name}: the file was closed`);
    return this.#handle;
  }
}
