// Batched scoring and sliding-window perplexity on a real (tiny) Llama checkpoint, against a brute
// force that runs one full forward per scored token and takes log-softmax on the host in float64.
import t from "tap";
import { writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ReferenceBackend, Rng, Tensor, loadLlama, tidy, type LlamaForCausalLM } from "@ecomla/core";
import { PerplexityEvaluator, rollingWindows, scoreRequests, type TokenRequest } from "@ecomla/eval-harness";
import { WordTokenizer, tempDir } from "./fakes.js";

const here = dirname(fileURLToPath(import.meta.url));
const fixture = resolve(here, "../../../packages/core/test/fixtures/llama/mha-f32");
const backend = new ReferenceBackend();
const { model } = await loadLlama(fixture, backend);
t.teardown(() => model.dispose());
const V = model.vocabSize;

/** Logits of the last position after `ids`, as float64 log-softmax. */
async function lastLogSoftmax(ids: readonly number[]): Promise<{ logp: Float64Array; argmax: number }> {
  const logits = tidy(() => model.forward(Tensor.from(backend, Int32Array.from(ids), [1, ids.length])));
  const all = (await logits.data()) as Float32Array;
  logits.dispose();
  const row = all.subarray((ids.length - 1) * V);
  let max = -Infinity;
  let argmax = 0;
  row.forEach((v, i) => {
    if (v > max) [max, argmax] = [v, i];
  });
  const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
  return { logp: Float64Array.from(row, (v) => v - lse), argmax };
}

/** log p(target | context) token by token with one forward per token; greedy = every token is the argmax. */
async function bruteForce(context: readonly number[], continuation: readonly number[], maxLength: number) {
  const whole = [...context, ...continuation];
  const kept = whole.slice(Math.max(0, whole.length - (maxLength + 1)));
  let sum = 0;
  let greedy = true;
  for (let j = kept.length - continuation.length; j < kept.length; j++) {
    const { logp, argmax } = await lastLogSoftmax(kept.slice(0, j));
    sum += logp[kept[j]!]!;
    if (argmax !== kept[j]) greedy = false;
  }
  return { sum, greedy };
}

function randomRequests(count: number, seed: number): TokenRequest[] {
  const rng = new Rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rng.next() * (hi - lo + 1));
  return Array.from({ length: count }, () => ({
    context: Array.from({ length: int(1, 12) }, () => int(3, V - 1)),
    continuation: Array.from({ length: int(1, 4) }, () => int(3, V - 1)),
  }));
}

t.test("batched scoring equals unbatched and the brute force, with left truncation", async (t) => {
  const requests = randomRequests(7, 3);
  // A greedy continuation: the model's own argmax chain.
  const ctx = [5, 17, 33];
  const chain: number[] = [];
  for (let i = 0; i < 3; i++) chain.push((await lastLogSoftmax([...ctx, ...chain])).argmax);
  requests.push({ context: ctx, continuation: chain });
  for (const maxLength of [64, 6]) {
    const one = await scoreRequests(model, requests, { maxLength, batchSize: 1, greedy: true });
    const packed = await scoreRequests(model, requests, { maxLength, batchSize: 5, greedy: true });
    let maxDiff = 0;
    for (const [i, r] of requests.entries()) {
      const brute = await bruteForce(r.context, r.continuation, maxLength);
      maxDiff = Math.max(maxDiff, Math.abs(one[i]!.logLikelihood - brute.sum), Math.abs(packed[i]!.logLikelihood - brute.sum));
      t.equal(packed[i]!.isGreedy, brute.greedy, `request ${i} greedy flag (max length ${maxLength})`);
      t.equal(one[i]!.isGreedy, brute.greedy);
    }
    t.ok(maxDiff < 1e-4, `max length ${maxLength}: max |Δ log-likelihood| ${maxDiff.toExponential(2)} < 1e-4 (batch 1, batch 5, brute force)`);
  }
  t.equal((await scoreRequests(model, requests.slice(-1), { maxLength: 64, greedy: true }))[0]!.isGreedy, true, "the argmax chain is greedy");
});

t.test("rolling windows score every token once, within the max length", async (t) => {
  const tokens = Array.from({ length: 11 }, (_, i) => 10 + i);
  for (const [maxLength, stride] of [[4, 1], [4, 2], [4, 3], [4, 4], [32, 32]] as const) {
    const windows = rollingWindows(tokens, 2, maxLength, stride);
    t.same(windows.flatMap((w) => w.continuation), tokens, `max ${maxLength} stride ${stride}: each token once, in order`);
    t.ok(windows.every((w) => w.context.length >= 1 && w.context.length + w.continuation.length - 1 <= maxLength), "inputs fit the window");
  }
  t.same(rollingWindows(tokens, 2, 4, 4)[1], { context: [13], continuation: [14, 15, 16, 17] }, "lm-eval's disjoint windows: one token of context");
  t.throws(() => rollingWindows(tokens, 2, 4, 5), /stride must be an integer in \[1, max length 4\], found 5/);
});

t.test("sliding-window perplexity equals a brute force over each token's window", async (t) => {
  const text = "w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17";
  const tokens = new WordTokenizer().encode(text);
  const seq = [2, ...tokens]; // EOS first, as lm-eval's rolling log-likelihood
  const dir = tempDir();
  const file = join(dir, "doc.txt");
  writeFileSync(file, text);
  // Closed-form context starts: stride 1 keeps the last maxLength tokens; stride = maxLength is
  // lm-eval's blocks of maxLength targets, the last (partial) block read with a full window.
  const last = seq.length - 1;
  const cases: [number, number, (j: number) => number][] = [
    [4, 1, (j) => Math.max(0, j - 4)],
    [4, 4, (j) => Math.max(0, Math.min((Math.floor((j - 1) / 4) + 1) * 4, last) - 4)],
    [64, 64, () => 0],
  ];
  for (const [maxLength, stride, startOf] of cases) {
    let sum = 0;
    for (let j = 1; j < seq.length; j++) sum += (await lastLogSoftmax(seq.slice(startOf(j), j))).logp[seq[j]!]!;
    const r = await new PerplexityEvaluator().evaluate(model, new WordTokenizer(), { name: "doc", path: file, options: { maxLength, stride, batchSize: 3 } });
    t.equal(r.count, tokens.length);
    const bytes = Buffer.byteLength(text);
    const rel = (a: number, b: number) => Math.abs(a - b) / b;
    t.ok(rel(r.metrics["perplexity"]!, Math.exp(-sum / tokens.length)) < 1e-5, `max ${maxLength} stride ${stride}: token perplexity ${r.metrics["perplexity"]}`);
    t.ok(rel(r.metrics["word_perplexity"]!, Math.exp(-sum / 13)) < 1e-5, "word perplexity over 13 words");
    t.ok(rel(r.metrics["byte_perplexity"]!, Math.exp(-sum / bytes)) < 1e-5, "byte perplexity");
    t.ok(rel(r.metrics["bits_per_byte"]!, -sum / bytes / Math.LN2) < 1e-5, "bits per byte");
  }
});
