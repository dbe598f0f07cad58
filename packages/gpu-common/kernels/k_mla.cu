// Absorbed-MLA decode (one new token per sequence) over the latent cache rows [c_kv ‖ k_pe]:
//   score[b,h,s] = scale · (qLatent[b,h]·c_kv[b,s] + qRope[b,h]·k_pe[b,s]),  s < length[b]
//   out[b,h]     = Σ_s softmax(score[b,h,:])_s · c_kv[b,s]        (then · W_UV and o_proj outside)
// Any kv rank R ≤ 1024 and rope dim Dr ≤ 128. Split-context ("flash-decoding"): a block takes one
// slice of the context for a group of heads, stages cache tiles in shared memory once for all the
// heads of its group, and keeps an online softmax per head; a second kernel merges the slices.
#include "common.cuh"

namespace ecomla_gpu {

static const int kMlaThreads = 256;
static const int kMlaAccPerThread = 32;  // head-group·R ≤ 8192 accumulators per block
static const size_t kMlaShared = 46 * 1024;

struct MlaPlan {
  int heads;      // heads per block (group)
  int groups;     // ceil(H / heads)
  int tile;       // cache rows per shared-memory tile
  int splits;     // context slices
  int64_t chunk;  // positions per slice (a multiple of tile)
  size_t shared;  // dynamic shared bytes
};

static int gSms = -1;
static MlaPlan plan(const MlaParams& p, int splits) {
  MlaPlan pl{};
  const int64_t width = p.kvRank + p.ropeDim;
  int heads = (int)(kMlaThreads * kMlaAccPerThread / p.kvRank);
  if (heads > p.numHeads) heads = (int)p.numHeads;
  if (heads > 64) heads = 64;
  if (heads < 1) heads = 1;
  int tile = 32;
  for (;;) {
    const size_t bytes = sizeof(float) * ((size_t)tile * width + (size_t)heads * width + (size_t)heads * tile + 3 * (size_t)heads);
    if (bytes <= kMlaShared || (tile == 1 && heads == 1)) {
      pl.shared = bytes;
      break;
    }
    if (tile > 4) tile /= 2;
    else if (heads > 1) heads /= 2;
    else tile /= 2;
  }
  pl.heads = heads;
  pl.tile = tile;
  pl.groups = (int)((p.numHeads + heads - 1) / heads);
  if (splits <= 0) {
    if (gSms < 0) {
      cudaDeviceProp prop;
      gSms = cudaGetDeviceProperties(&prop, 0) == cudaSuccess ? prop.multiProcessorCount : 80;
    }
    // About four blocks per multiprocessor, but no slice shorter than 4 tiles.
    const int64_t want = (4LL * gSms + p.batch * pl.groups - 1) / (p.batch * pl.groups);
    const int64_t most = (p.maxLen + 4LL * tile - 1) / (4LL * tile);
    splits = (int)(want < most ? want : most);
    if (splits < 1) splits = 1;
  }
  pl.splits = splits;
  const int64_t per = (p.maxLen + splits - 1) / splits;
  pl.chunk = ((per + tile - 1) / tile) * tile;
  return pl;
}

int mlaDecodeSplits(const MlaParams& p) { return plan(p, 0).splits; }
/** Floats of the partial results: per (b, h, split) the running max, sum and R accumulators. */
int64_t mlaDecodeScratch(const MlaParams& p, int splits) {
  const MlaPlan pl = plan(p, splits);
  return p.batch * p.numHeads * (int64_t)pl.splits * (p.kvRank + 2);
}

__global__ void mlaPartialKernel(MlaParams p, MlaPlan pl, const float* qLat, const float* qRope, const float* cache,
                                 const int32_t* lengths, float* scratch) {
  extern __shared__ float smem[];
  const int64_t R = p.kvRank, Dr = p.ropeDim, W = R + Dr;
  float* cs = smem;                      // [tile][W]
  float* qs = cs + (int64_t)pl.tile * W;   // [heads][W]  (qLatent ‖ qRope)
  float* sc = qs + (int64_t)pl.heads * W;  // [heads][tile]
  float* mS = sc + (int64_t)pl.heads * pl.tile;
  float* lS = mS + pl.heads;
  float* corrS = lS + pl.heads;
  const int split = blockIdx.x;
  const int64_t b = blockIdx.y, h0 = (int64_t)blockIdx.z * pl.heads;
  const int nh = (int)(p.numHeads - h0 < pl.heads ? p.numHeads - h0 : pl.heads);
  const int lane = threadIdx.x % ECOMLA_WARP, warp = threadIdx.x / ECOMLA_WARP, warps = blockDim.x / ECOMLA_WARP;
  int64_t len = lengths ? (int64_t)lengths[b] : p.maxLen;
  if (len > p.maxLen) len = p.maxLen;
  const int64_t begin = (int64_t)split * pl.chunk;
  const int64_t end = begin + pl.chunk < len ? begin + pl.chunk : len;
  for (int64_t e = threadIdx.x; e < (int64_t)nh * W; e += blockDim.x) {
    const int64_t hh = e / W, c = e % W;
    const int64_t h = h0 + hh;
    qs[e] = c < R ? qLat[(b * p.numHeads + h) * R + c] : qRope[(b * p.numHeads + h) * Dr + (c - R)];
  }
  if (threadIdx.x < nh) {
    mS[threadIdx.x] = -INFINITY;
    lS[threadIdx.x] = 0.f;
  }
  float acc[kMlaAccPerThread];
#pragma unroll
  for (int i = 0; i < kMlaAccPerThread; i++) acc[i] = 0.f;
  const float* rows = cache + b * p.cacheBatchStride;
  for (int64_t s0 = begin; s0 < end; s0 += pl.tile) {
    const int n = (int)(end - s0 < pl.tile ? end - s0 : pl.tile);
    __syncthreads();
    for (int64_t e = threadIdx.x; e < (int64_t)n * W; e += blockDim.x) cs[e] = rows[s0 * W + e];
    __syncthreads();
    // Scores: one warp per (head, row) pair, lanes split the W-long dot product.
    for (int pair = warp; pair < nh * n; pair += warps) {
      const int hh = pair / n, j = pair % n;
      float dot = 0.f;
      for (int64_t c = lane; c < W; c += ECOMLA_WARP) dot += qs[hh * W + c] * cs[j * W + c];
      dot = warpSum(dot);
      if (lane == 0) sc[hh * pl.tile + j] = p.scale * dot;
    }
    __syncthreads();
    // Online softmax per head (one thread per head; tiles are short).
    if (threadIdx.x < nh) {
      const int hh = threadIdx.x;
      float mx = mS[hh];
      for (int j = 0; j < n; j++) mx = fmaxf(mx, sc[hh * pl.tile + j]);
      const float corr = mS[hh] == -INFINITY ? 0.f : expf(mS[hh] - mx);
      float sum = 0.f;
      for (int j = 0; j < n; j++) {
        const float e = expf(sc[hh * pl.tile + j] - mx);
        sc[hh * pl.tile + j] = e;
        sum += e;
      }
      lS[hh] = lS[hh] * corr + sum;
      mS[hh] = mx;
      corrS[hh] = corr;
    }
    __syncthreads();
    // Accumulate: thread owns elements e = tid + i·threads of the (head, c < R) grid.
#pragma unroll
    for (int i = 0; i < kMlaAccPerThread; i++) {
      const int64_t e = threadIdx.x + (int64_t)i * blockDim.x;
      if (e >= (int64_t)nh * R) break;
      const int64_t hh = e / R, c = e % R;
      float a = acc[i] * corrS[hh];
      for (int j = 0; j < n; j++) a += sc[hh * pl.tile + j] * cs[j * W + c];
      acc[i] = a;
    }
  }
  __syncthreads();
  // Partial result of this slice: (m, l, acc[R]) per head.
  const int64_t stride = R + 2;
#pragma unroll
  for (int i = 0; i < kMlaAccPerThread; i++) {
    const int64_t e = threadIdx.x + (int64_t)i * blockDim.x;
    if (e >= (int64_t)nh * R) break;
    const int64_t hh = e / R, c = e % R;
    scratch[(((b * p.numHeads) + h0 + hh) * pl.splits + split) * stride + 2 + c] = acc[i];
  }
  if (threadIdx.x < nh) {
    float* part = scratch + (((b * p.numHeads) + h0 + threadIdx.x) * pl.splits + split) * stride;
    part[0] = mS[threadIdx.x];
    part[1] = lS[threadIdx.x];
  }
}

/** Merge the slices of one (b, h): out = Σ_s e^{m_s − M} acc_s / Σ_s e^{m_s − M} l_s. */
__global__ void mlaCombineKernel(MlaParams p, int splits, const float* scratch, float* out, float* lse) {
  const int64_t bh = blockIdx.x;
  const int64_t R = p.kvRank, stride = R + 2;
  const float* parts = scratch + bh * splits * stride;
  float M = -INFINITY;
  for (int s = 0; s < splits; s++) M = fmaxf(M, parts[s * stride]);
  float L = 0.f;
  for (int s = 0; s < splits; s++) L += parts[s * stride] == -INFINITY ? 0.f : parts[s * stride + 1] * expf(parts[s * stride] - M);
  const float inv = 1.f / L;
  for (int64_t c = threadIdx.x; c < R; c += blockDim.x) {
    float a = 0.f;
    for (int s = 0; s < splits; s++) {
      const float m = parts[s * stride];
      if (m != -INFINITY) a += parts[s * stride + 2 + c] * expf(m - M);
    }
    out[bh * R + c] = a * inv;
  }
  if (lse && threadIdx.x == 0) lse[bh] = M + logf(L);
}

Err mlaDecode(const MlaParams& p, uint64_t qLatent, uint64_t qRope, uint64_t cache, uint64_t lengths, uint64_t out, uint64_t lse,
              uint64_t scratch, int splits) {
  if (p.kvRank < 1 || p.kvRank > 1024) return "mlaDecode: kvRank must be in 1..1024";
  if (p.ropeDim < 0 || p.ropeDim > 128) return "mlaDecode: ropeDim must be in 0..128";
  if (p.batch * p.numHeads == 0) return nullptr;
  const MlaPlan pl = plan(p, splits);
  dim3 grid((unsigned)pl.splits, (unsigned)p.batch, (unsigned)pl.groups);
  mlaPartialKernel<<<grid, kMlaThreads, pl.shared, stream()>>>(p, pl, at<float>(qLatent), at<float>(qRope), at<float>(cache),
                                                              lengths ? at<int32_t>(lengths) : nullptr, at<float>(scratch));
  mlaCombineKernel<<<(unsigned)(p.batch * p.numHeads), 128, 0, stream()>>>(p, pl.splits, at<float>(scratch), at<float>(out), lse ? at<float>(lse) : nullptr);
  return lastError();
}

}  // namespace ecomla_gpu
