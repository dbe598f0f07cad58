// Elementwise kernels with broadcasting, unary ops and their derivatives, last-axis reductions,
// sumToShape, SwiGLU and AdamW.
#include <algorithm>
#include <vector>

#include "kernels.h"

namespace ecomla {
namespace ECOMLA_NS {
namespace {

constexpr int64_t kGrain = 1 << 14;

// The switches below end in `default:` for the last op, so a new op in core's table would silently
// run that one: stop the build instead, until its case is written.
static_assert(ECOMLA_BINARY_OP_COUNT == 7, "binary() handles add..pow: add a case for the new BinaryOp");
static_assert(ECOMLA_UNARY_OP_COUNT == 16, "unary()/unary_backward() handle neg..powScalar: add cases for the new UnaryOp");
static_assert(ECOMLA_REDUCE_OP_COUNT == 4, "reduce_last_axis() handles sum, max, mean, sumsq: add the new ReduceOp");

inline float nan_max(float a, float b) { return a != a ? a : (b != b ? b : (a > b ? a : b)); }
inline float nan_min(float a, float b) { return a != a ? a : (b != b ? b : (a < b ? a : b)); }

template <class F>
void binary_loop(F f, const float* a, int64_t sa, const float* b, int64_t sb, float* o, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; i++) o[i] = f(a[i], b[i]);
  } else if (sa == 1) {
    const float bv = b[0];
    for (int64_t i = 0; i < n; i++) o[i] = f(a[i], bv);
  } else if (sb == 1) {
    const float av = a[0];
    for (int64_t i = 0; i < n; i++) o[i] = f(av, b[i]);
  } else {
    const float v = f(a[0], b[0]);
    for (int64_t i = 0; i < n; i++) o[i] = v;
  }
}

inline float sigmoidf(float x) { return 1.f / (1.f + std::exp(-x)); }
inline vf vsigmoid(vf x) { return 1.f / (1.f + vexp(-x)); }

template <class F>
void map_vec(int64_t n, F f) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) { f(b, e); });
}

}  // namespace

void binary(int op, const float* a, const int64_t* aShape, const float* b, const int64_t* bShape, float* out,
            const int64_t* outShape, int rank) {
  // Per-axis strides of a and b in the output's index space (0 on broadcast axes); then merge axes
  // whose broadcast pattern matches so the inner loop is as long as possible.
  int64_t shape[8], sa[8], sb[8];
  int r = 0;
  int64_t accA = 1, accB = 1;
  int64_t fa[8], fb[8];
  for (int d = rank - 1; d >= 0; d--) {
    fa[d] = aShape[d] == 1 ? 0 : accA;
    fb[d] = bShape[d] == 1 ? 0 : accB;
    accA *= aShape[d];
    accB *= bShape[d];
  }
  for (int d = 0; d < rank; d++) {
    if (outShape[d] == 0) return;
    if (outShape[d] == 1) continue;
    if (r > 0 && sa[r - 1] == fa[d] * outShape[d] && sb[r - 1] == fb[d] * outShape[d]) {
      shape[r - 1] *= outShape[d];
      sa[r - 1] = fa[d];
      sb[r - 1] = fb[d];
      continue;
    }
    shape[r] = outShape[d];
    sa[r] = fa[d];
    sb[r] = fb[d];
    r++;
  }
  if (r == 0) {
    shape[0] = 1;
    sa[0] = sb[0] = 0;
    r = 1;
  }
  const int64_t inner = shape[r - 1];
  int64_t outer = 1;
  for (int d = 0; d < r - 1; d++) outer *= shape[d];
  // Work items are (outer row, inner chunk) so one long row still splits across threads.
  const int64_t chunk = std::min<int64_t>(inner, kGrain);
  const int64_t chunksPerRow = (inner + chunk - 1) / chunk;
  auto run = [&](auto f) {
    parallel_for(outer * chunksPerRow, std::max<int64_t>(1, kGrain / chunk), [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; t++) {
        int64_t row = t / chunksPerRow, c0 = (t % chunksPerRow) * chunk, c1 = std::min(inner, c0 + chunk);
        int64_t offA = 0, offB = 0, rem = row;
        for (int d = r - 2; d >= 0; d--) {
          int64_t i = rem % shape[d];
          rem /= shape[d];
          offA += i * sa[d];
          offB += i * sb[d];
        }
        int64_t sA = sa[r - 1], sB = sb[r - 1];
        binary_loop(f, a + offA + c0 * sA, sA, b + offB + c0 * sB, sB, out + row * inner + c0, c1 - c0);
      }
    });
  };
  switch (op) {
    case B_ADD: run([](float x, float y) { return x + y; }); break;
    case B_SUB: run([](float x, float y) { return x - y; }); break;
    case B_MUL: run([](float x, float y) { return x * y; }); break;
    case B_DIV: run([](float x, float y) { return x / y; }); break;
    case B_MAX: run([](float x, float y) { return nan_max(x, y); }); break;
    case B_MIN: run([](float x, float y) { return nan_min(x, y); }); break;
    default: run([](float x, float y) { return std::pow(x, y); }); break;
  }
}

