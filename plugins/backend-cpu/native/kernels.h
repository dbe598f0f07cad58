// The kernel table: every kernel of the TensorBackend contract (except GEMM/SVD, which are
// OpenBLAS/LAPACK in blas.cc). Pointers arrive already offset; shapes/strides are in elements.
#pragma once
#include "common.h"
// DType, BinaryOp, UnaryOp, ReduceOp (F32, B_ADD, U_NEG, R_SUM, …): generated from core's op table.
#include "ops.generated.h"

namespace ecomla {

struct AttentionParams {
  int64_t B, T, S, Hq, Hkv, Dqk, Dv;
  float scale;
  bool causal;
  const float* q;  // (B, T, Hq, Dqk) strided by qStrides
  int64_t qStrides[3];
  const float* k;  // (B, S, Hkv, Dqk) strided by kStrides
  int64_t kStrides[3];
  const float* v;  // (B, S, Hkv, Dv) strided by vStrides
  int64_t vStrides[3];
};

struct LossParams {
  const float* logits;  // (N, V)
  int64_t rows, vocab;
  float temperature;
  const float* weights;  // (N) or null
  float* loss;           // (N)
  float* grad;           // (N, V) or null; may alias logits
};

#define ECOMLA_KERNEL_LIST(X)                                                                                          \
  X(void, fill, (void* out, int dtype, double value, int64_t n))                                                       \
  X(void, copy_strided, (const void* src, void* dst, int dtype, int rank, const int64_t* shape, const int64_t* srcStrides, \
                         const int64_t* dstStrides, bool accumulate))                                                  \
  X(void, cast, (const void* src, int srcDtype, void* dst, int dstDtype, int64_t n))                                   \
  X(void, binary, (int op, const float* a, const int64_t* aShape, const float* b, const int64_t* bShape, float* out,    \
                   const int64_t* outShape, int rank))                                                                 \
  X(void, unary, (int op, const float* x, float* out, int64_t n, float alpha))                                         \
  X(void, unary_backward, (int op, const float* x, const float* y, const float* dy, float* dx, int64_t n, float alpha)) \
  X(void, reduce_last_axis, (int op, const float* x, float* out, int64_t rows, int64_t cols))                           \
  X(void, sum_to_shape, (const float* x, const int64_t* xShape, float* out, const int64_t* outShape, int rank))         \
  X(void, softmax, (const float* x, float* out, int64_t rows, int64_t cols))                                           \
  X(void, softmax_backward, (const float* y, const float* dy, float* dx, int64_t rows, int64_t cols))                   \
  X(void, rms_norm, (const float* x, const float* w, float* out, float* rstd, int64_t rows, int64_t cols, float eps))   \
  X(void, rms_norm_backward, (const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw,  \
                              int64_t rows, int64_t cols))                                                             \
  X(void, rope, (const float* x, float* out, int64_t B, int64_t T, int64_t H, int64_t D, bool interleaved,              \
                 const float* cosTable, const float* sinTable, int64_t P, int64_t posOffset, const int32_t* positions,   \
                 float scale, bool inverse))                                                                           \
  X(void, attention_forward, (const AttentionParams& p, float* out, float* lse))                                       \
  X(void, attention_backward, (const AttentionParams& p, const float* out, const float* lse, const float* dOut,         \
                               float* dq, float* dk, float* dv))                                                       \
  X(void, swiglu, (const float* gate, const float* up, float* out, int64_t n))                                         \
  X(void, swiglu_backward, (const float* gate, const float* up, const float* dOut, float* dGate, float* dUp, int64_t n)) \
  X(void, embedding, (const int32_t* ids, const float* table, float* out, int64_t n, int64_t vocab, int64_t dim))       \
  X(void, embedding_backward, (const int32_t* ids, const float* dOut, float* dTable, int64_t n, int64_t vocab, int64_t dim)) \
  X(void, cross_entropy, (const LossParams& p, const int32_t* labels))                                                 \
  X(void, kl_div, (const LossParams& p, const float* teacherLogits, const int32_t* teacherIndices,                    \
                   const float* teacherLogprobs, int64_t topK))                                                        \
  X(void, adamw, (float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,   \
                  float eps, float weightDecay, float bc1, float bc2, float gradScale))

struct Kernels {
  const char* isa;
#define ECOMLA_FIELD(ret, name, args) ret(*name) args;
  ECOMLA_KERNEL_LIST(ECOMLA_FIELD)
#undef ECOMLA_FIELD
};

namespace isa_avx512 { const Kernels& table(); }
namespace isa_avx2 { const Kernels& table(); }
namespace isa_generic { const Kernels& table(); }

namespace ECOMLA_NS {
#define ECOMLA_DECL(ret, name, args) ret name args;
ECOMLA_KERNEL_LIST(ECOMLA_DECL)
#undef ECOMLA_DECL
}  // namespace ECOMLA_NS

}  // namespace ecomla
