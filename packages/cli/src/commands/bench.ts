import { spawnSync } from "node:child_process";
import { availableParallelism } from "node:os";
import type { Command } from "commander";
import { EcomlaError, type DeviceBuffer, type TensorBackend } from "@ecomla/core";
import { openPipeline, type GlobalOptions } from "../context.js";

/** GEMM shapes of the kernel bench, [m, n, k]. */
export const BENCH_GEMM_SHAPES: readonly (readonly [number, number, number])[] = [
  [512, 1024, 1024],
  [2048, 2048, 2048],
  [4096, 512, 2048],
];
/** Attention fwd+bwd shape: batch, tokens, query heads, kv heads, head dim (causal). */
export const BENCH_ATTENTION = { batch: 4, seqLen: 512, numHeads: 8, numKvHeads: 2, headDim: 64 } as const;
/** Fused KL shape (dense teacher, with gradient). */
export const BENCH_KL = { rows: 2048, vocab: 32000 } as const;

interface BenchOptions {
  backend: string;
  json?: boolean;
  repeats: string;
  pytorch: boolean;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median wall time (ms) of `repeats` runs of fn after two warm-up runs; each run ends with sync(). */
async function timeMs(backend: TensorBackend, repeats: number, fn: () => void): Promise<number> {
  for (let i = 0; i < 2; i++) {
    fn();
    await backend.sync();
  }
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    fn();
    await backend.sync();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** Allocations of one bench case, freed together. */
class Buffers {
  private readonly all: DeviceBuffer[] = [];
  private seed = 12345;
  constructor(private readonly backend: TensorBackend) {}
  /** An f32 buffer of n uniform values in [-scale, scale). */
  random(n: number, scale = 1): DeviceBuffer {
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      this.seed = (Math.imul(this.seed, 1664525) + 1013904223) >>> 0;
      data[i] = (this.seed / 2 ** 32 - 0.5) * 2 * scale;
    }
    const buf = this.backend.alloc("f32", n);
    this.backend.upload(buf, data);
    this.all.push(buf);
    return buf;
  }
  dispose(): void {
    for (const b of this.all) this.backend.free(b);
  }
}

/** A Python interpreter that can `import torch`, or null. Debian's torch lives under /usr/bin/python3. */
function findTorchPython(): string | null {
  const candidates = [process.env.ECOMLA_PYTHON, "/usr/bin/python3", "python3"].filter((c): c is string => !!c);
  for (const python of candidates) {
    const r = spawnSync(python, ["-c", "import torch"], { stdio: "ignore" });
    if (r.status === 0) return python;
  }
  return null;
}

interface TorchResult {
  torch: string;
  threads: number;
  gemm: { m: number; n: number; k: number; ms: number }[];
  attentionMs: number;
  klMs: number;
}

function runPytorch(script: string, threads: number, repeats: number): TorchResult | { skipped: string } {
  const python = findTorchPython();
  if (!python) return { skipped: "no python3 with torch (set ECOMLA_PYTHON, or apt-get install python3-torch)" };
  const a = BENCH_ATTENTION;
  const args = [
    script, "--threads", String(threads), "--repeats", String(repeats),
    "--gemm", BENCH_GEMM_SHAPES.map(([m, n, k]) => `${m}x${n}x${k}`).join(","),
    "--attention", [a.batch, a.seqLen, a.numHeads, a.numKvHeads, a.headDim].join(","),
    "--kl", `${BENCH_KL.rows},${BENCH_KL.vocab}`,
  ];
  // torch.set_num_threads does not limit OpenBLAS: pin its threads too, for a fair comparison.
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const r = spawnSync(python, args, { env, encoding: "utf8", maxBuffer: 1 << 20 });
  if (r.status !== 0) return { skipped: `${python} ${script} failed: ${(r.stderr || "").trim().split("\n").pop()}` };
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as TorchResult;
}

/** Time the bench kernels on one backend; returns the JSON report. */
export async function benchKernels(backend: TensorBackend, options: { repeats: number; pytorch: boolean; threads: number }): Promise<Record<string, unknown>> {
  const { repeats, threads } = options;
  const baselines = backend.capabilities.benchBaselines;
  const gemm: Record<string, unknown>[] = [];
  for (const [m, n, k] of BENCH_GEMM_SHAPES) {
    const bufs = new Buffers(backend);
    const a = bufs.random(m * k);
    const b = bufs.random(k * n);
    const c = bufs.random(m * n);
    const call = () =>
      backend.gemm({ batch: 1, m, n, k, transA: false, transB: false, alpha: 1, beta: 0, a, lda: k, strideA: 0, b, ldb: n, strideB: 0, c, ldc: n, strideC: 0 });
    // Backend and direct-BLAS calls alternate, so both see the same machine load.
    const backendTimes: number[] = [];
    const directTimes: number[] = [];
    for (let i = -2; i < repeats; i++) {
      const t0 = performance.now();
      call();
      await backend.sync();
      const elapsed = performance.now() - t0;
      const direct = baselines?.gemmMs?.(m, n, k, 1)[0];
      if (i < 0) continue;
      backendTimes.push(elapsed);
      if (direct !== undefined) directTimes.push(direct);
    }
    bufs.dispose();
    const ms = median(backendTimes);
    const gflops = (2 * m * n * k) / ms / 1e6;
    const row: Record<string, unknown> = { m, n, k, ms, gflops };
    if (directTimes.length) {
      const directMs = median(directTimes);
      row.blasDirect = { ms: directMs, gflops: (2 * m * n * k) / directMs / 1e6 };
      row.ratioVsBlasDirect = directMs / ms;
    }
    gemm.push(row);
  }

  const { batch, seqLen, numHeads, numKvHeads, headDim } = BENCH_ATTENTION;
  const bufs = new Buffers(backend);
  const qN = batch * seqLen * numHeads * headDim;
  const kvN = batch * seqLen * numKvHeads * headDim;
  const base = {
    batch, queryLen: seqLen, keyLen: seqLen, numHeads, numKvHeads, qkDim: headDim, vDim: headDim, scale: 1 / Math.sqrt(headDim), causal: true,
    q: { buf: bufs.random(qN) }, k: { buf: bufs.random(kvN) }, v: { buf: bufs.random(kvN) },
  };
  const out = bufs.random(qN);
  const lse = bufs.random(batch * numHeads * seqLen);
  const dOut = bufs.random(qN);
  const [dq, dk, dv] = [bufs.random(qN), bufs.random(kvN), bufs.random(kvN)];
  const attentionMs = await timeMs(backend, repeats, () => {
    backend.attention({ ...base, out, lse });
    backend.attentionBackward({ ...base, out, lse, dOut, dq, dk, dv });
  });
  bufs.dispose();

  const kl = new Buffers(backend);
  const { rows, vocab } = BENCH_KL;
  const logits = kl.random(rows * vocab, 4);
  const teacherLogits = kl.random(rows * vocab, 4);
  const grad = kl.random(rows * vocab);
  const loss = kl.random(rows);
  const klMs = await timeMs(backend, repeats, () => backend.klDiv({ logits, teacherLogits, rows, vocab, loss, grad }));
  kl.dispose();

  const report: Record<string, unknown> = {
    backend: backend.name,
    threads,
    repeats,
    gemm,
    attention: { ...BENCH_ATTENTION, causal: true, forwardBackwardMs: attentionMs },
    klDiv: { ...BENCH_KL, teacher: "dense", withGrad: true, ms: klMs },
  };
  const script = baselines?.pytorchScript;
  if (options.pytorch && script) {
    const torch = runPytorch(script, threads, repeats);
    if ("skipped" in torch) {
      report.pytorch = torch;
    } else {
      report.pytorch = torch;
      gemm.forEach((row, i) => (row.ratioVsPytorch = torch.gemm[i]!.ms / (row.ms as number)));
      (report.attention as Record<string, unknown>).ratioVsPytorch = torch.attentionMs / attentionMs;
      (report.klDiv as Record<string, unknown>).ratioVsPytorch = torch.klMs / klMs;
    }
  } else if (options.pytorch) {
    report.pytorch = { skipped: `backend "${backend.name}" names no PyTorch baseline script` };
  }
  return report;
}

function printText(report: Record<string, any>): void {
  const w = (s: string) => process.stdout.write(s + "\n");
  const x = (r: number | undefined) => (r === undefined ? "" : ` (${r.toFixed(2)}×)`);
  w(`backend ${report.backend}, ${report.threads} threads, median of ${report.repeats}; ratios > 1 mean the backend is faster`);
  for (const g of report.gemm) {
    const direct = g.blasDirect ? `  BLAS direct ${g.blasDirect.gflops.toFixed(1)} GFLOP/s${x(g.ratioVsBlasDirect)}` : "";
    const torch = report.pytorch?.gemm ? `  PyTorch ${((2 * g.m * g.n * g.k) / report.pytorch.gemm[report.gemm.indexOf(g)].ms / 1e6).toFixed(1)} GFLOP/s${x(g.ratioVsPytorch)}` : "";
    w(`gemm ${g.m}×${g.n}×${g.k}: ${g.gflops.toFixed(1)} GFLOP/s${direct}${torch}`);
  }
  const torchAttn = report.pytorch?.attentionMs !== undefined ? `  PyTorch eager ${report.pytorch.attentionMs.toFixed(1)} ms${x(report.attention.ratioVsPytorch)}` : "";
  w(`attention fwd+bwd B=4 T=512 Hq=8 Hkv=2 d=64: ${report.attention.forwardBackwardMs.toFixed(1)} ms${torchAttn}`);
  const torchKl = report.pytorch?.klMs !== undefined ? `  PyTorch eager ${report.pytorch.klMs.toFixed(1)} ms${x(report.klDiv.ratioVsPytorch)}` : "";
  w(`fused KL 2048×32000 (+grad): ${report.klDiv.ms.toFixed(1)} ms${torchKl}`);
  if (report.pytorch?.skipped) w(`PyTorch baseline skipped: ${report.pytorch.skipped}`);
}

/** `ecomla bench kernels`: kernel timings beside baselines measured in the same run. */
export function benchCommand(program: Command): void {
  const bench = program.command("bench").description("benchmarks, each printed beside a baseline measured in the same run");
  bench
    .command("kernels")
    .description("GEMM, fused attention fwd+bwd and fused KL on a backend, against BLAS called directly and PyTorch eager")
    .option("-b, --backend <name>", "backend to time", "cpu")
    .option("-r, --repeats <n>", "timed repetitions (the median is reported)", "5")
    .option("--no-pytorch", "skip the PyTorch eager baseline")
    .option("--json", "print one JSON object instead of text")
    .action(async (opts: BenchOptions, cmd: Command) => {
      const repeats = Number(opts.repeats);
      if (!Number.isInteger(repeats) || repeats < 1) throw new EcomlaError(`bench kernels: --repeats must be an integer ≥ 1, found ${opts.repeats}`);
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      const backend = pipeline.get("backend", opts.backend);
      const threads = Number(process.env.ECOMLA_NUM_THREADS) || availableParallelism();
      const report = await benchKernels(backend, { repeats, pytorch: opts.pytorch, threads });
      if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
      else printText(report);
    });
}
