// Scalar conversions between f32 and the 16-bit storage formats (bf16, f16), bit-exact with
// PyTorch / numpy: round to nearest, ties to even. Shared by safetensors I/O, the reference
// backend and backend plugins, so it sits below all of them and imports nothing.

// One scratch word reinterpreted both ways; the helpers are synchronous so sharing it is safe.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** The raw bits of x rounded to f32. */
function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0]!;
}

/** bf16 bits of x (rounded to f32 first), round-to-nearest-even; NaN stays a quiet NaN, overflow gives ±Inf. */
export function f32ToBf16Bits(x: number): number {
  const bits = f32Bits(x);
  if (Number.isNaN(x)) return ((bits >>> 16) | 0x0040) & 0xffff;
  // Adding 0x7fff plus the lowest kept bit rounds ties to even; a carry into the exponent is the
  // correct round-up (max finite rounds to Inf).
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** The f32 value (exact) of bf16 bits. */
export function bf16BitsToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

/** IEEE binary16 bits of x (rounded to f32 first), round-to-nearest-even, with subnormals; overflow gives ±Inf. */
export function f32ToF16Bits(x: number): number {
  const bits = f32Bits(x);
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return mantissa !== 0 ? sign | 0x7e00 | (mantissa >>> 13) : sign | 0x7c00;
  const e = exponent - 127;
  if (e > 15) return sign | 0x7c00;
  if (e >= -14) {
    let half = ((e + 15) << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    // A carry out of the mantissa bumps the exponent, which is the correct rounding (up to Inf).
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
    return sign | half;
  }
  // Below 2^-25 everything rounds to zero (2^-25 itself is a tie that goes to the even 0).
  if (e < -25) return sign;
  // Subnormal: count units of 2^-24. The value is full·2^(e−23) with the implicit bit restored.
  const full = mantissa | 0x800000;
  const shift = -e - 1; // 14 .. 24
  let half = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
  return sign | half;
}

/** The f32 value (exact) of IEEE binary16 bits. */
export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** f32 → i32 by value: truncates toward zero, saturates at the i32 range, NaN gives 0 (documented choice). */
export function f32ToI32(x: number): number {
  if (Number.isNaN(x)) return 0;
  if (x >= 2147483647) return 2147483647;
  if (x <= -2147483648) return -2147483648;
  return Math.trunc(x);
}
