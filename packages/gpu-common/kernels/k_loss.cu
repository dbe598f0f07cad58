// Fused log-softmax + cross-entropy / KL (dense or top-k teacher) with gradient. One block per row
// loops over the vocabulary (128k and more), with an online max/sum so each row is read twice:
// once for log Σ exp, once for the loss terms and the gradient. grad may alias logits: every
// value a row needs before its gradient is written is read first.
#include "common.cuh"

namespace ecomla_gpu {

struct MaxSum {
  float m, s;
};
__device__ inline MaxSum combine(MaxSum a, MaxSum b) {
  if (a.m == -INFINITY) return b;
  if (b.m == -INFINITY) return a;
  if (a.m != a.m || b.m != b.m) return MaxSum{NAN, NAN};
  const float m = fmaxf(a.m, b.m);
  return MaxSum{m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}
/** log Σ_j exp(x_j / τ) over the row, for every thread of the block. */
__device__ float rowLogSumExp(const float* x, int64_t vocab, float invT, MaxSum* shared) {
  MaxSum acc{-INFINITY, 0.f};
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) acc = combine(acc, MaxSum{x[j] * invT, 1.f});
#pragma unroll
  for (int o = ECOMLA_WARP / 2; o > 0; o >>= 1) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, acc.m, o), __shfl_xor_sync(0xffffffffu, acc.s, o)};
    acc = combine(acc, other);
  }
  const int lane = threadIdx.x % ECOMLA_WARP, warp = threadIdx.x / ECOMLA_WARP, warps = blockDim.x / ECOMLA_WARP;
  __syncthreads();
  if (lane == 0) shared[warp] = acc;
  __syncthreads();
  MaxSum total{-INFINITY, 0.f};
  for (int w = 0; w < warps; w++) total = combine(total, shared[w]);
  return total.m + logf(total.s);
}

static const int kLossThreads = 1024;

__global__ void crossEntropyKernel(LossParams p, const float* logits, const int32_t* labels, const float* weights, float* loss, float* grad, int* bad) {
  __shared__ MaxSum sharedMs[1024 / ECOMLA_WARP + 1];
  __shared__ float labelLogit;
  const float invT = 1.f / p.temperature;
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const float* row = logits + r * p.vocab;
    const int64_t label = labels[r];
    if (label < 0) {
      if (threadIdx.x == 0) loss[r] = 0.f;
      if (grad) for (int64_t j = threadIdx.x; j < p.vocab; j += blockDim.x) grad[r * p.vocab + j] = 0.f;
      continue;
    }
    const bool valid = label < p.vocab;
    if (threadIdx.x == 0) {
      if (!valid) atomicOr(bad, 1);
      labelLogit = valid ? row[label] * invT : NAN;  // read before any gradient is written
    }
    const float lse = rowLogSumExp(row, p.vocab, invT, sharedMs);  // its __syncthreads publish labelLogit
    const float w = weights ? weights[r] : 1.f;
    if (threadIdx.x == 0) loss[r] = w * (lse - labelLogit);
    if (grad) {
      const float g = w * invT;
      for (int64_t j = threadIdx.x; j < p.vocab; j += blockDim.x) {
        const float q = expf(row[j] * invT - lse);
        grad[r * p.vocab + j] = g * (q - (j == label ? 1.f : 0.f));
      }
    }
    __syncthreads();
  }
}

__global__ void klDenseKernel(LossParams p, const float* logits, const float* teacher, const float* weights, float* loss, float* grad) {
  __shared__ MaxSum sharedMs[1024 / ECOMLA_WARP + 1];
  __shared__ double sharedD[1024 / ECOMLA_WARP + 1];
  const float invT = 1.f / p.temperature;
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const float* row = logits + r * p.vocab;
    const float* trow = teacher + r * p.vocab;
    const float lse = rowLogSumExp(row, p.vocab, invT, sharedMs);
    const float lseT = rowLogSumExp(trow, p.vocab, invT, sharedMs);
    const float w = weights ? weights[r] : 1.f;
    const float g = w * invT;
    double sum = 0;
    for (int64_t j = threadIdx.x; j < p.vocab; j += blockDim.x) {
      const float logQ = row[j] * invT - lse;
      const float logP = trow[j] * invT - lseT;
      const float prob = expf(logP);
      if (prob > 0.f) sum += (double)prob * (logP - logQ);
      if (grad) grad[r * p.vocab + j] = g * (expf(logQ) - prob);
    }
    sum = blockSum<double>(sum, sharedD);
    if (threadIdx.x == 0) loss[r] = (float)(w * sum);
  }
}

