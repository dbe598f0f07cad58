// The native parts around the kernels: the thread pool, the buffer pool, LAPACK SVD, errors, and
// every ISA build of the kernels against the reference backend.
import t from "tap";
import { spawnSync } from "node:child_process";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { EcomlaError, ReferenceBackend, ShapeError } from "@ecomla/core";
import { CpuBackend, bucketBytes } from "@ecomla/backend-cpu";

// Children run inside the package, so "@ecomla/backend-cpu" resolves to itself and "@ecomla/core" to its dependency.
const pkgDir = dirname(dirname(fileURLToPath(import.meta.url)));

/** Run an ES module snippet in a child Node with extra environment; returns its parsed stdout JSON. */
function child(code: string, env: Record<string, string>): any {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], { cwd: pkgDir, env: { ...process.env, ...env }, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

t.test("the thread pool and OpenBLAS honour ECOMLA_NUM_THREADS", async (t) => {
  const code = `import { CpuBackend } from "@ecomla/backend-cpu"; const i = new CpuBackend().info(); console.log(JSON.stringify(i));`;
  for (const n of [1, 3]) {
    const info = child(code, { ECOMLA_NUM_THREADS: String(n) });
    t.equal(info.threads, n, `kernel pool threads with ECOMLA_NUM_THREADS=${n}`);
    t.equal(info.blasThreads, n, `OpenBLAS threads with ECOMLA_NUM_THREADS=${n}`);
  }
  const { ECOMLA_NUM_THREADS: _, ...rest } = process.env;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], { cwd: pkgDir, env: rest, encoding: "utf8" });
  const info = JSON.parse(r.stdout);
  t.ok(info.threads >= 1, `default pool uses all cores (${info.threads})`);
});

t.test("the buffer pool keeps memoryStats and native allocations flat over repeated alloc/free", async (t) => {
  const be = new CpuBackend();
  const sizes = [1, 17, 1000, 4096, 65_537, 1 << 20];
  const step = () => {
    const bufs = sizes.map((n, i) => be.alloc(i % 2 ? "f32" : "bf16", n));
    for (const b of bufs) be.free(b);
  };
  step();
  const before = be.memoryStats();
  const nativeBefore = be.poolStats().nativeAllocs;
  for (let i = 0; i < 50; i++) step();
  const after = be.memoryStats();
  t.equal(after.liveBuffers, 0);
  t.equal(after.liveBytes, 0);
  t.equal(after.peakBytes, before.peakBytes, "peak does not grow");
  t.equal(after.allocCount, before.allocCount + 50 * sizes.length);
  t.equal(be.poolStats().nativeAllocs, nativeBefore, "steady state makes no native allocation");
  const live = be.alloc("f32", 10);
  t.same(be.memoryStats().liveBytes, 40, "liveBytes counts requested bytes exactly");
  be.free(live);
  t.equal(bucketBytes(1000), 1024);
  t.equal(bucketBytes(1025), 1280, "quarter-power-of-two buckets bound the slack to 25%");
});

t.test("LAPACK SVD reconstructs the matrix, with orthonormal factors", async (t) => {
  const be = new CpuBackend();
  const ref = new ReferenceBackend();
  for (const [m, n, single] of [[7, 4, false], [4, 9, false], [33, 33, false], [40, 12, true], [12, 40, true]] as const) {
    // float64 input runs dgesdd; float32 input runs sgesdd (as PyTorch on .float() weights), to ~1e-5.
    const tol = single ? 2e-5 : 1e-12;
    const values = new Float64Array(m * n).map((_, i) => Math.sin(i * 1.3) + ((i * 7) % 5) / 5);
    const a = single ? Float32Array.from(values) : values;
    const { u, s, vt } = await be.capabilities.svd!(a, m, n);
    const k = Math.min(m, n);
    let err = 0;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let x = 0;
        for (let r = 0; r < k; r++) x += u[i * k + r]! * s[r]! * vt[r * n + j]!;
        err = Math.max(err, Math.abs(x - a[i * n + j]!));
      }
    t.ok(err < tol * 10, `${m}×${n}${single ? " f32" : ""}: max |U·S·Vᵀ − A| = ${err}`);
    let orth = 0;
    for (let p = 0; p < k; p++)
      for (let q = 0; q < k; q++) {
        let du = 0;
        let dv = 0;
        for (let i = 0; i < m; i++) du += u[i * k + p]! * u[i * k + q]!;
        for (let j = 0; j < n; j++) dv += vt[p * n + j]! * vt[q * n + j]!;
        orth = Math.max(orth, Math.abs(du - (p === q ? 1 : 0)), Math.abs(dv - (p === q ? 1 : 0)));
      }
    t.ok(orth < tol, `${m}×${n}${single ? " f32" : ""}: UᵀU = VᵀV = I within ${orth}`);
    const expected = (await ref.capabilities.svd!(a, m, n)).s;
    t.ok(s.every((v, i) => Math.abs(v - expected[i]!) < (single ? 1e-4 : 1e-10) && (i === 0 || v <= s[i - 1]!)), `${m}×${n}${single ? " f32" : ""}: singular values match the Jacobi SVD, descending`);
  }
  await t.rejects(be.capabilities.svd!(new Float64Array(5), 2, 3), ShapeError);
});

