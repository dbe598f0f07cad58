// The required primitives: fill, strided copy (+accumulate), cast, broadcasting binary ops, unary
// ops and their derivatives, last-axis reductions, sum-to-shape, embedding gather/scatter.
// Semantics follow core's reference backend (packages/core/src/backends/reference).
#include "common.cuh"

namespace ecomla_gpu {

struct Dims6 {
  int rank;
  int64_t shape[6];
  int64_t s0[6];  // strides of the first operand
  int64_t s1[6];  // strides of the second operand
};

/** The two strided positions of linear index i of `d.shape` (row-major). */
__device__ inline void stridedPair(const Dims6& d, int64_t i, int64_t* p0, int64_t* p1) {
  int64_t a = 0, b = 0;
  for (int axis = d.rank - 1; axis >= 0; axis--) {
    const int64_t extent = d.shape[axis];
    const int64_t c = i % extent;
    i /= extent;
    a += c * d.s0[axis];
    b += c * d.s1[axis];
  }
  *p0 = a;
  *p1 = b;
}

// ---- fill ---------------------------------------------------------------------------------------
template <typename T>
__global__ void fillKernel(T* out, T value, int64_t n) {
  GRID_LOOP(i, n) out[i] = value;
}

Err fill(uint64_t out, int dtype, double value, int64_t n, int64_t offset) {
  if (n <= 0) return nullptr;
  const unsigned blocks = blocksFor(n, 256);
  switch (dtype) {
    case F32: fillKernel<float><<<blocks, 256, 0, stream()>>>(at<float>(out) + offset, (float)value, n); break;
    case I32: fillKernel<int32_t><<<blocks, 256, 0, stream()>>>(at<int32_t>(out) + offset, f64ToI32(value), n); break;
    case BF16: fillKernel<uint16_t><<<blocks, 256, 0, stream()>>>(at<uint16_t>(out) + offset, f32ToBf16((float)value), n); break;
    case F16: fillKernel<uint16_t><<<blocks, 256, 0, stream()>>>(at<uint16_t>(out) + offset, f32ToF16((float)value), n); break;
    default: return "fill: unknown dtype";
  }
  return lastError();
}

// ---- strided copy -------------------------------------------------------------------------------
template <typename T>
__device__ inline T addStored(T old, T incoming, int dtype) {
  return old + incoming;
}
template <>
__device__ inline uint16_t addStored<uint16_t>(uint16_t old, uint16_t incoming, int dtype) {
  if (dtype == BF16) return f32ToBf16(bf16ToF32(old) + bf16ToF32(incoming));
  return f32ToF16(f16ToF32(old) + f16ToF32(incoming));
}

/** mode 0 store, 1 accumulate (dst positions distinct), 2 atomic accumulate (f32/i32). */
template <typename T>
__global__ void copyStridedKernel(const T* src, T* dst, Dims6 d, int64_t n, int mode, int dtype) {
  GRID_LOOP(i, n) {
    int64_t s, t;
    stridedPair(d, i, &s, &t);
    if (mode == 0) dst[t] = src[s];
    else if (mode == 1) dst[t] = addStored<T>(dst[t], src[s], dtype);
  }
}
template <typename T>
__global__ void copyStridedAtomicKernel(const T* src, T* dst, Dims6 d, int64_t n) {
  GRID_LOOP(i, n) {
    int64_t s, t;
    stridedPair(d, i, &s, &t);
    atomicAdd(dst + t, src[s]);
  }
}
/** Serial order (one thread): repeated destinations see the reference's sequential semantics. */
template <typename T>
__global__ void copyStridedSerialKernel(const T* src, T* dst, Dims6 d, int64_t n, bool accumulate, int dtype) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  for (int64_t i = 0; i < n; i++) {
    int64_t s, t;
    stridedPair(d, i, &s, &t);
    dst[t] = accumulate ? addStored<T>(dst[t], src[s], dtype) : src[s];
  }
}

