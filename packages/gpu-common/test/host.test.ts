// The CPU side of the GPU backends, tested without a GPU: the
// BLAS library search and its error, the device pool's bookkeeping, and GpuBackend's argument
// checks, aliasing copies and device-error flags over a recording stand-in for the addon.
import t from "tap";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EcomlaError, ShapeError, type DeviceBuffer } from "@ecomla/core";
import {
  BLAS_NAMES, BackendUnavailableError, DevicePool, GpuBackend, blasCandidates, blasNotFoundMessage, bucketBytes, loadBlas, mlaDecodeReference,
  wheelLibDirs, type GpuAddon,
} from "@ecomla/gpu-common";

const pkgDir = dirname(dirname(fileURLToPath(import.meta.url)));

// The op ids: kernels/ops.generated.h is one of scripts/gen-op-header.mjs's targets, checked by test/op-header.test.ts.

t.test("device pool: bucket reuse, overflow frees, trim, retry after an allocation failure", async (t) => {
  let next = 4096;
  const freed: number[] = [];
  let failNext = false;
  const device = {
    alloc(bytes: number) {
      if (failNext) {
        failNext = false;
        throw new Error("out of memory");
      }
      const p = next;
      next += bytes;
      return p;
    },
    free(ptr: number) {
      freed.push(ptr);
    },
  };
  const pool = new DevicePool(device, 4096);
  const a = pool.take(1000);
  t.equal(a.capacity, bucketBytes(1000));
  pool.give(a.ptr, a.capacity);
  const b = pool.take(1000);
  t.equal(b.ptr, a.ptr, "same bucket: the block is reused");
  t.same(pool.stats(), { pooledBlocks: 0, pooledBytes: 0, deviceAllocs: 1, deviceFrees: 0 });
  const big = pool.take(8000);
  pool.give(b.ptr, b.capacity);
  pool.give(big.ptr, big.capacity);
  t.same(freed, [big.ptr], "a block beyond maxPooledBytes is freed at once");
  t.equal(pool.stats().pooledBlocks, 1);
  failNext = true;
  const c = pool.take(50_000);
  t.ok(c.ptr > 0, "an allocation failure empties the pool and retries once");
  t.same(freed, [big.ptr, b.ptr]);
  t.same(pool.stats().pooledBlocks, 0);
  failNext = true;
  t.throws(() => pool.take(10), /out of memory/, "nothing pooled: the failure propagates");
  pool.give(c.ptr, c.capacity);
  pool.trim();
  t.equal(pool.stats().pooledBytes, 0);
});

t.test("BLAS search: the override first, then dlopen's own search, the toolkit, the system, the Python wheels", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "ecomla-blas-"));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  // A fake virtualenv with the cu12 and cu13 wheel layouts.
  const site = join(root, "venv", "lib", "python3.12", "site-packages");
  mkdirSync(join(site, "nvidia", "cublas", "lib"), { recursive: true });
  mkdirSync(join(site, "nvidia", "cu13", "lib"), { recursive: true });
  writeFileSync(join(site, "nvidia", "cublas", "lib", "libcublas.so.12"), "");
  writeFileSync(join(site, "nvidia", "cu13", "lib", "libcublas.so.13"), "");
  const cudaHome = join(root, "cuda");
  mkdirSync(join(cudaHome, "lib64"), { recursive: true });
  writeFileSync(join(cudaHome, "lib64", "libcublas.so.12"), "");
  const env = { VIRTUAL_ENV: join(root, "venv"), CUDA_HOME: cudaHome, HOME: root, ECOMLA_CUBLAS_PATH: "/opt/mine/libcublas.so.12" };
  const c = blasCandidates("cuda", env);
  t.equal(c[0], "/opt/mine/libcublas.so.12", "the override comes first");
  t.same(c.slice(1, 4), [...BLAS_NAMES.cuda], "then the bare names (LD_LIBRARY_PATH, the linker cache)");
  const toolkit = c.indexOf(join(cudaHome, "lib64", "libcublas.so.12"));
  const wheel12 = c.indexOf(join(site, "nvidia", "cublas", "lib", "libcublas.so.12"));
  const wheel13 = c.indexOf(join(site, "nvidia", "cu13", "lib", "libcublas.so.13"));
  t.ok(toolkit > 3 && wheel12 > toolkit && wheel13 > toolkit, "the toolkit before the wheels; both wheel layouts found");
  t.same(wheelLibDirs("cuda", site).sort(), [join(site, "nvidia", "cu13", "lib"), join(site, "nvidia", "cublas", "lib")].sort());
  const msg = blasNotFoundMessage("cuda", c, c.map((p) => `${p}: cannot open shared object file`).join("\n"));
  for (const p of c) t.ok(msg.includes(p), `the error names ${p}`);
  t.match(msg, /ECOMLA_CUBLAS_PATH/);
  t.match(blasCandidates("rocm", { ROCM_PATH: "/x" })[0], /^libhipblas\.so/);
});

