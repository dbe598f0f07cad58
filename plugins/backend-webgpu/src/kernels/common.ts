// Shared pieces of every kernel family: the launch interface the backend implements, 1-D grids
// folded into two dimensions (65535 workgroups per dimension), binding windows and the chunk
// planners that keep every storage binding under the device's limit, and WGSL helpers (exact f32
// bit conversions for the 16-bit formats and i32, NaN tests on bits, an erfc good to ~1.2e-7).
//
// Why windows: a storage binding may not exceed maxStorageBufferBindingSize (128 MiB on lavapipe
// and Dawn's default), while a tensor may (2048 × 32000 logits are 262 MB). Every kernel binds
// only the byte range a dispatch touches, starting at an offset aligned to
// minStorageBufferOffsetAlignment; the elements between that aligned start and the first element
// used are the window's `skew`, which the kernel adds to its indices. When one window would still
// be too large, the kernel is split into dispatches (by rows, by element ranges, by boxes of its
// iteration space, by GEMM blocks) that each fit.
import { ShapeError } from "@ecomla/core";
export { Params } from "../runtime.js";

/** One storage binding of a launch: the whole buffer, or `size` bytes from byte `offset`. */
export interface Arg {
  buffer: GPUBuffer;
  write?: boolean;
  offset?: number;
  size?: number;
}

/** Storage-binding limits a kernel must respect. */
export interface BindingLimits {
  /** Largest storage binding in bytes (the device's maxStorageBufferBindingSize, or less when asked). */
  maxBytes: number;
  /** A binding's byte offset must be a multiple of this (minStorageBufferOffsetAlignment). */
  alignBytes: number;
}

/** What kernel families need from the backend. */
export interface Launcher {
  /** Record a dispatch of the variant `key` (compiled from `source()` once). Read args aliasing a written one are copied first. */
  launch(key: string, source: () => string, args: readonly Arg[], params: ArrayBuffer | null, groups: readonly [number, number?, number?]): void;
  /** A scratch storage buffer of at least `bytes` bytes; give it back with {@link Launcher.release} (safe right after the launch). */
  scratch(bytes: number): GPUBuffer;
  release(buffer: GPUBuffer): void;
  /** The binding limits every launch must respect. */
  readonly limits: BindingLimits;
}

/**
 * Bytes an element span may cover: its window widens it down to the alignment and up to a
 * 16-byte multiple (vec4 arrays), and must still fit one binding.
 */
export function spanBudget(limits: BindingLimits): number {
  return limits.maxBytes - windowAlign(limits) - 16;
}

/** Windows start on a multiple of the offset alignment and of 16 bytes, so vec4 views stay aligned. */
function windowAlign(limits: BindingLimits): number {
  return Math.max(limits.alignBytes, 16);
}

/** A binding of part of a buffer; the kernel reads element `first` at index `skew`. */
export interface Window {
  arg: Arg;
  skew: number;
}

/**
 * The binding of elements [first, first + count) of `buffer` (elements of `elementBytes` bytes):
 * from the aligned byte at or below `first` to the next 16-byte multiple past the span (never
 * past the buffer's end).
 */
export function window(l: Launcher, buffer: GPUBuffer, elementBytes: number, first: number, count: number, write = false): Window {
  const { maxBytes } = l.limits;
  const align = windowAlign(l.limits);
  const firstByte = first * elementBytes;
  const start = Math.floor(firstByte / align) * align;
  const end = Math.min(buffer.size, Math.max(start + 16, Math.ceil(((first + Math.max(1, count)) * elementBytes) / 16) * 16));
  if (end - start > maxBytes) {
    throw new ShapeError(`webgpu: internal: a window of ${end - start} bytes exceeds the ${maxBytes}-byte storage binding limit (a kernel's chunk plan is wrong)`);
  }
  return { arg: { buffer, write, offset: start, size: end - start }, skew: (firstByte - start) / elementBytes };
}

/** Split [0, total) into consecutive [start, count) chunks of at most `per`. */
export function chunks(total: number, per: number): [number, number][] {
  const out: [number, number][] = [];
  for (let start = 0; start < total; start += per) out.push([start, Math.min(per, total - start)]);
  return out;
}

/**
 * Rows per dispatch when the widest row-indexed operand takes `bytesPerRow` bytes per row;
 * throws when a single row cannot be bound.
 */
export function rowsPerChunk(l: Launcher, kernel: string, bytesPerRow: number): number {
  const budget = spanBudget(l.limits);
  if (bytesPerRow > budget) {
    throw new ShapeError(`WebGpuBackend.${kernel}: one row takes ${bytesPerRow} bytes, more than fits the device's ${l.limits.maxBytes}-byte storage binding limit`);
  }
  return Math.max(1, Math.floor(budget / Math.max(1, bytesPerRow)));
}

