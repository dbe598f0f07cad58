// The safetensors format shared by the reader and the writer: dtypes, the error type, header
// parsing and validation, and the "what is missing" messages.
// Format: u64 LE header length N, N bytes of UTF-8 JSON, then the data section; data_offsets are
// relative to the data section, tensors are row-major little-endian.
import { EcomlaError } from "../errors.js";

/** A safetensors file or checkpoint that cannot be read or written as asked; the message names the file, the tensor, expected vs found. */
export class SafetensorsError extends EcomlaError {}

/** Bytes per element of every dtype in the safetensors spec (order = HF's alignment order, ascending). */
export const SAFETENSORS_DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;

/** A dtype string of the safetensors spec. */
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BYTES;

/** The dtypes ecomla reads and writes (others parse but are refused at read time). */
export type SupportedDtype = "F32" | "F16" | "BF16" | "I32";

/** The dtypes ecomla reads and writes, for messages. */
export const SUPPORTED_DTYPES: readonly SupportedDtype[] = ["F32", "F16", "BF16", "I32"];

/** HF's limit on the JSON header (safetensors MAX_HEADER_SIZE): bigger headers are refused before reading them. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Where one tensor lives: its dtype, shape and absolute byte range in its file. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Absolute offset of the first byte in `file` (8 + header length + data_offsets[0]). */
  readonly byteOffset: number;
  readonly byteLength: number;
  /** The .safetensors file holding the tensor. */
  readonly file: string;
}

/** A parsed and validated header. */
export interface ParsedHeader {
  /** `__metadata__`, empty when absent. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in header (JSON) order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Header length N (bytes of JSON incl. padding). */
  readonly headerByteLength: number;
  /** Absolute offset of the data section (8 + N). */
  readonly dataOffset: number;
}

/** True for a dtype string of the spec. */
export function isSafetensorsDtype(dtype: string): dtype is SafetensorsDtype {
  return Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BYTES, dtype);
}

/** `[2, 3]` for messages. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** A short rendering of an unexpected JSON value for messages. */
function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array ${truncate(JSON.stringify(value))}`;
  if (typeof value === "object") return `an object ${truncate(JSON.stringify(value))}`;
  if (typeof value === "string") return `the string ${truncate(JSON.stringify(value))}`;
  return `${typeof value} ${String(value)}`;
}

function truncate(text: string, max = 80): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function isNonNegativeInteger(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** Element count of a shape; a scalar (`[]`) has one element. */
export function numelOf(shape: readonly number[]): number {
  let numel = 1;
  for (const dim of shape) numel *= dim;
  return numel;
}

/**
 * Validates the 8-byte length prefix against the file size and returns N.
 * Checked before the header is read so that a corrupt length never allocates 2^64 bytes.
 */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8) {
    throw new SafetensorsError(`${file}: file is ${fileSize} bytes, shorter than the 8-byte header length prefix of a safetensors file`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const length = view.getBigUint64(0, true);
  if (length === 0n) {
    throw new SafetensorsError(`${file}: header length is 0; expected a JSON object of at least 2 bytes ("{}")`);
  }
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      `${file}: oversized header: header length ${length} bytes exceeds the limit of ${MAX_HEADER_BYTES} bytes (not a safetensors file, or corrupt)`,
    );
  }
  const headerByteLength = Number(length);
  if (8 + headerByteLength > fileSize) {
    throw new SafetensorsError(
      `${file}: oversized header: header length ${headerByteLength} bytes runs past the end of the file (file is ${fileSize} bytes, at most ${fileSize - 8} bytes of header fit; file truncated?)`,
    );
  }
  return headerByteLength;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses and validates a header: UTF-8 JSON object, entry fields and types, known dtypes,
 * byte length = numel × dtype size, offsets inside the data section, no overlaps.
 * `headerBytes` are the N bytes after the length prefix; `fileSize` the whole file's size.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, file: string): ParsedHeader {
  const headerByteLength = headerBytes.byteLength;
  const dataOffset = 8 + headerByteLength;
  const dataByteLength = fileSize - dataOffset;
  let text: string;
  try {
    text = utf8.decode(headerBytes);
  } catch {
    throw new SafetensorsError(`${file}: header (${headerByteLength} bytes) is not valid UTF-8; expected a UTF-8 JSON object`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(
      `${file}: header is not valid JSON (${(error as Error).message}); found ${JSON.stringify(truncate(text.trimEnd(), 60))}`,
    );
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new SafetensorsError(`${file}: header must be a JSON object of tensor entries, found ${describeValue(json)}`);
  }

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
        throw new SafetensorsError(`${file}: __metadata__ must be an object of string values, found ${describeValue(entry)}`);
      }
      for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof value !== "string") {
          throw new SafetensorsError(`${file}: __metadata__.${key} must be a string, found ${describeValue(value)}`);
        }
        metadata[key] = value;
      }
      continue;
    }
    tensors.set(name, parseEntry(name, entry, dataOffset, dataByteLength, file));
  }
  checkOverlaps(tensors, dataOffset, file);
  return { metadata, tensors, headerByteLength, dataOffset };
}

/** One `"<name>": { dtype, shape, data_offsets }` entry, validated on its own. */
function parseEntry(name: string, entry: unknown, dataOffset: number, dataByteLength: number, file: string): TensorInfo {
  const where = `tensor ${name} in ${file}`;
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
    throw new SafetensorsError(`${where}: expected an object with dtype, shape and data_offsets, found ${describeValue(entry)}`);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  for (const [key, value] of [["dtype", dtype], ["shape", shape], ["data_offsets", offsets]] as const) {
    if (value === undefined) {
      throw new SafetensorsError(`${where}: entry has no ${key}; expected dtype, shape and data_offsets, found keys ${JSON.stringify(Object.keys(entry))}`);
    }
  }
  if (typeof dtype !== "string") throw new SafetensorsError(`${where}: dtype must be a string, found ${describeValue(dtype)}`);
  if (!isSafetensorsDtype(dtype)) {
    throw new SafetensorsError(
      `${where}: unknown dtype ${JSON.stringify(dtype)}; expected one of ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(", ")}`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    throw new SafetensorsError(`${where}: shape must be an array of non-negative integers, found ${describeValue(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    throw new SafetensorsError(`${where}: data_offsets must be [begin, end] with non-negative integers, found ${describeValue(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) {
    throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] have begin > end; expected begin ≤ end`);
  }
  const numel = numelOf(shape);
  const elementBytes = SAFETENSORS_DTYPE_BYTES[dtype];
  const expectedBytes = numel * elementBytes;
  if (end - begin !== expectedBytes) {
    throw new SafetensorsError(
      `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes; expected ${expectedBytes} = ${numel} elements of shape ${formatShape(shape)} × ${elementBytes} bytes (${dtype})`,
    );
  }
  if (end > dataByteLength) {
    throw new SafetensorsError(
      `${where}: data_offsets [${begin}, ${end}] run past the end of the data section (${Math.max(dataByteLength, 0)} bytes): file truncated or offsets wrong; expected a file of at least ${dataOffset + end} bytes, found ${dataOffset + dataByteLength}`,
    );
  }
  return { name, dtype, shape: Object.freeze([...shape]), byteOffset: dataOffset + begin, byteLength: end - begin, file };
}