t.test("bad input raises EcomlaError/ShapeError and never crashes the process", async (t) => {
  const be = new CpuBackend();
  const other = new ReferenceBackend();
  const x = be.alloc("f32", 8);
  const ids = be.alloc("i32", 2);
  t.throws(() => be.unary("exp", other.alloc("f32", 8), x, 8), /CpuBackend\.unary\(exp\): argument 'x' is a buffer of backend 'reference'/);
  t.throws(() => be.unary("exp", x, x, 9), ShapeError, "range past the end");
  t.throws(() => be.unary("exp", ids, x, 2), /argument 'x' has dtype i32, expected f32/);
  t.throws(() => be.upload(x, new Int32Array(2)), /a f32 buffer takes a Float32Array, found Int32Array/);
  t.throws(() => be.gemm({ batch: 1, m: 2, n: 2, k: 2, transA: false, transB: false, alpha: 1, beta: 0, a: x, lda: 1, strideA: 0, b: x, ldb: 2, strideB: 0, c: x, ldc: 2, strideC: 0 }), /lda must be ≥ 2/);
  t.throws(() => be.binary("add", x, [3, 3], x, [3], x, [3]), /does not broadcast/);
  t.throws(() => be.unary("frobnicate" as never, x, x, 1), /unknown op "frobnicate"/);
  be.upload(ids, new Int32Array([1, 7]));
  const caught = (fn: () => void): unknown => {
    try {
      fn();
    } catch (err) {
      return err;
    }
    return undefined;
  };
  const idError = caught(() => be.embedding(ids, x, x, 2, 4, 2));
  t.ok(idError instanceof EcomlaError, "out-of-range id found natively raises an EcomlaError");
  t.match((idError as Error).message, /CpuBackend\.embedding: .*ids\[1\] = 7 is outside \[0, 4\)/);
  const loss = be.alloc("f32", 2);
  t.throws(() => be.crossEntropy({ logits: x, rows: 2, vocab: 4, labels: ids, loss }), /labels\[1\] = 7/);
  t.throws(() => be.attention({ batch: 1, queryLen: 4, keyLen: 2, numHeads: 1, numKvHeads: 1, qkDim: 2, vDim: 2, scale: 1, causal: true, q: { buf: x }, k: { buf: x }, v: { buf: x }, out: x }), /keyLen ≥ queryLen/);
  be.free(loss);
  be.free(ids);
  be.free(x);
  t.throws(() => be.free(x), /already freed \(freeing twice\)/);
  t.throws(() => be.fill(x, 0, 1), /already freed \(use after free\)/);
  t.equal(be.memoryStats().liveBuffers, 0);
});

t.test("every ISA build of the kernels passes the conformance suite", async (t) => {
  const code = `import { runConformance } from "@ecomla/core"; import { CpuBackend } from "@ecomla/backend-cpu";
    const be = new CpuBackend(); const checks = await runConformance(be);
    console.log(JSON.stringify({ isa: be.info().isa, total: checks.length, failed: checks.filter((c) => !c.pass).map((c) => c.kernel + ": " + c.case) }));`;
  for (const isa of ["generic", "avx2"]) {
    const r = child(code, { ECOMLA_CPU_ISA: isa });
    t.ok(r.total > 100, `${isa}: ran ${r.total} checks (selected ${r.isa})`);
    t.same(r.failed, [], `${isa}: no failures`);
  }
});
