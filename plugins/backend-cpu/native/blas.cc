// OpenBLAS sgemm for every GEMM, LAPACK dgesdd/sgesdd for the SVD capability.
#include "blas.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

extern "C" {
void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda, double* s, double* u,
             const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork, int* iwork, int* info);
void sgesdd_(const char* jobz, const int* m, const int* n, float* a, const int* lda, float* s, float* u,
             const int* ldu, float* vt, const int* ldvt, float* work, const int* lwork, int* iwork, int* info);
}

namespace ecomla {

void gemm(const GemmParams& p) {
  if (p.m == 0 || p.n == 0) return;
  const CBLAS_TRANSPOSE ta = p.transA ? CblasTrans : CblasNoTrans, tb = p.transB ? CblasTrans : CblasNoTrans;
  for (int64_t i = 0; i < p.batch; i++) {
    float* c = p.c + i * p.strideC;
    if (p.beta == 0.f) {
      // beta = 0 must overwrite C even when it holds NaN; do not rely on the BLAS for that.
      for (int64_t r = 0; r < p.m; r++) std::memset(c + r * p.ldc, 0, p.n * sizeof(float));
      if (p.k == 0 || p.alpha == 0.f) continue;
    } else if (p.k == 0 || p.alpha == 0.f) {
      for (int64_t r = 0; r < p.m; r++)
        for (int64_t j = 0; j < p.n; j++) c[r * p.ldc + j] *= p.beta;
      continue;
    }
    if (p.m == 1) {
      // One row (a decode step's projections): a matrix-vector product. OpenBLAS's sgemm packs B
      // for m = 1 and runs several times slower than its sgemv on the same bytes.
      const float* b = p.b + i * p.strideB;
      const blasint incx = p.transA ? (blasint)p.lda : 1;
      if (p.transB) {  // B stored [n, k]: c = alpha·B·a + beta·c
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)p.n, (blasint)p.k, p.alpha, b, (blasint)p.ldb, p.a + i * p.strideA, incx,
                    p.beta == 0.f ? 0.f : p.beta, c, 1);
      } else {  // B stored [k, n]: c = alpha·Bᵀ·a + beta·c
        cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)p.k, (blasint)p.n, p.alpha, b, (blasint)p.ldb, p.a + i * p.strideA, incx,
                    p.beta == 0.f ? 0.f : p.beta, c, 1);
      }
      continue;
    }
    cblas_sgemm(CblasRowMajor, ta, tb, (blasint)p.m, (blasint)p.n, (blasint)p.k, p.alpha, p.a + i * p.strideA,
                (blasint)p.lda, p.b + i * p.strideB, (blasint)p.ldb, p.beta == 0.f ? 0.f : p.beta, c, (blasint)p.ldc);
  }
}

