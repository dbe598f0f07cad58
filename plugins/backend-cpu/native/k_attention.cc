// Fused causal attention, FlashAttention-2 style: scores live only as one (BQ × BK) tile at a time;
// the forward keeps an online softmax per query row and saves the log-sum-exp for the backward,
// which recomputes each tile's probabilities from it.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels.h"
#include "microkernels.h"

namespace ecomla {
namespace ECOMLA_NS {
namespace {

// Copy a (rows × cols) strided tile into a dense (rows × ld) tile, times `mul`, zero-padding to ld.
inline void load_rows(float* dst, int64_t ld, const float* src, int64_t rowStride, int64_t rows, int64_t cols,
                      int64_t padRows, float mul) {
  for (int64_t i = 0; i < padRows; i++) {
    float* d = dst + i * ld;
    if (i < rows) {
      const float* s = src + i * rowStride;
      for (int64_t c = 0; c < cols; c++) d[c] = s[c] * mul;
      for (int64_t c = cols; c < ld; c++) d[c] = 0;
    } else {
      std::fill(d, d + ld, 0.f);
    }
  }
}

// Transposed copy: dst (ldRows × BK) with dst[c][j] = src row j, column c; zero past rows/cols.
inline void load_transposed(float* dst, int64_t ldRows, const float* src, int64_t rowStride, int64_t rows,
                            int64_t cols) {
  for (int64_t c = 0; c < ldRows; c++) {
    float* d = dst + c * BK;
    if (c >= cols) {
      std::fill(d, d + BK, 0.f);
      continue;
    }
    for (int64_t j = 0; j < rows; j++) d[j] = src[j * rowStride + c];
    for (int64_t j = rows; j < BK; j++) d[j] = 0;
  }
}

constexpr int64_t kMinTaskWork = int64_t(1) << 21;

// Mask past `valid` columns of one score row to −inf (the causal edge and the key tail).
inline void mask_row(float* row, int64_t valid) {
  for (int64_t j = std::max<int64_t>(valid, 0); j < BK; j++) row[j] = -INFINITY;
}

// Horizontal sum in log steps (the lane-by-lane hsum would cost more than a short dot product).
inline float hsum_tree(vf v) {
#if defined(__AVX512F__)
  return _mm512_reduce_add_ps(reinterpret_cast<__m512&>(v));
#elif defined(__AVX2__)
  const __m256 x = reinterpret_cast<__m256&>(v);
  __m128 r = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  return _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)));
#else
  return hsum(v);
#endif
}

