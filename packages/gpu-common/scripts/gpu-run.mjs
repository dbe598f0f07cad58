// The GPU part of scripts/gpu-check.sh for the cuda / rocm backends, in one Node process (no tap):
//   node gpu-run.mjs --backend cuda|rocm [--out DIR] [--quick]
// 1. creates the backend through its plugin (prints the device, or why it is unavailable: exit 3);
// 2. runs core's conformance suite on it (every primitive and fused kernel against the reference);
// 3. checks the absorbed-MLA decode kernel against the float64 host reference over ranks 64..1024
//    and rope dims 0..128, then times it at batch 64, context 4096, r_kv 128, d_rope 32, 32 heads and
//    reports the latent-cache bytes read per second against the GPU's peak bandwidth
//    (ECOMLA_GPU_PEAK_GBPS, else a table of known GPUs).
// Writes gpu-run.json to --out (default $OUT or /tmp); exit 1 when a check fails.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { container, registryOf, runConformance } from "@ecomla/core";
import { mlaDecodeReference } from "@ecomla/gpu-common";

const argv = process.argv.slice(2);
const arg = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
const backendName = arg("--backend", "cuda");
const outDir = arg("--out", process.env.OUT || "/tmp");
const quick = argv.includes("--quick");
mkdirSync(outDir, { recursive: true });
const report = { backend: backendName, started: new Date().toISOString() };
const save = () => writeFileSync(join(outDir, "gpu-run.json"), JSON.stringify(report, null, 2) + "\n");

// The plugin by path: this package does not depend on the plugins that build it.
const plugin = (await import(new URL(`../../../plugins/backend-${backendName}/dist/index.js`, import.meta.url).href)).default;
const c = container.createChildContainer();
await registryOf(c).install(plugin);
let be;
try {
  be = await registryOf(c).backend(backendName);
} catch (error) {
  report.unavailable = error.message;
  save();
  console.error(`gpu-run: ${error.message}`);
  process.exit(3);
}
report.device = be.describe();
console.log(`gpu-run: ${report.device}`);

// ---- conformance ----------------------------------------------------------------------------------
let t0 = performance.now();
const checks = await runConformance(be);
const failed = checks.filter((x) => !x.pass);
report.conformance = { checks: checks.length, failed: failed.length, seconds: (performance.now() - t0) / 1000, failures: failed.slice(0, 50) };
console.log(`conformance: ${checks.length - failed.length}/${checks.length} pass in ${report.conformance.seconds.toFixed(1)} s`);
for (const f of failed.slice(0, 20)) console.log(`  FAIL ${f.kernel} [${f.case}] maxAbs ${f.maxAbsErr} maxRel ${f.maxRelErr} ${f.detail ?? ""}`);
save();