Err copyStrided(uint64_t src, int64_t srcOffset, uint64_t dst, int64_t dstOffset, int dtype, int rank,
                const int64_t* shape, const int64_t* srcStrides, const int64_t* dstStrides, bool accumulate) {
  if (rank > 6) return "copyStrided: rank > 6";
  Dims6 d{};
  d.rank = rank;
  int64_t n = 1;
  bool injective = true;  // no repeated destination (a zero dst stride on an axis longer than 1)
  for (int i = 0; i < rank; i++) {
    d.shape[i] = shape[i];
    d.s0[i] = srcStrides[i];
    d.s1[i] = dstStrides[i];
    n *= shape[i];
    if (shape[i] > 1 && dstStrides[i] == 0) injective = false;
  }
  if (n == 0) return nullptr;
  if (rank == 0) { d.rank = 1; d.shape[0] = 1; d.s0[0] = d.s1[0] = 0; }
  const unsigned blocks = blocksFor(n, 256);
  const bool wide = dtype == F32 || dtype == I32;
  if (wide) {
    // f32 and i32 are both 4 bytes; accumulation differs, so dispatch on the type.
    if (dtype == F32) {
      const float* s = at<float>(src) + srcOffset;
      float* t = at<float>(dst) + dstOffset;
      if (!injective && accumulate) copyStridedAtomicKernel<float><<<blocks, 256, 0, stream()>>>(s, t, d, n);
      else if (!injective) copyStridedSerialKernel<float><<<1, 1, 0, stream()>>>(s, t, d, n, false, dtype);
      else copyStridedKernel<float><<<blocks, 256, 0, stream()>>>(s, t, d, n, accumulate ? 1 : 0, dtype);
    } else {
      const int32_t* s = at<int32_t>(src) + srcOffset;
      int32_t* t = at<int32_t>(dst) + dstOffset;
      if (!injective && accumulate) copyStridedAtomicKernel<int32_t><<<blocks, 256, 0, stream()>>>(s, t, d, n);
      else if (!injective) copyStridedSerialKernel<int32_t><<<1, 1, 0, stream()>>>(s, t, d, n, false, dtype);
      else copyStridedKernel<int32_t><<<blocks, 256, 0, stream()>>>(s, t, d, n, accumulate ? 1 : 0, dtype);
    }
  } else {
    const uint16_t* s = at<uint16_t>(src) + srcOffset;
    uint16_t* t = at<uint16_t>(dst) + dstOffset;
    if (!injective) copyStridedSerialKernel<uint16_t><<<1, 1, 0, stream()>>>(s, t, d, n, accumulate, dtype);
    else copyStridedKernel<uint16_t><<<blocks, 256, 0, stream()>>>(s, t, d, n, accumulate ? 1 : 0, dtype);
  }
  return lastError();
}

// ---- cast ---------------------------------------------------------------------------------------
__device__ inline double loadAs(const void* p, int dtype, int64_t i) {
  switch (dtype) {
    case F32: return (double)((const float*)p)[i];
    case I32: return (double)((const int32_t*)p)[i];
    case BF16: return (double)bf16ToF32(((const uint16_t*)p)[i]);
    default: return (double)f16ToF32(((const uint16_t*)p)[i]);
  }
}
__global__ void castKernel(const void* src, int srcDtype, void* dst, int dstDtype, int64_t n) {
  GRID_LOOP(i, n) {
    if (srcDtype == dstDtype) {
      if (srcDtype == F32 || srcDtype == I32) ((uint32_t*)dst)[i] = ((const uint32_t*)src)[i];
      else ((uint16_t*)dst)[i] = ((const uint16_t*)src)[i];
      continue;
    }
    const double v = loadAs(src, srcDtype, i);
    switch (dstDtype) {
      case F32: ((float*)dst)[i] = (float)v; break;
      case I32: ((int32_t*)dst)[i] = f64ToI32(v); break;
      // i32 → bf16/f16 rounds through f32 first (as PyTorch); 16-bit → 16-bit is exact through f32.
      case BF16: ((uint16_t*)dst)[i] = f32ToBf16((float)v); break;
      default: ((uint16_t*)dst)[i] = f32ToF16((float)v); break;
    }
  }
}

Err cast(uint64_t src, int srcDtype, uint64_t dst, int dstDtype, int64_t n) {
  if (n <= 0) return nullptr;
  castKernel<<<blocksFor(n, 256), 256, 0, stream()>>>(at<void>(src), srcDtype, at<void>(dst), dstDtype, n);
  return lastError();
}