// Σ a[i]·b[i] over n contiguous floats.
inline float dot(const float* a, const float* b, int64_t n) {
  vf acc{};
  int64_t i = 0;
  for (; i + VL <= n; i += VL) acc += vload(a + i) * vload(b + i);
  float s = hsum_tree(acc);
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

// row[s] = exp(row[s] − m) for s < n; returns their sum (m finite).
inline float exp_shifted(float* row, int64_t n, float m) {
  vf sum{};
  const vf mv = vset1(m);
  int64_t s = 0;
  for (; s + VL <= n; s += VL) {
    const vf e = vexp(vload(row + s) - mv);
    vstore(row + s, e);
    sum += e;
  }
  float total = hsum_tree(sum);
  for (; s < n; s++) total += (row[s] = std::exp(row[s] - m));
  return total;
}

// y[i] += a·x[i] over n contiguous floats.
inline void axpy(float* y, float a, const float* x, int64_t n) {
  const vf av = vset1(a);
  int64_t i = 0;
  for (; i + VL <= n; i += VL) vstore(y + i, vload(y + i) + av * vload(x + i));
  for (; i < n; i++) y[i] += a * x[i];
}

// Few query rows against a long key sequence (a decode step): the (BQ × BK) tiles of the flash path
// would be mostly padding and their packing would cost as much as the products, so each task (one
// batch element and kv head) streams its contiguous key rows once through dot products with all
// G·T query rows of the group, then its value rows once through weighted sums.
void attention_few_queries(const AttentionParams& p,
                           float* out,  // (B, T, Hq, Dv)
                           float* lse   // (B, Hq, T) or null
) {
  const int64_t T = p.T, S = p.S, Hq = p.Hq, Hkv = p.Hkv, G = Hq / Hkv, diag = S - T, R = G * T;
  const int64_t taskWork = R * S * (p.Dqk + p.Dv);
  parallel_for(p.B * Hkv, std::max<int64_t>(1, kMinTaskWork / std::max<int64_t>(taskWork, 1)), [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> sv, rv;
    float* scores = scratch(sv, R * S);  // (G·T, S), row r = g·T + t
    float* rowMax = scratch(rv, 2 * R);
    float* rowSum = rowMax + R;
    for (int64_t task = t0; task < t1; task++) {
      const int64_t b = task / Hkv, hk = task % Hkv;
      const float* kBase = p.k + b * p.kStrides[0] + hk * p.kStrides[2];
      const float* vBase = p.v + b * p.vStrides[0] + hk * p.vStrides[2];
      const float* qBase = p.q + b * p.qStrides[0] + hk * G * p.qStrides[2];
      for (int64_t s = 0; s < S; s++) {
        const float* kRow = kBase + s * p.kStrides[1];
        for (int64_t g = 0; g < G; g++)
          for (int64_t t = 0; t < T; t++)
            scores[(g * T + t) * S + s] = !p.causal || s <= t + diag ? p.scale * dot(qBase + g * p.qStrides[2] + t * p.qStrides[1], kRow, p.Dqk) : -INFINITY;
      }
      for (int64_t r = 0; r < R; r++) {
        float* row = scores + r * S;
        float m = -INFINITY;
        for (int64_t s = 0; s < S; s++) m = std::max(m, row[s]);
        float l = 0;
        if (m == -INFINITY) std::fill_n(row, S, 0.f);
        else l = exp_shifted(row, S, m);
        rowMax[r] = m;
        rowSum[r] = l;
        const float inv = l > 0 ? 1.f / l : 0.f;
        for (int64_t s = 0; s < S; s++) row[s] *= inv;
        const int64_t g = r / T, t = r % T;
        std::fill_n(out + ((b * T + t) * Hq + hk * G + g) * p.Dv, p.Dv, 0.f);
      }
      for (int64_t s = 0; s < S; s++) {
        const float* vRow = vBase + s * p.vStrides[1];
        for (int64_t r = 0; r < R; r++) {
          const float w = scores[r * S + s];
          if (w != 0.f) axpy(out + ((b * T + r % T) * Hq + hk * G + r / T) * p.Dv, w, vRow, p.Dv);
        }
      }
      if (lse)
        for (int64_t r = 0; r < R; r++)
          lse[(b * Hq + hk * G + r / T) * T + r % T] = rowSum[r] > 0 ? rowMax[r] + std::log(rowSum[r]) : -INFINITY;
    }
  });
}

// Query rows up to which a forward takes the few-queries path instead of the tiled one.
constexpr int64_t kFewQueries = 4;

}  // namespace

void attention_forward(const AttentionParams& p,
                       float* out,  // (B, T, Hq, Dv)
                       float* lse   // (B, Hq, T) or null
) {
  if (p.T <= kFewQueries) return attention_few_queries(p, out, lse);
  const int64_t T = p.T, S = p.S, Hq = p.Hq, G = p.Hq / p.Hkv, diag = p.S - p.T;
  const int64_t Dp = round16(p.Dqk), Dvp = round16(p.Dv), nQB = (T + BQ - 1) / BQ;
  // A decode step's task (one query row against the cache) is tiny; hand a worker at least
  // kMinTaskWork multiply-adds (tile products + packing), else waking it costs more than the work.
  const int64_t taskWork = (std::min<int64_t>(BQ, T) + 1) * S * (Dp + Dvp);
  const int64_t grain = std::max<int64_t>(1, kMinTaskWork / std::max<int64_t>(taskWork, 1));
  parallel_for(p.B * Hq * nQB, grain, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> qv, ktv, vbv, sv, ov, mv, lv;
    float *Qs = scratch(qv, BQ * Dp), *Kt = scratch(ktv, Dp * BK), *Vb = scratch(vbv, BK * Dvp);
    float *Sb = scratch(sv, BQ * BK), *O = scratch(ov, BQ * Dvp), *m = scratch(mv, BQ), *l = scratch(lv, BQ);
    for (int64_t task = t0; task < t1; task++) {
      const int64_t qb = task % nQB, h = (task / nQB) % Hq, b = task / (nQB * Hq), hk = h / G;
      const int64_t q0 = qb * BQ, rows = std::min<int64_t>(BQ, T - q0);
      // (rows, Dqk) of this head, pre-scaled so the tile product is the scaled score.
      load_rows(Qs, Dp, p.q + b * p.qStrides[0] + q0 * p.qStrides[1] + h * p.qStrides[2], p.qStrides[1], rows, p.Dqk,
                rows, p.scale);
      std::fill(O, O + rows * Dvp, 0.f);
      std::fill(m, m + rows, -INFINITY);
      std::fill(l, l + rows, 0.f);
      const int64_t kEnd = p.causal ? std::min(S, q0 + rows + diag) : S;
      const float* kBase = p.k + b * p.kStrides[0] + hk * p.kStrides[2];
      const float* vBase = p.v + b * p.vStrides[0] + hk * p.vStrides[2];
      for (int64_t kb = 0; kb < kEnd; kb += BK) {
        const int64_t nk = std::min<int64_t>(BK, S - kb);
        load_transposed(Kt, Dp, kBase + kb * p.kStrides[1], p.kStrides[1], nk, p.Dqk);
        load_rows(Vb, Dvp, vBase + kb * p.vStrides[1], p.vStrides[1], nk, p.Dv, nk, 1.f);
        nt_block(Qs, Dp, rows, Kt, Dp, Sb);
        for (int64_t i = 0; i < rows; i++) {
          float* row = Sb + i * BK;
          const int64_t valid = std::min(nk, p.causal ? q0 + i + diag + 1 - kb : nk);
          if (valid < BK) mask_row(row, valid);
          vf vm = vload(row);
          for (int c = VL; c < BK; c += VL) vm = vmax(vm, vload(row + c));
          const float mNew = std::max(m[i], hmax(vm));
          if (mNew == -INFINITY) {
            std::fill(row, row + BK, 0.f);
            continue;
          }
          const float alpha = std::exp(m[i] - mNew);
          vf sum{};
          for (int c = 0; c < BK; c += VL) {
            const vf e = vexp(vload(row + c) - mNew);
            vstore(row + c, e);
            sum += e;
          }
          l[i] = l[i] * alpha + hsum(sum);
          m[i] = mNew;
          if (alpha != 1.f) {
            float* o = O + i * Dvp;
            for (int64_t d = 0; d < Dvp; d += VL) vstore(o + d, vload(o + d) * alpha);
          }
        }
        nn_block(Sb, BK, rows, Vb, Dvp, nk, O, Dvp, Dvp);
      }
      for (int64_t i = 0; i < rows; i++) {
        float* o = out + ((b * T + q0 + i) * Hq + h) * p.Dv;
        const float inv = l[i] > 0 ? 1.f / l[i] : 0.f;
        for (int64_t d = 0; d < p.Dv; d++) o[d] = O[i * Dvp + d] * inv;
        if (lse) lse[(b * Hq + h) * T + q0 + i] = l[i] > 0 ? m[i] + std::log(l[i]) : -INFINITY;
      }
    }
  });
}

