// Causal / full GQA attention, forward and backward, flash-style: key (or query) tiles staged in
// shared memory, an online softmax per query row, and no T×S matrix anywhere. One warp per row:
// in the forward and dq pass a block holds kRows consecutive query rows of one (batch, head); in
// the dk/dv pass a block holds kRows consecutive key rows of one (batch, kv head) and walks every
// query head of its group, so dk/dv are written once, without atomics (deterministic).
// Head dims up to 256 (each lane keeps ceil(D / warp) accumulators).
#include "common.cuh"

namespace ecomla_gpu {

static const int kRows = 8;                       // rows (warps) per block
static const int kMaxDim = 256;                   // largest qkDim / vDim
static const int kSlots = kMaxDim / ECOMLA_WARP;  // accumulators per lane
int64_t attentionMaxHeadDim() { return kMaxDim; }

/** Shared-memory floats of one block: a tile of kt rows of K (padded) and V (padded), plus kRows q/dO rows. */
static int64_t attnSharedFloats(int kt, int64_t dqk, int64_t dv) { return (int64_t)kt * (dqk + 1) + (int64_t)kt * (dv + 1) + kRows * (dqk + dv); }

static int gSharedOptin = -1;
/** Largest key tile (≤ warp, ≥ 4) whose shared memory fits the device; 0 if none. Sets the kernel's opt-in. */
template <typename K>
static int chooseTile(K kernel, int64_t dqk, int64_t dv, size_t* bytes) {
  if (gSharedOptin < 0) {
    cudaDeviceProp prop;
    gSharedOptin = cudaGetDeviceProperties(&prop, 0) == cudaSuccess ? (int)ECOMLA_SHARED_OPTIN(prop) : 49152;
    if (gSharedOptin < 49152) gSharedOptin = 49152;
  }
  for (int kt = ECOMLA_WARP; kt >= 4; kt /= 2) {
    const size_t b = (size_t)attnSharedFloats(kt, dqk, dv) * sizeof(float);
    if (b + 1024 <= (size_t)gSharedOptin) {  // 1 KiB left for the kernels' static shared arrays
      if (b > 49152) cudaFuncSetAttribute((const void*)kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)b);
      *bytes = b;
      return kt;
    }
  }
  return 0;
}

__device__ inline int64_t viewAt(const AttnView& v, int64_t b, int64_t t, int64_t h) { return v.offset + b * v.sb + t * v.st + h * v.sh; }
/** Keys visible to query t: s < limit. */
__device__ inline int64_t keyLimit(const AttnParams& p, int64_t t) {
  if (!p.causal) return p.keyLen;
  const int64_t l = t + p.keyLen - p.queryLen + 1;
  return l < p.keyLen ? l : p.keyLen;
}

