// N-API surface of the GPU backends (the same file for the CUDA and the HIP build): argument
// unpacking and error mapping only; every device call is in kernels/*.cu. Device pointers travel to
// JavaScript as numbers (addresses below 2^53, as every x86-64/arm64 device address is).
#include <dlfcn.h>
#include <napi.h>
#include <string>
#include <vector>
#include "../kernels/kernels.h"

using namespace ecomla_gpu;

namespace {

uint64_t ptrArg(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return 0;
  return (uint64_t)v.As<Napi::Number>().DoubleValue();
}
int64_t intArg(const Napi::Value& v) { return (int64_t)v.As<Napi::Number>().DoubleValue(); }
double numArg(const Napi::Value& v) { return v.As<Napi::Number>().DoubleValue(); }
/** A Float64Array of packed numbers. */
std::vector<double> packed(const Napi::Value& v) {
  auto a = v.As<Napi::Float64Array>();
  return std::vector<double>(a.Data(), a.Data() + a.ElementLength());
}
void check(Napi::Env env, Err e, const char* what) {
  if (e) throw Napi::Error::New(env, std::string(what) + ": " + e);
}

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DeviceInfo d = probe();
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", d.ok);
  o.Set("error", d.error);
  o.Set("flavor", d.flavor);
  o.Set("name", d.name);
  o.Set("arch", d.arch);
  o.Set("driverVersion", d.driverVersion);
  o.Set("runtimeVersion", d.runtimeVersion);
  o.Set("deviceCount", d.deviceCount);
  o.Set("multiProcessors", d.multiProcessors);
  o.Set("totalBytes", d.totalBytes);
  o.Set("compiledTargets", compiledTargets());
  return o;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  check(info.Env(), init(), "init");
  return info.Env().Undefined();
}

Napi::Value LoadBlas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto arr = info[0].As<Napi::Array>();
  std::vector<std::string> paths;
  for (uint32_t i = 0; i < arr.Length(); i++) paths.push_back(arr.Get(i).As<Napi::String>().Utf8Value());
  std::vector<const char*> cs;
  for (auto& p : paths) cs.push_back(p.c_str());
  std::string loaded, errors;
  const bool ok = blasLoad(cs.data(), (int)cs.size(), &loaded, &errors);
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", ok);
  o.Set("path", loaded);
  o.Set("errors", errors);
  return o;
}

/** "" when `path` loads with dlopen (then closes it), else the loader's message. */
Napi::Value DlopenCheck(const Napi::CallbackInfo& info) {
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    return Napi::String::New(info.Env(), why ? why : "dlopen failed");
  }
  dlclose(lib);
  return Napi::String::New(info.Env(), "");
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  uint64_t p = 0;
  check(info.Env(), deviceAlloc((size_t)numArg(info[0]), &p), "alloc (cudaMalloc)");
  return Napi::Number::New(info.Env(), (double)p);
}
Napi::Value Free(const Napi::CallbackInfo& info) {
  check(info.Env(), deviceFree(ptrArg(info[0])), "free");
  return info.Env().Undefined();
}
/** upload(dst, byteOffset, typedArray) */
Napi::Value Upload(const Napi::CallbackInfo& info) {
  auto arr = info[2].As<Napi::TypedArray>();
  const uint8_t* src = static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  check(info.Env(), uploadAsync(ptrArg(info[0]) + (uint64_t)numArg(info[1]), src, arr.ByteLength()), "upload");
  return info.Env().Undefined();
}
/** copyDevice(dst, src, bytes) */
Napi::Value CopyDevice(const Napi::CallbackInfo& info) {
  check(info.Env(), copyDeviceAsync(ptrArg(info[0]), ptrArg(info[1]), (size_t)numArg(info[2])), "copy");
  return info.Env().Undefined();
}