// ---- binary -------------------------------------------------------------------------------------
/** Math.pow semantics: NaN exponent → NaN, |x| = 1 with an infinite exponent → NaN (C's pow gives 1). */
__device__ inline float jsPow(float x, float y) {
  if (y != y) return NAN;
  if (fabsf(x) == 1.f && isinf(y)) return NAN;
  return powf(x, y);
}
__device__ inline float binaryOp(int op, float x, float y) {
  switch (op) {
    case B_ADD: return x + y;
    case B_SUB: return x - y;
    case B_MUL: return x * y;
    case B_DIV: return x / y;
    case B_MAX: return nanMax(x, y);
    case B_MIN: return (x != x || y != y) ? NAN : fminf(x, y);
    default: return jsPow(x, y);
  }
}
__global__ void binarySameKernel(int op, const float* a, const float* b, float* out, int64_t n) {
  GRID_LOOP(i, n) out[i] = binaryOp(op, a[i], b[i]);
}
__global__ void binaryBroadcastKernel(int op, const float* a, const float* b, float* out, Dims6 d, int64_t n) {
  GRID_LOOP(i, n) {
    int64_t ia, ib;
    stridedPair(d, i, &ia, &ib);
    out[i] = binaryOp(op, a[ia], b[ib]);
  }
}

/** Strides that read `shape` broadcast to `outShape` (same rank; size-1 axes get stride 0). */
static void broadcastStrides(const int64_t* shape, const int64_t* outShape, int rank, int64_t* strides) {
  int64_t stride = 1;
  for (int i = rank - 1; i >= 0; i--) {
    strides[i] = (shape[i] == 1 && outShape[i] != 1) ? 0 : stride;
    stride *= shape[i];
  }
}

Err binary(int op, uint64_t a, const int64_t* aShape, uint64_t b, const int64_t* bShape, uint64_t out,
           const int64_t* outShape, int rank) {
  int64_t n = 1;
  bool same = true;
  for (int i = 0; i < rank; i++) {
    n *= outShape[i];
    same = same && aShape[i] == outShape[i] && bShape[i] == outShape[i];
  }
  if (n == 0) return nullptr;
  if (same) {
    binarySameKernel<<<blocksFor(n, 256), 256, 0, stream()>>>(op, at<float>(a), at<float>(b), at<float>(out), n);
  } else {
    Dims6 d{};
    d.rank = rank;
    for (int i = 0; i < rank; i++) d.shape[i] = outShape[i];
    broadcastStrides(aShape, outShape, rank, d.s0);
    broadcastStrides(bShape, outShape, rank, d.s1);
    binaryBroadcastKernel<<<blocksFor(n, 256), 256, 0, stream()>>>(op, at<float>(a), at<float>(b), at<float>(out), d, n);
  }
  return lastError();
}

// ---- unary --------------------------------------------------------------------------------------
#define ECOMLA_INV_SQRT2 0.70710678118654752440f
#define ECOMLA_INV_SQRT_2PI 0.39894228040143267794f

