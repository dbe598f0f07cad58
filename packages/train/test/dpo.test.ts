// DPO on a synthetic pair set raises preference accuracy on held-out pairs; the sigmoid loss and
// its derivative match closed forms; pairs are laid out with labels only on continuations.
import t from "tap";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ReferenceBackend, Rng, loadLlama } from "@ecomla/core";
import { dpo, dpoSigmoid, pairRows, readPairs } from "@ecomla/train";
import { charTokenizer, studentDir } from "./helpers/fixtures.js";

t.test("sigmoid loss and pair layout", async (t) => {
  for (const z of [-3, -0.5, 0, 0.7, 4]) {
    const { loss, dLossDz } = dpoSigmoid(z);
    t.ok(Math.abs(loss + Math.log(1 / (1 + Math.exp(-z)))) < 1e-12, `−log σ(${z})`);
    t.ok(Math.abs(dLossDz + 1 / (1 + Math.exp(z))) < 1e-12, `d/dz = −σ(−z) at ${z}`);
  }
  const { ids, labels, rows, length } = pairRows([{ prompt: [5, 6], chosen: [7, 2], rejected: [8, 9, 2] }], 16);
  t.same({ rows, length }, { rows: 2, length: 4 });
  t.same(Array.from(ids), [5, 6, 7, 0, 5, 6, 8, 9], "chosen row, then rejected row, padded");
  t.same(Array.from(labels), [-1, 7, 2, -1, -1, 8, 9, 2], "labels only where the next token is a continuation token");
});

t.test("DPO raises preference accuracy on held-out synthetic pairs", async (t) => {
  const tok = charTokenizer();
  const rng = new Rng(9);
  const words = ["red", "blue", "green", "cat", "dog", "sun"];
  const lines = Array.from({ length: 40 }, () => {
    const prompt = Array.from({ length: 3 }, () => words[rng.int(words.length)]).join(" ") + "?";
    // Preferred answers are polite; rejected ones are curt.
    return JSON.stringify({ prompt, chosen: " yes, thank you.", rejected: " no!" });
  });
  const dir = mkdtempSync(join(tmpdir(), "ecomla-dpo-"));
  const file = join(dir, "pairs.jsonl");
  writeFileSync(file, lines.join("\n") + "\n");
  const pairs = readPairs(file, tok);
  const be = new ReferenceBackend();
  const policy = (await loadLlama(studentDir, be)).model;
  const reference = (await loadLlama(studentDir, be)).model;
  const summary = await dpo(
    { policy, reference, pairs, beta: 0.1, batchSize: 4, maxLen: 32, seed: 1, validationFraction: 0.2 },
    { learningRate: 5e-3, totalSteps: 25, warmupRatio: 0.1, outputDir: join(dir, "out"), modelDir: studentDir, evalSteps: 25 },
  );
  const [before, after] = [summary.firstEval!, summary.lastEval!];
  t.equal(before["accuracy"], 0, "at step 0 the policy is the reference: every margin is 0, no pair preferred");
  t.ok(after["accuracy"]! >= 0.9, `held-out preference accuracy ${before["accuracy"]} → ${after["accuracy"]} after 25 steps`);
  t.ok(after["margin"]! > 0 && after["loss"]! < Math.log(2), `reward margin ${after["margin"]!.toFixed(3)}, loss ${after["loss"]!.toFixed(4)} < ln 2`);
  policy.dispose();
  reference.dispose();
  t.equal(be.memoryStats().liveBuffers, 0, "everything freed");
});
