import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import type { Command } from "commander";
import {
  completeBackend,
  AdamW, EcomlaError, LlamaForCausalLM, Rng, Tensor, noGrad, ops, parseLlamaConfig, tidyAsync,
  type DeviceBuffer, type MlaConfig, type Pipeline, type TensorBackend,
} from "@ecomla/core";
import { openPipeline, type GlobalOptions } from "../context.js";
import { benchDecodeCommand } from "./bench-decode.js";

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

/**
 * Time the bench kernels on one backend; returns the JSON report. The baselines (BLAS called
 * directly, PyTorch eager) are the backend's own, or `options.baselines` for a backend that names
 * none (a GPU backend is compared with the CPU's BLAS and PyTorch, measured in the same run).
 */
export async function benchKernels(
  backend: TensorBackend,
  options: { repeats: number; pytorch: boolean; threads: number; baselines?: { from: string; baselines: BenchBaselines } },
): Promise<Record<string, unknown>> {
  const { repeats, threads } = options;
  const baselines = backend.capabilities.benchBaselines ?? options.baselines?.baselines;
  const baselinesFrom = backend.capabilities.benchBaselines ? backend.name : options.baselines?.from;
  const gemm: Record<string, unknown>[] = [];
  for (const [m, n, k] of BENCH_GEMM_SHAPES) {
    const bufs = new Buffers(backend);
    const a = bufs.random(m * k);
    const b = bufs.random(k * n);
    const c = bufs.random(m * n);
    const call = () =>
      backend.gemm({ batch: 1, m, n, k, transA: false, transB: false, alpha: 1, beta: 0, a, lda: k, strideA: 0, b, ldb: n, strideB: 0, c, ldc: n, strideC: 0 });
    // The backend's own direct-BLAS calls alternate with it, so both see the same machine load. A
    // borrowed baseline (another backend's BLAS) runs after the backend's calls instead: on a
    // software rasteriser such as lavapipe both share the CPU, and BLAS threads still spinning after
    // a call would slow the backend's next one.
    const interleave = baselinesFrom === backend.name;
    const backendTimes: number[] = [];
    const directTimes: number[] = [];
    for (let i = -2; i < repeats; i++) {
      const t0 = performance.now();
      call();
      await backend.sync();
      const elapsed = performance.now() - t0;
      const direct = interleave ? baselines?.gemmMs?.(m, n, k, 1)[0] : undefined;
      if (i < 0) continue;
      backendTimes.push(elapsed);
      if (direct !== undefined) directTimes.push(direct);
    }
    if (!interleave && baselines?.gemmMs) directTimes.push(...baselines.gemmMs(m, n, k, repeats + 2).slice(2));
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
  // Fused kernels the backend lacks run as core's compositions of its primitives (reported below).
  const complete = completeBackend(backend);
  const attentionMs = await timeMs(backend, repeats, () => {
    complete.attention({ ...base, out, lse });
    complete.attentionBackward({ ...base, out, lse, dOut, dq, dk, dv });
  });
  bufs.dispose();

  const kl = new Buffers(backend);
  const { rows, vocab } = BENCH_KL;
  const logits = kl.random(rows * vocab, 4);
  const teacherLogits = kl.random(rows * vocab, 4);
  const grad = kl.random(rows * vocab);
  const loss = kl.random(rows);
  const klMs = await timeMs(backend, repeats, () => complete.klDiv({ logits, teacherLogits, rows, vocab, loss, grad }));
  kl.dispose();

  const report: Record<string, unknown> = {
    backend: backend.name,
    ...(baselinesFrom !== undefined && baselinesFrom !== backend.name ? { baselinesFrom } : {}),
    threads,
    repeats,
    gemm,
    attention: { ...BENCH_ATTENTION, causal: true, forwardBackwardMs: attentionMs },
    klDiv: { ...BENCH_KL, teacher: "dense", withGrad: true, ms: klMs },
    nativeKernels: complete.nativeKernels,
    composedKernels: complete.composedKernels,
    composedCalls: complete.memoryStats().composedCalls ?? {},
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
    report.pytorch = { skipped: `backend "${baselinesFrom ?? backend.name}" names no PyTorch baseline script` };
  }
  return report;
}

type BenchBaselines = NonNullable<TensorBackend["capabilities"]["benchBaselines"]>;

/**
 * Baselines for a backend that names none: the CPU backend's, when it is installed and loads (a
 * machine may lack its OpenBLAS); `skipped` says why there are none.
 */
async function borrowedBaselines(pipeline: Pipeline, backend: TensorBackend): Promise<{ from: string; baselines: BenchBaselines } | { skipped: string } | undefined> {
  if (backend.capabilities.benchBaselines) return undefined;
  if (!pipeline.registry.has("backend", "cpu")) return { skipped: "the cpu backend (@ecomla/backend-cpu) is not installed" };
  try {
    const cpu = await pipeline.backend("cpu");
    return cpu.capabilities.benchBaselines ? { from: cpu.name, baselines: cpu.capabilities.benchBaselines } : { skipped: "the cpu backend names no baselines" };
  } catch (error) {
    return { skipped: `the cpu backend did not load: ${(error as Error).message}` };
  }
}

/**
 * The step `bench train` times: a Llama teacher (GQA) and, as the student, its MLA conversion
 * (every layer, random init: the cost does not depend on the values), batch × seqLen tokens.
 */
export const BENCH_TRAIN = {
  vocab: 8192, hidden: 512, layers: 8, heads: 8, kvHeads: 2, headDim: 64, intermediate: 1536, rmsNormEps: 1e-5, ropeTheta: 10000,
  kvLoraRank: 128, qLoraRank: 208, qkNopeHeadDim: 32, qkRopeHeadDim: 32, vHeadDim: 64,
  batch: 4, seqLen: 256,
} as const;

/** Wall time per backend method, for `bench train --profile` (the CPU backend runs each kernel synchronously). */
class KernelProfile {
  readonly ms = new Map<string, { ms: number; calls: number }>();
  recording = false;
  /** A view of `backend` whose methods are timed; models built on it route every kernel through here. */
  wrap(backend: TensorBackend): TensorBackend {
    return new Proxy(backend, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== "function" || typeof prop !== "string") return value;
        return (...args: unknown[]) => {
          if (!this.recording) return value.apply(target, args);
          const t0 = performance.now();
          const out = value.apply(target, args);
          this.add(KernelProfile.key(prop, args[0]), performance.now() - t0);
          return out;
        };
      },
    });
  }
  /** GEMMs are told apart by shape, so the report shows which matmuls dominate. */
  private static key(method: string, arg: unknown): string {
    if (method !== "gemm" || typeof arg !== "object" || arg === null) return method;
    const g = arg as { batch: number; m: number; n: number; k: number; transA: boolean; transB: boolean };
    return `gemm ${g.transA ? "T" : "N"}${g.transB ? "T" : "N"} ${g.batch > 1 ? `${g.batch}×` : ""}${g.m}×${g.n}×${g.k}`;
  }
  private add(key: string, ms: number): void {
    const e = this.ms.get(key) ?? { ms: 0, calls: 0 };
    e.ms += ms;
    e.calls++;
    this.ms.set(key, e);
  }
  /** Per-step totals, largest first. */
  report(steps: number, top = 25): { op: string; msPerStep: number; callsPerStep: number }[] {
    return [...this.ms.entries()]
      .map(([op, e]) => ({ op, msPerStep: e.ms / steps, callsPerStep: e.calls / steps }))
      .sort((a, b) => b.msPerStep - a.msPerStep)
      .slice(0, top);
  }
}