__device__ inline float unaryOp(int op, float x, float alpha) {
  switch (op) {
    case U_NEG: return -x;
    case U_EXP: return expf(x);
    case U_LOG: return logf(x);
    case U_SQRT: return sqrtf(x);
    case U_RSQRT: return 1.f / sqrtf(x);
    case U_ABS: return fabsf(x);
    case U_SQUARE: return x * x;
    case U_RECIPROCAL: return 1.f / x;
    case U_RELU: return x > 0.f ? x : (x != x ? NAN : 0.f);
    case U_SIGMOID: return sigmoidf(x);
    case U_SILU: return x * sigmoidf(x);
    case U_TANH: return tanhf(x);
    case U_GELU: return 0.5f * x * erfcf(-x * ECOMLA_INV_SQRT2);
    case U_SCALE: return alpha * x;
    case U_ADD_SCALAR: return x + alpha;
    default: return jsPow(x, alpha);
  }
}
__device__ inline float unaryDerivative(int op, float x, float alpha) {
  switch (op) {
    case U_NEG: return -1.f;
    case U_EXP: return expf(x);
    case U_LOG: return 1.f / x;
    case U_SQRT: return 0.5f / sqrtf(x);
    case U_RSQRT: return -0.5f / (x * sqrtf(x));
    case U_ABS: return x > 0.f ? 1.f : x < 0.f ? -1.f : (x != x ? NAN : 0.f);
    case U_SQUARE: return 2.f * x;
    case U_RECIPROCAL: return -1.f / (x * x);
    case U_RELU: return x > 0.f ? 1.f : (x != x ? NAN : 0.f);
    case U_SIGMOID: { float s = sigmoidf(x); return s * (1.f - s); }
    case U_SILU: { float s = sigmoidf(x); return s * (1.f + x * (1.f - s)); }
    case U_TANH: { float t = tanhf(x); return 1.f - t * t; }
    case U_GELU: return 0.5f * erfcf(-x * ECOMLA_INV_SQRT2) + x * ECOMLA_INV_SQRT_2PI * expf(-0.5f * x * x);
    case U_SCALE: return alpha;
    case U_ADD_SCALAR: return 1.f;
    default: return alpha == 0.f ? 0.f : alpha * jsPow(x, alpha - 1.f);
  }
}
__global__ void unaryKernel(int op, const float* x, float* out, int64_t n, float alpha) {
  GRID_LOOP(i, n) out[i] = unaryOp(op, x[i], alpha);
}
__global__ void unaryBackwardKernel(int op, const float* x, const float* dy, float* dx, int64_t n, float alpha) {
  GRID_LOOP(i, n) dx[i] = dy[i] * unaryDerivative(op, x[i], alpha);
}

Err unary(int op, uint64_t x, uint64_t out, int64_t n, float alpha) {
  if (op < 0 || op > U_POW_SCALAR) return "unary: unknown op id";
  if (n <= 0) return nullptr;
  unaryKernel<<<blocksFor(n, 256), 256, 0, stream()>>>(op, at<float>(x), at<float>(out), n, alpha);
  return lastError();
}
Err unaryBackward(int op, uint64_t x, uint64_t /*y*/, uint64_t dy, uint64_t dx, int64_t n, float alpha) {
  if (op < 0 || op > U_POW_SCALAR) return "unaryBackward: unknown op id";
  if (n <= 0) return nullptr;
  unaryBackwardKernel<<<blocksFor(n, 256), 256, 0, stream()>>>(op, at<float>(x), at<float>(dy), at<float>(dx), n, alpha);
  return lastError();
}

// ---- reductions ---------------------------------------------------------------------------------
/** One block per row; sums in double (the reference sums in float64 and rounds once). */
__global__ void reduceRowsKernel(int op, const float* x, float* out, int64_t rows, int64_t cols) {
  __shared__ double sharedD[1024 / ECOMLA_WARP + 1];
  __shared__ float sharedF[1024 / ECOMLA_WARP + 1];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = x + r * cols;
    if (op == R_MAX) {
      float m = -INFINITY;
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = nanMax(m, row[j]);
      m = blockMax(m, sharedF);
      if (threadIdx.x == 0) out[r] = m;
    } else {
      double s = 0;
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        const double v = row[j];
        s += op == R_SUMSQ ? v * v : v;
      }
      s = blockSum<double>(s, sharedD);
      if (threadIdx.x == 0) out[r] = (float)(op == R_MEAN ? s / (double)cols : s);
    }
  }
}

Err reduceLastAxis(int op, uint64_t x, uint64_t out, int64_t rows, int64_t cols) {
  if (op < 0 || op > R_SUMSQ) return "reduceLastAxis: unknown op id";
  if (rows <= 0) return nullptr;
  const int threads = cols >= 2048 ? 512 : cols >= 256 ? 256 : 64;
  reduceRowsKernel<<<(unsigned)(rows < 65535 * 4 ? rows : 65535 * 4), threads, 0, stream()>>>(op, at<float>(x), at<float>(out), rows, cols);
  return lastError();
}

/**
 * out[o] = Σ x over the axes where out has extent 1 and x more: one thread per output element
 * loops over the reduced index space (coalesced when the kept axes are the trailing ones).
 */
