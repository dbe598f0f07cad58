// N-API surface of the CPU backend. Buffers are 64-byte-aligned native blocks exposed to JS as
// external ArrayBuffers (upload/download are one memcpy, no staging copy); kernels receive those
// ArrayBuffers plus element offsets and run synchronously on the thread pool.
#include <napi.h>

#include <cstdlib>

#include "blas.h"
#include "kernels.h"

namespace ecomla {
namespace {

const Kernels* K = nullptr;

const Kernels& pick_kernels() {
  __builtin_cpu_init();
  // ECOMLA_CPU_ISA forces a lower tier (tests run every build on one machine); never a higher one.
  const char* forced = std::getenv("ECOMLA_CPU_ISA");
  std::string want = forced ? forced : "";
  if (want == "generic") return isa_generic::table();
  if (want == "avx2" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return isa_avx2::table();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq"))
    return isa_avx512::table();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return isa_avx2::table();
  return isa_generic::table();
}

// Data pointer of an ArrayBuffer argument, advanced by `offset` elements of `elem` bytes; null for
// undefined/null (optional buffers).
template <class T = float>
T* ptr(const Napi::CallbackInfo& info, size_t i, int64_t offset = 0) {
  Napi::Value v = info[i];
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  if (!v.IsArrayBuffer()) throw Napi::TypeError::New(info.Env(), "ecomla_cpu: argument " + std::to_string(i) + " must be an ArrayBuffer");
  return reinterpret_cast<T*>(static_cast<char*>(v.As<Napi::ArrayBuffer>().Data())) + offset;
}
void* raw(const Napi::CallbackInfo& info, size_t i, int64_t byteOffset) {
  return static_cast<char*>(info[i].As<Napi::ArrayBuffer>().Data()) + byteOffset;
}
double num(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }
int64_t i64(const Napi::CallbackInfo& info, size_t i) { return (int64_t)info[i].As<Napi::Number>().DoubleValue(); }
// Packed numeric parameters travel as one Float64Array.
const double* params(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Float64Array>().Data(); }

template <class F>
void guarded(const Napi::CallbackInfo& info, F f) {
  try {
    f();
  } catch (const KernelError& e) {
    throw Napi::RangeError::New(info.Env(), e.message);
  }
}

void finalize_buffer(Napi::Env env, void* data, size_t* bytes) {
  Napi::MemoryManagement::AdjustExternalMemory(env, -(int64_t)*bytes);
  std::free(data);
  delete bytes;
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  const size_t bytes = (size_t)i64(info, 0);
  const size_t rounded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  void* data = std::aligned_alloc(64, rounded);
  if (!data) throw Napi::Error::New(info.Env(), "ecomla_cpu: out of memory allocating " + std::to_string(bytes) + " bytes");
  Napi::MemoryManagement::AdjustExternalMemory(info.Env(), (int64_t)rounded);
  return Napi::ArrayBuffer::New(info.Env(), data, bytes, finalize_buffer, new size_t(rounded));
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("isa", K->isa);
  o.Set("threads", num_threads());
  o.Set("blasThreads", blas_threads());
  o.Set("blasConfig", blas_config());
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  int n = (int)i64(info, 0);
  set_num_threads(n);
  blas_set_threads(n);
  return info.Env().Undefined();
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  const int dtype = (int)i64(info, 1);
  const int elem = (dtype == F32 || dtype == I32) ? 4 : 2;
  K->fill(raw(info, 0, i64(info, 4) * elem), dtype, num(info, 2), i64(info, 3));
  return info.Env().Undefined();
}

Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  // (src, srcOffset, dst, dstOffset, dtype, [rank, shape…, srcStrides…, dstStrides…])
  const int dtype = (int)i64(info, 4);
  const int elem = (dtype == F32 || dtype == I32) ? 4 : 2;
  const double* p = params(info, 5);
  const int rank = (int)p[0];
  int64_t shape[8], ss[8], ds[8];
  for (int d = 0; d < rank; d++) shape[d] = (int64_t)p[1 + d], ss[d] = (int64_t)p[1 + rank + d], ds[d] = (int64_t)p[1 + 2 * rank + d];
  K->copy_strided(raw(info, 0, i64(info, 1) * elem), raw(info, 2, i64(info, 3) * elem), dtype, rank, shape, ss, ds, num(info, 6) != 0);
  return info.Env().Undefined();
}

Napi::Value Cast(const Napi::CallbackInfo& info) {
  K->cast(raw(info, 0, 0), (int)i64(info, 1), raw(info, 2, 0), (int)i64(info, 3), i64(info, 4));
  return info.Env().Undefined();
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  // (a, b, c, [batch, m, n, k, transA, transB, alpha, beta, aOff, lda, strideA, bOff, ldb, strideB, cOff, ldc, strideC])
  const double* p = params(info, 3);
  GemmParams g;
  g.batch = (int64_t)p[0], g.m = (int64_t)p[1], g.n = (int64_t)p[2], g.k = (int64_t)p[3];
  g.transA = p[4] != 0, g.transB = p[5] != 0, g.alpha = (float)p[6], g.beta = (float)p[7];
  g.a = ptr(info, 0, (int64_t)p[8]), g.lda = (int64_t)p[9], g.strideA = (int64_t)p[10];
  g.b = ptr(info, 1, (int64_t)p[11]), g.ldb = (int64_t)p[12], g.strideB = (int64_t)p[13];
  g.c = ptr(info, 2, (int64_t)p[14]), g.ldc = (int64_t)p[15], g.strideC = (int64_t)p[16];
  gemm(g);
  return info.Env().Undefined();
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  // (op, a, b, out, [rank, aShape…, bShape…, outShape…]) with shapes left-padded to rank
  const double* p = params(info, 4);
  const int rank = (int)p[0];
  int64_t as[8], bs[8], os[8];
  for (int d = 0; d < rank; d++) as[d] = (int64_t)p[1 + d], bs[d] = (int64_t)p[1 + rank + d], os[d] = (int64_t)p[1 + 2 * rank + d];
  K->binary((int)i64(info, 0), ptr(info, 1), as, ptr(info, 2), bs, ptr(info, 3), os, rank);
  return info.Env().Undefined();
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  K->unary((int)i64(info, 0), ptr(info, 1), ptr(info, 2), i64(info, 3), (float)num(info, 4));
  return info.Env().Undefined();
}

Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  K->unary_backward((int)i64(info, 0), ptr(info, 1), ptr(info, 2), ptr(info, 3), ptr(info, 4), i64(info, 5), (float)num(info, 6));
  return info.Env().Undefined();
}

Napi::Value Reduce(const Napi::CallbackInfo& info) {
  K->reduce_last_axis((int)i64(info, 0), ptr(info, 1), ptr(info, 2), i64(info, 3), i64(info, 4));
  return info.Env().Undefined();
}

Napi::Value SumToShape(const Napi::CallbackInfo& info) {
  // (x, out, [rank, xShape…, outShape…])
  const double* p = params(info, 2);
  const int rank = (int)p[0];
  int64_t xs[8], os[8];
  for (int d = 0; d < rank; d++) xs[d] = (int64_t)p[1 + d], os[d] = (int64_t)p[1 + rank + d];
  K->sum_to_shape(ptr(info, 0), xs, ptr(info, 1), os, rank);
  return info.Env().Undefined();
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  K->softmax(ptr(info, 0), ptr(info, 1), i64(info, 2), i64(info, 3));
  return info.Env().Undefined();
}

Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  K->softmax_backward(ptr(info, 0), ptr(info, 1), ptr(info, 2), i64(info, 3), i64(info, 4));
  return info.Env().Undefined();
}

Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  K->rms_norm(ptr(info, 0), ptr(info, 1), ptr(info, 2), ptr(info, 3), i64(info, 4), i64(info, 5), (float)num(info, 6));
  return info.Env().Undefined();
}

Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  K->rms_norm_backward(ptr(info, 0), ptr(info, 1), ptr(info, 2), ptr(info, 3), ptr(info, 4), ptr(info, 5), i64(info, 6), i64(info, 7));
  return info.Env().Undefined();
}