/**
 * Element chunks for kernels whose operands all index element i the same way: chunk starts are
 * aligned for every operand (so each window's skew is 0 and the shader needs no change).
 * `elementBytes` lists the operands' element sizes.
 */
export function alignedChunks(l: Launcher, n: number, elementBytes: readonly number[]): [number, number][] {
  const widest = Math.max(...elementBytes);
  const step = Math.max(...elementBytes.map((b) => windowAlign(l.limits) / b));
  const per = Math.max(step, Math.floor(spanBudget(l.limits) / widest / step) * step);
  return chunks(n, per);
}

/** An operand walked by an iteration space: its strides (elements) and element size. */
export interface Walk {
  strides: readonly number[];
  elementBytes: number;
}

/**
 * A box of a row-major iteration space: indices fixed on the axes before one axis, a range on that
 * axis, every later axis whole. `start` and `shape` have the space's rank.
 */
export interface Box {
  start: number[];
  shape: number[];
}

/**
 * Split the iteration space `shape` into boxes (see {@link Box}) whose span in every operand fits
 * one binding: as few as possible (one, when everything fits), in row-major order.
 */
export function splitBoxes(shape: readonly number[], walks: readonly Walk[], budgetBytes: number): Box[] {
  const rank = shape.length;
  // inner[j][d]: elements operand j spans over axes d.. (all whole), minus one.
  const inner = walks.map((w) => {
    const ext = new Array<number>(rank + 1).fill(0);
    for (let d = rank - 1; d >= 0; d--) ext[d] = ext[d + 1]! + (shape[d]! - 1) * Math.abs(w.strides[d]!);
    return ext;
  });
  const boxes: Box[] = [];
  const walk = (prefix: number[], d: number): void => {
    if (d === rank) {
      boxes.push({ start: [...prefix], shape: new Array<number>(rank).fill(1) });
      return;
    }
    // The most indices of axis d one box can take, with later axes whole.
    let per = shape[d]!;
    for (let j = 0; j < walks.length; j++) {
      const room = Math.floor(budgetBytes / walks[j]!.elementBytes) - inner[j]![d + 1]! - 1;
      const stride = Math.abs(walks[j]!.strides[d]!);
      per = Math.min(per, room < 0 ? 0 : stride === 0 ? shape[d]! : 1 + Math.floor(room / stride));
    }
    if (per >= 1) {
      for (let i = 0; i < shape[d]!; i += per) {
        const start = [...prefix, i, ...new Array<number>(rank - d - 1).fill(0)];
        const boxShape = [...new Array<number>(d).fill(1), Math.min(per, shape[d]! - i), ...shape.slice(d + 1)];
        boxes.push({ start, shape: boxShape });
      }
    } else {
      for (let i = 0; i < shape[d]!; i++) walk([...prefix, i], d + 1);
    }
  };
  walk([], 0);
  return boxes;
}

/** Where a box lies in an operand: its element at box index 0 (`base`), and its lowest element and element count. */
export function boxSpan(box: Box, offset: number, strides: readonly number[]): { base: number; first: number; count: number } {
  let base = offset;
  let low = 0;
  let high = 0;
  for (let d = 0; d < box.shape.length; d++) {
    base += box.start[d]! * strides[d]!;
    const reach = (box.shape[d]! - 1) * strides[d]!;
    if (reach < 0) low += reach;
    else high += reach;
  }
  return { base, first: base + low, count: high - low + 1 };
}

/** Invocations per workgroup of the 1-D kernels. */
export const WG = 256;

/** Workgroup counts covering `n` invocations of `WG`, folded into (x, y). */
export function grid1d(n: number, wg = WG): [number, number] {
  const groups = Math.ceil(n / wg);
  if (groups <= 65535) return [groups, 1];
  return [65535, Math.ceil(groups / 65535)];
}

/** Fold a row count into (x, y) workgroups, one per row. */
export function gridRows(rows: number): [number, number] {
  return rows <= 65535 ? [rows, 1] : [65535, Math.ceil(rows / 65535)];
}

/** WGSL: the storage binding declaration of binding `index`. */
export function storage(index: number, name: string, type: string, write = false): string {
  return `@group(0) @binding(${index}) var<storage, ${write ? "read_write" : "read"}> ${name}: ${type};`;
}

/** WGSL: the uniform params declaration at binding `index`. */
export function uniform(index: number, structName = "Params"): string {
  return `@group(0) @binding(${index}) var<uniform> p: ${structName};`;
}

/** WGSL: entry-point signature of a 1-D kernel; `i` is the flat invocation index. */
export function entry1d(wg = WG): string {
  return `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * ${wg}u + lid;`;
}

/** WGSL: entry of a row kernel (one workgroup per row); `row` is the row index, `lid` the lane. */
export function entryRows(wg: number): string {
  return `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.y * nwg.x + wid.x;`;
}