/** Path of the PyTorch train-step baseline, shipped in @ecomla/losses' bench folder. */
function trainBaselineScript(): string | null {
  try {
    return join(dirname(createRequire(import.meta.url).resolve("@ecomla/losses/package.json")), "bench", "torch_train_step.py");
  } catch {
    return null;
  }
}

/** Time one full distillation step (teacher forward, student forward/backward, AdamW) on a backend; returns the JSON report. */
export async function benchTrain(
  pipeline: Pipeline,
  backend: TensorBackend,
  options: { repeats: number; warmup: number; pytorch: boolean; threads: number; profile: boolean },
): Promise<Record<string, unknown>> {
  const c = BENCH_TRAIN;
  const profile = options.profile ? new KernelProfile() : null;
  const be = profile ? profile.wrap(backend) : backend;
  const config = parseLlamaConfig({
    vocab_size: c.vocab, hidden_size: c.hidden, intermediate_size: c.intermediate, num_hidden_layers: c.layers,
    num_attention_heads: c.heads, num_key_value_heads: c.kvHeads, head_dim: c.headDim, rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta, max_position_embeddings: c.seqLen,
  }, "bench train model");
  const mla: MlaConfig = {
    mlaLayers: Array.from({ length: c.layers }, (_, i) => i), kvLoraRank: c.kvLoraRank, qLoraRank: c.qLoraRank,
    qkNopeHeadDim: c.qkNopeHeadDim, qkRopeHeadDim: c.qkRopeHeadDim, vHeadDim: c.vHeadDim, useLoraLayerNorm: false,
    layerRanks: new Map(), ropeScaling: null,
  };
  const teacher = new LlamaForCausalLM(be, config, new Rng(1));
  const student = new LlamaForCausalLM(be, config, new Rng(2), { mla });
  const optimizer = new AdamW(student.parameters(), { lr: 1e-4, weightDecay: 0.01 });
  const loss = pipeline.get("loss", "forward-kl");
  const rng = new Rng(3);
  const tokens = c.batch * c.seqLen;
  const ids = Int32Array.from({ length: tokens }, () => rng.int(c.vocab));
  const phaseNames = ["teacherForward", "studentForward", "loss", "backward", "optimizer"] as const;

  // Each phase ends with sync() so its time is its own; on the CPU backend sync() costs nothing.
  const step = () =>
    tidyAsync(async () => {
      const marks = [performance.now()];
      const mark = async () => {
        await be.sync();
        marks.push(performance.now());
      };
      const input = Tensor.from(be, ids, [c.batch, c.seqLen]);
      const teacherLogits = noGrad(() => ops.reshape(teacher.forward(input), [tokens, c.vocab]));
      await mark();
      const studentLogits = ops.reshape(student.forward(input), [tokens, c.vocab]);
      await mark();
      const result = loss.compute({ studentLogits, teacher: { kind: "logits", logits: teacherLogits } });
      await mark();
      studentLogits.backward(result.gradLogits);
      await mark();
      optimizer.step();
      optimizer.zeroGrad();
      await mark();
      return { phases: phaseNames.map((_, i) => marks[i + 1]! - marks[i]!), loss: await result.loss.item() };
    });

  for (let i = 0; i < options.warmup; i++) await step();
  if (profile) profile.recording = true;
  const steps: { phases: number[]; loss: number }[] = [];
  for (let i = 0; i < options.repeats; i++) steps.push(await step());
  if (profile) profile.recording = false;
  const teacherParameters = teacher.parameters().reduce((n, p) => n + p.size, 0);
  const studentParameters = student.parameters().reduce((n, p) => n + p.size, 0);
  teacher.dispose();
  student.dispose();
  optimizer.dispose();

  const stepMs = median(steps.map((s) => s.phases.reduce((a, b) => a + b, 0)));
  const { kvLoraRank, qLoraRank, qkNopeHeadDim, qkRopeHeadDim, vHeadDim, batch, seqLen, ...llama } = c;
  const report: Record<string, unknown> = {
    backend: backend.name,
    threads: options.threads,
    repeats: options.repeats,
    warmup: options.warmup,
    config: {
      teacher: { kind: "llama", ...llama },
      student: { kind: "mla (every layer, random init)", kvLoraRank, qLoraRank, qkNopeHeadDim, qkRopeHeadDim, vHeadDim },
      batch, seqLen, tokensPerStep: tokens, loss: "forward-kl (mean over positions)", optimizer: "AdamW lr 1e-4, weight decay 0.01",
      teacherParameters,
      studentParameters,
    },
    ecomla: {
      stepMs,
      tokensPerSecond: tokens / (stepMs / 1e3),
      phasesMs: Object.fromEntries(phaseNames.map((name, i) => [name, median(steps.map((s) => s.phases[i]!))])),
      lastLoss: steps[steps.length - 1]!.loss,
    },
    // Fused kernels the backend lacks and core composed from its primitives, with their call counts.
    composedKernels: completeBackend(be).composedKernels,
    composedCalls: completeBackend(be).memoryStats().composedCalls ?? {},
  };
  if (profile) report.profile = profile.report(options.repeats);
  if (options.pytorch) {
    const script = trainBaselineScript();
    const python = findTorchPython();
    if (!script) report.pytorch = { skipped: "@ecomla/losses (which ships bench/torch_train_step.py) is not installed" };
    else if (!python) report.pytorch = { skipped: "no python3 with torch (set ECOMLA_PYTHON, or apt-get install python3-torch)" };
    else {
      const args = [script, "--threads", String(options.threads), "--repeats", String(options.repeats), "--warmup", String(options.warmup), "--config", JSON.stringify(c)];
      // torch.set_num_threads does not limit OpenBLAS: pin its threads too, for a fair comparison.
      const env = { ...process.env, OPENBLAS_NUM_THREADS: String(options.threads), OMP_NUM_THREADS: String(options.threads), MKL_NUM_THREADS: String(options.threads) };
      const r = spawnSync(python, args, { env, encoding: "utf8", maxBuffer: 1 << 20 });
      if (r.status !== 0) report.pytorch = { skipped: `${python} ${script} failed: ${(r.stderr || "").trim().split("\n").pop()}` };
      else {
        const torch = JSON.parse(r.stdout.trim().split("\n").pop()!) as { stepMs: number };
        report.pytorch = torch;
        report.ratioVsPytorch = torch.stepMs / stepMs;
      }
    }
  }
  return report;
}

