// Row-wise neural-network kernels: softmax, RMSNorm, RoPE (forward next to backward).
#include <algorithm>
#include <vector>

#include "kernels.h"

namespace ecomla {
namespace ECOMLA_NS {
namespace {

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(cols, 1)); }

}  // namespace

void softmax(const float* x,  // (rows, cols)
             float* out,      // (rows, cols), may alias x
             int64_t rows, int64_t cols) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      float* o = out + r * cols;
      vf vm = vset1(-INFINITY);
      int64_t i = 0;
      for (; i + VL <= cols; i += VL) vm = vmax(vm, vload(xr + i));
      float m = hmax(vm);
      for (; i < cols; i++) m = std::max(m, xr[i]);
      if (m == -INFINITY) m = 0;  // an all -inf row gives NaN (0/0), as the reference does
      vf vs{};
      i = 0;
      for (; i + VL <= cols; i += VL) {
        vf e = vexp(vload(xr + i) - m);
        vstore(o + i, e);
        vs += e;
      }
      double s = hsum(vs);
      for (; i < cols; i++) {
        o[i] = std::exp(xr[i] - m);
        s += o[i];
      }
      const float inv = (float)(1.0 / s);
      for (i = 0; i < cols; i++) o[i] *= inv;
    }
  });
}

void softmax_backward(const float* y,   // (rows, cols)
                      const float* dy,  // (rows, cols)
                      float* dx,        // (rows, cols)
                      int64_t rows, int64_t cols) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float *yr = y + r * cols, *dr = dy + r * cols;
      float* o = dx + r * cols;
      vf acc{};
      int64_t i = 0;
      for (; i + VL <= cols; i += VL) acc += vload(yr + i) * vload(dr + i);
      double dot = hsum(acc);
      for (; i < cols; i++) dot += (double)yr[i] * dr[i];
      const float d = (float)dot;
      for (i = 0; i < cols; i++) o[i] = yr[i] * (dr[i] - d);
    }
  });
}

void rms_norm(const float* x,  // (rows, cols)
              const float* w,  // (cols)
              float* out,      // (rows, cols)
              float* rstd,     // (rows)
              int64_t rows, int64_t cols, float eps) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      float* o = out + r * cols;
      vf acc{};
      int64_t i = 0;
      for (; i + VL <= cols; i += VL) {
        vf v = vload(xr + i);
        acc += v * v;
      }
      double ss = hsum(acc);
      for (; i < cols; i++) ss += (double)xr[i] * xr[i];
      const float rs = (float)(1.0 / std::sqrt(ss / (double)cols + eps));
      rstd[r] = rs;
      for (i = 0; i < cols; i++) o[i] = xr[i] * rs * w[i];
    }
  });
}

void rms_norm_backward(const float* x,     // (rows, cols)
                       const float* w,     // (cols)
                       const float* rstd,  // (rows)
                       const float* dy,    // (rows, cols)
                       float* dx,          // (rows, cols)
                       float* dw,          // (cols), accumulated
                       int64_t rows, int64_t cols) {
  // dw sums over rows: each task keeps its own partial so threads never share a row of dw.
  const int64_t tasks = std::min<int64_t>(rows, (int64_t)num_threads() * 4);
  if (tasks == 0) return;
  std::vector<float> partial(tasks * cols, 0.f);
  parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      float* pw = partial.data() + t * cols;
      for (int64_t r = rows * t / tasks; r < rows * (t + 1) / tasks; r++) {
        const float *xr = x + r * cols, *dr = dy + r * cols;
        float* o = dx + r * cols;
        const float rs = rstd[r];
        double dot = 0;
        for (int64_t i = 0; i < cols; i++) {
          dot += (double)dr[i] * w[i] * xr[i];
          pw[i] += dr[i] * xr[i] * rs;
        }
        const float coef = (float)(dot * rs * rs * rs / (double)cols);
        for (int64_t i = 0; i < cols; i++) o[i] = rs * w[i] * dr[i] - coef * xr[i];
      }
    }
  });
  parallel_for(cols, 256, [&](int64_t c0, int64_t c1) {
    for (int64_t t = 0; t < tasks; t++)
      for (int64_t c = c0; c < c1; c++) dw[c] += partial[t * cols + c];
  });
}

void rope(const float* x,  // (B, T, H, D)
          float* out,      // (B, T, H, D), may alias x
          int64_t B, int64_t T, int64_t H, int64_t D, bool interleaved,
          const float* cosTable,  // (P, D/2)
          const float* sinTable,  // (P, D/2)
          int64_t P, int64_t posOffset,
          const int32_t* positions,  // (B, T) or null
          float scale, bool inverse) {
  const int64_t half = D / 2;
  if (positions) {
    for (int64_t i = 0; i < B * T; i++)
      if (positions[i] < 0 || positions[i] >= P)
        throw KernelError{"rope: positions[" + std::to_string(i) + "] = " + std::to_string(positions[i]) +
                          " is outside the cos/sin tables [0, " + std::to_string(P) + ")"};
  }
  const float sinSign = inverse ? -scale : scale;
  parallel_for(B * T, std::max<int64_t>(1, 4096 / std::max<int64_t>(H * D, 1)), [&](int64_t bt0, int64_t bt1) {
    std::vector<float> c(half), s(half);
    for (int64_t bt = bt0; bt < bt1; bt++) {
      const int64_t pos = positions ? positions[bt] : posOffset + bt % T;
      for (int64_t i = 0; i < half; i++) {
        c[i] = cosTable[pos * half + i] * scale;
        s[i] = sinTable[pos * half + i] * sinSign;
      }
      for (int64_t h = 0; h < H; h++) {
        const float* xr = x + (bt * H + h) * D;
        float* o = out + (bt * H + h) * D;
        if (interleaved) {
          for (int64_t i = 0; i < half; i++) {
            float a = xr[2 * i], b = xr[2 * i + 1];
            o[2 * i] = a * c[i] - b * s[i];
            o[2 * i + 1] = b * c[i] + a * s[i];
          }
        } else {
          for (int64_t i = 0; i < half; i++) {
            float a = xr[i], b = xr[i + half];
            o[i] = a * c[i] - b * s[i];
            o[i + half] = b * c[i] + a * s[i];
          }
        }
      }
    }
  });
}

}  // namespace ECOMLA_NS
}  // namespace ecomla