/** Waits for an enqueued download (or the whole stream when token is null) off the main thread. */
class WaitWorker : public Napi::AsyncWorker {
 public:
  WaitWorker(Napi::Env env, void* token, size_t bytes)
      : Napi::AsyncWorker(env), token_(token), bytes_(bytes), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    const bool isDownload = token_ != nullptr;
    Err e = isDownload ? downloadWait(token_) : streamSync();
    if (e) {
      if (isDownload) { downloadFinish(token_, nullptr); token_ = nullptr; }
      SetError(std::string(isDownload ? "download: " : "sync: ") + e);
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (!token_) {
      deferred_.Resolve(env.Undefined());
      return;
    }
    Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, bytes_);
    downloadFinish(token_, out.Data());
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  void* token_;
  size_t bytes_;
  Napi::Promise::Deferred deferred_;
};

/** download(src, byteOffset, bytes) → Promise<ArrayBuffer> */
Napi::Value Download(const Napi::CallbackInfo& info) {
  void* token = nullptr;
  const size_t bytes = (size_t)numArg(info[2]);
  check(info.Env(), downloadStart(ptrArg(info[0]) + (uint64_t)numArg(info[1]), bytes, &token), "download");
  auto* w = new WaitWorker(info.Env(), token, bytes);
  auto promise = w->Promise();
  w->Queue();
  return promise;
}
Napi::Value Sync(const Napi::CallbackInfo& info) {
  auto* w = new WaitWorker(info.Env(), nullptr, 0);
  auto promise = w->Promise();
  w->Queue();
  return promise;
}
Napi::Value MemInfo(const Napi::CallbackInfo& info) {
  double f = 0, t = 0;
  check(info.Env(), memInfo(&f, &t), "memInfo");
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("freeBytes", f);
  o.Set("totalBytes", t);
  o.Set("stagingBytes", stagingBytes());
  return o;
}