/** Top-k teacher: loss = w·Σ_k p_k (lp_k − log q_{j_k}); grad_j = (w/τ)(q_j·Σ_k p_k − Σ_{k: j_k = j} p_k). */
__global__ void klTopKKernel(LossParams p, const float* logits, const int32_t* indices, const float* logprobs, const float* weights,
                             float* loss, float* grad, int* bad) {
  __shared__ MaxSum sharedMs[1024 / ECOMLA_WARP + 1];
  __shared__ double sharedD[1024 / ECOMLA_WARP + 1];
  const float invT = 1.f / p.temperature;
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const float* row = logits + r * p.vocab;
    const float lse = rowLogSumExp(row, p.vocab, invT, sharedMs);
    const float w = weights ? weights[r] : 1.f;
    double sum = 0, mass = 0;
    for (int64_t k = threadIdx.x; k < p.topK; k += blockDim.x) {
      const int64_t j = indices[r * p.topK + k];
      const float lp = logprobs[r * p.topK + k];
      const float prob = expf(lp);
      if (prob == 0.f) continue;
      if (j < 0 || j >= p.vocab) {
        atomicOr(bad, 1);
        sum += NAN;
        continue;
      }
      sum += (double)prob * (lp - (row[j] * invT - lse));
      mass += prob;
    }
    sum = blockSum<double>(sum, sharedD);
    mass = blockSum<double>(mass, sharedD);  // both reductions finish before any gradient is written
    if (threadIdx.x == 0) loss[r] = (float)(w * sum);
    if (grad) {
      const float g = w * invT;
      const float massF = (float)mass;
      for (int64_t j = threadIdx.x; j < p.vocab; j += blockDim.x) grad[r * p.vocab + j] = g * expf(row[j] * invT - lse) * massF;
      __syncthreads();  // the dense part of the row is written (and visible to the block) before the scatter
      for (int64_t k = threadIdx.x; k < p.topK; k += blockDim.x) {
        const int64_t j = indices[r * p.topK + k];
        const float prob = expf(logprobs[r * p.topK + k]);
        if (prob == 0.f || j < 0 || j >= p.vocab) continue;
        atomicAdd(grad + r * p.vocab + j, -g * prob);
      }
    }
    __syncthreads();
  }
}

static unsigned lossBlocks(int64_t rows) { return (unsigned)(rows < 65535LL * 4 ? rows : 65535LL * 4); }

Err crossEntropy(const LossParams& p, uint64_t logits, uint64_t labels, uint64_t weights, uint64_t loss, uint64_t grad, uint64_t badFlag) {
  if (p.rows <= 0) return nullptr;
  crossEntropyKernel<<<lossBlocks(p.rows), kLossThreads, 0, stream()>>>(p, at<float>(logits), at<int32_t>(labels), weights ? at<float>(weights) : nullptr,
                                                                       at<float>(loss), grad ? at<float>(grad) : nullptr, at<int>(badFlag));
  return lastError();
}

Err klDiv(const LossParams& p, uint64_t logits, uint64_t teacherLogits, uint64_t teacherIndices, uint64_t teacherLogprobs,
          uint64_t weights, uint64_t loss, uint64_t grad, uint64_t badFlag) {
  if (p.rows <= 0) return nullptr;
  const float* w = weights ? at<float>(weights) : nullptr;
  float* g = grad ? at<float>(grad) : nullptr;
  if (teacherLogits) {
    klDenseKernel<<<lossBlocks(p.rows), kLossThreads, 0, stream()>>>(p, at<float>(logits), at<float>(teacherLogits), w, at<float>(loss), g);
  } else {
    klTopKKernel<<<lossBlocks(p.rows), kLossThreads, 0, stream()>>>(p, at<float>(logits), at<int32_t>(teacherIndices), at<float>(teacherLogprobs), w,
                                                                    at<float>(loss), g, at<int>(badFlag));
  }
  return lastError();
}

}  // namespace ecomla_gpu
