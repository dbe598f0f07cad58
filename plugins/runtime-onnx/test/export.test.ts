// The export as a user runs it: `ecomla export onnx` on the tiny teacher, its 6.4x MLA student and
// a hybrid, checked by an independent implementation (the onnx Python package's full checker, from
// Debian's python3-onnx); `ecomla logits` / `generate --engine onnxruntime` against the built-in
// engine; f16 weights; and the errors: nothing is written for an unsupported model or bad option.
import t from "tap";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsCheckpoint, paramMatchedQRank, readLlamaConfig } from "@ecomla/core";
import * as ort from "onnxruntime-node";
import { exportOnnx, openSession, readManifest } from "@ecomla/runtime-onnx";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const bin = join(root, "packages/cli/dist/bin.js");
const teacher = join(root, "examples/tiny-llama");
const work = mkdtempSync(join(tmpdir(), "ecomla-onnx-export-"));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

function ecomla(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
function ok(args: string[]): string {
  const r = ecomla(args);
  if (r.code !== 0) throw new Error(`ecomla ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** The demo's 6.4x ranks for the tiny teacher. */
function convertArgs(): string[] {
  const base = readLlamaConfig(join(teacher, "config.json"));
  const perLayer = 2 * base.numKeyValueHeads * base.headDim;
  const ropeDim = perLayer / 32;
  const kvRank = Math.round((5 / 32) * perLayer) - ropeDim;
  return ["--kv-rank", String(kvRank), "--q-rank", String(paramMatchedQRank(base, kvRank, ropeDim, base.headDim - ropeDim)), "--rope-dim", String(ropeDim), "--nope-dim", String(base.headDim - ropeDim)];
}

const student = join(work, "student");
const hybrid = join(work, "hybrid");
ok(["convert", "-m", teacher, "-o", student, ...convertArgs()]);
ok(["convert", "-m", teacher, "-o", hybrid, ...convertArgs(), "--layers", "0,3,5"]);
const exports: Record<string, string> = {};
for (const [name, dir] of [["teacher", teacher], ["student", student], ["hybrid", hybrid]] as const) {
  exports[name] = join(work, `${name}-onnx`);
  ok(["export", "onnx", "-m", dir, "-o", exports[name]!, "--json"]);
}

/** Debian's python3 with the onnx package, or null (the check is skipped with a message). */
function pythonWithOnnx(): string | null {
  for (const py of ["/usr/bin/python3", "python3"]) {
    const r = spawnSync(py, ["-c", "import onnx"], { encoding: "utf8" });
    if (r.status === 0) return py;
  }
  return null;
}

t.test("onnx.checker.check_model(full_check=True) accepts the exports", async (t) => {
  const py = pythonWithOnnx();
  if (!py) {
    t.skip("python3-onnx is not installed (apt-get install python3-onnx; scripts/lib/setup.sh installs it)");
    return;
  }
  const script = [
    "import json, sys, onnx",
    "path = sys.argv[1]",
    "onnx.checker.check_model(path, full_check=True)",
    "m = onnx.load(path, load_external_data=False)",
    "print(json.dumps({'opset': [o.version for o in m.opset_import if o.domain in ('', 'ai.onnx')][0], 'ops': sorted({n.op_type for n in m.graph.node}), 'domains': sorted({n.domain for n in m.graph.node}), 'inputs': [i.name for i in m.graph.input], 'outputs': [o.name for o in m.graph.output]}))",
  ].join("\n");
  for (const [name, dir] of Object.entries(exports)) {
    const r = spawnSync(py, ["-c", script, join(dir, "model.onnx")], { encoding: "utf8" });
    t.equal(r.status, 0, `${name}: check_model passes${r.status ? `: ${r.stderr}` : ""}`);
    if (r.status !== 0) continue;
    const info = JSON.parse(r.stdout) as { opset: number; ops: string[]; domains: string[]; inputs: string[]; outputs: string[] };
    t.ok(info.opset >= 17, `${name}: opset ${info.opset} ≥ 17`);
    t.same(info.domains, [""], `${name}: standard ONNX operators only (${info.ops.join(", ")})`);
    t.same(info.inputs.slice(0, 3), ["input_ids", "attention_mask", "position_ids"], `${name}: Optimum input names`);
    t.equal(info.outputs[0], "logits");
  }
});

t.test("the graph's inputs name each layer's cache by its kind", async (t) => {
  const manifest = readManifest(exports["hybrid"]!);
  const kinds = manifest.layers.map((l) => l.kind);
  t.same(kinds, ["mla", "gqa", "gqa", "mla", "gqa", "mla"]);
  t.same(manifest.layers[0]!.tensors.map((c) => [c.name, c.shape]), [
    ["past_key_values.0.kv_latent", ["batch", "past_sequence_length", 32]],
    ["past_key_values.0.k_rope", ["batch", "past_sequence_length", 8]],
  ]);
  t.same(manifest.layers[1]!.tensors.map((c) => [c.name, c.shape]), [
    ["past_key_values.1.key", ["batch", 2, "past_sequence_length", 64]],
    ["past_key_values.1.value", ["batch", 2, "past_sequence_length", 64]],
  ]);
  t.ok(existsSync(join(exports["hybrid"]!, "model.onnx.data")), "weights as external data");
  t.ok(existsSync(join(exports["hybrid"]!, "tokenizer.json")), "tokenizer copied");
});

t.test("ecomla logits / generate --engine onnxruntime agree with the built-in engine", async (t) => {
  const read = async (file: string) => {
    const c = await SafetensorsCheckpoint.open(file);
    const d = await c.readF32("logits");
    await c.close();
    return d;
  };
  const a = join(work, "ort.safetensors");
  const b = join(work, "own.safetensors");
  const summary = JSON.parse(ok(["logits", "-m", exports["student"]!, "--engine", "onnxruntime", "--text", "The old man walked to the", "-o", a, "--json"]));
  t.equal(summary.engine, "onnxruntime");
  ok(["logits", "-m", student, "-b", "reference", "--text", "The old man walked to the", "-o", b, "--json"]);
  const [x, y] = [await read(a), await read(b)];
  t.equal(x.length, y.length);
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  t.ok(worst <= 1e-4, `max |diff| ${worst.toExponential(2)} ≤ 1e-4`);

  const gen = (args: string[]) => JSON.parse(ok(["generate", "--prompt", "The president said", "-n", "12", "--json", ...args])) as { tokens: number[]; backend: string };
  const ort = gen(["-m", exports["student"]!, "--engine", "onnxruntime"]);
  const own = gen(["-m", student]);
  t.same(ort.tokens, own.tokens, "greedy tokens equal");
  const fromCheckpoint = gen(["-m", hybrid, "--engine", "onnxruntime"]);
  t.same(fromCheckpoint.tokens, gen(["-m", hybrid]).tokens, "a checkpoint folder is exported on the fly");
});

t.test("attention_mask: a left-padded row scores as the same row unpadded", async (t) => {
  const m = await openSession(exports["hybrid"]!);
  t.teardown(() => m.free());
  const run = async (ids: number[][], mask: number[][], positions: number[][]) => {
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(ids.flat(), BigInt), [ids.length, ids[0]!.length]),
      attention_mask: new ort.Tensor("int64", BigInt64Array.from(mask.flat(), BigInt), [mask.length, mask[0]!.length]),
      position_ids: new ort.Tensor("int64", BigInt64Array.from(positions.flat(), BigInt), [positions.length, positions[0]!.length]),
    };
    for (const layer of m.manifest.layers) {
      for (const c of layer.tensors) feeds[c.name] = new ort.Tensor("float32", new Float32Array(0), c.shape.map((d) => (d === "batch" ? ids.length : d === "past_sequence_length" ? 0 : Number(d))));
    }
    return (await m.session.run(feeds))["logits"]!.data as Float32Array;
  };
  const v = m.vocabSize;
  const padded = await run([[0, 0, 17, 23, 29], [5, 6, 7, 8, 9]], [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]);
  const alone = await run([[17, 23, 29]], [[1, 1, 1]], [[0, 1, 2]]);
  const row0 = padded.subarray(2 * v, 5 * v);
  const worst = row0.reduce((w, x, i) => Math.max(w, Math.abs(x - alone[i]!)), 0);
  t.ok(worst <= 1e-4, `padded row's real positions within 1e-4 of the unpadded run (max |diff| ${worst.toExponential(2)})`);
});

t.test("ecomla eval --engine onnxruntime scores as the built-in engine", async (t) => {
  const tasks = ["continuation-4way.yaml", "last-word.yaml"].flatMap((f) => ["-t", join(teacher, "tasks", f)]);
  type Eval = { engine?: string; models: { tasks: Record<string, { metrics: Record<string, number>; count: number }> }[] };
  const run = (args: string[]) => JSON.parse(ok(["eval", ...tasks, "--limit", "12", "--json", ...args])) as Eval;
  const own = run(["-m", student]);
  const ort = run(["-m", exports["student"]!, "--engine", "onnxruntime"]);
  t.equal(ort.engine, "onnxruntime");
  for (const [task, scores] of Object.entries(own.models[0]!.tasks)) {
    for (const [metric, value] of Object.entries(scores.metrics)) {
      const other = ort.models[0]!.tasks[task]!.metrics[metric]!;
      t.ok(Math.abs(other - value) <= 1e-4 * Math.max(1, Math.abs(value)), `${task} ${metric}: ${other} vs ${value}`);
    }
  }
});

t.test("--ep webgpu (onnxruntime-node's bundled WebGPU provider) agrees with the CPU provider", async (t) => {
  const cpu = await openSession(exports["student"]!);
  const gpu = await openSession(exports["student"]!, { executionProvider: "webgpu" });
  t.teardown(async () => {
    await cpu.free();
    await gpu.free();
  });
  const ids = [[3, 14, 15, 92, 65], [35, 89, 79, 32, 38]];
  const diff = (x: Float32Array, y: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
  const full = diff(await gpu.forward(ids), await cpu.forward(ids));
  t.ok(full <= 1e-4, `full sequence within 1e-4 (max |diff| ${full.toExponential(2)})`);
  const [a, b] = [gpu.createCache(2, 8), cpu.createCache(2, 8)];
  await gpu.prefill(a, ids);
  await cpu.prefill(b, ids);
  const step = diff(await gpu.decode(a, [7, 11]), await cpu.decode(b, [7, 11]));
  t.ok(step <= 1e-4, `decode through the latent cache within 1e-4 (max |diff| ${step.toExponential(2)})`);
  a.free();
  b.free();
});

t.test("ecomla plugins lists the engine and exporter kinds; bench decode reports both engines", async (t) => {
  const listed = JSON.parse(ok(["plugins", "--json"])) as { plugins: { name: string; provides: { kind: string; name: string }[] }[] };
  const provides = (name: string) => listed.plugins.find((p) => p.name === name)?.provides.map((r) => `${r.kind}:${r.name}`) ?? [];
  t.ok(provides("@ecomla/core").includes("engine:ecomla"), "core registers the built-in engine");
  t.same(provides("@ecomla/runtime-onnx"), ["engine:onnxruntime", "exporter:onnx"]);

  const report = JSON.parse(ok(["bench", "decode", "-m", student, "--batch", "1,2", "--context", "8", "--tokens", "2", "--json"])) as {
    cells: { batch: number; context: number; ecomla: { tokensPerSecond: number }; other: { engine: string; tokensPerSecond: number }; ecomlaVsOther: number }[];
    cachedElementsPerToken: number;
  };
  t.same(report.cells.map((c) => [c.batch, c.context, c.other.engine]), [[1, 8, "onnxruntime"], [2, 8, "onnxruntime"]]);
  t.equal(report.cachedElementsPerToken, 6 * 40, "6 MLA layers × (r_kv 32 + d_rope 8)");
  for (const c of report.cells) {
    t.ok(c.ecomla.tokensPerSecond > 0 && c.other.tokensPerSecond > 0, "both engines timed");
    t.ok(Math.abs(c.ecomlaVsOther - c.ecomla.tokensPerSecond / c.other.tokensPerSecond) < 1e-9, "ratio = ecomla ÷ onnxruntime");
  }
});

t.test("f16 weights: same graph, float32 arithmetic", async (t) => {
  const out = join(work, "student-f16");
  const report = await exportOnnx(student, out, { dtype: "f16", opset: 18 });
  t.equal(report.manifest.weightDtype, "f16");
  t.equal(report.manifest.opset, 18);
  const f32 = await openSession(exports["student"]!);
  const f16 = await openSession(out);
  const ids = [[3, 14, 15, 92, 65, 35]];
  const [x, y] = [await f32.forward(ids), await f16.forward(ids)];
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  // Rounding every weight to f16 (relative 2^-11) moves these logits (|logit| up to ~15) by ~1e-2.
  t.ok(worst < 0.1, `f16 export within 0.1 of f32 (max |diff| ${worst.toExponential(2)})`);
  t.ok(worst > 0, "the weights really are f16");
  await f32.free();
  await f16.free();
});

t.test("errors name the problem and leave nothing behind", async (t) => {
  const parent = join(work, "errors");
  mkdirSync(parent);
  const bad = join(parent, "gpt2");
  cpSync(teacher, bad, { recursive: true, filter: (src) => !src.includes("node_modules") && !src.endsWith("dist") });
  const config = JSON.parse(readFileSync(join(bad, "config.json"), "utf8"));
  writeFileSync(join(bad, "config.json"), JSON.stringify({ ...config, architectures: ["GPT2LMHeadModel"], model_type: "gpt2" }));
  const before = readdirSync(parent).sort();
  const out = join(parent, "out");
  const r = ecomla(["export", "onnx", "-m", bad, "-o", out]);
  t.not(r.code, 0);
  t.match(r.stderr, /GPT2LMHeadModel has no ONNX export; supported: LlamaForCausalLM/);
  t.same(readdirSync(parent).sort(), before, "no output folder and no temporary folder");

  // A tensor that does not fit: a truncated embedding table fails while loading, before writing.
  const misfit = join(parent, "misfit");
  cpSync(teacher, misfit, { recursive: true, filter: (src) => !src.includes("node_modules") && !src.endsWith("dist") });
  writeFileSync(join(misfit, "config.json"), JSON.stringify({ ...config, vocab_size: config.vocab_size + 8 }));
  const before2 = readdirSync(parent).sort();
  await t.rejects(exportOnnx(misfit, join(parent, "out2")), /embed_tokens/);
  t.same(readdirSync(parent).sort(), before2, "nothing written for a misfit tensor");

  t.match(ecomla(["export", "onnx", "-m", teacher, "-o", join(parent, "o3"), "--opset", "13"]).stderr, /--opset: expected an integer in \[17, 21\], found 13/);
  t.match(ecomla(["export", "onnx", "-m", teacher, "-o", join(parent, "o4"), "--dtype", "bf16"]).stderr, /--dtype: expected f32 or f16, found "bf16"/);
  t.match(ecomla(["export", "tflite", "-m", teacher, "-o", join(parent, "o5")]).stderr, /no exporter for "tflite"; registered: onnx/);
  t.match(ecomla(["export", "onnx", "-m", teacher, "-o", exports["teacher"]!]).stderr, /already exists \(pass --overwrite/);
  t.match(ecomla(["logits", "-m", teacher, "--engine", "tensorrt", "--ids", "1", "-o", join(parent, "x.safetensors")]).stderr, /--engine: no engine "tensorrt"; registered: ecomla, onnxruntime/);
  t.match(ecomla(["logits", "-m", exports["teacher"]!, "--engine", "onnxruntime", "--ep", "cuda", "--ids", "1", "-o", join(parent, "x.safetensors")]).stderr, /--ep: expected one of cpu, webgpu, found "cuda"/);
});
