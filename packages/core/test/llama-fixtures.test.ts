// Llama forward against logits computed by an independent PyTorch implementation
// (scripts/fixtures/make_llama_fixtures.py): full sequence, batch, and prefill + incremental decode.
import t from "tap";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ReferenceBackend, SafetensorsCheckpoint, Tensor, loadLlama, tidy } from "@ecomla/core";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "llama");
const be = new ReferenceBackend();
const TOL = 1e-4;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, bOffset = 0, n = a.length): number {
  let m = 0;
  for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(a[i]! - b[bOffset + i]!));
  return m;
}

for (const name of ["mha-f32", "gqa-bf16-tied", "gqa-f16-sharded", "gqa-f32-headdim"]) {
  t.test(name, async (t) => {
    const { model, config } = await loadLlama(join(fixtures, name), be);
    const expected = await SafetensorsCheckpoint.open(join(fixtures, name, "expected.safetensors"));
    const ids = await expected.readI32("input_ids");
    const want = await expected.readF32("logits");
    const T = ids.length;
    const V = config.vocabSize;

    const full = tidy(() => model.forward(Tensor.from(be, ids, [1, T])));
    const got = (await full.data()) as Float32Array;
    full.dispose();
    const fullErr = maxAbsDiff(got, want);
    t.ok(fullErr <= TOL, `full-sequence logits within ${TOL} (max |Δ| ${fullErr.toExponential(2)})`);

    // Prefill T−3 tokens, then decode the last 3 one by one over the KV cache.
    const prefill = T - 3;
    const cache = model.createCache(1, T);
    const pre = tidy(() => model.step(Tensor.from(be, ids.subarray(0, prefill), [1, prefill]), cache));
    const preLogits = (await pre.data()) as Float32Array;
    pre.dispose();
    let stepErr = maxAbsDiff(preLogits, want, 0, prefill * V);
    for (let i = prefill; i < T; i++) {
      const step = tidy(() => model.step(Tensor.from(be, ids.subarray(i, i + 1), [1, 1]), cache));
      stepErr = Math.max(stepErr, maxAbsDiff((await step.data()) as Float32Array, want, i * V));
      step.dispose();
    }
    t.equal(cache.length, T);
    t.ok(stepErr <= TOL, `prefill + incremental decode logits within ${TOL} (max |Δ| ${stepErr.toExponential(2)})`);
    cache.dispose();

    if (expected.has("input_ids_batch")) {
      const batchIds = await expected.readI32("input_ids_batch");
      const batchWant = await expected.readF32("logits_batch");
      const [B, S] = expected.info("input_ids_batch").shape as [number, number];
      const logits = tidy(() => model.forward(Tensor.from(be, batchIds, [B, S])));
      const err = maxAbsDiff((await logits.data()) as Float32Array, batchWant);
      logits.dispose();
      t.ok(err <= TOL, `batch of ${B} logits within ${TOL} (max |Δ| ${err.toExponential(2)})`);
    }
    await expected.close();
    model.dispose();
  });
}

t.test("a checkpoint whose tensors do not match config.json is refused before reading", async (t) => {
  const { readLlamaConfig, LlamaForCausalLM, checkpointWeights } = await import("@ecomla/core");
  const dir = join(fixtures, "mha-f32");
  const config = { ...readLlamaConfig(join(dir, "config.json")), intermediateSize: 40 };
  const ckpt = await SafetensorsCheckpoint.open(dir);
  await t.rejects(LlamaForCausalLM.fromWeights(be, config, checkpointWeights(ckpt, dir)), {
    message: /tensor model\.layers\.0\.mlp\.gate_proj\.weight: expected shape \[40, 32\] \(from config\.json\), found \[48, 32\]/,
  });
  const tied = { ...config, intermediateSize: 48, tieWordEmbeddings: false, numHiddenLayers: 3 };
  await t.rejects(LlamaForCausalLM.fromWeights(be, tied, checkpointWeights(ckpt, dir)), {
    message: /9 expected tensors are missing: model\.layers\.2\.input_layernorm\.weight/,
  });
  await ckpt.close();
  t.equal(be.memoryStats().liveBuffers, 0, "a failed load frees what it allocated");
});

t.test("streamed loading in small pieces gives the same model (bf16 and f16 sources)", async (t) => {
  for (const name of ["gqa-bf16-tied", "gqa-f16-sharded"]) {
    const dir = join(fixtures, name);
    const whole = await loadLlama(dir, be);
    const pieces = await loadLlama(dir, be, { chunkElements: 100 });
    const a = whole.model.namedParameters();
    const b = pieces.model.namedParameters();
    let same = a.length === b.length;
    for (let i = 0; i < a.length && same; i++) {
      const [x, y] = [(await a[i]![1].data()) as Float32Array, (await b[i]![1].data()) as Float32Array];
      same = x.length === y.length && x.every((v, j) => Object.is(v, y[j]));
    }
    t.ok(same, `${name}: every parameter is bit-identical when read 100 elements at a time`);
    whole.model.dispose();
    pieces.model.dispose();
  }
  const ckpt = await SafetensorsCheckpoint.open(join(fixtures, "gqa-bf16-tied"));
  await t.rejects(ckpt.readF32Range("model.norm.weight", 30, 5), /elements \[30, 35\) are out of range for its 32/);
  await ckpt.close();
});