Napi::Value Rope(const Napi::CallbackInfo& info) {
  // (x, out, cos, sin, positions|null, [B, T, H, D, interleaved, P, posOffset, scale, inverse])
  const double* p = params(info, 5);
  guarded(info, [&] {
    K->rope(ptr(info, 0), ptr(info, 1), (int64_t)p[0], (int64_t)p[1], (int64_t)p[2], (int64_t)p[3], p[4] != 0, ptr(info, 2),
            ptr(info, 3), (int64_t)p[5], (int64_t)p[6], ptr<int32_t>(info, 4), (float)p[7], p[8] != 0);
  });
  return info.Env().Undefined();
}

AttentionParams attention_params(const Napi::CallbackInfo& info, size_t paramIndex) {
  // [B, T, S, Hq, Hkv, Dqk, Dv, scale, causal, qOff, qs0, qs1, qs2, kOff, ks…, vOff, vs…]; q, k, v are args 0..2
  const double* p = params(info, paramIndex);
  AttentionParams a;
  a.B = (int64_t)p[0], a.T = (int64_t)p[1], a.S = (int64_t)p[2], a.Hq = (int64_t)p[3], a.Hkv = (int64_t)p[4];
  a.Dqk = (int64_t)p[5], a.Dv = (int64_t)p[6], a.scale = (float)p[7], a.causal = p[8] != 0;
  a.q = ptr(info, 0, (int64_t)p[9]);
  a.k = ptr(info, 1, (int64_t)p[13]);
  a.v = ptr(info, 2, (int64_t)p[17]);
  for (int d = 0; d < 3; d++) {
    a.qStrides[d] = (int64_t)p[10 + d];
    a.kStrides[d] = (int64_t)p[14 + d];
    a.vStrides[d] = (int64_t)p[18 + d];
  }
  return a;
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  // (q, k, v, out, lse|null, params)
  K->attention_forward(attention_params(info, 5), ptr(info, 3), ptr(info, 4));
  return info.Env().Undefined();
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  // (q, k, v, out, lse, dOut, dq, dk, dv, params)
  K->attention_backward(attention_params(info, 9), ptr(info, 3), ptr(info, 4), ptr(info, 5), ptr(info, 6), ptr(info, 7), ptr(info, 8));
  return info.Env().Undefined();
}

Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  K->swiglu(ptr(info, 0), ptr(info, 1), ptr(info, 2), i64(info, 3));
  return info.Env().Undefined();
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  K->swiglu_backward(ptr(info, 0), ptr(info, 1), ptr(info, 2), ptr(info, 3), ptr(info, 4), i64(info, 5));
  return info.Env().Undefined();
}