// ---- forward ------------------------------------------------------------------------------------
__global__ void attentionForwardKernel(AttnParams p, AttnView q, AttnView k, AttnView v, float* out, float* lse, int kt) {
  extern __shared__ float smem[];
  const int64_t dqk = p.qkDim, dv = p.vDim;
  float* ks = smem;                    // [kt][dqk + 1]
  float* vs = ks + kt * (dqk + 1);     // [kt][dv + 1]
  float* qs = vs + kt * (dv + 1);      // [kRows][dqk]
  const int lane = threadIdx.x % ECOMLA_WARP, warp = threadIdx.x / ECOMLA_WARP;
  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t t0 = (int64_t)blockIdx.x * kRows, t = t0 + warp;
  const bool active = t < p.queryLen;
  const int64_t kvh = h / (p.numHeads / p.numKvHeads);
  const float* Q = at<float>(q.ptr);
  const float* K = at<float>(k.ptr);
  const float* V = at<float>(v.ptr);
  if (active) for (int64_t c = lane; c < dqk; c += ECOMLA_WARP) qs[warp * dqk + c] = Q[viewAt(q, b, t, h) + c];
  float acc[kSlots];
#pragma unroll
  for (int i = 0; i < kSlots; i++) acc[i] = 0.f;
  float m = -INFINITY, l = 0.f;
  const int64_t myLimit = active ? keyLimit(p, t) : 0;
  const int64_t lastRow = t0 + kRows - 1 < p.queryLen - 1 ? t0 + kRows - 1 : p.queryLen - 1;
  const int64_t blockLimit = keyLimit(p, lastRow);  // keys any row of the block sees
  for (int64_t s0 = 0; s0 < blockLimit; s0 += kt) {
    __syncthreads();  // previous tile fully consumed (and qs written, on the first pass)
    for (int64_t e = threadIdx.x; e < (int64_t)kt * dqk; e += blockDim.x) {
      const int64_t j = e / dqk, c = e % dqk;
      ks[j * (dqk + 1) + c] = s0 + j < p.keyLen ? K[viewAt(k, b, s0 + j, kvh) + c] : 0.f;
    }
    for (int64_t e = threadIdx.x; e < (int64_t)kt * dv; e += blockDim.x) {
      const int64_t j = e / dv, c = e % dv;
      vs[j * (dv + 1) + c] = s0 + j < p.keyLen ? V[viewAt(v, b, s0 + j, kvh) + c] : 0.f;
    }
    __syncthreads();
    if (!active || s0 >= myLimit) continue;
    // Lane j scores key s0 + j.
    float score = -INFINITY;
    if (lane < kt && s0 + lane < myLimit) {
      float dot = 0.f;
      for (int64_t c = 0; c < dqk; c++) dot += qs[warp * dqk + c] * ks[lane * (dqk + 1) + c];
      score = p.scale * dot;
    }
    const float tileMax = warpMax(score);
    const float mNew = fmaxf(m, tileMax);
    const float corr = m == -INFINITY ? 0.f : expf(m - mNew);
    const float prob = score == -INFINITY ? 0.f : expf(score - mNew);
    l = l * corr + warpSum(prob);
    m = mNew;
#pragma unroll
    for (int i = 0; i < kSlots; i++) acc[i] *= corr;
    for (int j = 0; j < kt; j++) {
      const float pj = __shfl_sync(0xffffffffu, prob, j);
      if (pj == 0.f) continue;  // uniform across the warp
#pragma unroll
      for (int i = 0; i < kSlots; i++) {
        const int64_t c = lane + (int64_t)i * ECOMLA_WARP;
        if (c < dv) acc[i] += pj * vs[j * (dv + 1) + c];
      }
    }
  }
  if (!active) return;
  const float inv = 1.f / l;
  float* o = out + ((b * p.queryLen + t) * p.numHeads + h) * dv;
#pragma unroll
  for (int i = 0; i < kSlots; i++) {
    const int64_t c = lane + (int64_t)i * ECOMLA_WARP;
    if (c < dv) o[c] = acc[i] * inv;
  }
  if (lse && lane == 0) lse[(b * p.numHeads + h) * p.queryLen + t] = m + logf(l);
}

Err attention(const AttnParams& p, const AttnView& q, const AttnView& k, const AttnView& v, uint64_t out, uint64_t lse) {
  if (p.batch * p.queryLen == 0) return nullptr;
  if (p.qkDim > kMaxDim || p.vDim > kMaxDim) return "attention: qkDim and vDim must be ≤ 256";
  size_t bytes = 0;
  const int kt = chooseTile(attentionForwardKernel, p.qkDim, p.vDim, &bytes);
  if (kt == 0) return "attention: head dims too large for the device's shared memory";
  dim3 grid((unsigned)((p.queryLen + kRows - 1) / kRows), (unsigned)p.numHeads, (unsigned)p.batch);
  attentionForwardKernel<<<grid, kRows * ECOMLA_WARP, bytes, stream()>>>(p, q, k, v, at<float>(out), lse ? at<float>(lse) : nullptr, kt);
  return lastError();
}