struct SumDims {
  int rank, keptRank, redRank;
  int64_t keptShape[6], keptStride[6];  // kept axes of x: extent and x stride (out is contiguous over them)
  int64_t redShape[6], redStride[6];
};
__global__ void sumToShapeKernel(const float* x, float* out, SumDims d, int64_t outSize, int64_t redSize) {
  GRID_LOOP(o, outSize) {
    int64_t base = 0, rest = o;
    for (int a = d.keptRank - 1; a >= 0; a--) {
      base += (rest % d.keptShape[a]) * d.keptStride[a];
      rest /= d.keptShape[a];
    }
    double acc = 0;
    for (int64_t r = 0; r < redSize; r++) {
      int64_t off = 0, rr = r;
      for (int a = d.redRank - 1; a >= 0; a--) {
        off += (rr % d.redShape[a]) * d.redStride[a];
        rr /= d.redShape[a];
      }
      acc += x[base + off];
    }
    out[o] = (float)acc;
  }
}

Err sumToShape(uint64_t x, const int64_t* xShape, uint64_t out, const int64_t* outShape, int rank) {
  SumDims d{};
  d.rank = rank;
  int64_t stride = 1, outSize = 1, redSize = 1;
  int64_t xStride[6];
  for (int i = rank - 1; i >= 0; i--) { xStride[i] = stride; stride *= xShape[i]; }
  for (int i = 0; i < rank; i++) {
    if (outShape[i] == 1 && xShape[i] != 1) {
      d.redShape[d.redRank] = xShape[i];
      d.redStride[d.redRank++] = xStride[i];
      redSize *= xShape[i];
    } else {
      d.keptShape[d.keptRank] = xShape[i];
      d.keptStride[d.keptRank++] = xStride[i];
      outSize *= xShape[i];
    }
  }
  if (outSize == 0) return nullptr;
  sumToShapeKernel<<<blocksFor(outSize, 128), 128, 0, stream()>>>(at<float>(x), at<float>(out), d, outSize, redSize);
  return lastError();
}

// ---- embedding ----------------------------------------------------------------------------------
__global__ void embeddingKernel(const int32_t* ids, const float* table, float* out, int64_t n, int64_t vocab, int64_t dim, int* bad) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t id = ids[i];
    const bool ok = id >= 0 && id < vocab;
    if (!ok && threadIdx.x == 0) atomicOr(bad, 1);
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) out[i * dim + c] = ok ? table[id * dim + c] : 0.f;
  }
}
__global__ void embeddingBackwardKernel(const int32_t* ids, const float* dOut, float* dTable, int64_t n, int64_t vocab, int64_t dim, int* bad) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t id = ids[i];
    if (id < 0 || id >= vocab) {
      if (threadIdx.x == 0) atomicOr(bad, 1);
      continue;
    }
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) atomicAdd(dTable + id * dim + c, dOut[i * dim + c]);
  }
}

Err embedding(uint64_t ids, uint64_t table, uint64_t out, int64_t n, int64_t vocab, int64_t dim, uint64_t badIdFlag) {
  if (n <= 0 || dim <= 0) return nullptr;
  const int threads = dim >= 256 ? 256 : 64;
  embeddingKernel<<<(unsigned)(n < 65535 * 4 ? n : 65535 * 4), threads, 0, stream()>>>(at<int32_t>(ids), at<float>(table), at<float>(out), n, vocab, dim, at<int>(badIdFlag));
  return lastError();
}
Err embeddingBackward(uint64_t ids, uint64_t dOut, uint64_t dTable, int64_t n, int64_t vocab, int64_t dim, uint64_t badIdFlag) {
  if (n <= 0 || dim <= 0) return nullptr;
  const int threads = dim >= 256 ? 256 : 64;
  embeddingBackwardKernel<<<(unsigned)(n < 65535 * 4 ? n : 65535 * 4), threads, 0, stream()>>>(at<int32_t>(ids), at<float>(dOut), at<float>(dTable), n, vocab, dim, at<int>(badIdFlag));
  return lastError();
}

}  // namespace ecomla_gpu
