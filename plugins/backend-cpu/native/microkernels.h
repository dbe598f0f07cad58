// Register-blocked block products for the fused attention kernels. Operands are small padded
// tiles in L1/L2: rows of 16-float vectors, so every inner step is broadcast + FMA.
#pragma once
#include <algorithm>
#include <vector>

#include "common.h"

namespace ecomla {
namespace ECOMLA_NS {

constexpr int BQ = 64;  // query rows per tile
constexpr int BK = 64;  // keys per tile (= 4 vectors, the width of the score tile)
#if defined(__AVX512F__)
constexpr int MR = 4;  // 4 rows × 4 vectors of accumulators: 16 of the 32 zmm registers
#else
constexpr int MR = 2;  // 2 rows × 4 vectors: 8 of the 16 ymm/xmm registers, the rest for operands
#endif
constexpr int CV = 4;  // vectors per column chunk of a register tile

inline int64_t round16(int64_t n) { return (n + 15) & ~int64_t(15); }

// C (R × CV·VL chunk of a BK-wide tile) = A (R × K, row stride lda) · Bt (K × BK) for that chunk.
template <int R>
inline void nt_rows(const float* A, int64_t lda, const float* Bt, int64_t K, float* C) {
  vf acc[R][CV];
  for (int i = 0; i < R; i++)
    for (int v = 0; v < CV; v++) acc[i][v] = vf{};
  for (int64_t k = 0; k < K; k++) {
    const float* b = Bt + k * BK;
    vf bv[CV];
    for (int v = 0; v < CV; v++) bv[v] = vload(b + v * VL);
    for (int i = 0; i < R; i++) {
      const vf a = vset1(A[i * lda + k]);
      for (int v = 0; v < CV; v++) acc[i][v] += a * bv[v];
    }
  }
  for (int i = 0; i < R; i++)
    for (int v = 0; v < CV; v++) vstore(C + i * BK + v * VL, acc[i][v]);
}

// C (rows × BK) = A (rows × K) · Bt (K × BK).
inline void nt_block(const float* A, int64_t lda, int64_t rows, const float* Bt, int64_t K, float* C) {
  static_assert(BK % (CV * VL) == 0, "a score tile is a whole number of register chunks");
  for (int64_t c0 = 0; c0 < BK; c0 += CV * VL) {
    int64_t i = 0;
    for (; i + MR <= rows; i += MR) nt_rows<MR>(A + i * lda, lda, Bt + c0, K, C + i * BK + c0);
    for (; i < rows; i++) nt_rows<1>(A + i * lda, lda, Bt + c0, K, C + i * BK + c0);
  }
}

// C (R × VL·NV, row stride ldc) += A (R × K, lda) · B (K × VL·NV, ldb).
template <int R, int NV>
inline void nn_rows(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t K, float* C, int64_t ldc) {
  vf acc[R][NV];
  for (int i = 0; i < R; i++)
    for (int v = 0; v < NV; v++) acc[i][v] = vload(C + i * ldc + v * VL);
  for (int64_t k = 0; k < K; k++) {
    vf b[NV];
    for (int v = 0; v < NV; v++) b[v] = vload(B + k * ldb + v * VL);
    for (int i = 0; i < R; i++) {
      const vf a = vset1(A[i * lda + k]);
      for (int v = 0; v < NV; v++) acc[i][v] += a * b[v];
    }
  }
  for (int i = 0; i < R; i++)
    for (int v = 0; v < NV; v++) vstore(C + i * ldc + v * VL, acc[i][v]);
}

template <int NV>
inline void nn_cols(const float* A, int64_t lda, int64_t rows, const float* B, int64_t ldb, int64_t K, float* C,
                    int64_t ldc) {
  int64_t i = 0;
  for (; i + MR <= rows; i += MR) nn_rows<MR, NV>(A + i * lda, lda, B, ldb, K, C + i * ldc, ldc);
  for (; i < rows; i++) nn_rows<1, NV>(A + i * lda, lda, B, ldb, K, C + i * ldc, ldc);
}

// C (rows × N) += A (rows × K) · B (K × N); N a multiple of VL.
inline void nn_block(const float* A, int64_t lda, int64_t rows, const float* B, int64_t ldb, int64_t K, float* C,
                     int64_t ldc, int64_t N) {
  for (int64_t n0 = 0; n0 < N; n0 += CV * VL) {
    switch (std::min<int64_t>(CV, (N - n0) / VL)) {
      case 4: nn_cols<4>(A, lda, rows, B + n0, ldb, K, C + n0, ldc); break;
      case 3: nn_cols<3>(A, lda, rows, B + n0, ldb, K, C + n0, ldc); break;
      case 2: nn_cols<2>(A, lda, rows, B + n0, ldb, K, C + n0, ldc); break;
      default: nn_cols<1>(A, lda, rows, B + n0, ldb, K, C + n0, ldc); break;
    }
  }
}

// Grow-only per-thread scratch: steady-state calls allocate nothing.
inline float* scratch(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace ECOMLA_NS
}  // namespace ecomla