t.test("loadBlas: asks python3 for the wheel only after the plain search fails, and names every path in its error", async (t) => {
  const tried: string[][] = [];
  const native = {
    loadBlas(paths: string[]) {
      tried.push(paths);
      return { ok: false, path: "", errors: paths.map((p) => `${p}: nope`).join("\n") + "\n" };
    },
  };
  const wheel = mkdtempSync(join(tmpdir(), "ecomla-wheel-"));
  t.teardown(() => rmSync(wheel, { recursive: true, force: true }));
  writeFileSync(join(wheel, "libcublas.so.12"), "");
  let asked = 0;
  const err = t.throws(() => loadBlas("cuda", native, [], () => (asked++, [wheel]))) as unknown as BackendUnavailableError;
  t.equal(asked, 1);
  t.equal(tried.length, 2, "two rounds: the plain search, then the wheel python3 named");
  t.same(tried[1], [join(wheel, "libcublas.so.12")]);
  t.ok(err instanceof BackendUnavailableError);
  t.match(err.message, /backend "cuda" is unavailable: cuBLAS could not be loaded; searched \d+ path/);
  t.ok(err.message.includes(join(wheel, "libcublas.so.12")), "the wheel path is named");
  const ok = { loadBlas: (paths: string[]) => ({ ok: true, path: paths[0]!, errors: "" }) };
  t.equal(loadBlas("cuda", ok, [], () => t.fail("python3 not asked") as never), "libcublas.so.13");
});

t.test("the built addon's dlopen errors name the path (no GPU needed)", async (t) => {
  const path = join(pkgDir, "..", "..", "plugins", "backend-cuda", "build", "gyp", "build", "Release", "ecomla_gpu.node");
  let addon: GpuAddon;
  try {
    addon = (await import("node:module")).createRequire(import.meta.url)(path) as GpuAddon;
  } catch {
    t.skip("the CUDA addon is not built here");
    return;
  }
  const r = addon.loadBlas(["/nonexistent/libcublas.so.12", "/nonexistent/libcublas.so.13"]);
  t.equal(r.ok, false);
  t.match(r.errors, /\/nonexistent\/libcublas\.so\.12: .*No such file/);
  t.match(r.errors, /\/nonexistent\/libcublas\.so\.13: /);
  t.match(addon.dlopenCheck("/nonexistent/libcublas.so.12"), /No such file/);
  t.equal(addon.dlopenCheck("libc.so.6"), "", "a library that exists loads");
  const probe = addon.probe();
  t.equal(typeof probe.ok, "boolean");
  if (!probe.ok) t.match(probe.error, /driver|device/i, `no device here: ${probe.error}`);
});

// ---- GpuBackend over a recording stand-in for the addon --------------------------------------------

interface Call {
  fn: string;
  args: unknown[];
}