void unary(int op, const float* x, float* out, int64_t n, float alpha) {
  auto apply = [&](auto f) {
    map_vec(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) out[i] = f(x[i]);
    });
  };
  switch (op) {
    case U_NEG: apply([](float v) { return -v; }); break;
    case U_EXP:
      map_vec(n, [&](int64_t b, int64_t e) {
        int64_t i = b;
        for (; i + VL <= e; i += VL) vstore(out + i, vexp(vload(x + i)));
        for (; i < e; i++) out[i] = std::exp(x[i]);
      });
      break;
    case U_LOG: apply([](float v) { return std::log(v); }); break;
    case U_SQRT: apply([](float v) { return std::sqrt(v); }); break;
    case U_RSQRT: apply([](float v) { return 1.f / std::sqrt(v); }); break;
    case U_ABS: apply([](float v) { return std::fabs(v); }); break;
    case U_SQUARE: apply([](float v) { return v * v; }); break;
    case U_RECIPROCAL: apply([](float v) { return 1.f / v; }); break;
    case U_RELU: apply([](float v) { return v > 0 ? v : (v != v ? v : 0.f); }); break;
    case U_SIGMOID: apply([](float v) { return v >= 0 ? 1.f / (1.f + std::exp(-v)) : std::exp(v) / (1.f + std::exp(v)); }); break;
    case U_SILU:
      map_vec(n, [&](int64_t b, int64_t e) {
        int64_t i = b;
        for (; i + VL <= e; i += VL) {
          vf v = vload(x + i);
          vstore(out + i, v * vsigmoid(v));
        }
        for (; i < e; i++) out[i] = x[i] * sigmoidf(x[i]);
      });
      break;
    case U_TANH: apply([](float v) { return std::tanh(v); }); break;
    case U_GELU: apply([](float v) { return (float)(0.5 * v * std::erfc(-(double)v * M_SQRT1_2)); }); break;
    case U_SCALE: apply([=](float v) { return alpha * v; }); break;
    case U_ADD_SCALAR: apply([=](float v) { return v + alpha; }); break;
    default: apply([=](float v) { return std::pow(v, alpha); }); break;
  }
}

void unary_backward(int op, const float* x, const float* y, const float* dy, float* dx, int64_t n, float alpha) {
  auto apply = [&](auto f) {
    map_vec(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) dx[i] = dy[i] * f(x[i], y[i]);
    });
  };
  switch (op) {
    case U_NEG: apply([](float, float) { return -1.f; }); break;
    case U_EXP: apply([](float v, float) { return std::exp(v); }); break;
    case U_LOG: apply([](float v, float) { return 1.f / v; }); break;
    case U_SQRT: apply([](float v, float) { return 0.5f / std::sqrt(v); }); break;
    case U_RSQRT: apply([](float v, float) { return -0.5f / (v * std::sqrt(v)); }); break;
    case U_ABS: apply([](float v, float) { return v > 0 ? 1.f : v < 0 ? -1.f : (v != v ? v : 0.f); }); break;
    case U_SQUARE: apply([](float v, float) { return 2.f * v; }); break;
    case U_RECIPROCAL: apply([](float v, float) { return -1.f / (v * v); }); break;
    case U_RELU: apply([](float v, float) { return v > 0 ? 1.f : (v != v ? v : 0.f); }); break;
    case U_SIGMOID: apply([](float v, float) { float s = sigmoidf(v); return s * (1.f - s); }); break;
    case U_SILU: apply([](float v, float) { float s = sigmoidf(v); return s * (1.f + v * (1.f - s)); }); break;
    case U_TANH: apply([](float v, float) { float t = std::tanh(v); return 1.f - t * t; }); break;
    case U_GELU:
      apply([](float v, float) {
        double d = v;
        return (float)(0.5 * std::erfc(-d * M_SQRT1_2) + d * 0.3989422804014327 * std::exp(-0.5 * d * d));
      });
      break;
    case U_SCALE: apply([=](float, float) { return alpha; }); break;
    case U_ADD_SCALAR: apply([](float, float) { return 1.f; }); break;
    default: apply([=](float v, float) { return alpha == 0 ? 0.f : alpha * std::pow(v, alpha - 1.f); }); break;
  }
}

