// completeBackend: a backend with only the primitives gets every fused kernel from core's
// compositions; they are counted, routed by supports(), chunked past COMPOSE_CHUNK_ELEMENTS, and a
// whole training run on the composed kernels follows the reference's native kernels.
import t from "tap";
import {
  AdamW,
  COMPOSE_CHUNK_ELEMENTS,
  FUSED_KERNELS,
  PRIMITIVE_METHODS,
  ReferenceBackend,
  Rng,
  Tensor,
  TinyLM,
  completeBackend,
  copyBatch,
  nativeKernelsOf,
  ops,
  primitivesOnly,
  tidy,
  type DeviceBuffer,
  type TensorBackend,
} from "@ecomla/core";

const read = (be: TensorBackend, buf: DeviceBuffer) => be.download(buf as DeviceBuffer & { dtype: "f32" });

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

t.test("the contract: at most 16 required methods, the rest optional and listed once", async (t) => {
  t.ok(PRIMITIVE_METHODS.length <= 16, `${PRIMITIVE_METHODS.length} required methods`);
  t.equal(new Set([...PRIMITIVE_METHODS, ...FUSED_KERNELS]).size, PRIMITIVE_METHODS.length + FUSED_KERNELS.length, "no method is both");
  t.same(nativeKernelsOf(new ReferenceBackend()), [...FUSED_KERNELS], "the reference implements every fused kernel itself");
});

t.test("a primitives-only backend: same object for the same backend, composed calls counted, extras forwarded", async (t) => {
  const reference = new ReferenceBackend();
  const bare = Object.assign(primitivesOnly(reference), { deviceLabel: "bare-0" });
  const full = completeBackend(bare);
  t.equal(completeBackend(bare), full, "cached per backend");
  t.equal(completeBackend(full), full, "completing a complete backend is the identity");
  t.same(full.nativeKernels, []);
  t.same(full.composedKernels, [...FUSED_KERNELS]);
  t.equal((full as unknown as { deviceLabel: string }).deviceLabel, "bare-0", "other properties reach the base");
  t.equal(full.base, bare);

  const x = full.alloc("f32", 6);
  const y = full.alloc("f32", 6);
  full.upload(x, Float32Array.from([1, 2, 3, -1, 0, 1]));
  full.softmax(x, y, 2, 3);
  full.softmax(x, y, 2, 3);
  const got = await read(full, y);
  const e = [1, 2, 3].map(Math.exp);
  const s = e[0]! + e[1]! + e[2]!;
  t.ok(maxAbsDiff(got.subarray(0, 3), e.map((v) => v / s)) < 1e-6, "composed softmax equals the closed form");
  t.same(full.memoryStats().composedCalls, { softmax: 2 });
  full.free(x);
  full.free(y);
  t.equal(reference.memoryStats().liveBuffers, 0, "the composition freed its temporaries");
});

t.test("supports() routes a call to the native kernel or to the composition", async (t) => {
  const reference = new ReferenceBackend();
  let nativeCalls = 0;
  const partial: TensorBackend = {
    ...primitivesOnly(reference),
    softmax: (x, out, rows, cols) => {
      nativeCalls++;
      reference.softmax(x, out, rows, cols);
    },
    supports: (kernel, args) => kernel !== "softmax" || (args[3] as number) <= 4,
  };
  const full = completeBackend(partial);
  t.same(full.nativeKernels, ["softmax"]);
  const x = full.alloc("f32", 16);
  full.fill(x, 0.5, 16);
  full.softmax(x, x, 4, 4);
  full.softmax(x, x, 2, 8);
  t.equal(nativeCalls, 1, "cols ≤ 4 ran natively");
  t.same(full.memoryStats().composedCalls, { softmax: 1 }, "cols = 8 was composed");
  full.free(x);
});

t.test("a backend missing a primitive is refused with the method named", async (t) => {
  const { gemm: _gemm, ...rest } = primitivesOnly(new ReferenceBackend()) as unknown as Record<string, unknown>;
  t.throws(() => completeBackend(rest as unknown as TensorBackend), /lacks the required primitive gemm\(\)/);
});