/** A GpuAddon whose memory is host ArrayBuffers and whose kernels only record their calls. */
function fakeAddon(): GpuAddon & { calls: Call[]; memory: Map<number, ArrayBuffer>; flags: () => Int32Array } {
  const memory = new Map<number, ArrayBuffer>();
  const calls: Call[] = [];
  let next = 1 << 20;
  const find = (ptr: number): [ArrayBuffer, number] => {
    for (const [base, buf] of memory) if (ptr >= base && ptr < base + buf.byteLength) return [buf, ptr - base];
    throw new Error(`fake: no block at ${ptr}`);
  };
  let flagsPtr = 0;
  const record = (fn: string) => (...args: unknown[]) => void calls.push({ fn, args });
  const addon = {
    flavor: "cuda",
    compiledTargets: "sm_80,sm_90",
    attentionMaxHeadDim: 256,
    calls,
    memory,
    flags: () => new Int32Array(memory.get(flagsPtr)!, 0, 8),
    probe: () => ({ ok: true, error: "", flavor: "cuda", name: "Fake GPU", arch: "sm_90", driverVersion: 13000, runtimeVersion: 13000, deviceCount: 1, multiProcessors: 132, totalBytes: 8e10, compiledTargets: "sm_80,sm_90" }),
    init: () => {},
    loadBlas: (paths: string[]) => ({ ok: true, path: paths[0]!, errors: "" }),
    dlopenCheck: () => "",
    alloc(bytes: number) {
      const p = next;
      next += bytes + 4096;
      memory.set(p, new ArrayBuffer(bytes));
      if (flagsPtr === 0) flagsPtr = p;
      calls.push({ fn: "alloc", args: [bytes] });
      return p;
    },
    free(ptr: number) {
      memory.delete(ptr);
      calls.push({ fn: "free", args: [ptr] });
    },
    upload(dst: number, byteOffset: number, data: Float32Array | Int32Array | Uint16Array) {
      const [buf, off] = find(dst);
      new Uint8Array(buf, off + byteOffset, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    },
    copyDevice(dst: number, src: number, bytes: number) {
      const [d, doff] = find(dst);
      const [s, soff] = find(src);
      new Uint8Array(d, doff, bytes).set(new Uint8Array(s, soff, bytes));
      calls.push({ fn: "copyDevice", args: [dst, src, bytes] });
    },
    async download(src: number, byteOffset: number, bytes: number) {
      const [buf, off] = find(src);
      return buf.slice(off + byteOffset, off + byteOffset + bytes);
    },
    sync: async () => {},
    memInfo: () => ({ freeBytes: 1, totalBytes: 2, stagingBytes: 0 }),
    fill(out: number, dtype: number, value: number, n: number, offset: number) {
      calls.push({ fn: "fill", args: [out, dtype, value, n, offset] });
      if (dtype === 3) {
        const [buf, off] = find(out);
        new Int32Array(buf, off + offset * 4, n).fill(value);
      }
    },
    benchSgemm: () => 1,
    rmsNormBackwardScratch: () => 16,
    mlaDecodeScratch: () => 64,
    mlaDecodeSplits: () => 4,
  } as Record<string, unknown>;
  for (const fn of ["copyStrided", "cast", "gemm", "binary", "unary", "unaryBackward", "reduceLastAxis", "sumToShape", "embedding", "embeddingBackward", "softmax",
    "softmaxBackward", "rmsNorm", "rmsNormBackward", "rope", "swiglu", "swigluBackward", "crossEntropy", "klDiv", "adamw", "attention", "attentionBackward", "mlaDecode"]) {
    addon[fn] = record(fn);
  }
  return addon as unknown as ReturnType<typeof fakeAddon>;
}

t.test("GpuBackend: argument checks name the kernel, the argument and what was expected", async (t) => {
  const fake = fakeAddon();
  const be = GpuBackend.create("cuda", fake);
  t.equal(be.name, "cuda");
  t.match(be.describe(), /Fake GPU \(sm_90; binary for sm_80,sm_90\)/);
  const a = be.alloc("f32", 6);
  const i = be.alloc("i32", 2);
  t.throws(() => be.alloc("f64" as never, 1), /CudaBackend\.alloc: unknown dtype "f64"/);
  t.throws(() => be.unary("scale", a, a, 6), /CudaBackend\.unary\(scale\): op 'scale' needs alpha/);
  t.throws(() => be.unary("exp", a, a, 7), ShapeError);
  t.throws(() => be.unary("exp", i, a, 2), /argument 'x' has dtype i32, expected f32/);
  t.throws(() => be.binary("add", a, [2, 3], a, [3, 2], a, [2, 3]), /bShape \[3, 2\] does not broadcast to outShape \[2, 3\]/);
  t.throws(() => be.gemm({ batch: 1, m: 2, n: 3, k: 3, transA: false, transB: false, alpha: 1, beta: 0, a, lda: 2, strideA: 0, b: a, ldb: 3, strideB: 0, c: a, ldc: 3, strideC: 0 }), /lda must be ≥ 3/);
  t.throws(() => be.attention({ batch: 1, queryLen: 1, keyLen: 1, numHeads: 1, numKvHeads: 1, qkDim: 512, vDim: 4, scale: 1, causal: true, q: { buf: a }, k: { buf: a }, v: { buf: a }, out: a }), /qkDim \(512\) and vDim \(4\) must be ≤ 256/);
  t.equal(be.supports("attention", [{ qkDim: 512, vDim: 64 }]), false, "large head dims go to the composition");
  t.equal(be.supports("attention", [{ qkDim: 192, vDim: 128 }]), true);
  t.throws(() => be.mlaDecode({ batch: 1, numHeads: 1, kvRank: 2048, ropeDim: 0, maxLen: 1, scale: 1, qLatent: a, qRope: a, cache: a, out: a }), /kvRank must be ≤ 1024/);
  t.throws(() => be.mlaDecode({ batch: 1, numHeads: 2, kvRank: 2, ropeDim: 1, maxLen: 3, scale: 1, qLatent: a, qRope: a, cache: a, out: a }), /CudaBackend\.mlaDecode: argument 'cache' needs elements \[0, 9\) but has length 6/);
  be.free(a);
  t.throws(() => be.free(a), /already freed \(freeing twice\)/);
  t.throws(() => be.unary("exp", a, i, 1), /use after free/);
  const other = GpuBackend.create("cuda", fakeAddon());
  t.throws(() => other.fill(i, 0, 1), /belongs to another CudaBackend instance/);
  t.throws(() => be.fill({ backend: "cpu", dtype: "f32", length: 1 } as DeviceBuffer, 0, 1), /a buffer of backend 'cpu', expected one of 'cuda'/);
});

t.test("GpuBackend: pooled memory stays flat; aliased inputs are read from device copies", async (t) => {
  const fake = fakeAddon();
  const be = GpuBackend.create("cuda", fake);
  const step = () => {
    const bufs = [1, 17, 1000, 65_537].map((n) => be.alloc("f32", n));
    for (const b of bufs) be.free(b);
  };
  step();
  const allocs = fake.calls.filter((c) => c.fn === "alloc").length;
  for (let r = 0; r < 5; r++) step();
  t.equal(fake.calls.filter((c) => c.fn === "alloc").length, allocs, "no device allocation after the first step");
  t.same(be.memoryStats().liveBuffers, 0);
  t.equal(be.poolStats().pooledBlocks, 4);

  const c = be.alloc("f32", 16);
  const b = be.alloc("f32", 16);
  fake.calls.length = 0;
  be.gemm({ batch: 1, m: 4, n: 4, k: 4, transA: false, transB: false, alpha: 1, beta: 0, a: c, lda: 4, strideA: 0, b, ldb: 4, strideB: 0, c, ldc: 4, strideC: 0 });
  const copy = fake.calls.find((x) => x.fn === "copyDevice");
  const gemm = fake.calls.find((x) => x.fn === "gemm")!;
  t.ok(copy, "A aliases C: A is copied first");
  t.equal(gemm.args[0], copy!.args[0], "the GEMM reads the copy");
  t.equal(gemm.args[2], (c as unknown as { ptr: number }).ptr, "and writes C");
  t.same(Array.from(gemm.args[3] as Float64Array).slice(0, 8), [1, 4, 4, 4, 0, 0, 1, 0]);
  fake.calls.length = 0;
  be.unary("exp", c, c, 16);
  t.notOk(fake.calls.some((x) => x.fn === "copyDevice"), "elementwise in place needs no copy");
  be.binary("add", b, [1, 16], c, [16], b, [1, 16]);
  t.notOk(fake.calls.some((x) => x.fn === "copyDevice"), "same-shape aliasing needs no copy");
  const row = be.alloc("f32", 4);
  be.binary("add", row, [4], b, [4, 4], b, [4, 4]);
  t.notOk(fake.calls.some((x) => x.fn === "copyDevice"));
  be.binary("add", b, [4], c, [4, 4], b, [4, 4]);
  const copied = fake.calls.filter((x) => x.fn === "copyDevice");
  t.equal(copied.length, 1, "a broadcast input aliasing out is copied first");
  t.equal(fake.calls.at(-1)!.args[1], copied[0]!.args[0], "and the kernel reads the copy");
});

t.test("GpuBackend: a device-side bad-input flag fails the next download once, naming the kernel", async (t) => {
  const fake = fakeAddon();
  const be = GpuBackend.create("cuda", fake);
  const x = be.alloc("f32", 4);
  be.upload(x, new Float32Array([1, 2, 3, 4]));
  t.same(Array.from(await be.download(x)), [1, 2, 3, 4]);
  fake.flags()[0] = 1;  // as embeddingKernel does for an id outside [0, vocab)
  await t.rejects(be.download(x), /CudaBackend: a kernel found bad input on the device .*embedding: an id outside \[0, vocab\)/);
  t.same(Array.from(await be.download(x, 1, 2)), [2, 3], "the flag is cleared after it is reported");
  fake.flags()[2] = 1;
  await t.rejects(be.sync(), /rope: a position outside the cos\/sin table/);
  await be.sync();
  t.throws(() => be.upload(x, new Int32Array(4) as never), /a f32 buffer takes a Float32Array, found Int32Array/);
  t.ok(new EcomlaError("x"));
});

t.test("mlaDecodeReference agrees with the un-absorbed attention it stands for", async (t) => {
  // One sequence, one head: R = 2, Dr = 1, three cached rows.
  const cache = new Float32Array([1, 0, 0.5, 0, 1, -0.5, 1, 1, 0]);
  const { out, lse } = mlaDecodeReference({ batch: 1, numHeads: 1, kvRank: 2, ropeDim: 1, maxLen: 3, scale: 0.5, qLatent: new Float32Array([1, 2]), qRope: new Float32Array([2]), cache });
  const scores = [0.5 * (1 + 1), 0.5 * (2 - 1), 0.5 * 3];
  const m = Math.max(...scores);
  const w = scores.map((s) => Math.exp(s - m));
  const sum = w.reduce((a, b) => a + b);
  t.ok(Math.abs(out[0]! - (w[0]! + w[2]!) / sum) < 1e-12);
  t.ok(Math.abs(out[1]! - (w[1]! + w[2]!) / sum) < 1e-12);
  t.ok(Math.abs(lse[0]! - (m + Math.log(sum))) < 1e-12);
});
