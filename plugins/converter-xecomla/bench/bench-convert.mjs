#!/usr/bin/env node
// Times `ecomla convert` on a checkpoint (wall time and peak RSS of the whole command) beside the
// same SVDs done by PyTorch's torch.linalg.svd (float32, thin and full as the seed calls it), in
// one run. PyTorch is only a baseline here. Usage (from the repo root):
//   node plugins/converter-xecomla/bench/bench-convert.mjs MODEL_DIR [--with-full] [--kv-rank 128 --q-rank 1344 --rope-dim 32]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, "../../../packages/cli/dist/bin.js");
const args = process.argv.slice(2);
// --with-full also times torch.linalg.svd(full_matrices=True), the seed's exact call (slow: U is m × m).
const withFull = args.includes("--with-full");
const [model, ...rest] = args.filter((a) => a !== "--with-full");
if (!model) {
  console.error("usage: bench-convert.mjs MODEL_DIR [convert flags]");
  process.exit(2);
}
const threads = Number(process.env.ECOMLA_NUM_THREADS ?? cpus().length);
const env = { ...process.env, ECOMLA_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
const out = mkdtempSync(join(tmpdir(), "ecomla-bench-convert-"));
const flags = rest.length ? rest : ["--kv-rank", "128", "--q-rank", "1344", "--rope-dim", "32"];
// /usr/bin/time reports the peak RSS of the whole process tree's main process.
const t0 = performance.now();
const conv = spawnSync("/usr/bin/time", ["-f", "%M", process.execPath, bin, "convert", "-m", model, "-o", join(out, "mla"), ...flags, "-b", "cpu", "--json"], { env, encoding: "utf8" });
const convertSeconds = (performance.now() - t0) / 1000;
if (conv.status !== 0) {
  console.error(conv.stderr);
  process.exit(1);
}
const peakRssKb = Number(conv.stderr.trim().split("\n").pop());
const report = JSON.parse(conv.stdout);
rmSync(out, { recursive: true, force: true });
const torch = (full) => {
  const r = spawnSync("/usr/bin/python3", [join(here, "torch_svd.py"), model, String(threads), full ? "full" : "thin"], { env, encoding: "utf8" });
  if (r.status !== 0) return { error: r.stderr.trim().split("\n").pop() };
  return JSON.parse(r.stdout);
};
const thin = torch(false);
const full = withFull ? torch(true) : { skipped: "pass --with-full" };
console.log(JSON.stringify({
  model, threads, flags,
  ecomla: { convertSeconds: +convertSeconds.toFixed(2), innerSeconds: report.seconds, peakRssMB: Math.round(peakRssKb / 1024), compressionRatio: report.compressionRatio },
  pytorchSvdThin: thin, pytorchSvdFull: full,
  ratioVsThin: thin.seconds ? +(thin.seconds / convertSeconds).toFixed(3) : null,
  ratioVsFull: full.seconds ? +(full.seconds / convertSeconds).toFixed(3) : null,
}, null, 2));
