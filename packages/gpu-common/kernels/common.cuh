// Device helpers shared by the kernel files: the stream, launch checks, 16-bit conversions
// (bit-exact with core's reference: round to nearest even), warp/block reductions.
#pragma once
#include "gpu_compat.h"
#include "kernels.h"
#include "ops.h"
#include <cmath>
#include <cstdint>

namespace ecomla_gpu {

/** The one stream every kernel and copy is enqueued on (runtime.cu). */
cudaStream_t stream();

/** nullptr, or the launch error of the last kernel (does not synchronise). */
inline Err lastError() {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}
inline Err check(cudaError_t e) { return e == cudaSuccess ? nullptr : cudaGetErrorString(e); }

inline unsigned blocksFor(int64_t n, int threads, int64_t cap = 65535LL * 16) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return (unsigned)(b > cap ? cap : b);
}

// Grid-stride loop over [0, n).
#define GRID_LOOP(i, n) for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// ---- 16-bit storage formats ----------------------------------------------------------------------
__host__ __device__ inline uint32_t f32Bits(float x) {
  union { float f; uint32_t u; } v;
  v.f = x;
  return v.u;
}
__host__ __device__ inline float bitsF32(uint32_t u) {
  union { float f; uint32_t u; } v;
  v.u = u;
  return v.f;
}
__host__ __device__ inline uint16_t f32ToBf16(float x) {
  uint32_t bits = f32Bits(x);
  if (x != x) return (uint16_t)(((bits >> 16) | 0x0040) & 0xffff);
  uint32_t rounded = bits + 0x7fffu + ((bits >> 16) & 1u);
  return (uint16_t)(rounded >> 16);
}
__host__ __device__ inline float bf16ToF32(uint16_t b) { return bitsF32((uint32_t)b << 16); }
__host__ __device__ inline uint16_t f32ToF16(float x) {
  uint32_t bits = f32Bits(x);
  uint32_t sign = (bits >> 16) & 0x8000u;
  int exponent = (int)((bits >> 23) & 0xff);
  uint32_t mantissa = bits & 0x7fffffu;
  if (exponent == 0xff) return (uint16_t)(mantissa != 0 ? (sign | 0x7e00u | (mantissa >> 13)) : (sign | 0x7c00u));
  int e = exponent - 127;
  if (e > 15) return (uint16_t)(sign | 0x7c00u);
  if (e >= -14) {
    uint32_t half = ((uint32_t)(e + 15) << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++;
    return (uint16_t)(sign | half);
  }
  if (e < -25) return (uint16_t)sign;
  uint32_t full = mantissa | 0x800000u;
  int shift = -e - 1;  // 14 .. 24
  uint32_t half = full >> shift;
  uint32_t rest = full & ((1u << shift) - 1u);
  uint32_t halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (half & 1u))) half++;
  return (uint16_t)(sign | half);
}
__host__ __device__ inline float f16ToF32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    // ±mantissa · 2^-24, exact in f32.
    float v = (float)mantissa * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (exponent == 0x1f) return bitsF32(sign | 0x7f800000u | (mantissa << 13));
  return bitsF32(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}
/** f32 → i32 by value: truncate toward zero, saturate, NaN → 0 (core's f32ToI32). */
__host__ __device__ inline int32_t f64ToI32(double x) {
  if (x != x) return 0;
  if (x >= 2147483647.0) return 2147483647;
  if (x <= -2147483648.0) return (int32_t)(-2147483647 - 1);
  return (int32_t)x;
}

// ---- reductions ----------------------------------------------------------------------------------
__device__ inline float warpSum(float v) {
#pragma unroll
  for (int o = ECOMLA_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warpMax(float v) {
#pragma unroll
  for (int o = ECOMLA_WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ inline double warpSumD(double v) {
#pragma unroll
  for (int o = ECOMLA_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
/** Sum over the block (blockDim.x a multiple of the warp size, ≤ 1024); every thread gets the result. */
template <typename T>
__device__ inline T blockSum(T v, T* shared /* ≥ 1024/ECOMLA_WARP + 1 */) {
  const int lane = threadIdx.x % ECOMLA_WARP, warp = threadIdx.x / ECOMLA_WARP, warps = blockDim.x / ECOMLA_WARP;
#pragma unroll
  for (int o = ECOMLA_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();  // shared may still be read by a previous reduction
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T total = 0;
  for (int w = 0; w < warps; w++) total += shared[w];
  return total;
}
/** Max over the block; NaN propagates (fmaxf would drop it). */
__device__ inline float nanMax(float a, float b) { return (a != a || b != b) ? NAN : fmaxf(a, b); }
__device__ inline float blockMax(float v, float* shared) {
  const int lane = threadIdx.x % ECOMLA_WARP, warp = threadIdx.x / ECOMLA_WARP, warps = blockDim.x / ECOMLA_WARP;
#pragma unroll
  for (int o = ECOMLA_WARP / 2; o > 0; o >>= 1) v = nanMax(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = -INFINITY;
  for (int w = 0; w < warps; w++) total = nanMax(total, shared[w]);
  return total;
}

__device__ inline float sigmoidf(float x) {
  if (x >= 0.f) return 1.f / (1.f + expf(-x));
  float e = expf(x);
  return e / (1.f + e);
}

template <typename T>
__host__ __device__ inline T* at(uint64_t p) { return reinterpret_cast<T*>(p); }

}  // namespace ecomla_gpu
