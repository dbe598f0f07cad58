// Atomic, streaming safetensors writer: the header is computed from shapes alone, tensor data is
// converted and written one tensor (and one bounded chunk) at a time into a temporary file in the
// target's folder, which is fsynced and renamed over the target only when complete.
import { randomBytes } from "node:crypto";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { f32ToF16Bits } from "../dtype.js";
import { SAFETENSORS_DTYPE_BYTES, SafetensorsError, formatShape, numelOf } from "./safetensors.js";

/** The dtypes the writer stores. */
export type WritableDtype = "F32" | "BF16" | "F16" | "I32";

/**
 * Host data of a tensor to write: Float32Array for F32/BF16/F16, Int32Array for I32, or a
 * Uint8Array of bytes already in the stored dtype (numel × dtype size, little-endian), written as
 * they are — how a tensor copied from another checkpoint skips decoding and re-encoding.
 */
export type TensorData = Float32Array | Int32Array | Uint8Array;

/** One tensor to write; `data` may be a function so a caller can produce tensors only when their turn comes. */
export interface TensorToWrite {
  readonly name: string;
  readonly dtype: WritableDtype;
  readonly shape: readonly number[];
  /** (numel) row-major values, or a producer called once, when the tensor is written. */
  readonly data: TensorData | (() => TensorData | Promise<TensorData>);
}

/** What a write produced. */
export interface WrittenFile {
  readonly path: string;
  /** Size of the whole file (8 + header + data). */
  readonly byteLength: number;
  /** Sum of the tensors' byte lengths (HF's total_size counts these). */
  readonly dataByteLength: number;
}

// HF's serializer orders tensors by descending dtype alignment, then by name, so every tensor's
// data starts aligned to its element size (the header is padded to 8). Ranks follow HF's Dtype enum.
const DTYPE_RANK: Record<WritableDtype, number> = { F16: 0, BF16: 1, I32: 2, F32: 3 };

// Conversion scratch per chunk (4 Mi elements = 8 MiB of 16-bit output): bounds memory beyond the tensor itself.
const CHUNK_ELEMENTS = 1 << 22;
// Node refuses single writes above 2 GiB.
const MAX_WRITE_BYTES = 1 << 30;

const utf8Encoder = new TextEncoder();

/** Byte-wise UTF-8 comparison, as Rust's String ordering in HF's serializer. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** A tensor placed in the data section. */
interface PlacedTensor {
  readonly tensor: TensorToWrite;
  readonly begin: number;
  readonly end: number;
}

/** The bytes before the data section and where each tensor goes. */
export interface SafetensorsLayout {
  /** 8-byte length prefix + JSON header padded with spaces to a multiple of 8. */
  readonly headerBytes: Uint8Array;
  readonly placed: readonly PlacedTensor[];
  readonly dataByteLength: number;
}

/** Byte size of a tensor in its stored dtype. */
export function storedByteLength(tensor: Pick<TensorToWrite, "dtype" | "shape">): number {
  return numelOf(tensor.shape) * SAFETENSORS_DTYPE_BYTES[tensor.dtype];
}