function printTrain(report: Record<string, any>): void {
  const w = (s: string) => process.stdout.write(s + "\n");
  const c = report.config;
  const t = c.teacher;
  w(`backend ${report.backend}, ${report.threads} threads, median of ${report.repeats} steps after ${report.warmup} warm-up; ratio > 1 means ecomla is faster`);
  w(`teacher Llama d=${t.hidden} L=${t.layers} heads ${t.heads}/${t.kvHeads} head_dim ${t.headDim} ffn ${t.intermediate} vocab ${t.vocab}; student MLA r_kv ${c.student.kvLoraRank} r_q ${c.student.qLoraRank}; batch ${c.batch} × seq ${c.seqLen}`);
  const phases = (p: Record<string, number>) => Object.entries(p).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(", ");
  w(`ecomla:        ${report.ecomla.stepMs.toFixed(0)} ms/step, ${report.ecomla.tokensPerSecond.toFixed(0)} tokens/s  (${phases(report.ecomla.phasesMs)} ms)`);
  if (report.pytorch?.stepMs !== undefined) {
    w(`PyTorch eager: ${report.pytorch.stepMs.toFixed(0)} ms/step, ${report.pytorch.tokensPerSecond.toFixed(0)} tokens/s  (${phases(report.pytorch.phasesMs)} ms)`);
    w(`ratio vs PyTorch eager: ${report.ratioVsPytorch.toFixed(2)}×`);
  } else if (report.pytorch?.skipped) w(`PyTorch baseline skipped: ${report.pytorch.skipped}`);
  if (report.profile) for (const p of report.profile) w(`  ${p.msPerStep.toFixed(1).padStart(8)} ms  ${String(p.callsPerStep).padStart(5)}×  ${p.op}`);
}