/** Sorted by begin, each tensor must start at or after the previous one's end (gaps are allowed, as some writers align). */
function checkOverlaps(tensors: ReadonlyMap<string, TensorInfo>, dataOffset: number, file: string): void {
  // Empty tensors occupy no bytes, so they cannot overlap anything wherever their offsets point.
  const ranges = [...tensors.values()].filter((t) => t.byteLength > 0).sort((a, b) => a.byteOffset - b.byteOffset);
  for (let i = 1; i < ranges.length; i++) {
    const previous = ranges[i - 1]!;
    const current = ranges[i]!;
    if (current.byteOffset < previous.byteOffset + previous.byteLength) {
      const rel = (t: TensorInfo) => `[${t.byteOffset - dataOffset}, ${t.byteOffset - dataOffset + t.byteLength}]`;
      throw new SafetensorsError(
        `tensor ${current.name} in ${file}: data_offsets ${rel(current)} overlap tensor ${previous.name} at ${rel(previous)}; expected each tensor to start at or after the previous one's end`,
      );
    }
  }
}

/** "has 3 tensors, e.g. a, b, c" — what a file does hold, for not-found messages. */
export function describeContents(names: readonly string[], examples = 3): string {
  if (names.length === 0) return "has no tensors";
  const shown = [...names].sort().slice(0, examples).join(", ");
  return `has ${names.length} tensor${names.length === 1 ? "" : "s"}, e.g. ${shown}${names.length > examples ? ", …" : ""}`;
}

/** The error for one missing tensor. */
export function tensorNotFound(name: string, where: string, names: readonly string[]): SafetensorsError {
  return new SafetensorsError(`tensor ${name} not found in ${where} (${describeContents(names)})`);
}

/** The error for several missing tensors, listing all of them. */
export function tensorsMissing(missing: readonly string[], required: number, where: string, names: readonly string[], context?: string): SafetensorsError {
  const by = context ? ` by ${context}` : "";
  return new SafetensorsError(
    `${where}: ${missing.length} of ${required} tensors required${by} not found: ${missing.join(", ")} (${describeContents(names)})`,
  );
}

/** The error for a tensor of the wrong shape. */
export function shapeMismatch(info: TensorInfo, expected: readonly number[], context?: string): SafetensorsError {
  const by = context ? ` (${context})` : "";
  return new SafetensorsError(
    `tensor ${info.name} in ${info.file}${by}: expected shape ${formatShape(expected)}, found ${formatShape(info.shape)}`,
  );
}

/** True when two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((dim, i) => dim === b[i]);
}
