// GEMM and SVD through the system OpenBLAS (with its LAPACK).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ecomla {

struct GemmParams {
  int64_t batch, m, n, k;
  bool transA, transB;
  float alpha, beta;
  const float* a;  // (batch, m, k) or (batch, k, m) when transA, batch stride strideA
  int64_t lda, strideA;
  const float* b;  // (batch, k, n) or (batch, n, k) when transB
  int64_t ldb, strideB;
  float* c;  // (batch, m, n)
  int64_t ldc, strideC;
};

void gemm(const GemmParams& p);
// Thin SVD of a row-major (m × n) matrix; u (m × k), s (k), vt (k × n) row-major, k = min(m, n).
// Returns LAPACK's info (0 on success).
int svd(const double* a, int64_t m, int64_t n, std::vector<double>& u, std::vector<double>& s, std::vector<double>& vt);
int svd(const float* a, int64_t m, int64_t n, std::vector<double>& u, std::vector<double>& s, std::vector<double>& vt);
// Milliseconds of each of `reps` direct cblas_sgemm calls at m × n × k (after one warm-up call).
std::vector<double> bench_sgemm(int64_t m, int64_t n, int64_t k, int reps);
void blas_set_threads(int n);
int blas_threads();
std::string blas_config();

}  // namespace ecomla