function printText(report: Record<string, any>): void {
  const w = (s: string) => process.stdout.write(s + "\n");
  const x = (r: number | undefined) => (r === undefined ? "" : ` (${r.toFixed(2)}×)`);
  const from = report.baselinesFrom ? ` (baselines from backend ${report.baselinesFrom})` : "";
  w(`backend ${report.backend}, ${report.threads} threads, median of ${report.repeats}; ratios > 1 mean the backend is faster${from}`);
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
  if (report.baselines?.skipped) w(`baselines skipped: ${report.baselines.skipped}`);
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
      const backend = await pipeline.backend(opts.backend);
      const threads = Number(process.env.ECOMLA_NUM_THREADS) || availableParallelism();
      const borrowed = await borrowedBaselines(pipeline, backend);
      const baselines = borrowed && "baselines" in borrowed ? borrowed : undefined;
      const report = await benchKernels(backend, { repeats, pytorch: opts.pytorch, threads, ...(baselines ? { baselines } : {}) });
      if (borrowed && "skipped" in borrowed) report.baselines = borrowed;
      if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
      else printText(report);
    });
  bench
    .command("train")
    .description("tokens/s of one distillation step (teacher forward, MLA student forward/backward, AdamW) against the same step in PyTorch eager")
    .option("-b, --backend <name>", "backend to time", "cpu")
    .option("-r, --repeats <n>", "timed steps (the median is reported)", "5")
    .option("-w, --warmup <n>", "untimed steps first", "2")
    .option("--profile", "time every backend call and list where a step's time goes")
    .option("--no-pytorch", "skip the PyTorch eager baseline")
    .option("--json", "print one JSON object instead of text")
    .action(async (opts: BenchOptions & { warmup: string; profile?: boolean }, cmd: Command) => {
      const repeats = Number(opts.repeats);
      const warmup = Number(opts.warmup);
      if (!Number.isInteger(repeats) || repeats < 1) throw new EcomlaError(`bench train: --repeats must be an integer ≥ 1, found ${opts.repeats}`);
      if (!Number.isInteger(warmup) || warmup < 0) throw new EcomlaError(`bench train: --warmup must be an integer ≥ 0, found ${opts.warmup}`);
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      const backend = await pipeline.backend(opts.backend);
      const threads = Number(process.env.ECOMLA_NUM_THREADS) || availableParallelism();
      const report = await benchTrain(pipeline, backend, { repeats, warmup, pytorch: opts.pytorch, threads, profile: !!opts.profile });
      if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
      else printTrain(report);
    });
  benchDecodeCommand(bench);
}
