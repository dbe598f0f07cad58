// The host-callable surface of the GPU kernels and runtime glue: plain C++ (no CUDA/HIP types), so
// the N-API addon (native/addon.cc) compiles with the host compiler for both flavours. Pointers are
// device addresses; sizes and offsets are in elements unless named *Bytes. Every launcher enqueues
// on the one stream of the runtime and returns an error message, or nullptr on success (launch
// errors only: kernels never synchronise with the host).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace ecomla_gpu {

using Err = const char*;

// ---- runtime (runtime.cu) ---------------------------------------------------------------------
struct DeviceInfo {
  bool ok;
  std::string error;    // why no device is usable (driver missing, no GPU, …) when !ok
  std::string flavor;   // "cuda" | "rocm"
  std::string name;     // device name
  std::string arch;     // "sm_90" | "gfx90a"
  int driverVersion, runtimeVersion, deviceCount, multiProcessors;
  double totalBytes, sharedPerBlockOptin;
};
/** Which targets this binary carries code for (sm_80,sm_90 / gfx90a), set at compile time. */
const char* compiledTargets();
const char* flavor();
/** Probe the driver and device 0 (creates no stream). */
DeviceInfo probe();
/** Select device 0, create the stream; idempotent. */
Err init();
Err deviceAlloc(size_t bytes, uint64_t* out);
Err deviceFree(uint64_t ptr);
Err uploadAsync(uint64_t dst, const void* src, size_t bytes);
Err copyDeviceAsync(uint64_t dst, uint64_t src, size_t bytes);
/** Enqueue a device→pinned-host copy; `token` identifies it for waitDownload/finishDownload. */
Err downloadStart(uint64_t src, size_t bytes, void** token);
/** Blocks until the copy is done (call from a worker thread). */
Err downloadWait(void* token);
/** Copy the staged bytes into dst and release the staging block. */
void downloadFinish(void* token, void* dst);
Err streamSync();
Err memInfo(double* freeBytes, double* totalBytes);
/** Pinned staging bytes cached for downloads. */
double stagingBytes();

// ---- BLAS loaded at run time (blas.cu) ---------------------------------------------------------
/** Try each path with dlopen in order; on success record it in `loadedPath`. errors: one line per failed path. */
bool blasLoad(const char* const* paths, int count, std::string* loadedPath, std::string* errors);
bool blasLoaded();
/** Row-major batched strided sgemm (see GemmArgs in core); C must not overlap A or B. */
Err gemm(int batch, int m, int n, int k, bool transA, bool transB, float alpha, float beta,
         uint64_t a, int64_t lda, int64_t strideA, uint64_t b, int64_t ldb, int64_t strideB,
         uint64_t c, int64_t ldc, int64_t strideC, bool tf32);
/** Milliseconds of `repetitions` m×n×k sgemms made directly on the library (a bench baseline). */
Err benchSgemm(int m, int n, int k, int repetitions, double* msOut);

// ---- primitives (k_basic.cu) --------------------------------------------------------------------
Err fill(uint64_t out, int dtype, double value, int64_t n, int64_t offset);
/** rank ≤ 6; elementBytes 2 or 4; accumulate adds (f32/i32 by value, bf16/f16 through f32). */
Err copyStrided(uint64_t src, int64_t srcOffset, uint64_t dst, int64_t dstOffset, int dtype, int rank,
                const int64_t* shape, const int64_t* srcStrides, const int64_t* dstStrides, bool accumulate);
Err cast(uint64_t src, int srcDtype, uint64_t dst, int dstDtype, int64_t n);
/** Shapes padded to the same rank (≤ 6). */
Err binary(int op, uint64_t a, const int64_t* aShape, uint64_t b, const int64_t* bShape, uint64_t out,
           const int64_t* outShape, int rank);
Err unary(int op, uint64_t x, uint64_t out, int64_t n, float alpha);
Err unaryBackward(int op, uint64_t x, uint64_t y, uint64_t dy, uint64_t dx, int64_t n, float alpha);
Err reduceLastAxis(int op, uint64_t x, uint64_t out, int64_t rows, int64_t cols);
/** Shapes padded to the same rank (≤ 6); out is overwritten. */
Err sumToShape(uint64_t x, const int64_t* xShape, uint64_t out, const int64_t* outShape, int rank);
/** Out-of-range ids give zero rows and raise the flag at `badIdFlag` (an int on the device). */
Err embedding(uint64_t ids, uint64_t table, uint64_t out, int64_t n, int64_t vocab, int64_t dim, uint64_t badIdFlag);
Err embeddingBackward(uint64_t ids, uint64_t dOut, uint64_t dTable, int64_t n, int64_t vocab, int64_t dim, uint64_t badIdFlag);