/** Validates names, dtypes, shapes and eager data, and lays the tensors out as HF does. */
export function layoutSafetensors(path: string, tensors: readonly TensorToWrite[], metadata?: Readonly<Record<string, string>>): SafetensorsLayout {
  const seen = new Set<string>();
  for (const tensor of tensors) {
    const where = `tensor ${tensor.name} for ${path}`;
    if (typeof tensor.name !== "string" || tensor.name === "" || tensor.name === "__metadata__") {
      throw new SafetensorsError(`${path}: tensor name must be a non-empty string other than __metadata__, found ${JSON.stringify(tensor.name)}`);
    }
    if (seen.has(tensor.name)) throw new SafetensorsError(`${where}: name given twice; expected unique names`);
    seen.add(tensor.name);
    if (!Object.prototype.hasOwnProperty.call(DTYPE_RANK, tensor.dtype)) {
      throw new SafetensorsError(`${where}: cannot write dtype ${JSON.stringify(tensor.dtype)}; supported: F32, BF16, F16, I32`);
    }
    if (!Array.isArray(tensor.shape) || !tensor.shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
      throw new SafetensorsError(`${where}: shape must be an array of non-negative integers, found ${JSON.stringify(tensor.shape)}`);
    }
    if (typeof tensor.data !== "function") checkData(tensor, tensor.data, path);
  }
  for (const [key, value] of Object.entries(metadata ?? {})) {
    if (typeof value !== "string") throw new SafetensorsError(`${path}: metadata ${key} must be a string, found ${typeof value}`);
  }

  const ordered = [...tensors].sort((a, b) => DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || compareUtf8(a.name, b.name));
  const placed: PlacedTensor[] = [];
  // Built by hand rather than JSON.stringify(object): JS objects list integer-like keys first,
  // which would break the layout order.
  const entries: string[] = [];
  if (metadata) {
    const keys = Object.keys(metadata).sort(compareUtf8);
    entries.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(",")}}`);
  }
  let offset = 0;
  for (const tensor of ordered) {
    const end = offset + storedByteLength(tensor);
    entries.push(`${JSON.stringify(tensor.name)}:${JSON.stringify({ dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, end] })}`);
    placed.push({ tensor, begin: offset, end });
    offset = end;
  }
  const json = utf8Encoder.encode(`{${entries.join(",")}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const headerBytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength); // HF pads with spaces
  new DataView(headerBytes.buffer).setBigUint64(0, BigInt(padded), true);
  headerBytes.set(json, 8);
  return { headerBytes, placed, dataByteLength: offset };
}

/** Checks a tensor's host data type and length against its dtype and shape. */
function checkData(tensor: TensorToWrite, data: unknown, path: string): asserts data is TensorData {
  const where = `tensor ${tensor.name} for ${path}`;
  if (data instanceof Uint8Array) {
    const bytes = storedByteLength(tensor);
    if (data.byteLength !== bytes) {
      throw new SafetensorsError(`${where}: shape ${formatShape(tensor.shape)} in ${tensor.dtype} takes ${bytes} bytes, the raw data has ${data.byteLength}`);
    }
    return;
  }
  const wantInt = tensor.dtype === "I32";
  const ok = wantInt ? data instanceof Int32Array : data instanceof Float32Array;
  if (!ok) {
    const found = data === null || typeof data !== "object" ? String(data) : (data as object).constructor.name;
    throw new SafetensorsError(`${where}: dtype ${tensor.dtype} needs ${wantInt ? "an Int32Array" : "a Float32Array"}, found ${found} (raw bytes in the stored dtype may be given as a Uint8Array)`);
  }
  const numel = numelOf(tensor.shape);
  if ((data as TensorData).length !== numel) {
    throw new SafetensorsError(`${where}: shape ${formatShape(tensor.shape)} has ${numel} elements, data has ${(data as TensorData).length}`);
  }
}

async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const length = Math.min(bytes.byteLength - done, MAX_WRITE_BYTES);
    let bytesWritten: number;
    try {
      ({ bytesWritten } = await handle.write(bytes, done, length, position + done));
    } catch (error) {
      throw new SafetensorsError(`${path}: write at byte ${position + done} failed: ${(error as Error).message}`, { cause: error });
    }
    done += bytesWritten;
  }
}

