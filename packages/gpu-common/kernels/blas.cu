// GEMM through cuBLAS or hipBLAS, loaded at run time with dlopen (neither is needed to build, and
// the Python wheels' copies work as well as the toolkit's). Only the four entry points used are
// declared here, with the enum values of the libraries' public headers.
#include "common.cuh"
#include <dlfcn.h>
#include <string>

namespace ecomla_gpu {

namespace {
typedef void* BlasHandle;
#ifdef ECOMLA_HIP
// hipblas.h: hipblasOperation_t HIPBLAS_OP_N = 111, HIPBLAS_OP_T = 112; hipblasStatus_t 0 = success.
const int OP_N = 111, OP_T = 112;
const char* CREATE = "hipblasCreate";
const char* SET_STREAM = "hipblasSetStream";
const char* SGEMM = "hipblasSgemmStridedBatched";
const char* SET_MATH = nullptr;
#else
// cublas_api.h: cublasOperation_t CUBLAS_OP_N = 0, CUBLAS_OP_T = 1; cublasMath_t CUBLAS_DEFAULT_MATH = 0,
// CUBLAS_TF32_TENSOR_OP_MATH = 3; cublasStatus_t 0 = success.
const int OP_N = 0, OP_T = 1;
const char* CREATE = "cublasCreate_v2";
const char* SET_STREAM = "cublasSetStream_v2";
const char* SGEMM = "cublasSgemmStridedBatched";
const char* SET_MATH = "cublasSetMathMode";
#endif
typedef int (*CreateFn)(BlasHandle*);
typedef int (*SetStreamFn)(BlasHandle, cudaStream_t);
typedef int (*SetMathFn)(BlasHandle, int);
typedef int (*SgemmFn)(BlasHandle, int, int, int, int, int, const float*, const float*, int, long long, const float*, int,
                       long long, const float*, float*, int, long long, int);

void* gLib = nullptr;
BlasHandle gHandle = nullptr;
SgemmFn gSgemm = nullptr;
SetMathFn gSetMath = nullptr;
int gMath = -1;
}  // namespace

__global__ void scaleMatrixKernel(float* c, int m, int n, int64_t ldc, int64_t strideC, int batch, float beta) {
  const int64_t total = (int64_t)batch * m * n;
  GRID_LOOP(i, total) {
    const int64_t j = i % n, row = (i / n) % m, b = i / ((int64_t)m * n);
    float* p = c + b * strideC + row * ldc + j;
    *p = beta == 0.f ? 0.f : beta * *p;
  }
}

bool blasLoaded() { return gHandle != nullptr; }

bool blasLoad(const char* const* paths, int count, std::string* loadedPath, std::string* errors) {
  if (gHandle) return true;
  for (int i = 0; i < count; i++) {
    void* lib = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = dlerror();
      *errors += std::string(paths[i]) + ": " + (why ? why : "dlopen failed") + "\n";
      continue;
    }
    CreateFn create = (CreateFn)dlsym(lib, CREATE);
    SetStreamFn setStream = (SetStreamFn)dlsym(lib, SET_STREAM);
    SgemmFn sgemm = (SgemmFn)dlsym(lib, SGEMM);
    if (!create || !setStream || !sgemm) {
      *errors += std::string(paths[i]) + ": loaded, but " + CREATE + "/" + SET_STREAM + "/" + SGEMM + " not all found\n";
      dlclose(lib);
      continue;
    }
    BlasHandle handle = nullptr;
    int status = create(&handle);
    if (status != 0) {
      *errors += std::string(paths[i]) + ": " + CREATE + " returned status " + std::to_string(status) + "\n";
      dlclose(lib);
      continue;
    }
    setStream(handle, stream());
    gLib = lib;
    gHandle = handle;
    gSgemm = sgemm;
    gSetMath = SET_MATH ? (SetMathFn)dlsym(lib, SET_MATH) : nullptr;
    *loadedPath = paths[i];
    return true;
  }
  return false;
}

/**
 * Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands and m/n; each
 * stored row-major matrix is its column-major transpose, so the trans flags carry over unchanged.
 * beta = 0 makes the library ignore C's content (NaN included), as the contract asks.
 */
Err gemm(int batch, int m, int n, int k, bool transA, bool transB, float alpha, float beta,
         uint64_t a, int64_t lda, int64_t strideA, uint64_t b, int64_t ldb, int64_t strideB,
         uint64_t c, int64_t ldc, int64_t strideC, bool tf32) {
  if (!gHandle) return "gemm: the BLAS library is not loaded";
  if (m == 0 || n == 0) return nullptr;
  if (gSetMath) {
    const int mode = tf32 ? 3 : 0;
    if (mode != gMath) { gSetMath(gHandle, mode); gMath = mode; }
  }
  if (k == 0) {
    // op(A)·op(B) is all zeros: C = beta·C (beta = 0 writes zeros without reading C).
    const int64_t total = (int64_t)batch * m * n;
    scaleMatrixKernel<<<blocksFor(total, 256), 256, 0, stream()>>>(at<float>(c), m, n, ldc, strideC, batch, beta);
    return lastError();
  }
  const int status = gSgemm(gHandle, transB ? OP_T : OP_N, transA ? OP_T : OP_N, n, m, k, &alpha,
                            at<float>(b), (int)ldb, (long long)strideB, at<float>(a), (int)lda, (long long)strideA, &beta,
                            at<float>(c), (int)ldc, (long long)strideC, batch);
  if (status != 0) return "gemm: the BLAS library returned an error status (invalid value or execution failure)";
  return lastError();
}

Err benchSgemm(int m, int n, int k, int repetitions, double* msOut) {
  if (!gHandle) return "benchSgemm: the BLAS library is not loaded";
  float *a = nullptr, *b = nullptr, *c = nullptr;
  cudaError_t e = cudaMalloc((void**)&a, sizeof(float) * (size_t)m * k);
  if (e == cudaSuccess) e = cudaMalloc((void**)&b, sizeof(float) * (size_t)k * n);
  if (e == cudaSuccess) e = cudaMalloc((void**)&c, sizeof(float) * (size_t)m * n);
  if (e == cudaSuccess) e = cudaMemsetAsync(a, 0, sizeof(float) * (size_t)m * k, stream());
  if (e == cudaSuccess) e = cudaMemsetAsync(b, 0, sizeof(float) * (size_t)k * n, stream());
  cudaEvent_t t0 = nullptr, t1 = nullptr;
  if (e == cudaSuccess) e = cudaEventCreate(&t0);
  if (e == cudaSuccess) e = cudaEventCreate(&t1);
  const float one = 1.f, zero = 0.f;
  if (e == cudaSuccess) {
    gSgemm(gHandle, OP_N, OP_N, n, m, k, &one, b, n, 0, a, k, 0, &zero, c, n, 0, 1);  // warm-up
    cudaEventRecord(t0, stream());
    for (int r = 0; r < repetitions; r++) gSgemm(gHandle, OP_N, OP_N, n, m, k, &one, b, n, 0, a, k, 0, &zero, c, n, 0, 1);
    cudaEventRecord(t1, stream());
    e = cudaEventSynchronize(t1);
    float ms = 0;
    if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, t0, t1);
    *msOut = ms;
  }
  if (t0) cudaEventDestroy(t0);
  if (t1) cudaEventDestroy(t1);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  return check(e);
}

}  // namespace ecomla_gpu