t.test("row-chunked compositions (past COMPOSE_CHUNK_ELEMENTS) equal the native kernels", async (t) => {
  const reference = new ReferenceBackend();
  const composed = completeBackend(primitivesOnly(reference));
  const rng = new Rng(5);
  const vocab = 4099;
  const rows = Math.floor(COMPOSE_CHUNK_ELEMENTS / vocab) + 7; // two chunks, the second short
  const n = rows * vocab;
  const upload = (data: Float32Array | Int32Array) => {
    const buf = reference.alloc(data instanceof Int32Array ? "i32" : "f32", data.length);
    reference.upload(buf, data);
    return buf;
  };
  const logits = upload(rng.normalArray(n, 0, 2));
  const labelsHost = new Int32Array(rows);
  for (let r = 0; r < rows; r++) labelsHost[r] = r % 5 === 0 ? -100 : rng.int(vocab);
  const labels = upload(labelsHost);
  const weights = upload(rng.uniformArray(rows, 0.5, 1.5));
  const k = 3;
  const idx = new Int32Array(rows * k);
  const lp = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const chosen = new Set<number>();
    while (chosen.size < k) chosen.add(rng.int(vocab));
    [...chosen].forEach((j, i) => {
      idx[r * k + i] = j;
      lp[r * k + i] = -1 - i;
    });
  }
  const indices = upload(idx);
  const logprobs = upload(lp);
  const outputs = () => ({ loss: reference.alloc("f32", rows), grad: reference.alloc("f32", n) });
  const compare = async (label: string, run: (be: typeof composed, o: { loss: DeviceBuffer; grad: DeviceBuffer }) => void) => {
    const a = outputs();
    const b = outputs();
    run(composed, a);
    run(completeBackend(reference), b);
    t.ok(maxAbsDiff(await read(reference, a.loss), await read(reference, b.loss)) < 1e-4, `${label}: loss`);
    t.ok(maxAbsDiff(await read(reference, a.grad), await read(reference, b.grad)) < 1e-6, `${label}: grad`);
    for (const buf of [a.loss, a.grad, b.loss, b.grad]) reference.free(buf);
  };
  await compare("cross-entropy, ignored rows, weights, τ = 2", (be, o) => be.crossEntropy({ logits, labels, rows, vocab, temperature: 2, weights, ...o }));
  await compare("top-3 KL, τ = 1", (be, o) => be.klDiv({ logits, rows, vocab, teacherIndices: indices, teacherLogprobs: logprobs, topK: k, ...o }));
  t.same(composed.memoryStats().composedCalls, { crossEntropy: 1, klDiv: 1 });

  // Embedding backward past one chunk of ids.
  const dim = 3;
  const ids = upload(Int32Array.from({ length: rows }, () => rng.int(vocab)));
  const dOut = upload(rng.normalArray(rows * dim, 0, 1));
  const tables = [reference.alloc("f32", vocab * dim), reference.alloc("f32", vocab * dim)];
  for (const tb of tables) reference.fill(tb, 0.25, vocab * dim);
  composed.embeddingBackward(ids, dOut, tables[0]!, rows, vocab, dim);
  reference.embeddingBackward(ids, dOut, tables[1]!, rows, vocab, dim);
  t.ok(maxAbsDiff(await read(reference, tables[0]!), await read(reference, tables[1]!)) < 1e-5, "embedding backward accumulates every id");
  for (const buf of [logits, labels, weights, indices, logprobs, ids, dOut, ...tables]) reference.free(buf);
  t.equal(reference.memoryStats().liveBuffers, 0, "nothing left behind");
});

t.test("training on the composed kernels follows the native kernels step for step", async (t) => {
  const cfg = { vocab: 10, hidden: 16, layers: 2, heads: 4, kvHeads: 2, headDim: 4, intermediate: 32, maxPositions: 16 };
  const curve = async (backend: TensorBackend) => {
    const model = new TinyLM(backend, cfg, 1);
    const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.01 });
    const rng = new Rng(3);
    const losses: number[] = [];
    for (let step = 0; step < 8; step++) {
      const { ids, labels, seqLen } = copyBatch(rng, 4, 3, cfg.vocab);
      const loss = tidy(() => {
        const logits = ops.reshape(model.forward(Tensor.from(backend, ids, [4, seqLen])), [4 * seqLen, cfg.vocab]);
        const l = ops.crossEntropy(logits, Tensor.from(backend, labels, [4 * seqLen]), { scale: 1 / 12 });
        l.backward();
        return l;
      });
      opt.step();
      opt.zeroGrad();
      losses.push(await loss.item());
      loss.dispose();
    }
    model.dispose();
    opt.dispose();
    return losses;
  };
  const reference = new ReferenceBackend();
  const bare = primitivesOnly(reference);
  const native = await curve(reference);
  const composed = await curve(bare);
  t.ok(maxAbsDiff(native, composed) < 1e-4, `loss curves agree (max |Δ| ${maxAbsDiff(native, composed).toExponential(2)})`, { native, composed });
  const calls = completeBackend(bare).memoryStats().composedCalls ?? {};
  for (const kernel of ["attention", "attentionBackward", "rmsNorm", "rmsNormBackward", "rope", "swiglu", "swigluBackward", "embeddingBackward", "crossEntropy", "adamw"] as const) {
    t.ok((calls[kernel] ?? 0) > 0, `${kernel} ran as a composition (${calls[kernel] ?? 0} calls)`);
  }
  t.equal(reference.memoryStats().liveBuffers, 0, "memory balanced");
});
