// Shared by every kernel file. The kernel files are compiled three times (AVX-512, AVX2, baseline)
// into different namespaces; the addon picks one table at load time with __builtin_cpu_supports.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#if defined(__AVX512F__)
#define ECOMLA_NS isa_avx512
#elif defined(__AVX2__)
#define ECOMLA_NS isa_avx2
#else
#define ECOMLA_NS isa_generic
#endif

namespace ecomla {

// ---- thread pool (pool.cc, compiled once) --------------------------------------------------
// Runs fn(begin, end) over [0, n) in chunks of at least `grain`, on the pool plus the caller.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
int num_threads();
int thread_index();  // 0 for the caller, 1..N-1 for workers; stable within a parallel_for
void set_num_threads(int n);

// A kernel reports bad input it can only see in the data (e.g. an out-of-range id) by throwing this.
struct KernelError {
  std::string message;
};

// ---- vector types --------------------------------------------------------------------------
// GCC vector extensions sized to the ISA's native register (zmm, ymm or xmm): wider-than-native
// vectors get split with poor register allocation, so each build uses its own width.
#if defined(__AVX512F__)
constexpr int VL = 16;
#elif defined(__AVX2__)
constexpr int VL = 8;
#else
constexpr int VL = 4;
#endif
typedef float vf __attribute__((vector_size(VL * 4), aligned(4), may_alias));
typedef int32_t vi __attribute__((vector_size(VL * 4), aligned(4), may_alias));

static inline vf vload(const float* p) { return *reinterpret_cast<const vf*>(p); }
static inline void vstore(float* p, vf v) { *reinterpret_cast<vf*>(p) = v; }
static inline vf vset1(float x) { return vf{} + x; }
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
static inline vf vmin(vf a, vf b) { return a < b ? a : b; }
static inline float hsum(vf v) {
  float s = 0;
  for (int i = 0; i < VL; i++) s += v[i];
  return s;
}
static inline float hmax(vf v) {
  float m = v[0];
  for (int i = 1; i < VL; i++) m = v[i] > m ? v[i] : m;
  return m;
}
// Partial vectors at row ends: load zeros (or `fill`) past n, store only n lanes.
static inline vf vload_n(const float* p, int n, float fill = 0.f) {
  vf v = vset1(fill);
  for (int i = 0; i < n; i++) v[i] = p[i];
  return v;
}
static inline void vstore_n(float* p, vf v, int n) {
  for (int i = 0; i < n; i++) p[i] = v[i];
}

// exp with ~2 ulp error; exp(-inf) = 0, exp(+inf) = inf, NaN stays NaN.
static inline vf vexp(vf x) {
  const vf hi = vset1(88.3762626647949f), lo = vset1(-87.3365447504f);
  vf xc = vmin(vmax(x, lo), hi);
  vf n = __builtin_convertvector(__builtin_convertvector(xc * 1.44269504088896341f + (vf{} + 0.5f) - (xc < 0 ? vset1(1.f) : vset1(0.f)), vi), vf);
  vf r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  vf p = vset1(1.9875691500E-4f);
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.f;
  vi e = (__builtin_convertvector(n, vi) + 127) << 23;
  vf y = p * reinterpret_cast<vf&>(e);
  y = x < lo ? vf{} : y;
  y = x > hi ? vset1(INFINITY) : y;
  return x != x ? x : y;
}
static inline float sexp(float x) { return std::exp(x); }

}  // namespace ecomla
