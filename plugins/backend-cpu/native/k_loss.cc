// Fused log-softmax + cross-entropy / KL over large vocabularies. Each row is read a few times while
// it sits in L2; exp is evaluated once per element per distribution by parking exp(z − max) in
// the gradient buffer (which may alias the logits, so every value a pass needs is read first).
#include <algorithm>
#include <vector>

#include "kernels.h"

namespace ecomla {
namespace ECOMLA_NS {
namespace {

float row_max(const float* z, int64_t V) {
  vf vm = vset1(-INFINITY);
  int64_t i = 0;
  for (; i + VL <= V; i += VL) vm = vmax(vm, vload(z + i));
  float m = hmax(vm);
  for (; i < V; i++) m = std::max(m, z[i]);
  return m;
}

// Σ exp(invT·z − m), storing each term in e when e is non-null (e may alias z).
double sum_exp(const float* z, float* e, int64_t V, float invT, float m) {
  vf acc{};
  int64_t i = 0;
  for (; i + VL <= V; i += VL) {
    vf x = vexp(vload(z + i) * invT - m);
    if (e) vstore(e + i, x);
    acc += x;
  }
  double s = hsum(acc);
  for (; i < V; i++) {
    float x = std::exp(z[i] * invT - m);
    if (e) e[i] = x;
    s += x;
  }
  return s;
}

void scale_row(float* g, int64_t V, float c) {
  int64_t i = 0;
  for (; i + VL <= V; i += VL) vstore(g + i, vload(g + i) * c);
  for (; i < V; i++) g[i] *= c;
}

int64_t loss_grain(int64_t V) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(V, 1)); }

}  // namespace

void cross_entropy(const LossParams& p, const int32_t* labels /* (N) */) {
  const int64_t V = p.vocab;
  for (int64_t r = 0; r < p.rows; r++)
    if (labels[r] >= V)
      throw KernelError{"crossEntropy: labels[" + std::to_string(r) + "] = " + std::to_string(labels[r]) +
                        " is outside [0, " + std::to_string(V) + ") (negative labels mark ignored rows)"};
  const float invT = 1.f / p.temperature;
  parallel_for(p.rows, loss_grain(V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* z = p.logits + r * V;
      float* g = p.grad ? p.grad + r * V : nullptr;
      const int32_t label = labels[r];
      const float w = p.weights ? p.weights[r] : 1.f;
      if (label < 0) {
        p.loss[r] = 0;
        if (g) std::fill(g, g + V, 0.f);
        continue;
      }
      const float zLabel = z[label] * invT;
      const float m = row_max(z, V) * invT;
      const double s = sum_exp(z, g, V, invT, m);
      p.loss[r] = (float)(w * ((double)m + std::log(s) - zLabel));
      if (g) {
        scale_row(g, V, (float)(w * invT / s));
        g[label] -= w * invT;
      }
    }
  });
}

void kl_div(const LossParams& p,
            const float* teacherLogits,     // (N, V) or null
            const int32_t* teacherIndices,  // (N, K) or null
            const float* teacherLogprobs,   // (N, K) or null
            int64_t K) {
  const int64_t V = p.vocab;
  const float invT = 1.f / p.temperature;
  if (!teacherLogits) {
    for (int64_t i = 0; i < p.rows * K; i++)
      if (teacherIndices[i] < 0 || teacherIndices[i] >= V)
        throw KernelError{"klDiv: teacherIndices[" + std::to_string(i) + "] = " + std::to_string(teacherIndices[i]) +
                          " is outside [0, " + std::to_string(V) + ")"};
  }
  parallel_for(p.rows, loss_grain(V), [&](int64_t r0, int64_t r1) {
    thread_local std::vector<float> teacherExp;
    std::vector<float> gathered;
    for (int64_t r = r0; r < r1; r++) {
      const float* z = p.logits + r * V;
      float* g = p.grad ? p.grad + r * V : nullptr;
      const float w = p.weights ? p.weights[r] : 1.f;
      const float coef = w * invT;
      if (teacherLogits) {
        const float* t = teacherLogits + r * V;
        if ((int64_t)teacherExp.size() < V) teacherExp.resize(V);
        float* et = teacherExp.data();
        const float mz = row_max(z, V) * invT, mt = row_max(t, V) * invT;
        // One pass: both exps, both sums, and Σ e_t·(t − z) (skipping e_t = 0 so −inf logits give 0, not NaN).
        vf sz{}, st{}, cross{};
        int64_t i = 0;
        for (; i + VL <= V; i += VL) {
          vf zi = vload(z + i) * invT, ti = vload(t + i) * invT;
          vf ez = vexp(zi - mz), e = vexp(ti - mt);
          vf term = e * (ti - zi);
          cross += e > 0 ? term : vf{};
          sz += ez;
          st += e;
          if (g) vstore(g + i, ez);
          vstore(et + i, e);
        }
        double sZ = hsum(sz), sT = hsum(st), cr = hsum(cross);
        for (; i < V; i++) {
          float zi = z[i] * invT, ti = t[i] * invT;
          float ez = std::exp(zi - mz), e = std::exp(ti - mt);
          if (e > 0) cr += (double)e * (ti - zi);
          sZ += ez;
          sT += e;
          if (g) g[i] = ez;
          et[i] = e;
        }
        const double lseZ = mz + std::log(sZ), lseT = mt + std::log(sT);
        p.loss[r] = (float)(w * (cr / sT - lseT + lseZ));
        if (g) {
          const float a = (float)(coef / sZ), b = (float)(coef / sT);
          int64_t j = 0;
          for (; j + VL <= V; j += VL) vstore(g + j, vload(g + j) * a - vload(et + j) * b);
          for (; j < V; j++) g[j] = g[j] * a - et[j] * b;
        }
      } else {
        const int32_t* idx = teacherIndices + r * K;
        const float* lp = teacherLogprobs + r * K;
        gathered.resize(K);
        for (int64_t k = 0; k < K; k++) gathered[k] = z[idx[k]] * invT;  // before g (maybe z) is overwritten
        const float mz = row_max(z, V) * invT;
        const double sZ = sum_exp(z, g, V, invT, mz);
        const double lseZ = mz + std::log(sZ);
        double loss = 0, mass = 0;
        for (int64_t k = 0; k < K; k++) {
          const double pk = std::exp((double)lp[k]);
          if (pk > 0) loss += pk * (lp[k] - (gathered[k] - lseZ));
          mass += pk;
        }
        p.loss[r] = (float)(w * loss);
        if (g) {
          scale_row(g, V, (float)(coef * mass / sZ));
          for (int64_t k = 0; k < K; k++) g[idx[k]] -= (float)(coef * std::exp((double)lp[k]));
        }
      }
    }
  });
}

}  // namespace ECOMLA_NS
}  // namespace ecomla