Napi::Value Embedding(const Napi::CallbackInfo& info) {
  guarded(info, [&] { K->embedding(ptr<int32_t>(info, 0), ptr(info, 1), ptr(info, 2), i64(info, 3), i64(info, 4), i64(info, 5)); });
  return info.Env().Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  guarded(info, [&] { K->embedding_backward(ptr<int32_t>(info, 0), ptr(info, 1), ptr(info, 2), i64(info, 3), i64(info, 4), i64(info, 5)); });
  return info.Env().Undefined();
}

LossParams loss_params(const Napi::CallbackInfo& info, size_t logits, size_t weights, size_t loss, size_t grad, size_t rest) {
  LossParams p;
  p.logits = ptr(info, logits);
  p.weights = ptr(info, weights);
  p.loss = ptr(info, loss);
  p.grad = ptr(info, grad);
  p.rows = i64(info, rest), p.vocab = i64(info, rest + 1), p.temperature = (float)num(info, rest + 2);
  return p;
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  // (logits, labels, weights|null, loss, grad|null, rows, vocab, temperature)
  guarded(info, [&] { K->cross_entropy(loss_params(info, 0, 2, 3, 4, 5), ptr<int32_t>(info, 1)); });
  return info.Env().Undefined();
}

Napi::Value KlDiv(const Napi::CallbackInfo& info) {
  // (logits, teacherLogits|null, teacherIndices|null, teacherLogprobs|null, weights|null, loss, grad|null, rows, vocab, temperature, topK)
  guarded(info, [&] {
    K->kl_div(loss_params(info, 0, 4, 5, 6, 7), ptr(info, 1), ptr<int32_t>(info, 2), ptr(info, 3), i64(info, 10));
  });
  return info.Env().Undefined();
}