namespace {
inline void gesdd(const char* j, const int* m, const int* n, double* a, const int* lda, double* s, double* u, const int* ldu,
                  double* vt, const int* ldvt, double* w, const int* lw, int* iw, int* info) {
  dgesdd_(j, m, n, a, lda, s, u, ldu, vt, ldvt, w, lw, iw, info);
}
inline void gesdd(const char* j, const int* m, const int* n, float* a, const int* lda, float* s, float* u, const int* ldu,
                  float* vt, const int* ldvt, float* w, const int* lw, int* iw, int* info) {
  sgesdd_(j, m, n, a, lda, s, u, ldu, vt, ldvt, w, lw, iw, info);
}

// T = double (dgesdd) for float64 input, float (sgesdd, what PyTorch runs on .float() weights) for float32.
template <typename T>
int svd_impl(const T* a, int64_t m, int64_t n, std::vector<double>& u, std::vector<double>& s, std::vector<double>& vt) {
  const int K = (int)std::min(m, n);
  s.assign(K, 0);
  u.assign((size_t)m * K, 0);
  vt.assign((size_t)K * n, 0);
  std::vector<int> iwork(8 * (size_t)K);
  std::vector<T> ss(K), uu((size_t)m * K), vv((size_t)K * n);
  int info = 0, lwork = -1;
  T query = 0;
  // LAPACK is column-major. A tall matrix goes in as itself (a transposed copy), as PyTorch does:
  // OpenBLAS's gesdd is markedly faster on M ≥ N there than on the wide transpose. A wide one goes
  // in as Aᵀ without copying: Aᵀ = U'·S·V'ᵀ gives A = V'·S·U'ᵀ, so LAPACK's V'ᵀ (k × m, col-major)
  // is our U (m × k, row-major) and its U' is our Vᵀ.
  const bool tall = m > n;
  const int M = tall ? (int)m : (int)n, N = tall ? (int)n : (int)m;
  std::vector<T> work((size_t)m * n);
  if (tall) {
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) work[(size_t)j * m + i] = a[i * n + j];
  } else {
    std::copy(a, a + m * n, work.begin());
  }
  const int lda = std::max(1, M), ldu = std::max(1, M), ldvt = std::max(1, K);
  // Column-major outputs: Ucm (M × K), VTcm (K × N).
  std::vector<T>& ucm = tall ? uu : vv;
  std::vector<T>& vtcm = tall ? vv : uu;
  gesdd("S", &M, &N, work.data(), &lda, ss.data(), ucm.data(), &ldu, vtcm.data(), &ldvt, &query, &lwork, iwork.data(), &info);
  if (info != 0) return info;
  lwork = (int)query;
  std::vector<T> scratch(std::max(1, lwork));
  gesdd("S", &M, &N, work.data(), &lda, ss.data(), ucm.data(), &ldu, vtcm.data(), &ldvt, scratch.data(), &lwork, iwork.data(), &info);
  for (int i = 0; i < K; i++) s[i] = ss[i];
  if (tall) {
    // Ucm (m × K col-major) → U row-major; VTcm (K × n col-major) → Vᵀ row-major.
    for (int64_t i = 0; i < m; i++)
      for (int j = 0; j < K; j++) u[(size_t)i * K + j] = uu[(size_t)j * m + i];
    for (int i = 0; i < K; i++)
      for (int64_t j = 0; j < n; j++) vt[(size_t)i * n + j] = vv[(size_t)j * K + i];
  } else {
    // LAPACK's VTcm of Aᵀ (K × m col-major) is U row-major (m × K); its Ucm (n × K col-major) is Vᵀ row-major (K × n).
    std::copy(uu.begin(), uu.end(), u.begin());
    std::copy(vv.begin(), vv.end(), vt.begin());
  }
  return info;
}
}  // namespace

int svd(const double* a, int64_t m, int64_t n, std::vector<double>& u, std::vector<double>& s, std::vector<double>& vt) {
  return svd_impl(a, m, n, u, s, vt);
}

int svd(const float* a, int64_t m, int64_t n, std::vector<double>& u, std::vector<double>& s, std::vector<double>& vt) {
  return svd_impl(a, m, n, u, s, vt);
}

std::vector<double> bench_sgemm(int64_t m, int64_t n, int64_t k, int reps) {
  // Operands are kept between calls (same shape, no re-allocation) so a caller can interleave
  // single direct calls with backend calls and compare under the same machine load.
  static std::vector<float> a, b, c;
  static int64_t shape[3] = {0, 0, 0};
  if (shape[0] != m || shape[1] != n || shape[2] != k) {
    a.assign(m * k, 0), b.assign(k * n, 0), c.assign(m * n, 0);
    for (size_t i = 0; i < a.size(); i++) a[i] = (float)((i * 2654435761u) % 1000) / 1000.f - 0.5f;
    for (size_t i = 0; i < b.size(); i++) b[i] = (float)((i * 2246822519u) % 1000) / 1000.f - 0.5f;
    shape[0] = m, shape[1] = n, shape[2] = k;
  }
  std::vector<double> ms;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)n, (blasint)k, 1.f, a.data(),
                (blasint)k, b.data(), (blasint)n, 0.f, c.data(), (blasint)n);
    auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return ms;
}

void blas_set_threads(int n) { openblas_set_num_threads(n); }
int blas_threads() { return openblas_get_num_threads(); }
std::string blas_config() { return openblas_get_config(); }

}  // namespace ecomla