void reduce_last_axis(int op, const float* x, float* out, int64_t rows, int64_t cols) {
  // Few long rows (a gradient norm) split each row across threads; many rows go one per task.
  const int nt = num_threads();
  const int64_t parts = (rows < nt && cols >= 4 * kGrain) ? std::min<int64_t>(nt * 4, cols / kGrain) : 1;
  std::vector<double> partial(rows * parts);
  auto segment = [&](const float* p, int64_t n) -> double {
    int64_t i = 0;
    if (op == R_MAX) {
      float m = -INFINITY;
      bool nan = false;
      vf vm = vset1(-INFINITY);
      for (; i + VL <= n; i += VL) {
        vf v = vload(p + i);
        vm = vmax(vm, v);
        for (int l = 0; l < VL; l++) nan |= v[l] != v[l];
      }
      m = hmax(vm);
      for (; i < n; i++) {
        nan |= p[i] != p[i];
        m = p[i] > m ? p[i] : m;
      }
      return nan ? NAN : m;
    }
    vf a0{}, a1{}, a2{}, a3{};
    const bool sq = op == R_SUMSQ;
    for (; i + 4 * VL <= n; i += 4 * VL) {
      vf v0 = vload(p + i), v1 = vload(p + i + VL), v2 = vload(p + i + 2 * VL), v3 = vload(p + i + 3 * VL);
      if (sq) { v0 *= v0; v1 *= v1; v2 *= v2; v3 *= v3; }
      a0 += v0; a1 += v1; a2 += v2; a3 += v3;
    }
    double s = 0;
    for (int l = 0; l < VL; l++) s += (double)a0[l] + a1[l] + a2[l] + a3[l];
    for (; i < n; i++) s += sq ? (double)p[i] * p[i] : p[i];
    return s;
  };
  parallel_for(rows * parts, parts > 1 ? 1 : std::max<int64_t>(1, kGrain / std::max<int64_t>(cols, 1)), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      int64_t r = t / parts, pi = t % parts;
      int64_t c0 = cols * pi / parts, c1 = cols * (pi + 1) / parts;
      partial[t] = segment(x + r * cols + c0, c1 - c0);
    }
  });
  for (int64_t r = 0; r < rows; r++) {
    double acc = op == R_MAX ? -INFINITY : 0;
    for (int64_t pi = 0; pi < parts; pi++) {
      double v = partial[r * parts + pi];
      acc = op == R_MAX ? (v != v || acc != acc ? NAN : std::max(acc, v)) : acc + v;
    }
    out[r] = (float)(op == R_MEAN ? acc / (double)cols : acc);
  }
}