// ---- backward -----------------------------------------------------------------------------------
/** δ[b, h, t] = dO·O (one warp per row). */
__global__ void attentionDeltaKernel(AttnParams p, const float* out, const float* dOut, float* delta) {
  const int lane = threadIdx.x % ECOMLA_WARP;
  const int64_t rows = p.batch * p.queryLen * p.numHeads;
  for (int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / ECOMLA_WARP; row < rows; row += (int64_t)gridDim.x * blockDim.x / ECOMLA_WARP) {
    float d = 0.f;
    for (int64_t c = lane; c < p.vDim; c += ECOMLA_WARP) d += out[row * p.vDim + c] * dOut[row * p.vDim + c];
    d = warpSum(d);
    // row = (b·T + t)·H + h → δ stored (B, H, T) like lse.
    const int64_t h = row % p.numHeads, bt = row / p.numHeads, t = bt % p.queryLen, b = bt / p.queryLen;
    if (lane == 0) delta[(b * p.numHeads + h) * p.queryLen + t] = d;
  }
}

/** dq = scale·Σ_s p_s (dO·v_s − δ) k_s, key tiles in shared memory (same walk as the forward). */
__global__ void attentionDqKernel(AttnParams p, AttnView q, AttnView k, AttnView v, const float* lse, const float* delta, const float* dOut,
                                  float* dq, int kt) {
  extern __shared__ float smem[];
  const int64_t dqk = p.qkDim, dv = p.vDim;
  float* ks = smem;
  float* vs = ks + kt * (dqk + 1);
  float* qs = vs + kt * (dv + 1);  // [kRows][dqk]
  float* dos = qs + kRows * dqk;   // [kRows][dv]
  const int lane = threadIdx.x % ECOMLA_WARP, warp = threadIdx.x / ECOMLA_WARP;
  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t t0 = (int64_t)blockIdx.x * kRows, t = t0 + warp;
  const bool active = t < p.queryLen;
  const int64_t kvh = h / (p.numHeads / p.numKvHeads);
  const float* Q = at<float>(q.ptr);
  const float* K = at<float>(k.ptr);
  const float* V = at<float>(v.ptr);
  const int64_t row = (b * p.queryLen + t) * p.numHeads + h;
  if (active) {
    for (int64_t c = lane; c < dqk; c += ECOMLA_WARP) qs[warp * dqk + c] = Q[viewAt(q, b, t, h) + c];
    for (int64_t c = lane; c < dv; c += ECOMLA_WARP) dos[warp * dv + c] = dOut[row * dv + c];
  }
  const float rowLse = active ? lse[(b * p.numHeads + h) * p.queryLen + t] : 0.f;
  const float rowDelta = active ? delta[(b * p.numHeads + h) * p.queryLen + t] : 0.f;
  float acc[kSlots];
#pragma unroll
  for (int i = 0; i < kSlots; i++) acc[i] = 0.f;
  const int64_t myLimit = active ? keyLimit(p, t) : 0;
  const int64_t lastRow = t0 + kRows - 1 < p.queryLen - 1 ? t0 + kRows - 1 : p.queryLen - 1;
  const int64_t blockLimit = keyLimit(p, lastRow);
  for (int64_t s0 = 0; s0 < blockLimit; s0 += kt) {
    __syncthreads();
    for (int64_t e = threadIdx.x; e < (int64_t)kt * dqk; e += blockDim.x) {
      const int64_t j = e / dqk, c = e % dqk;
      ks[j * (dqk + 1) + c] = s0 + j < p.keyLen ? K[viewAt(k, b, s0 + j, kvh) + c] : 0.f;
    }
    for (int64_t e = threadIdx.x; e < (int64_t)kt * dv; e += blockDim.x) {
      const int64_t j = e / dv, c = e % dv;
      vs[j * (dv + 1) + c] = s0 + j < p.keyLen ? V[viewAt(v, b, s0 + j, kvh) + c] : 0.f;
    }
    __syncthreads();
    if (!active || s0 >= myLimit) continue;
    float ds = 0.f;
    if (lane < kt && s0 + lane < myLimit) {
      float dot = 0.f, dp = 0.f;
      for (int64_t c = 0; c < dqk; c++) dot += qs[warp * dqk + c] * ks[lane * (dqk + 1) + c];
      for (int64_t c = 0; c < dv; c++) dp += dos[warp * dv + c] * vs[lane * (dv + 1) + c];
      const float prob = expf(p.scale * dot - rowLse);
      ds = p.scale * prob * (dp - rowDelta);
    }
    for (int j = 0; j < kt; j++) {
      const float dj = __shfl_sync(0xffffffffu, ds, j);
      if (dj == 0.f) continue;
#pragma unroll
      for (int i = 0; i < kSlots; i++) {
        const int64_t c = lane + (int64_t)i * ECOMLA_WARP;
        if (c < dqk) acc[i] += dj * ks[j * (dqk + 1) + c];
      }
    }
  }
  if (!active) return;
#pragma unroll
  for (int i = 0; i < kSlots; i++) {
    const int64_t c = lane + (int64_t)i * ECOMLA_WARP;
    if (c < dqk) dq[row * dqk + c] = acc[i];
  }
}

