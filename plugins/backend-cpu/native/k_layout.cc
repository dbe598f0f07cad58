// Layout kernels: fill, strided copy, dtype casts, embedding gather/scatter-add.
#include <algorithm>
#include <vector>

#include "kernels.h"

namespace ecomla {
namespace ECOMLA_NS {
namespace {

inline uint32_t f32_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}
inline float bits_f32(uint32_t b) {
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

// Round to nearest even, as PyTorch/numpy; NaN stays a quiet NaN.
inline uint16_t to_bf16(float x) {
  uint32_t bits = f32_bits(x);
  if (x != x) return (uint16_t)((bits >> 16) | 0x0040);
  return (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}
inline float from_bf16(uint16_t h) { return bits_f32((uint32_t)h << 16); }

inline uint16_t to_f16(float x) {
  uint32_t bits = f32_bits(x);
  uint32_t sign = (bits >> 16) & 0x8000, exponent = (bits >> 23) & 0xff, mantissa = bits & 0x7fffff;
  if (exponent == 0xff) return (uint16_t)(mantissa ? (sign | 0x7e00 | (mantissa >> 13)) : (sign | 0x7c00));
  int e = (int)exponent - 127;
  if (e > 15) return (uint16_t)(sign | 0x7c00);
  if (e >= -14) {
    uint32_t half = ((uint32_t)(e + 15) << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;  // a carry into the exponent is correct rounding
    return (uint16_t)(sign | half);
  }
  if (e < -25) return (uint16_t)sign;
  uint32_t full = mantissa | 0x800000;
  int shift = -e - 1;
  uint32_t half = full >> shift, rest = full & ((1u << shift) - 1), halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (half & 1))) half++;
  return (uint16_t)(sign | half);
}
inline float from_f16(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  if (exponent == 0) {
    float v = (float)mantissa * 5.9604644775390625e-8f;  // 2^-24
    return sign ? -v : v;
  }
  if (exponent == 0x1f) return bits_f32(sign | 0x7f800000 | (mantissa << 13));
  return bits_f32(sign | ((exponent + 112) << 23) | (mantissa << 13));
}
inline int32_t to_i32(float x) {
  if (x != x) return 0;
  if (x >= 2147483647.f) return 2147483647;
  if (x <= -2147483648.f) return (int32_t)-2147483648LL;
  return (int32_t)x;
}

// The dtype switches here (and the element sizes in addon.cc) know f32, bf16, f16, i32 only.
static_assert(ECOMLA_DTYPE_COUNT == 4, "k_layout.cc and addon.cc handle f32, bf16, f16, i32: add the new DType");

inline float load_as_f32(const void* p, int dtype, int64_t i) {
  switch (dtype) {
    case F32: return ((const float*)p)[i];
    case BF16: return from_bf16(((const uint16_t*)p)[i]);
    case F16: return from_f16(((const uint16_t*)p)[i]);
    default: return (float)((const int32_t*)p)[i];
  }
}
inline void store_from_f32(void* p, int dtype, int64_t i, float x) {
  switch (dtype) {
    case F32: ((float*)p)[i] = x; break;
    case BF16: ((uint16_t*)p)[i] = to_bf16(x); break;
    case F16: ((uint16_t*)p)[i] = to_f16(x); break;
    default: ((int32_t*)p)[i] = to_i32(x); break;
  }
}

constexpr int64_t kElementwiseGrain = 1 << 15;

}  // namespace

void fill(void* out, int dtype, double value, int64_t n) {
  if (dtype == F32 || dtype == I32) {
    uint32_t word = dtype == F32 ? f32_bits((float)value) : (uint32_t)(int32_t)value;
    uint32_t* o = (uint32_t*)out;
    parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) { std::fill(o + b, o + e, word); });
  } else {
    uint16_t half = dtype == BF16 ? to_bf16((float)value) : to_f16((float)value);
    uint16_t* o = (uint16_t*)out;
    parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) { std::fill(o + b, o + e, half); });
  }
}