void attention_backward(const AttentionParams& p,
                        const float* out,   // (B, T, Hq, Dv)
                        const float* lse,   // (B, Hq, T)
                        const float* dOut,  // (B, T, Hq, Dv)
                        float* dq,          // (B, T, Hq, Dqk)
                        float* dk,          // (B, S, Hkv, Dqk)
                        float* dv           // (B, S, Hkv, Dv)
) {
  const int64_t B = p.B, T = p.T, S = p.S, Hq = p.Hq, Hkv = p.Hkv, G = Hq / Hkv, diag = S - T;
  const int64_t Dqk = p.Dqk, Dv = p.Dv, Dp = round16(Dqk), Dvp = round16(Dv), nKB = (S + BK - 1) / BK;
  // delta[b, h, t] = dOut · out, the softmax-backward row term.
  static std::vector<float> deltaStore, dqStore;
  float* delta = scratch(deltaStore, B * Hq * T);
  parallel_for(B * T * Hq, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float *o = out + r * Dv, *g = dOut + r * Dv;
      double s = 0;
      for (int64_t d = 0; d < Dv; d++) s += (double)o[d] * g[d];
      const int64_t h = r % Hq, t = (r / Hq) % T, b = r / (Hq * T);
      delta[(b * Hq + h) * T + t] = (float)s;
    }
  });
  // Tasks own (b, kv head, key chunk): dk/dv rows are private; dq goes to a per-task partial that is
  // summed afterwards. Split keys only as much as needed to feed every thread.
  const int64_t heads = B * Hkv;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(nKB, (2 * num_threads() + heads - 1) / heads));
  const int64_t partialSize = G * T * Dp;
  float* dqPartial = scratch(dqStore, heads * chunks * partialSize);
  parallel_for(heads * chunks, 1, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> qv, dov, ktv, kbv, vtv, sv, dpv, ptv, dkv, dvv;
    float *Qs = scratch(qv, BQ * Dp), *dOb = scratch(dov, BQ * Dvp), *Kt = scratch(ktv, Dp * BK);
    float *Kb = scratch(kbv, BK * Dp), *Vt = scratch(vtv, Dvp * BK), *Sb = scratch(sv, BQ * BK);
    float *dPb = scratch(dpv, BQ * BK), *Pt = scratch(ptv, BK * BQ), *dKacc = scratch(dkv, BK * Dp);
    float* dVacc = scratch(dvv, BK * Dvp);
    for (int64_t task = t0; task < t1; task++) {
      const int64_t c = task % chunks, hk = (task / chunks) % Hkv, b = task / (chunks * Hkv);
      float* dQp = dqPartial + task * partialSize;  // (G, T, Dp)
      std::fill(dQp, dQp + partialSize, 0.f);
      const float* kBase = p.k + b * p.kStrides[0] + hk * p.kStrides[2];
      const float* vBase = p.v + b * p.vStrides[0] + hk * p.vStrides[2];
      for (int64_t kbi = nKB * c / chunks; kbi < nKB * (c + 1) / chunks; kbi++) {
        const int64_t kb = kbi * BK, nk = std::min<int64_t>(BK, S - kb);
        load_transposed(Kt, Dp, kBase + kb * p.kStrides[1], p.kStrides[1], nk, Dqk);
        load_rows(Kb, Dp, kBase + kb * p.kStrides[1], p.kStrides[1], nk, Dqk, BK, 1.f);
        load_transposed(Vt, Dvp, vBase + kb * p.vStrides[1], p.vStrides[1], nk, Dv);
        std::fill(dKacc, dKacc + BK * Dp, 0.f);
        std::fill(dVacc, dVacc + BK * Dvp, 0.f);
        const int64_t qFirst = p.causal ? std::max<int64_t>(0, kb - diag) / BQ * BQ : 0;
        for (int64_t g = 0; g < G; g++) {
          const int64_t h = hk * G + g;
          for (int64_t q0 = qFirst; q0 < T; q0 += BQ) {
            const int64_t rows = std::min<int64_t>(BQ, T - q0);
            load_rows(Qs, Dp, p.q + b * p.qStrides[0] + q0 * p.qStrides[1] + h * p.qStrides[2], p.qStrides[1], rows,
                      Dqk, rows, p.scale);
            load_rows(dOb, Dvp, dOut + ((b * T + q0) * Hq + h) * Dv, Hq * Dv, rows, Dv, rows, 1.f);
            nt_block(Qs, Dp, rows, Kt, Dp, Sb);
            nt_block(dOb, Dvp, rows, Vt, Dvp, dPb);
            for (int64_t i = 0; i < rows; i++) {
              float *srow = Sb + i * BK, *dprow = dPb + i * BK;
              const int64_t valid = std::min(nk, p.causal ? q0 + i + diag + 1 - kb : nk);
              const float L = lse[(b * Hq + h) * T + q0 + i], D = delta[(b * Hq + h) * T + q0 + i];
              if (valid < BK) mask_row(srow, valid);
              for (int v = 0; v < BK; v += VL) {
                const vf P = vexp(vload(srow + v) - L);
                vstore(srow + v, P);
                vstore(dprow + v, P * (vload(dprow + v) - D));
              }
            }
            // Pt = Pᵀ, then dV += Pᵀ·dO; reuse Pt for dSᵀ, then dK += dSᵀ·(scale·Q).
            for (int64_t i = 0; i < rows; i++)
              for (int64_t j = 0; j < nk; j++) Pt[j * BQ + i] = Sb[i * BK + j];
            nn_block(Pt, BQ, nk, dOb, Dvp, rows, dVacc, Dvp, Dvp);
            for (int64_t i = 0; i < rows; i++)
              for (int64_t j = 0; j < nk; j++) Pt[j * BQ + i] = dPb[i * BK + j];
            nn_block(Pt, BQ, nk, Qs, Dp, rows, dKacc, Dp, Dp);
            nn_block(dPb, BK, rows, Kb, Dp, nk, dQp + (g * T + q0) * Dp, Dp, Dp);
          }
        }
        for (int64_t j = 0; j < nk; j++) {
          std::memcpy(dk + ((b * S + kb + j) * Hkv + hk) * Dqk, dKacc + j * Dp, Dqk * sizeof(float));
          std::memcpy(dv + ((b * S + kb + j) * Hkv + hk) * Dv, dVacc + j * Dvp, Dv * sizeof(float));
        }
      }
    }
  });
  parallel_for(B * T * Hq, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t h = r % Hq, t = (r / Hq) % T, b = r / (Hq * T), hk = h / G, g = h % G;
      float* o = dq + r * Dqk;
      for (int64_t d = 0; d < Dqk; d++) o[d] = 0;
      for (int64_t c = 0; c < chunks; c++) {
        const float* src = dqPartial + ((b * Hkv + hk) * chunks + c) * partialSize + (g * T + t) * Dp;
        for (int64_t d = 0; d < Dqk; d++) o[d] += src[d];
      }
      for (int64_t d = 0; d < Dqk; d++) o[d] *= p.scale;
    }
  });
}

}  // namespace ECOMLA_NS
}  // namespace ecomla
