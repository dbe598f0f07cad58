// Fused row kernels: softmax (+backward), RMSNorm (+backward), RoPE, SwiGLU (+backward), AdamW.
// One block per row for the row kernels; sums of squares in double as the reference does.
#include "common.cuh"

namespace ecomla_gpu {

static int rowThreads(int64_t cols) { return cols >= 4096 ? 1024 : cols >= 1024 ? 512 : cols >= 256 ? 256 : 64; }
static unsigned rowBlocks(int64_t rows) { return (unsigned)(rows < 65535LL * 8 ? rows : 65535LL * 8); }

// ---- softmax ------------------------------------------------------------------------------------
__global__ void softmaxKernel(const float* x, float* out, int64_t rows, int64_t cols) {
  __shared__ float shared[1024 / ECOMLA_WARP + 1];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * cols;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = nanMax(m, xr[j]);
    m = blockMax(m, shared);
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += expf(xr[j] - m);
    s = blockSum<float>(s, shared);
    const float inv = 1.f / s;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) out[r * cols + j] = expf(xr[j] - m) * inv;
    __syncthreads();  // out may alias x: the next row's reads must not race this row's writes (distinct rows, but keep blocks simple)
  }
}
__global__ void softmaxBackwardKernel(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols) {
  __shared__ double shared[1024 / ECOMLA_WARP + 1];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t base = r * cols;
    double dot = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dot += (double)y[base + j] * dy[base + j];
    const float d = (float)blockSum<double>(dot, shared);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dx[base + j] = y[base + j] * (dy[base + j] - d);
  }
}
Err softmax(uint64_t x, uint64_t out, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return nullptr;
  softmaxKernel<<<rowBlocks(rows), rowThreads(cols), 0, stream()>>>(at<float>(x), at<float>(out), rows, cols);
  return lastError();
}
Err softmaxBackward(uint64_t y, uint64_t dy, uint64_t dx, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return nullptr;
  softmaxBackwardKernel<<<rowBlocks(rows), rowThreads(cols), 0, stream()>>>(at<float>(y), at<float>(dy), at<float>(dx), rows, cols);
  return lastError();
}

// ---- RMSNorm ------------------------------------------------------------------------------------
__global__ void rmsNormKernel(const float* x, const float* w, float* out, float* rstd, int64_t rows, int64_t cols, float eps) {
  __shared__ double shared[1024 / ECOMLA_WARP + 1];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t base = r * cols;
    double ss = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) ss += (double)x[base + j] * x[base + j];
    ss = blockSum<double>(ss, shared);
    const float inv = (float)(1.0 / sqrt(ss / (double)cols + (double)eps));
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) out[base + j] = x[base + j] * inv * w[j];
    if (threadIdx.x == 0) rstd[r] = inv;
  }
}
/** dx_j = r·w_j·dy_j − (r³/n)·x_j·Σ_i dy_i·w_i·x_i. */
__global__ void rmsNormBackwardRowsKernel(const float* x, const float* w, const float* rstd, const float* dy, float* dx, int64_t rows, int64_t cols) {
  __shared__ double shared[1024 / ECOMLA_WARP + 1];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t base = r * cols;
    const float inv = rstd[r];
    double dot = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dot += (double)dy[base + j] * w[j] * x[base + j];
    dot = blockSum<double>(dot, shared);
    const float coeff = (float)((double)inv * inv * inv * dot / (double)cols);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dx[base + j] = inv * w[j] * dy[base + j] - coeff * x[base + j];
  }
}
static const int64_t kRmsRowChunk = 64;
/** scratch[chunk, j] = Σ_{rows of chunk} dy·x·rstd (coalesced over j). */
__global__ void rmsNormBackwardColsKernel(const float* x, const float* rstd, const float* dy, float* scratch, int64_t rows, int64_t cols) {
  const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  const int64_t r0 = (int64_t)blockIdx.y * kRmsRowChunk, r1 = r0 + kRmsRowChunk < rows ? r0 + kRmsRowChunk : rows;
  double acc = 0;
  for (int64_t r = r0; r < r1; r++) acc += (double)dy[r * cols + j] * x[r * cols + j] * rstd[r];
  scratch[(int64_t)blockIdx.y * cols + j] = (float)acc;
}
__global__ void rmsNormBackwardSumKernel(const float* scratch, float* dw, int64_t chunks, int64_t cols) {
  GRID_LOOP(j, cols) {
    double acc = 0;
    for (int64_t c = 0; c < chunks; c++) acc += scratch[c * cols + j];
    dw[j] += (float)acc;
  }
}
int64_t rmsNormBackwardScratch(int64_t rows, int64_t cols) { return ((rows + kRmsRowChunk - 1) / kRmsRowChunk) * cols; }