// ---- absorbed-MLA decode --------------------------------------------------------------------------
function rand(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    a[i] = (s / 4294967296) * 2 - 1;
  }
  return a;
}
async function mlaCase(shape, seed) {
  const { batch, numHeads, kvRank, ropeDim, maxLen } = shape;
  const W = kvRank + ropeDim;
  const scale = 1 / Math.sqrt(kvRank / 4 + ropeDim);
  const host = { qLatent: rand(batch * numHeads * kvRank, seed), qRope: rand(batch * numHeads * ropeDim, seed + 1), cache: rand(batch * maxLen * W, seed + 2) };
  const lengths = Int32Array.from({ length: batch }, (_, b) => Math.max(1, maxLen - 7 * b));
  const up = (data, dtype = "f32") => {
    const buf = be.alloc(dtype, Math.max(data.length, 1));
    if (data.length) be.upload(buf, data);
    return buf;
  };
  const qLatent = up(host.qLatent), qRope = up(host.qRope), cache = up(host.cache), len = up(lengths, "i32");
  const out = be.alloc("f32", batch * numHeads * kvRank), lse = be.alloc("f32", batch * numHeads);
  be.mlaDecode({ ...shape, scale, qLatent, qRope, cache, lengths: len, out, lse });
  const got = await be.download(out);
  const gotLse = await be.download(lse);
  const ref = mlaDecodeReference({ ...shape, scale, ...host, lengths });
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - ref.out[i]));
  for (let i = 0; i < gotLse.length; i++) worst = Math.max(worst, Math.abs(gotLse[i] - ref.lse[i]) / 10);
  for (const b of [qLatent, qRope, cache, len, out, lse]) be.free(b);
  return worst;
}
const mlaShapes = [
  { batch: 2, numHeads: 4, kvRank: 64, ropeDim: 8, maxLen: 37 },
  { batch: 3, numHeads: 8, kvRank: 128, ropeDim: 32, maxLen: 300 },
  { batch: 2, numHeads: 16, kvRank: 256, ropeDim: 64, maxLen: 129 },
  { batch: 1, numHeads: 5, kvRank: 512, ropeDim: 64, maxLen: 1000 },
  { batch: 2, numHeads: 3, kvRank: 1024, ropeDim: 128, maxLen: 70 },
  { batch: 2, numHeads: 2, kvRank: 96, ropeDim: 0, maxLen: 17 },
];
report.mlaDecode = { checks: [] };
for (const [i, s] of mlaShapes.entries()) {
  const err = await mlaCase(s, 100 + i);
  const pass = err < 1e-4;
  report.mlaDecode.checks.push({ ...s, maxAbsErr: err, pass });
  console.log(`mlaDecode ${JSON.stringify(s)}: max |Δ| ${err.toExponential(2)} ${pass ? "ok" : "FAIL"}`);
}
save();

const PEAK_GBPS = [[/H200/i, 4800], [/H100.*(SXM|HBM3)/i, 3350], [/H100.*NVL/i, 3900], [/H100/i, 2000], [/A100.*80/i, 2039], [/A100/i, 1555], [/MI300X/i, 5300], [/MI250/i, 3277], [/MI210/i, 1638]];
const bench = { batch: 64, numHeads: 32, kvRank: 128, ropeDim: 32, maxLen: 4096 };
{
  const W = bench.kvRank + bench.ropeDim;
  const cache = be.alloc("f32", bench.batch * bench.maxLen * W);
  be.fill(cache, 0.01, bench.batch * bench.maxLen * W);
  const qLatent = be.alloc("f32", bench.batch * bench.numHeads * bench.kvRank);
  be.fill(qLatent, 0.02, bench.batch * bench.numHeads * bench.kvRank);
  const qRope = be.alloc("f32", bench.batch * bench.numHeads * bench.ropeDim);
  be.fill(qRope, 0.03, bench.batch * bench.numHeads * bench.ropeDim);
  const out = be.alloc("f32", bench.batch * bench.numHeads * bench.kvRank);
  const call = () => be.mlaDecode({ ...bench, scale: 0.1, qLatent, qRope, cache, out });
  for (let i = 0; i < 3; i++) call();
  await be.sync();
  const reps = quick ? 5 : 50;
  t0 = performance.now();
  for (let i = 0; i < reps; i++) call();
  await be.sync();
  const ms = (performance.now() - t0) / reps;
  const bytes = bench.batch * bench.maxLen * W * 4;
  const gbps = bytes / (ms / 1000) / 1e9;
  const name = be.device.name;
  const peak = Number(process.env.ECOMLA_GPU_PEAK_GBPS) || PEAK_GBPS.find(([re]) => re.test(name))?.[1];
  report.mlaDecode.bench = { ...bench, cacheDtype: "f32", ms, cacheBytes: bytes, gbps, peakGbps: peak ?? null, fractionOfPeak: peak ? gbps / peak : null };
  console.log(`mlaDecode bench ${JSON.stringify(bench)}: ${ms.toFixed(3)} ms, ${gbps.toFixed(0)} GB/s of latent cache${peak ? ` = ${((100 * gbps) / peak).toFixed(0)}% of ${peak} GB/s` : ""}`);
  for (const b of [cache, qLatent, qRope, out]) be.free(b);
}
report.finished = new Date().toISOString();
save();
const bad = failed.length > 0 || report.mlaDecode.checks.some((x) => !x.pass);
process.exit(bad ? 1 : 0);