// ---- kernels ------------------------------------------------------------------------------------
Napi::Value Fill(const Napi::CallbackInfo& info) {  // (out, dtype, value, n, offset)
  check(info.Env(), fill(ptrArg(info[0]), (int)intArg(info[1]), numArg(info[2]), intArg(info[3]), intArg(info[4])), "fill");
  return info.Env().Undefined();
}
Napi::Value CopyStrided(const Napi::CallbackInfo& info) {  // (src, srcOffset, dst, dstOffset, dtype, packed[rank, shape…, srcStrides…, dstStrides…], accumulate)
  auto pk = packed(info[5]);
  const int rank = (int)pk[0];
  std::vector<int64_t> shape(rank), ss(rank), ds(rank);
  for (int i = 0; i < rank; i++) {
    shape[i] = (int64_t)pk[1 + i];
    ss[i] = (int64_t)pk[1 + rank + i];
    ds[i] = (int64_t)pk[1 + 2 * rank + i];
  }
  check(info.Env(), copyStrided(ptrArg(info[0]), intArg(info[1]), ptrArg(info[2]), intArg(info[3]), (int)intArg(info[4]), rank,
                                shape.data(), ss.data(), ds.data(), info[6].ToBoolean().Value()), "copyStrided");
  return info.Env().Undefined();
}
Napi::Value Cast(const Napi::CallbackInfo& info) {  // (src, srcDtype, dst, dstDtype, n)
  check(info.Env(), cast(ptrArg(info[0]), (int)intArg(info[1]), ptrArg(info[2]), (int)intArg(info[3]), intArg(info[4])), "cast");
  return info.Env().Undefined();
}
Napi::Value Gemm(const Napi::CallbackInfo& info) {  // (a, b, c, packed[17], tf32)
  auto p = packed(info[3]);
  check(info.Env(), gemm((int)p[0], (int)p[1], (int)p[2], (int)p[3], p[4] != 0, p[5] != 0, (float)p[6], (float)p[7],
                         ptrArg(info[0]) + (uint64_t)p[8] * 4, (int64_t)p[9], (int64_t)p[10],
                         ptrArg(info[1]) + (uint64_t)p[11] * 4, (int64_t)p[12], (int64_t)p[13],
                         ptrArg(info[2]) + (uint64_t)p[14] * 4, (int64_t)p[15], (int64_t)p[16], info[4].ToBoolean().Value()), "gemm");
  return info.Env().Undefined();
}
Napi::Value BenchSgemm(const Napi::CallbackInfo& info) {
  double ms = 0;
  check(info.Env(), benchSgemm((int)intArg(info[0]), (int)intArg(info[1]), (int)intArg(info[2]), (int)intArg(info[3]), &ms), "benchSgemm");
  return Napi::Number::New(info.Env(), ms);
}
/** Shapes of a broadcast call packed as [rank, a…, b…, out…]. */
Napi::Value Binary(const Napi::CallbackInfo& info) {  // (op, a, b, out, packed)
  auto pk = packed(info[4]);
  const int rank = (int)pk[0];
  std::vector<int64_t> a(rank), b(rank), o(rank);
  for (int i = 0; i < rank; i++) {
    a[i] = (int64_t)pk[1 + i];
    b[i] = (int64_t)pk[1 + rank + i];
    o[i] = (int64_t)pk[1 + 2 * rank + i];
  }
  check(info.Env(), binary((int)intArg(info[0]), ptrArg(info[1]), a.data(), ptrArg(info[2]), b.data(), ptrArg(info[3]), o.data(), rank), "binary");
  return info.Env().Undefined();
}
Napi::Value Unary(const Napi::CallbackInfo& info) {  // (op, x, out, n, alpha)
  check(info.Env(), unary((int)intArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), intArg(info[3]), (float)numArg(info[4])), "unary");
  return info.Env().Undefined();
}
Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {  // (op, x, y, dy, dx, n, alpha)
  check(info.Env(), unaryBackward((int)intArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), ptrArg(info[3]), ptrArg(info[4]), intArg(info[5]),
                                  (float)numArg(info[6])), "unaryBackward");
  return info.Env().Undefined();
}
Napi::Value ReduceLastAxis(const Napi::CallbackInfo& info) {  // (op, x, out, rows, cols)
  check(info.Env(), reduceLastAxis((int)intArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), intArg(info[3]), intArg(info[4])), "reduceLastAxis");
  return info.Env().Undefined();
}
Napi::Value SumToShape(const Napi::CallbackInfo& info) {  // (x, out, packed[rank, x…, out…])
  auto pk = packed(info[2]);
  const int rank = (int)pk[0];
  std::vector<int64_t> xs(rank), os(rank);
  for (int i = 0; i < rank; i++) {
    xs[i] = (int64_t)pk[1 + i];
    os[i] = (int64_t)pk[1 + rank + i];
  }
  check(info.Env(), sumToShape(ptrArg(info[0]), xs.data(), ptrArg(info[1]), os.data(), rank), "sumToShape");
  return info.Env().Undefined();
}
Napi::Value Embedding(const Napi::CallbackInfo& info) {  // (ids, table, out, n, vocab, dim, flag)
  check(info.Env(), embedding(ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), intArg(info[3]), intArg(info[4]), intArg(info[5]), ptrArg(info[6])), "embedding");
  return info.Env().Undefined();
}
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {  // (ids, dOut, dTable, n, vocab, dim, flag)
  check(info.Env(), embeddingBackward(ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), intArg(info[3]), intArg(info[4]), intArg(info[5]), ptrArg(info[6])),
        "embeddingBackward");
  return info.Env().Undefined();
}
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  check(info.Env(), softmax(ptrArg(info[0]), ptrArg(info[1]), intArg(info[2]), intArg(info[3])), "softmax");
  return info.Env().Undefined();
}
Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  check(info.Env(), softmaxBackward(ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), intArg(info[3]), intArg(info[4])), "softmaxBackward");
  return info.Env().Undefined();
}
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {  // (x, w, out, rstd, rows, cols, eps)
  check(info.Env(), rmsNorm(ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), ptrArg(info[3]), intArg(info[4]), intArg(info[5]), (float)numArg(info[6])), "rmsNorm");
  return info.Env().Undefined();
}
Napi::Value RmsNormBackwardScratch(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)rmsNormBackwardScratch(intArg(info[0]), intArg(info[1])));
}
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {  // (x, w, rstd, dy, dx, dw, rows, cols, scratch)
  check(info.Env(), rmsNormBackward(ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), ptrArg(info[3]), ptrArg(info[4]), ptrArg(info[5]),
                                    intArg(info[6]), intArg(info[7]), ptrArg(info[8])), "rmsNormBackward");
  return info.Env().Undefined();
}
Napi::Value Rope(const Napi::CallbackInfo& info) {  // (x, out, cos, sin, positions|null, packed[9], flag)
  auto pk = packed(info[5]);
  RopeParams p{(int64_t)pk[0], (int64_t)pk[1], (int64_t)pk[2], (int64_t)pk[3], (int64_t)pk[5], (int64_t)pk[6], pk[4] != 0, pk[8] != 0, (float)pk[7]};
  check(info.Env(), rope(p, ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), ptrArg(info[3]), ptrArg(info[4]), ptrArg(info[6])), "rope");
  return info.Env().Undefined();
}
Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  check(info.Env(), swiglu(ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), intArg(info[3])), "swiglu");
  return info.Env().Undefined();
}
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  check(info.Env(), swigluBackward(ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), ptrArg(info[3]), ptrArg(info[4]), intArg(info[5])), "swigluBackward");
  return info.Env().Undefined();
}
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {  // (logits, labels, weights|null, loss, grad|null, rows, vocab, temperature, flag)
  LossParams p{intArg(info[5]), intArg(info[6]), 0, (float)numArg(info[7])};
  check(info.Env(), crossEntropy(p, ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), ptrArg(info[3]), ptrArg(info[4]), ptrArg(info[8])), "crossEntropy");
  return info.Env().Undefined();
}
Napi::Value KlDiv(const Napi::CallbackInfo& info) {  // (logits, teacher|null, indices|null, logprobs|null, weights|null, loss, grad|null, rows, vocab, temperature, topK, flag)
  LossParams p{intArg(info[7]), intArg(info[8]), intArg(info[10]), (float)numArg(info[9])};
  check(info.Env(), klDiv(p, ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), ptrArg(info[3]), ptrArg(info[4]), ptrArg(info[5]), ptrArg(info[6]),
                          ptrArg(info[11])), "klDiv");
  return info.Env().Undefined();
}
Napi::Value AdamW(const Napi::CallbackInfo& info) {  // (param, grad, m, v, packed[9])
  auto pk = packed(info[4]);
  AdamWParams p{(int64_t)pk[0], (float)pk[1], (float)pk[2], (float)pk[3], (float)pk[4], (float)pk[5], (float)pk[6], (float)pk[7], (float)pk[8]};
  check(info.Env(), adamw(p, ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), ptrArg(info[3])), "adamw");
  return info.Env().Undefined();
}
/** Attention params packed as [B, T, S, Hq, Hkv, Dqk, Dv, scale, causal, qOff, qSb, qSt, qSh, kOff, …, vOff, …]. */
void attnUnpack(const std::vector<double>& pk, uint64_t q, uint64_t k, uint64_t v, AttnParams* p, AttnView* qv, AttnView* kv, AttnView* vv) {
  *p = AttnParams{(int64_t)pk[0], (int64_t)pk[1], (int64_t)pk[2], (int64_t)pk[3], (int64_t)pk[4], (int64_t)pk[5], (int64_t)pk[6], (float)pk[7], pk[8] != 0};
  *qv = AttnView{q, (int64_t)pk[9], (int64_t)pk[10], (int64_t)pk[11], (int64_t)pk[12]};
  *kv = AttnView{k, (int64_t)pk[13], (int64_t)pk[14], (int64_t)pk[15], (int64_t)pk[16]};
  *vv = AttnView{v, (int64_t)pk[17], (int64_t)pk[18], (int64_t)pk[19], (int64_t)pk[20]};
}
Napi::Value Attention(const Napi::CallbackInfo& info) {  // (q, k, v, out, lse|null, packed)
  AttnParams p;
  AttnView q, k, v;
  attnUnpack(packed(info[5]), ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), &p, &q, &k, &v);
  check(info.Env(), attention(p, q, k, v, ptrArg(info[3]), ptrArg(info[4])), "attention");
  return info.Env().Undefined();
}
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {  // (q, k, v, out, lse, dOut, dq, dk, dv, packed, scratch)
  AttnParams p;
  AttnView q, k, v;
  attnUnpack(packed(info[9]), ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), &p, &q, &k, &v);
  check(info.Env(), attentionBackward(p, q, k, v, ptrArg(info[3]), ptrArg(info[4]), ptrArg(info[5]), ptrArg(info[6]), ptrArg(info[7]), ptrArg(info[8]),
                                      ptrArg(info[10])), "attentionBackward");
  return info.Env().Undefined();
}
MlaParams mlaUnpack(const std::vector<double>& pk) {
  return MlaParams{(int64_t)pk[0], (int64_t)pk[1], (int64_t)pk[2], (int64_t)pk[3], (int64_t)pk[4], (int64_t)pk[5], (float)pk[6]};
}
Napi::Value MlaDecodeScratch(const Napi::CallbackInfo& info) {  // (packed, splits)
  return Napi::Number::New(info.Env(), (double)mlaDecodeScratch(mlaUnpack(packed(info[0])), (int)intArg(info[1])));
}
Napi::Value MlaDecodeSplits(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)mlaDecodeSplits(mlaUnpack(packed(info[0]))));
}
Napi::Value MlaDecode(const Napi::CallbackInfo& info) {  // (qLatent, qRope, cache, lengths|null, out, lse|null, scratch, packed, splits)
  check(info.Env(), mlaDecode(mlaUnpack(packed(info[7])), ptrArg(info[0]), ptrArg(info[1]), ptrArg(info[2]), ptrArg(info[3]), ptrArg(info[4]),
                              ptrArg(info[5]), ptrArg(info[6]), (int)intArg(info[8])), "mlaDecode");
  return info.Env().Undefined();
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("flavor", Napi::String::New(env, flavor()));
  exports.Set("compiledTargets", Napi::String::New(env, compiledTargets()));
  exports.Set("attentionMaxHeadDim", Napi::Number::New(env, (double)attentionMaxHeadDim()));
#define FN(name, fn) exports.Set(name, Napi::Function::New(env, fn, name))
  FN("probe", Probe);
  FN("init", Init);
  FN("loadBlas", LoadBlas);
  FN("dlopenCheck", DlopenCheck);
  FN("alloc", Alloc);
  FN("free", Free);
  FN("upload", Upload);
  FN("copyDevice", CopyDevice);
  FN("download", Download);
  FN("sync", Sync);
  FN("memInfo", MemInfo);
  FN("fill", Fill);
  FN("copyStrided", CopyStrided);
  FN("cast", Cast);
  FN("gemm", Gemm);
  FN("benchSgemm", BenchSgemm);
  FN("binary", Binary);
  FN("unary", Unary);
  FN("unaryBackward", UnaryBackward);
  FN("reduceLastAxis", ReduceLastAxis);
  FN("sumToShape", SumToShape);
  FN("embedding", Embedding);
  FN("embeddingBackward", EmbeddingBackward);
  FN("softmax", Softmax);
  FN("softmaxBackward", SoftmaxBackward);
  FN("rmsNorm", RmsNorm);
  FN("rmsNormBackwardScratch", RmsNormBackwardScratch);
  FN("rmsNormBackward", RmsNormBackward);
  FN("rope", Rope);
  FN("swiglu", Swiglu);
  FN("swigluBackward", SwigluBackward);
  FN("crossEntropy", CrossEntropy);
  FN("klDiv", KlDiv);
  FN("adamw", AdamW);
  FN("attention", Attention);
  FN("attentionBackward", AttentionBackward);
  FN("mlaDecodeScratch", MlaDecodeScratch);
  FN("mlaDecodeSplits", MlaDecodeSplits);
  FN("mlaDecode", MlaDecode);
#undef FN
  return exports;
}

}  // namespace

NODE_API_MODULE(ecomla_gpu, InitModule)