// ---- fused kernels (k_nn.cu, k_loss.cu, k_attention.cu) ------------------------------------------
Err softmax(uint64_t x, uint64_t out, int64_t rows, int64_t cols);
Err softmaxBackward(uint64_t y, uint64_t dy, uint64_t dx, int64_t rows, int64_t cols);
Err rmsNorm(uint64_t x, uint64_t w, uint64_t out, uint64_t rstd, int64_t rows, int64_t cols, float eps);
/** dWeight accumulated (+=); `scratch` holds rowsBlocks·cols floats (see rmsNormBackwardScratch). */
Err rmsNormBackward(uint64_t x, uint64_t w, uint64_t rstd, uint64_t dy, uint64_t dx, uint64_t dw,
                    int64_t rows, int64_t cols, uint64_t scratch);
int64_t rmsNormBackwardScratch(int64_t rows, int64_t cols);
struct RopeParams {
  int64_t batch, seqLen, numHeads, headDim, tableRows, posOffset;
  bool interleaved, inverse;
  float scale;
};
/** Positions outside the table raise the flag at `badPosFlag` and leave those rows unwritten. */
Err rope(const RopeParams& p, uint64_t x, uint64_t out, uint64_t cos, uint64_t sin, uint64_t positions, uint64_t badPosFlag);
Err swiglu(uint64_t gate, uint64_t up, uint64_t out, int64_t n);
Err swigluBackward(uint64_t gate, uint64_t up, uint64_t dOut, uint64_t dGate, uint64_t dUp, int64_t n);
struct LossParams {
  int64_t rows, vocab, topK;
  float temperature;
};
/** labels ≥ vocab raise the flag at `badFlag` (loss NaN for that row). */
Err crossEntropy(const LossParams& p, uint64_t logits, uint64_t labels, uint64_t weights, uint64_t loss, uint64_t grad, uint64_t badFlag);
Err klDiv(const LossParams& p, uint64_t logits, uint64_t teacherLogits, uint64_t teacherIndices, uint64_t teacherLogprobs,
          uint64_t weights, uint64_t loss, uint64_t grad, uint64_t badFlag);
struct AdamWParams {
  int64_t n;
  float lr, beta1, beta2, eps, weightDecay, biasCorrection1, biasCorrection2, gradScale;
};
Err adamw(const AdamWParams& p, uint64_t param, uint64_t grad, uint64_t m, uint64_t v);

struct AttnView {
  uint64_t ptr;
  int64_t offset, sb, st, sh;  // element offset and strides of [batch, token, head]
};
struct AttnParams {
  int64_t batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim;
  float scale;
  bool causal;
};
/** qkDim, vDim ≤ 256. lse may be 0 (not written). */
Err attention(const AttnParams& p, const AttnView& q, const AttnView& k, const AttnView& v, uint64_t out, uint64_t lse);
/** `scratch`: batch·queryLen·numHeads floats (the per-row δ = dO·O). */
Err attentionBackward(const AttnParams& p, const AttnView& q, const AttnView& k, const AttnView& v, uint64_t out,
                      uint64_t lse, uint64_t dOut, uint64_t dq, uint64_t dk, uint64_t dv, uint64_t scratch);
int64_t attentionMaxHeadDim();

/**
 * Absorbed-MLA decode over the latent cache (see MlaDecodeArgs in src/backend.ts).
 * qLatent (B, H, R), qRope (B, H, Dr), cache (B, S_max, R + Dr) rows [c_kv ‖ k_pe], lengths (B) i32
 * (0 → S_max for all), out (B, H, R), lse (B, H) optional. R ≤ 1024, Dr ≤ 128.
 * `scratch`: mlaDecodeScratch(...) floats for the split-context partial results.
 */
struct MlaParams {
  int64_t batch, numHeads, kvRank, ropeDim, maxLen, cacheBatchStride;
  float scale;
};
Err mlaDecode(const MlaParams& p, uint64_t qLatent, uint64_t qRope, uint64_t cache, uint64_t lengths,
              uint64_t out, uint64_t lse, uint64_t scratch, int splits);
int64_t mlaDecodeScratch(const MlaParams& p, int splits);
int mlaDecodeSplits(const MlaParams& p);

}  // namespace ecomla_gpu