Napi::Value AdamW(const Napi::CallbackInfo& info) {
  // (param, grad, m, v, [n, lr, beta1, beta2, eps, weightDecay, bc1, bc2, gradScale])
  const double* p = params(info, 4);
  K->adamw(ptr(info, 0), ptr(info, 1), ptr(info, 2), ptr(info, 3), (int64_t)p[0], (float)p[1], (float)p[2], (float)p[3],
           (float)p[4], (float)p[5], (float)p[6], (float)p[7], (float)p[8]);
  return info.Env().Undefined();
}

Napi::Value Svd(const Napi::CallbackInfo& info) {
  // (a: Float64Array | Float32Array (m × n), m, n) → { u, s, vt } as Float64Arrays; float32 input
  // runs in single precision (sgesdd), as PyTorch does on .float() weights.
  const int64_t m = i64(info, 1), n = i64(info, 2);
  std::vector<double> u, s, vt;
  const bool single = info[0].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array;
  int status = single ? svd(info[0].As<Napi::Float32Array>().Data(), m, n, u, s, vt)
                      : svd(info[0].As<Napi::Float64Array>().Data(), m, n, u, s, vt);
  if (status != 0) throw Napi::Error::New(info.Env(), std::string("svd: LAPACK ") + (single ? "sgesdd" : "dgesdd") + " failed with info = " + std::to_string(status));
  auto toArray = [&](const std::vector<double>& v) {
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), v.size());
    std::memcpy(out.Data(), v.data(), v.size() * sizeof(double));
    return out;
  };
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("u", toArray(u));
  o.Set("s", toArray(s));
  o.Set("vt", toArray(vt));
  return o;
}

Napi::Value BenchSgemm(const Napi::CallbackInfo& info) {
  std::vector<double> ms = bench_sgemm(i64(info, 0), i64(info, 1), i64(info, 2), (int)i64(info, 3));
  Napi::Float64Array out = Napi::Float64Array::New(info.Env(), ms.size());
  std::memcpy(out.Data(), ms.data(), ms.size() * sizeof(double));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  K = &pick_kernels();
  blas_set_threads(num_threads());
#define EXPORT(name, fn) exports.Set(name, Napi::Function::New(env, fn, name))
  EXPORT("alloc", Alloc);
  EXPORT("info", Info);
  EXPORT("setThreads", SetThreads);
  EXPORT("fill", Fill);
  EXPORT("copyStrided", CopyStrided);
  EXPORT("cast", Cast);
  EXPORT("gemm", Gemm);
  EXPORT("binary", Binary);
  EXPORT("unary", Unary);
  EXPORT("unaryBackward", UnaryBackward);
  EXPORT("reduceLastAxis", Reduce);
  EXPORT("sumToShape", SumToShape);
  EXPORT("softmax", Softmax);
  EXPORT("softmaxBackward", SoftmaxBackward);
  EXPORT("rmsNorm", RmsNorm);
  EXPORT("rmsNormBackward", RmsNormBackward);
  EXPORT("rope", Rope);
  EXPORT("attention", Attention);
  EXPORT("attentionBackward", AttentionBackward);
  EXPORT("swiglu", Swiglu);
  EXPORT("swigluBackward", SwigluBackward);
  EXPORT("embedding", Embedding);
  EXPORT("embeddingBackward", EmbeddingBackward);
  EXPORT("crossEntropy", CrossEntropy);
  EXPORT("klDiv", KlDiv);
  EXPORT("adamw", AdamW);
  EXPORT("svd", Svd);
  EXPORT("benchSgemm", BenchSgemm);
#undef EXPORT
  return exports;
}

}  // namespace
}  // namespace ecomla

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return ecomla::Init(env, exports); }

NODE_API_MODULE(ecomla_cpu, InitAddon)