/** WGSL: bit-exact conversions between f32 bit patterns and bf16 / f16 / i32. */
export const WGSL_BITS = /* wgsl */ `
// Specials built at run time: a constant-expression Inf or NaN is a WGSL compile error.
fn negInf() -> f32 { var b = 0xff800000u; return bitcast<f32>(b); }
fn posInf() -> f32 { var b = 0x7f800000u; return bitcast<f32>(b); }
fn nanF() -> f32 { var b = 0x7fc00000u; return bitcast<f32>(b); }
fn isNanBits(b: u32) -> bool { return (b & 0x7fffffffu) > 0x7f800000u; }
fn isNanF(x: f32) -> bool { return isNanBits(bitcast<u32>(x)); }

fn bf16ToF32Bits(h: u32) -> u32 { return h << 16u; }

fn f32BitsToBf16(b: u32) -> u32 {
  if (isNanBits(b)) { return ((b >> 16u) | 0x40u) & 0xffffu; }
  return ((b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u) & 0xffffu;
}

fn f16ToF32Bits(h: u32) -> u32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0u) {
    if (m == 0u) { return sign; }
    let lead = firstLeadingBit(m);
    return sign | ((lead + 103u) << 23u) | ((m << (23u - lead)) & 0x7fffffu);
  }
  if (e == 31u) { return sign | 0x7f800000u | (m << 13u); }
  return sign | ((e + 112u) << 23u) | (m << 13u);
}

fn f32BitsToF16(b: u32) -> u32 {
  let sign = (b >> 16u) & 0x8000u;
  let exponent = (b >> 23u) & 0xffu;
  let mantissa = b & 0x7fffffu;
  if (exponent == 0xffu) {
    if (mantissa != 0u) { return sign | 0x7e00u | (mantissa >> 13u); }
    return sign | 0x7c00u;
  }
  let e = i32(exponent) - 127;
  if (e > 15) { return sign | 0x7c00u; }
  if (e >= -14) {
    var half = (u32(e + 15) << 10u) | (mantissa >> 13u);
    let rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u) == 1u)) { half += 1u; }
    return sign | half;
  }
  if (e < -25) { return sign; }
  let full = mantissa | 0x800000u;
  let shift = u32(-e - 1);
  var half = full >> shift;
  let rest = full & ((1u << shift) - 1u);
  let halfway = 1u << (shift - 1u);
  if (rest > halfway || (rest == halfway && (half & 1u) == 1u)) { half += 1u; }
  return sign | half;
}

fn i32ToF32Bits(v: i32) -> u32 {
  if (v == 0) { return 0u; }
  let sign = select(0u, 0x80000000u, v < 0);
  let a = select(bitcast<u32>(v), 0u - bitcast<u32>(v), v < 0);
  let lead = firstLeadingBit(a);
  let exponent = lead + 127u;
  if (lead <= 23u) { return sign | (exponent << 23u) | ((a << (23u - lead)) & 0x7fffffu); }
  let shift = lead - 23u;
  let rest = a & ((1u << shift) - 1u);
  let halfway = 1u << (shift - 1u);
  var m = a >> shift;
  if (rest > halfway || (rest == halfway && (m & 1u) == 1u)) { m += 1u; }
  return sign | ((exponent << 23u) + (m - 0x800000u));
}

fn f32BitsToI32(b: u32) -> i32 {
  let negative = (b & 0x80000000u) != 0u;
  let exponent = (b >> 23u) & 0xffu;
  if (isNanBits(b)) { return 0; }
  if (exponent < 127u) { return 0; }
  if (exponent >= 158u) { return select(2147483647, -2147483647 - 1, negative); }
  let m = (b & 0x7fffffu) | 0x800000u;
  let sh = exponent - 127u;
  let mag = select(m >> (23u - sh), m << (sh - 23u), sh > 23u);
  return select(i32(mag), -i32(mag), negative);
}
`;

/** WGSL: erfc (Numerical Recipes' Chebyshev fit, fractional error < 1.2e-7 everywhere). */
export const WGSL_ERF = /* wgsl */ `
fn erfcApprox(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(2.0 - r, r, x >= 0.0);
}
fn sigmoidF(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}
`;

/**
 * WGSL tree reductions over a workgroup of `lanes` invocations (a power of two) through one shared
 * `red` array: `${prefix}Sum(v, lid)` and `${prefix}Max(v, lid)`, every invocation getting the
 * result; `maxFn` combines two values for the max (e.g. a NaN-propagating one defined before it).
 */
export function wgslGroupReductions(lanes: number, maxFn = "max", prefix = "group"): string {
  const reduce = (name: string, combine: string) => `fn ${prefix}${name}(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${lanes / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = ${combine}; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;
  return [`var<workgroup> red: array<f32, ${lanes}>;`, reduce("Sum", "red[lid] + red[lid + s]"), reduce("Max", `${maxFn}(red[lid], red[lid + s])`)].join("\n");
}
