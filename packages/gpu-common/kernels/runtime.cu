// Device, stream, memory and the download staging of the GPU backends. The CUDA runtime is linked
// statically (cudart_static), so the addon loads on machines without a driver; probe() says why
// no device is usable. HIP links libamdhip64 (the addon fails to load without it; the TS side
// reports that error as the reason).
#include "common.cuh"
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#ifndef ECOMLA_TARGETS
#define ECOMLA_TARGETS "unknown"
#endif

namespace ecomla_gpu {

namespace {
cudaStream_t gStream = nullptr;
int gDevice = 0;
bool gInit = false;

// Pinned staging blocks for downloads, by capacity (power of two ≥ 4 KiB), reused.
std::mutex gStagingMutex;
std::multimap<size_t, void*> gStaging;
double gStagingBytes = 0;

struct Download {
  void* host;
  size_t capacity;
  size_t bytes;
  cudaEvent_t done;
};

size_t stagingCapacity(size_t bytes) {
  size_t c = 4096;
  while (c < bytes) c <<= 1;
  return c;
}
}  // namespace

cudaStream_t stream() { return gStream; }
const char* compiledTargets() { return ECOMLA_TARGETS; }
const char* flavor() { return ECOMLA_GPU_FLAVOR; }

DeviceInfo probe() {
  DeviceInfo info{};
  info.flavor = ECOMLA_GPU_FLAVOR;
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  info.driverVersion = driver;
  info.runtimeVersion = runtime;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  info.deviceCount = e == cudaSuccess ? count : 0;
  if (e != cudaSuccess) {
    info.ok = false;
    info.error = std::string(cudaGetErrorString(e)) + (driver == 0 ? " (no GPU driver found)" : "");
    cudaGetLastError();  // clear the sticky-free error state
    return info;
  }
  if (count == 0) {
    info.ok = false;
    info.error = "no GPU device found";
    return info;
  }
  cudaDeviceProp prop;
  e = cudaGetDeviceProperties(&prop, 0);
  if (e != cudaSuccess) {
    info.ok = false;
    info.error = cudaGetErrorString(e);
    return info;
  }
  info.ok = true;
  info.name = prop.name;
#ifdef ECOMLA_HIP
  info.arch = prop.gcnArchName;
#else
  info.arch = "sm_" + std::to_string(prop.major * 10 + prop.minor);
#endif
  info.multiProcessors = prop.multiProcessorCount;
  info.totalBytes = (double)prop.totalGlobalMem;
  info.sharedPerBlockOptin = (double)ECOMLA_SHARED_OPTIN(prop);
  return info;
}

Err init() {
  if (gInit) return nullptr;
  cudaError_t e = cudaSetDevice(gDevice);
  if (e != cudaSuccess) return cudaGetErrorString(e);
  e = cudaStreamCreateWithFlags(&gStream, cudaStreamNonBlocking);
  if (e != cudaSuccess) return cudaGetErrorString(e);
  gInit = true;
  return nullptr;
}

Err deviceAlloc(size_t bytes, uint64_t* out) {
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes < 256 ? 256 : bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return cudaGetErrorString(e);
  }
  *out = (uint64_t)(uintptr_t)p;
  return nullptr;
}

Err deviceFree(uint64_t ptr) { return check(cudaFree((void*)(uintptr_t)ptr)); }

Err uploadAsync(uint64_t dst, const void* src, size_t bytes) {
  // From pageable memory the runtime stages the bytes before returning, so the caller's array may change afterwards.
  return check(cudaMemcpyAsync((void*)(uintptr_t)dst, src, bytes, cudaMemcpyHostToDevice, gStream));
}

Err copyDeviceAsync(uint64_t dst, uint64_t src, size_t bytes) {
  return check(cudaMemcpyAsync((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, bytes, cudaMemcpyDeviceToDevice, gStream));
}

Err downloadStart(uint64_t src, size_t bytes, void** token) {
  Download* d = new Download{nullptr, stagingCapacity(bytes), bytes, nullptr};
  {
    std::lock_guard<std::mutex> lock(gStagingMutex);
    auto it = gStaging.find(d->capacity);
    if (it != gStaging.end()) {
      d->host = it->second;
      gStaging.erase(it);
      gStagingBytes -= (double)d->capacity;
    }
  }
  cudaError_t e = cudaSuccess;
  if (!d->host) e = cudaMallocHost(&d->host, d->capacity);
  if (e == cudaSuccess) e = cudaEventCreateWithFlags(&d->done, cudaEventDisableTiming);
  if (e == cudaSuccess && bytes > 0) e = cudaMemcpyAsync(d->host, (const void*)(uintptr_t)src, bytes, cudaMemcpyDeviceToHost, gStream);
  if (e == cudaSuccess) e = cudaEventRecord(d->done, gStream);
  if (e != cudaSuccess) {
    if (d->host) cudaFreeHost(d->host);
    if (d->done) cudaEventDestroy(d->done);
    delete d;
    return cudaGetErrorString(e);
  }
  *token = d;
  return nullptr;
}

Err downloadWait(void* token) {
  Download* d = (Download*)token;
  cudaSetDevice(gDevice);
  return check(cudaEventSynchronize(d->done));
}

void downloadFinish(void* token, void* dst) {
  Download* d = (Download*)token;
  if (dst && d->bytes) std::memcpy(dst, d->host, d->bytes);
  cudaEventDestroy(d->done);
  {
    std::lock_guard<std::mutex> lock(gStagingMutex);
    // Keep up to 256 MiB of pinned staging; release the rest.
    if (gStagingBytes + (double)d->capacity <= 268435456.0) {
      gStaging.emplace(d->capacity, d->host);
      gStagingBytes += (double)d->capacity;
      d->host = nullptr;
    }
  }
  if (d->host) cudaFreeHost(d->host);
  delete d;
}

Err streamSync() {
  cudaSetDevice(gDevice);
  return check(cudaStreamSynchronize(gStream));
}

Err memInfo(double* freeBytes, double* totalBytes) {
  size_t f = 0, t = 0;
  cudaError_t e = cudaMemGetInfo(&f, &t);
  *freeBytes = (double)f;
  *totalBytes = (double)t;
  return check(e);
}

double stagingBytes() {
  std::lock_guard<std::mutex> lock(gStagingMutex);
  return gStagingBytes;
}

}  // namespace ecomla_gpu