/**
 * dk_s = scale·Σ_{h in group, t} ds_{t,s} q_t, dv_s = Σ p_{t,s} dO_t: one warp per key row, query tiles
 * (q, dO, lse, δ) in shared memory; queries t with s < keyLimit(t) only.
 */
__global__ void attentionDkDvKernel(AttnParams p, AttnView q, AttnView k, AttnView v, const float* lse, const float* delta, const float* dOut,
                                    float* dk, float* dvOut, int kt) {
  extern __shared__ float smem[];
  const int64_t dqk = p.qkDim, dv = p.vDim;
  float* qs = smem;                   // [kt][dqk + 1]
  float* dos = qs + kt * (dqk + 1);   // [kt][dv + 1]
  float* kr = dos + kt * (dv + 1);    // [kRows][dqk]
  float* vr = kr + kRows * dqk;       // [kRows][dv]
  __shared__ float tileLse[ECOMLA_WARP], tileDelta[ECOMLA_WARP];
  const int lane = threadIdx.x % ECOMLA_WARP, warp = threadIdx.x / ECOMLA_WARP;
  const int64_t b = blockIdx.z, kvh = blockIdx.y;
  const int64_t s0 = (int64_t)blockIdx.x * kRows, s = s0 + warp;
  const bool active = s < p.keyLen;
  const int64_t group = p.numHeads / p.numKvHeads;
  const float* Q = at<float>(q.ptr);
  const float* K = at<float>(k.ptr);
  const float* V = at<float>(v.ptr);
  if (active) {
    for (int64_t c = lane; c < dqk; c += ECOMLA_WARP) kr[warp * dqk + c] = K[viewAt(k, b, s, kvh) + c];
    for (int64_t c = lane; c < dv; c += ECOMLA_WARP) vr[warp * dv + c] = V[viewAt(v, b, s, kvh) + c];
  }
  float accK[kSlots], accV[kSlots];
#pragma unroll
  for (int i = 0; i < kSlots; i++) accK[i] = accV[i] = 0.f;
  // Query t sees key s when s < t + S − T + 1, i.e. t ≥ s − (S − T). The block's first key bounds the walk.
  const int64_t shift = p.keyLen - p.queryLen;
  const int64_t tStart = p.causal ? (s0 - shift > 0 ? s0 - shift : 0) : 0;
  const int64_t myStart = p.causal ? (s - shift > 0 ? s - shift : 0) : 0;
  for (int64_t hq = kvh * group; hq < (kvh + 1) * group; hq++) {
    for (int64_t tq = tStart; tq < p.queryLen; tq += kt) {
      __syncthreads();
      for (int64_t e = threadIdx.x; e < (int64_t)kt * dqk; e += blockDim.x) {
        const int64_t j = e / dqk, c = e % dqk;
        qs[j * (dqk + 1) + c] = tq + j < p.queryLen ? Q[viewAt(q, b, tq + j, hq) + c] : 0.f;
      }
      for (int64_t e = threadIdx.x; e < (int64_t)kt * dv; e += blockDim.x) {
        const int64_t j = e / dv, c = e % dv;
        dos[j * (dv + 1) + c] = tq + j < p.queryLen ? dOut[((b * p.queryLen + tq + j) * p.numHeads + hq) * dv + c] : 0.f;
      }
      if (threadIdx.x < kt) {
        const int64_t tt = tq + threadIdx.x;
        tileLse[threadIdx.x] = tt < p.queryLen ? lse[(b * p.numHeads + hq) * p.queryLen + tt] : 0.f;
        tileDelta[threadIdx.x] = tt < p.queryLen ? delta[(b * p.numHeads + hq) * p.queryLen + tt] : 0.f;
      }
      __syncthreads();
      if (!active) continue;
      // Lane j takes query tq + j.
      float prob = 0.f, ds = 0.f;
      const int64_t tj = tq + lane;
      if (lane < kt && tj < p.queryLen && tj >= myStart) {
        float dot = 0.f, dp = 0.f;
        for (int64_t c = 0; c < dqk; c++) dot += qs[lane * (dqk + 1) + c] * kr[warp * dqk + c];
        for (int64_t c = 0; c < dv; c++) dp += dos[lane * (dv + 1) + c] * vr[warp * dv + c];
        prob = expf(p.scale * dot - tileLse[lane]);
        ds = p.scale * prob * (dp - tileDelta[lane]);
      }
      for (int j = 0; j < kt; j++) {
        const float pj = __shfl_sync(0xffffffffu, prob, j);
        const float dj = __shfl_sync(0xffffffffu, ds, j);
        if (pj == 0.f && dj == 0.f) continue;
#pragma unroll
        for (int i = 0; i < kSlots; i++) {
          const int64_t c = lane + (int64_t)i * ECOMLA_WARP;
          if (c < dv) accV[i] += pj * dos[j * (dv + 1) + c];
          if (c < dqk) accK[i] += dj * qs[j * (dqk + 1) + c];
        }
      }
    }
  }
  if (!active) return;
  const int64_t r = (b * p.keyLen + s) * p.numKvHeads + kvh;
#pragma unroll
  for (int i = 0; i < kSlots; i++) {
    const int64_t c = lane + (int64_t)i * ECOMLA_WARP;
    if (c < dqk) dk[r * dqk + c] = accK[i];
    if (c < dv) dvOut[r * dv + c] = accV[i];
  }
}