/** bf16 bits of f32 words [start, start+count), round-to-nearest-even as f32ToBf16Bits, on raw bits (no per-element calls). */
function encodeBf16(words: Uint32Array, start: number, count: number, out: Uint16Array): void {
  for (let i = 0; i < count; i++) {
    const bits = words[start + i]!;
    // NaN keeps its top bits and is made quiet; otherwise adding 0x7fff plus the lowest kept bit
    // rounds ties to even (a carry into the exponent is the correct round-up, to Inf at the top).
    out[i] = (bits & 0x7fffffff) > 0x7f800000 ? (bits >>> 16) | 0x0040 : (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
  }
}

/** IEEE binary16 bits of f32 values [start, start+count), round-to-nearest-even. */
function encodeF16(values: Float32Array, start: number, count: number, out: Uint16Array): void {
  for (let i = 0; i < count; i++) out[i] = f32ToF16Bits(values[start + i]!);
}

/** Writes one tensor's data at `position`, converting to 16 bits chunk by chunk. */
async function writeTensorData(handle: FileHandle, dtype: WritableDtype, data: TensorData, position: number, path: string): Promise<void> {
  if (data instanceof Uint8Array || dtype === "F32" || dtype === "I32") {
    await writeFully(handle, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position, path);
    return;
  }
  const values = data as Float32Array;
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const scratch = new Uint16Array(Math.min(values.length, CHUNK_ELEMENTS));
  const scratchBytes = new Uint8Array(scratch.buffer);
  for (let start = 0; start < values.length; start += CHUNK_ELEMENTS) {
    const count = Math.min(CHUNK_ELEMENTS, values.length - start);
    if (dtype === "BF16") encodeBf16(words, start, count, scratch);
    else encodeF16(values, start, count, scratch);
    await writeFully(handle, scratchBytes.subarray(0, count * 2), position + start * 2, path);
  }
}

/** The temporary name next to `path`: same folder, so the final rename stays on one filesystem (atomic). */
function temporaryPath(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
}

/** Writes a complete, fsynced safetensors file at a temporary path next to `path` and returns it; removes it on error. */
export async function writeSafetensorsToTemporary(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Readonly<Record<string, string>>,
): Promise<{ temporary: string; written: WrittenFile }> {
  const layout = layoutSafetensors(path, tensors, metadata);
  const temporary = temporaryPath(path);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temporary, "wx");
  } catch (error) {
    throw new SafetensorsError(`${path}: cannot create temporary file ${temporary}: ${(error as Error).message}`, { cause: error });
  }
  try {
    await writeFully(handle, layout.headerBytes, 0, path);
    const dataStart = layout.headerBytes.byteLength;
    for (const { tensor, begin } of layout.placed) {
      // A lazy tensor is produced only now and dropped after its bytes are written, so a model can
      // be streamed out holding one tensor at a time.
      const data = typeof tensor.data === "function" ? await tensor.data() : tensor.data;
      checkData(tensor, data, path);
      await writeTensorData(handle, tensor.dtype, data, dataStart + begin, path);
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    return { temporary, written: { path, byteLength: layout.headerBytes.byteLength + layout.dataByteLength, dataByteLength: layout.dataByteLength } };
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(temporary, { force: true }).catch(() => undefined);
    throw error;
  }
}

/** Renames a finished temporary file over its target and syncs the folder so the rename survives a crash. */
export async function commitTemporary(temporary: string, path: string): Promise<void> {
  try {
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw new SafetensorsError(`${path}: cannot move ${temporary} into place: ${(error as Error).message}`, { cause: error });
  }
  await syncFolder(dirname(path));
}

/** Best effort: some filesystems refuse fsync on a directory, and the data itself is already synced. */
async function syncFolder(folder: string): Promise<void> {
  try {
    const handle = await open(folder, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // ignored on purpose (see above)
  }
}

/** Writes text atomically (temporary file + fsync + rename). */
export async function writeTextAtomically(path: string, text: string): Promise<void> {
  const temporary = temporaryPath(path);
  try {
    const handle = await open(temporary, "wx");
    try {
      await writeFully(handle, utf8Encoder.encode(text), 0, path);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    if (error instanceof SafetensorsError) throw error;
    throw new SafetensorsError(`${path}: cannot write: ${(error as Error).message}`, { cause: error });
  }
  await commitTemporary(temporary, path);
}

/**
 * Writes a safetensors file as HF's serializer does (tensors ordered by dtype alignment then name,
 * header padded with spaces to 8 bytes), converting f32 to BF16/F16 with round-to-nearest-even,
 * atomically: `path` holds either its old content or the complete new file, never a partial one.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Readonly<Record<string, string>>,
): Promise<WrittenFile> {
  const { temporary, written } = await writeSafetensorsToTemporary(path, tensors, metadata);
  await commitTemporary(temporary, path);
  return written;
}
