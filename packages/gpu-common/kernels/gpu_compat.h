// One kernel source, two toolchains: the CUDA runtime names the kernels and the runtime glue use,
// mapped to HIP when hipcc compiles them (__HIP_PLATFORM_AMD__ / __HIPCC__). Kernels are written in
// CUDA C++; everything below is the only place that knows HIP exists (ggml's vendors/hip.h idea).
#pragma once

#if defined(__HIPCC__) || defined(__HIP_PLATFORM_AMD__)
#include <hip/hip_runtime.h>
#define ECOMLA_HIP 1
#define ECOMLA_GPU_FLAVOR "rocm"
#define cudaError_t hipError_t
#define cudaSuccess hipSuccess
#define cudaStream_t hipStream_t
#define cudaEvent_t hipEvent_t
#define cudaDeviceProp hipDeviceProp_t
#define cudaGetErrorString hipGetErrorString
#define cudaGetLastError hipGetLastError
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaSetDevice hipSetDevice
#define cudaDriverGetVersion hipDriverGetVersion
#define cudaRuntimeGetVersion hipRuntimeGetVersion
#define cudaMalloc hipMalloc
#define cudaFree hipFree
#define cudaMallocHost(p, n) hipHostMalloc(p, n, 0)
#define cudaFreeHost hipHostFree
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemsetAsync hipMemsetAsync
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaStreamCreateWithFlags hipStreamCreateWithFlags
#define cudaStreamNonBlocking hipStreamNonBlocking
#define cudaStreamSynchronize hipStreamSynchronize
#define cudaEventCreateWithFlags hipEventCreateWithFlags
#define cudaEventDisableTiming hipEventDisableTiming
#define cudaEventDefault hipEventDefault
#define cudaEventCreate hipEventCreate
#define cudaEventRecord hipEventRecord
#define cudaEventSynchronize hipEventSynchronize
#define cudaEventElapsedTime hipEventElapsedTime
#define cudaEventDestroy hipEventDestroy
#define cudaFuncSetAttribute hipFuncSetAttribute
#define cudaFuncAttributeMaxDynamicSharedMemorySize hipFuncAttributeMaxDynamicSharedMemorySize
#define cudaMemGetInfo hipMemGetInfo
// Warp-level primitives: CUDA's *_sync forms take a lane mask; HIP's wavefront (64 on CDNA) takes none.
#define ECOMLA_WARP 64
// HIP 5.x has no opt-in shared-memory limit: a block may use sharedMemPerBlock (64 KiB LDS on CDNA).
#define ECOMLA_SHARED_OPTIN(prop) ((prop).sharedMemPerBlock)
#define __shfl_xor_sync(mask, v, lane) __shfl_xor(v, lane)
#define __shfl_sync(mask, v, lane) __shfl(v, lane)
#else
#include <cuda_runtime.h>
#define ECOMLA_GPU_FLAVOR "cuda"
#define ECOMLA_WARP 32
#define ECOMLA_SHARED_OPTIN(prop) ((prop).sharedMemPerBlockOptin)
#endif