void copy_strided(const void* src, void* dst, int dtype, int rank, const int64_t* shapeIn, const int64_t* srcIn,
                  const int64_t* dstIn, bool accumulate) {
  // Drop size-1 axes and merge axes that are contiguous in both views, so the common cases
  // (plain copy, permute of a few big axes) become long inner runs.
  int64_t shape[8], ss[8], ds[8];
  int r = 0;
  for (int d = 0; d < rank; d++) {
    if (shapeIn[d] == 0) return;
    if (shapeIn[d] == 1) continue;
    if (r > 0 && ss[r - 1] == srcIn[d] * shapeIn[d] && ds[r - 1] == dstIn[d] * shapeIn[d]) {
      shape[r - 1] *= shapeIn[d];
      ss[r - 1] = srcIn[d];
      ds[r - 1] = dstIn[d];
      continue;
    }
    shape[r] = shapeIn[d];
    ss[r] = srcIn[d];
    ds[r] = dstIn[d];
    r++;
  }
  if (r == 0) {
    shape[0] = 1;
    ss[0] = ds[0] = 0;
    r = 1;
  }
  const int64_t inner = shape[r - 1], sIn = ss[r - 1], dIn = ds[r - 1];
  int64_t outer = 1;
  for (int d = 0; d < r - 1; d++) outer *= shape[d];
  const int elem = (dtype == F32 || dtype == I32) ? 4 : 2;
  // Accumulating into a broadcast destination (stride 0) would race across threads.
  bool dstAliases = false;
  for (int d = 0; d < r; d++) dstAliases |= ds[d] == 0;
  auto rowRange = [&](int64_t b, int64_t e) {
    int64_t idx[8] = {0};
    int64_t rem = b;
    for (int d = r - 2; d >= 0; d--) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
    }
    for (int64_t o = b; o < e; o++) {
      int64_t so = 0, doff = 0;
      for (int d = 0; d < r - 1; d++) {
        so += idx[d] * ss[d];
        doff += idx[d] * ds[d];
      }
      if (!accumulate) {
        if (sIn == 1 && dIn == 1) {
          std::memcpy((char*)dst + doff * elem, (const char*)src + so * elem, inner * elem);
        } else if (elem == 4) {
          const uint32_t* s = (const uint32_t*)src + so;
          uint32_t* t = (uint32_t*)dst + doff;
          for (int64_t i = 0; i < inner; i++) t[i * dIn] = s[i * sIn];
        } else {
          const uint16_t* s = (const uint16_t*)src + so;
          uint16_t* t = (uint16_t*)dst + doff;
          for (int64_t i = 0; i < inner; i++) t[i * dIn] = s[i * sIn];
        }
      } else if (dtype == F32) {
        const float* s = (const float*)src + so;
        float* t = (float*)dst + doff;
        if (sIn == 1 && dIn == 1) {
          for (int64_t i = 0; i < inner; i++) t[i] += s[i];
        } else {
          for (int64_t i = 0; i < inner; i++) t[i * dIn] += s[i * sIn];
        }
      } else if (dtype == I32) {
        const int32_t* s = (const int32_t*)src + so;
        int32_t* t = (int32_t*)dst + doff;
        for (int64_t i = 0; i < inner; i++) t[i * dIn] = (int32_t)((uint32_t)t[i * dIn] + (uint32_t)s[i * sIn]);
      } else {
        for (int64_t i = 0; i < inner; i++) {
          float sum = load_as_f32(dst, dtype, doff + i * dIn) + load_as_f32(src, dtype, so + i * sIn);
          store_from_f32(dst, dtype, doff + i * dIn, sum);
        }
      }
      for (int d = r - 2; d >= 0; d--) {
        if (++idx[d] < shape[d]) break;
        idx[d] = 0;
      }
    }
  };
  if (accumulate && dstAliases) {
    rowRange(0, outer);
  } else if (outer == 1 && sIn == 1 && dIn == 1 && inner > kElementwiseGrain && !accumulate) {
    parallel_for(inner, kElementwiseGrain, [&](int64_t b, int64_t e) {
      std::memcpy((char*)dst + b * elem, (const char*)src + b * elem, (e - b) * elem);
    });
  } else {
    parallel_for(outer, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(inner, 1)), rowRange);
  }
}

void cast(const void* src, int srcDtype, void* dst, int dstDtype, int64_t n) {
  if (srcDtype == dstDtype) {
    const int elem = (srcDtype == F32 || srcDtype == I32) ? 4 : 2;
    parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
      std::memmove((char*)dst + b * elem, (const char*)src + b * elem, (e - b) * elem);
    });
    return;
  }
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    if (srcDtype == I32 && dstDtype == F32) {
      for (int64_t i = b; i < e; i++) ((float*)dst)[i] = (float)((const int32_t*)src)[i];
    } else if (srcDtype == F32 && dstDtype == BF16) {
      for (int64_t i = b; i < e; i++) ((uint16_t*)dst)[i] = to_bf16(((const float*)src)[i]);
    } else if (srcDtype == BF16 && dstDtype == F32) {
      for (int64_t i = b; i < e; i++) ((float*)dst)[i] = from_bf16(((const uint16_t*)src)[i]);
    } else {
      for (int64_t i = b; i < e; i++) store_from_f32(dst, dstDtype, i, load_as_f32(src, srcDtype, i));
    }
  });
}

void embedding(const int32_t* ids,  // (n)
               const float* table,  // (vocab, dim)
               float* out,          // (n, dim)
               int64_t n, int64_t vocab, int64_t dim) {
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= vocab)
      throw KernelError{"embedding: ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is outside [0, " +
                        std::to_string(vocab) + ")"};
  }
  parallel_for(n, std::max<int64_t>(1, 4096 / std::max<int64_t>(dim, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) std::memcpy(out + i * dim, table + (int64_t)ids[i] * dim, dim * sizeof(float));
  });
}

void embedding_backward(const int32_t* ids,  // (n)
                        const float* dOut,   // (n, dim)
                        float* dTable,       // (vocab, dim), accumulated
                        int64_t n, int64_t vocab, int64_t dim) {
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= vocab)
      throw KernelError{"embeddingBackward: ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                        " is outside [0, " + std::to_string(vocab) + ")"};
  }
  // Threads own disjoint column slices, so repeated ids never race.
  parallel_for(dim, 64, [&](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < n; i++) {
      float* t = dTable + (int64_t)ids[i] * dim;
      const float* g = dOut + i * dim;
      for (int64_t c = c0; c < c1; c++) t[c] += g[c];
    }
  });
}

}  // namespace ECOMLA_NS
}  // namespace ecomla