Err attentionBackward(const AttnParams& p, const AttnView& q, const AttnView& k, const AttnView& v, uint64_t out,
                      uint64_t lse, uint64_t dOut, uint64_t dq, uint64_t dk, uint64_t dv, uint64_t scratch) {
  if (p.qkDim > kMaxDim || p.vDim > kMaxDim) return "attentionBackward: qkDim and vDim must be ≤ 256";
  const int64_t rows = p.batch * p.queryLen * p.numHeads;
  const int64_t keyRows = p.batch * p.keyLen * p.numKvHeads;
  if (rows == 0) {
    if (keyRows > 0) {
      cudaMemsetAsync(at<void>(dk), 0, sizeof(float) * keyRows * p.qkDim, stream());
      cudaMemsetAsync(at<void>(dv), 0, sizeof(float) * keyRows * p.vDim, stream());
    }
    return lastError();
  }
  float* delta = at<float>(scratch);
  attentionDeltaKernel<<<blocksFor(rows * ECOMLA_WARP, 256), 256, 0, stream()>>>(p, at<float>(out), at<float>(dOut), delta);
  size_t bytes = 0;
  const int kt = chooseTile(attentionDqKernel, p.qkDim, p.vDim, &bytes);
  if (kt == 0) return "attentionBackward: head dims too large for the device's shared memory";
  dim3 gridQ((unsigned)((p.queryLen + kRows - 1) / kRows), (unsigned)p.numHeads, (unsigned)p.batch);
  attentionDqKernel<<<gridQ, kRows * ECOMLA_WARP, bytes, stream()>>>(p, q, k, v, at<float>(lse), delta, at<float>(dOut), at<float>(dq), kt);
  size_t bytesKv = 0;
  const int ktKv = chooseTile(attentionDkDvKernel, p.qkDim, p.vDim, &bytesKv);
  if (p.keyLen > 0) {
    dim3 gridK((unsigned)((p.keyLen + kRows - 1) / kRows), (unsigned)p.numKvHeads, (unsigned)p.batch);
    attentionDkDvKernel<<<gridK, kRows * ECOMLA_WARP, bytesKv, stream()>>>(p, q, k, v, at<float>(lse), delta, at<float>(dOut), at<float>(dk), at<float>(dv), ktKv);
  }
  return lastError();
}

}  // namespace ecomla_gpu