void sum_to_shape(const float* x, const int64_t* xShape, float* out, const int64_t* outShape, int rank) {
  // Axes are "kept" (out has the full size) or "reduced" (out has 1); merging neighbours of the same
  // kind leaves an alternating list. Contiguous x makes every merge legal.
  int64_t size[8], xs[8];
  bool kept[8];
  int r = 0;
  for (int d = 0; d < rank; d++) {
    if (xShape[d] == 0) {
      int64_t n = 1;
      for (int e = 0; e < rank; e++) n *= outShape[e];
      std::fill(out, out + n, 0.f);
      return;
    }
    if (xShape[d] == 1) continue;
    bool k = outShape[d] != 1;
    if (r > 0 && kept[r - 1] == k) {
      size[r - 1] *= xShape[d];
      continue;
    }
    size[r] = xShape[d];
    kept[r] = k;
    r++;
  }
  if (r == 0) {
    out[0] = x[0];
    return;
  }
  int64_t acc = 1;
  for (int d = r - 1; d >= 0; d--) {
    xs[d] = acc;
    acc *= size[d];
  }
  int64_t nOut = 1;
  for (int d = 0; d < r; d++)
    if (kept[d]) nOut *= size[d];
  // Reduced axes enumerated as one counter; kept axes give the base offset.
  int redAxes[8], nRed = 0, keptAxes[8], nKept = 0;
  int64_t nRedTotal = 1;
  for (int d = 0; d < r; d++) {
    if (kept[d]) keptAxes[nKept++] = d;
    else { redAxes[nRed++] = d; nRedTotal *= size[d]; }
  }
  auto redOffset = [&](int64_t ri) {
    int64_t off = 0;
    for (int j = nRed - 1; j >= 0; j--) {
      int d = redAxes[j];
      off += (ri % size[d]) * xs[d];
      ri /= size[d];
    }
    return off;
  };
  auto keptOffset = [&](int64_t ki) {
    int64_t off = 0;
    for (int j = nKept - 1; j >= 0; j--) {
      int d = keptAxes[j];
      off += (ki % size[d]) * xs[d];
      ki /= size[d];
    }
    return off;
  };
  if (kept[r - 1]) {
    // Last axis kept: out rows of length L accumulate whole x rows (the bias-gradient case).
    const int64_t L = size[r - 1], rowsOut = nOut / L;
    const int64_t chunk = std::min<int64_t>(L, 1024);
    const int64_t chunks = (L + chunk - 1) / chunk;
    parallel_for(rowsOut * chunks, 1, [&](int64_t t0, int64_t t1) {
      std::vector<double> accRow(chunk);
      for (int64_t t = t0; t < t1; t++) {
        int64_t ro = t / chunks, c0 = (t % chunks) * chunk, c1 = std::min(L, c0 + chunk);
        std::fill(accRow.begin(), accRow.end(), 0.0);
        int64_t base = keptOffset(ro * L);
        for (int64_t ri = 0; ri < nRedTotal; ri++) {
          const float* p = x + base + redOffset(ri);
          for (int64_t c = c0; c < c1; c++) accRow[c - c0] += p[c];
        }
        for (int64_t c = c0; c < c1; c++) out[ro * L + c] = (float)accRow[c - c0];
      }
    });
  } else {
    const int64_t L = size[r - 1], outerRed = nRedTotal / L;
    parallel_for(nOut, std::max<int64_t>(1, kGrain / std::max<int64_t>(nRedTotal, 1)), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o++) {
        int64_t base = keptOffset(o);
        double s = 0;
        for (int64_t ri = 0; ri < outerRed; ri++) {
          const float* p = x + base + redOffset(ri * L);
          vf a{};
          int64_t i = 0;
          for (; i + VL <= L; i += VL) a += vload(p + i);
          for (int l = 0; l < VL; l++) s += a[l];
          for (; i < L; i++) s += p[i];
        }
        out[o] = (float)s;
      }
    });
  }
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  map_vec(n, [&](int64_t b, int64_t e) {
    int64_t i = b;
    for (; i + VL <= e; i += VL) {
      vf g = vload(gate + i);
      vstore(out + i, g * vsigmoid(g) * vload(up + i));
    }
    for (; i < e; i++) out[i] = gate[i] * sigmoidf(gate[i]) * up[i];
  });
}

void swiglu_backward(const float* gate, const float* up, const float* dOut, float* dGate, float* dUp, int64_t n) {
  map_vec(n, [&](int64_t b, int64_t e) {
    int64_t i = b;
    for (; i + VL <= e; i += VL) {
      vf g = vload(gate + i), u = vload(up + i), d = vload(dOut + i);
      vf s = vsigmoid(g);
      vstore(dGate + i, d * u * s * (1.f + g * (1.f - s)));
      vstore(dUp + i, d * g * s);
    }
    for (; i < e; i++) {
      float g = gate[i], s = sigmoidf(g), d = dOut[i], u = up[i];
      dGate[i] = d * u * s * (1.f + g * (1.f - s));
      dUp[i] = d * g * s;
    }
  });
}

void adamw(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
           float eps, float weightDecay, float bc1, float bc2, float gradScale) {
  const float decay = 1.f - lr * weightDecay, stepSize = lr / bc1, invBc2 = 1.f / bc2;
  map_vec(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      float g = grad[i] * gradScale;
      float mi = beta1 * m[i] + (1.f - beta1) * g;
      float vi2 = beta2 * v[i] + (1.f - beta2) * g * g;
      m[i] = mi;
      v[i] = vi2;
      param[i] = param[i] * decay - stepSize * mi / (std::sqrt(vi2 * invBc2) + eps);
    }
  });
}

}  // namespace ECOMLA_NS
}  // namespace ecomla