Err rmsNorm(uint64_t x, uint64_t w, uint64_t out, uint64_t rstd, int64_t rows, int64_t cols, float eps) {
  if (rows <= 0) return nullptr;
  rmsNormKernel<<<rowBlocks(rows), rowThreads(cols), 0, stream()>>>(at<float>(x), at<float>(w), at<float>(out), at<float>(rstd), rows, cols, eps);
  return lastError();
}
Err rmsNormBackward(uint64_t x, uint64_t w, uint64_t rstd, uint64_t dy, uint64_t dx, uint64_t dw, int64_t rows, int64_t cols, uint64_t scratch) {
  if (rows <= 0 || cols <= 0) return nullptr;
  const int64_t chunks = (rows + kRmsRowChunk - 1) / kRmsRowChunk;
  if (chunks > 65535) return "rmsNormBackward: more than 4 194 240 rows";
  // dWeight first: it reads x and dy, which dx may alias (the TS side snapshots such inputs anyway).
  dim3 grid((unsigned)((cols + 255) / 256), (unsigned)chunks);
  rmsNormBackwardColsKernel<<<grid, 256, 0, stream()>>>(at<float>(x), at<float>(rstd), at<float>(dy), at<float>(scratch), rows, cols);
  rmsNormBackwardSumKernel<<<blocksFor(cols, 256), 256, 0, stream()>>>(at<float>(scratch), at<float>(dw), chunks, cols);
  rmsNormBackwardRowsKernel<<<rowBlocks(rows), rowThreads(cols), 0, stream()>>>(at<float>(x), at<float>(w), at<float>(rstd), at<float>(dy), at<float>(dx), rows, cols);
  return lastError();
}

// ---- RoPE ---------------------------------------------------------------------------------------
__global__ void ropeKernel(RopeParams p, const float* x, float* out, const float* cosT, const float* sinT, const int32_t* positions, int* bad) {
  const int64_t half = p.headDim / 2;
  const int64_t total = p.batch * p.seqLen * p.numHeads * half;
  const float sinSign = p.inverse ? -1.f : 1.f;
  GRID_LOOP(idx, total) {
    const int64_t i = idx % half;
    const int64_t row = idx / half;  // (b·T + t)·H + h
    const int64_t bt = row / p.numHeads;
    const int64_t t = bt % p.seqLen;
    const int64_t pos = positions ? (int64_t)positions[bt] : p.posOffset + t;
    if (pos < 0 || pos >= p.tableRows) {
      if (i == 0) atomicOr(bad, 1);
      continue;
    }
    const float c = p.scale * cosT[pos * half + i];
    const float s = sinSign * p.scale * sinT[pos * half + i];
    const int64_t base = row * p.headDim;
    const int64_t ia = base + (p.interleaved ? 2 * i : i);
    const int64_t ib = base + (p.interleaved ? 2 * i + 1 : i + half);
    const float xa = x[ia], xb = x[ib];
    out[ia] = xa * c - xb * s;
    out[ib] = xb * c + xa * s;
  }
}
Err rope(const RopeParams& p, uint64_t x, uint64_t out, uint64_t cos, uint64_t sin, uint64_t positions, uint64_t badPosFlag) {
  const int64_t total = p.batch * p.seqLen * p.numHeads * (p.headDim / 2);
  if (total <= 0) return nullptr;
  ropeKernel<<<blocksFor(total, 256), 256, 0, stream()>>>(p, at<float>(x), at<float>(out), at<float>(cos), at<float>(sin),
                                                         positions ? at<int32_t>(positions) : nullptr, at<int>(badPosFlag));
  return lastError();
}

// ---- SwiGLU -------------------------------------------------------------------------------------
__global__ void swigluKernel(const float* gate, const float* up, float* out, int64_t n) {
  GRID_LOOP(i, n) {
    const float g = gate[i];
    out[i] = g * sigmoidf(g) * up[i];
  }
}
__global__ void swigluBackwardKernel(const float* gate, const float* up, const float* dOut, float* dGate, float* dUp, int64_t n) {
  GRID_LOOP(i, n) {
    const float g = gate[i], u = up[i], dy = dOut[i];
    const float s = sigmoidf(g);
    dGate[i] = dy * u * s * (1.f + g * (1.f - s));
    dUp[i] = dy * g * s;
  }
}
Err swiglu(uint64_t gate, uint64_t up, uint64_t out, int64_t n) {
  if (n <= 0) return nullptr;
  swigluKernel<<<blocksFor(n, 256), 256, 0, stream()>>>(at<float>(gate), at<float>(up), at<float>(out), n);
  return lastError();
}
Err swigluBackward(uint64_t gate, uint64_t up, uint64_t dOut, uint64_t dGate, uint64_t dUp, int64_t n) {
  if (n <= 0) return nullptr;
  swigluBackwardKernel<<<blocksFor(n, 256), 256, 0, stream()>>>(at<float>(gate), at<float>(up), at<float>(dOut), at<float>(dGate), at<float>(dUp), n);
  return lastError();
}

// ---- AdamW --------------------------------------------------------------------------------------
__global__ void adamwKernel(AdamWParams p, float* param, const float* grad, float* m, float* v) {
  GRID_LOOP(i, p.n) {
    const float g = grad[i] * p.gradScale;
    const float mi = p.beta1 * m[i] + (1.f - p.beta1) * g;
    const float vi = p.beta2 * v[i] + (1.f - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float x = param[i];
    param[i] = x - p.lr * p.weightDecay * x - (p.lr * (mi / p.biasCorrection1)) / (sqrtf(vi / p.biasCorrection2) + p.eps);
  }
}
Err adamw(const AdamWParams& p, uint64_t param, uint64_t grad, uint64_t m, uint64_t v) {
  if (p.n <= 0) return nullptr;
  adamwKernel<<<blocksFor(p.n, 256), 256, 0, stream()>>>(p, at<float>(param), at<float>(grad), at<float>(m), at<float>(v));
  return lastError();
}

}  // namespace ecomla_gpu
