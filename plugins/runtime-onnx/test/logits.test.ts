// ONNX exports run by onnxruntime-node against ecomla's own forward (the reference backend) on
// the bundled tiny teacher, its 6.4x MLA student and a hybrid (both converted here with `ecomla
// convert` at the demo's 6.4x ranks), the Llama fixtures (f32, bf16, f16 sharded, llama3 and linear
// rope scaling, tied embeddings, head_dim ≠ d/n_h) and the MLA fixtures (YaRN replacement, hybrid):
// the full sequence, and prefill + token-by-token decode through the graph's cache. For every MLA
// layer the present kv_latent + k_rope hold exactly `ecomla kv-report`'s elements per token.
import t from "tap";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { EcomlaEngineModel, ReferenceBackend, loadLlama, paramMatchedQRank, readLlamaConfig } from "@ecomla/core";
import { exportOnnx, openSession } from "@ecomla/runtime-onnx";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const bin = join(root, "packages/cli/dist/bin.js");
const teacher = join(root, "examples/tiny-llama");
const fixtures = join(root, "packages/core/test/fixtures");
const work = mkdtempSync(join(tmpdir(), "ecomla-onnx-logits-"));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

/** Largest allowed |logit_onnxruntime − logit_ecomla| (both float32; different summation orders). */
const LOGIT_TOL = 1e-4;

function ecomla(args: string[]): string {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ecomla ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** The demo's 6.4x setting (5/32 of the teacher's cache): d_rope = per-layer elements / 32, r_kv = 5/32 of them − d_rope. */
function convert(out: string, layers: string): string {
  const base = readLlamaConfig(join(teacher, "config.json"));
  const perLayer = 2 * base.numKeyValueHeads * base.headDim;
  const ropeDim = perLayer / 32;
  const nopeDim = base.headDim - ropeDim;
  const kvRank = Math.round((5 / 32) * perLayer) - ropeDim;
  const qRank = paramMatchedQRank(base, kvRank, ropeDim, nopeDim);
  ecomla(["convert", "-m", teacher, "-o", out, "--kv-rank", String(kvRank), "--q-rank", String(qRank), "--rope-dim", String(ropeDim), "--nope-dim", String(nopeDim), "--layers", layers, "--json"]);
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Rows [b][t] of logits (B, T, V) → the (B, V) slice at position t. */
function atPosition(logits: Float32Array, batch: number, tokens: number, vocab: number, pos: number): Float32Array {
  const out = new Float32Array(batch * vocab);
  for (let b = 0; b < batch; b++) out.set(logits.subarray((b * tokens + pos) * vocab, (b * tokens + pos + 1) * vocab), b * vocab);
  return out;
}

const models: [string, () => string][] = [
  ["tiny teacher (GQA, tied, bf16)", () => teacher],
  ["tiny 6.4x MLA student", () => convert(join(work, "student"), "all")],
  ["tiny 6.4x hybrid (layers 1,2,4 MLA)", () => convert(join(work, "hybrid"), "1,2,4")],
  ["llama mha-f32", () => join(fixtures, "llama/mha-f32")],
  ["llama gqa-f32-headdim", () => join(fixtures, "llama/gqa-f32-headdim")],
  ["llama gqa-bf16-tied (llama3 rope scaling)", () => join(fixtures, "llama/gqa-bf16-tied")],
  ["llama gqa-f16-sharded (linear scaling)", () => join(fixtures, "llama/gqa-f16-sharded")],
  ["mla gqa-bf16-tied-full (YaRN replacement)", () => join(fixtures, "mla/gqa-bf16-tied-full")],
  ["mla gqa-bf16-tied-hybrid", () => join(fixtures, "mla/gqa-bf16-tied-hybrid")],
  ["mla mha-f32-full", () => join(fixtures, "mla/mha-f32-full")],
];

for (const [name, source] of models) {
  t.test(name, async (t) => {
    const dir = source();
    const out = join(work, `export-${name.replace(/[^a-z0-9]+/gi, "-")}`);
    const report = await exportOnnx(dir, out);
    const session = await openSession(out);
    const { model } = await loadLlama(dir, new ReferenceBackend());
    const ours = new EcomlaEngineModel(model);
    t.teardown(async () => {
      await session.free();
      model.dispose();
    });
    const vocab = ours.vocabSize;
    const batch = 2;
    const tokens = 9;
    const ids = Array.from({ length: batch }, (_, b) => Array.from({ length: tokens }, (_, i) => (i * 37 + b * 101 + 5) % vocab));

    const expected = await ours.forward(ids);
    t.ok(maxAbsDiff(await session.forward(ids), expected) <= LOGIT_TOL, `full sequence within ${LOGIT_TOL}`);

    // Prefill 5 tokens, then decode one at a time through the graph's present → past tensors.
    const prefill = 5;
    const cache = session.createCache(batch, tokens);
    const first = await session.prefill(cache, ids.map((r) => r.slice(0, prefill)));
    for (let p = 0; p < prefill; p++) {
      const d = maxAbsDiff(atPosition(first, batch, prefill, vocab, p), atPosition(expected, batch, tokens, vocab, p));
      if (d > LOGIT_TOL) t.fail(`prefill position ${p}: max |diff| ${d}`);
    }
    let worst = 0;
    for (let p = prefill; p < tokens; p++) {
      const step = await session.decode(cache, ids.map((r) => r[p]!));
      worst = Math.max(worst, maxAbsDiff(step, atPosition(expected, batch, tokens, vocab, p)));
    }
    t.equal(cache.length, tokens, "the cache holds every position");
    t.ok(worst <= LOGIT_TOL, `decode through the cache within ${LOGIT_TOL} (max |diff| ${worst.toExponential(2)})`);
    cache.free();

    // The graph's cache per token equals kv-report's count, layer by layer (run once, read present.*).
    const kv = JSON.parse(ecomla(["kv-report", "-m", dir, "--json"])) as { layers: { layer: number; kind: string; elementsPerToken: number }[]; elementsPerToken: number };
    t.equal(report.manifest.elementsPerToken, kv.elementsPerToken, "manifest elements per token = kv-report");
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(ids[0]!.slice(0, 3), BigInt), [1, 3]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(3).fill(1n), [1, 3]),
      position_ids: new ort.Tensor("int64", BigInt64Array.from([0n, 1n, 2n]), [1, 3]),
    };
    for (const layer of report.manifest.layers) {
      for (const c of layer.tensors) feeds[c.name] = new ort.Tensor("float32", new Float32Array(0), c.shape.map((d) => (d === "batch" ? 1 : d === "past_sequence_length" ? 0 : Number(d))));
    }
    const outputs = await session.session.run(feeds);
    for (const layer of kv.layers) {
      const present = report.manifest.layers[layer.layer]!;
      t.equal(present.kind, layer.kind, `layer ${layer.layer} kind`);
      // Elements of the present tensors per batch row and position.
      const perToken = present.tensors.reduce((n, c) => n + outputs[c.present]!.dims.reduce((a, b) => a * b, 1) / 3, 0);
      t.equal(perToken, layer.elementsPerToken, `layer ${layer.layer} (${layer.kind}): ${perToken} cached elements per token`);
      if (layer.kind === "mla") {
        t.same(present.tensors.map((c) => c.present), [`present.${layer.layer}.kv_latent`, `present.${layer.layer}.k_rope`], "MLA layer caches only kv_latent and k_rope");
      }
    }
  });
}
