// Distilling the tiny X-EcoMLA student (the SVD conversion of the mha-f32 fixture) from its teacher
// cuts the validation KL, memory stays flat per micro-batch, and the NaN guard skips and stops.
import t from "tap";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ReferenceBackend, loadLlama, ops, type DistillationBatch, type LossResult } from "@ecomla/core";
import { ModelTeacher, PackedDataSource, TrainingDivergedError, distill, tokenizeFile } from "@ecomla/train";
import { writeFileSync } from "node:fs";
import { charTokenizer, studentDir, syntheticDocs, teacherDir, testLoss } from "./helpers/fixtures.js";

async function setup(seqLen: number, batchSize: number) {
  const be = new ReferenceBackend();
  const dir = mkdtempSync(join(tmpdir(), "ecomla-distill-"));
  const file = join(dir, "corpus.jsonl");
  writeFileSync(file, syntheticDocs(80, 7).map((text) => JSON.stringify({ text })).join("\n") + "\n");
  const corpus = await tokenizeFile(file, charTokenizer(), { tokenizerHash: "char", cacheDir: null });
  const data = new PackedDataSource(corpus, { seqLen, batchSize, seed: 3, validationFraction: 0.1 });
  const student = (await loadLlama(studentDir, be)).model;
  const teacherModel = (await loadLlama(teacherDir, be)).model;
  for (const [, p] of teacherModel.namedParameters()) p.requireGrad(false);
  return { be, dir, data, student, teacherModel, teacher: new ModelTeacher(teacherModel, be) };
}

t.test("distillation cuts the validation KL by at least half in 60 steps", async (t) => {
  const { be, dir, data, student, teacherModel, teacher } = await setup(16, 4);
  const steps = 60;
  const summary = await distill(
    { student, teacher, loss: testLoss(), data },
    { learningRate: 1e-2, totalSteps: steps, warmupRatio: 0.05, weightDecay: 0, maxGradNorm: 1, evalSteps: 20, outputDir: join(dir, "run"), modelDir: studentDir },
  );
  const before = summary.firstEval!["kl"]!;
  const after = summary.lastEval!["kl"]!;
  t.ok(after <= 0.5 * before, `validation KL ${before.toFixed(4)} → ${after.toFixed(4)} nats/token after ${steps} steps (${((1 - after / before) * 100).toFixed(1)}% lower; need ≥ 50%)`);
  t.ok(summary.lastEval!["perplexity"]! > 1, "perplexity reported");
  student.dispose();
  teacherModel.dispose();
  t.equal(be.memoryStats().liveBuffers, 0, "everything freed", { stats: be.memoryStats() });
});

t.test("memory is flat from step to step, and the NaN guard skips bad steps and then stops", async (t) => {
  const { be, dir, data, student, teacherModel, teacher } = await setup(8, 2);
  const live: number[] = [];
  await distill(
    { student, teacher, loss: testLoss(), data },
    { learningRate: 1e-3, totalSteps: 6, gradientAccumulationSteps: 2, outputDir: join(dir, "flat"), modelDir: studentDir, onStep: () => live.push(be.memoryStats().liveBuffers) },
  );
  t.ok(live.slice(1).every((n) => n === live[1]), `live buffers stay ${live[1]} from step 2 to 6 (step 1 allocates the moments)`, { live });

  const inner = testLoss();
  let calls = 0;
  const poisoned = {
    name: "poisoned",
    compute(b: DistillationBatch): LossResult {
      const r = inner.compute(b);
      if (!b.studentLogits.requiresGrad) return r; // validation
      calls++;
      // Micro-batch 3 (optimizer step 2) and every one from 9 (step 5) on are poisoned.
      return calls === 3 || calls >= 9 ? { ...r, loss: r.loss, gradLogits: ops.scale(r.gradLogits, NaN) } : r;
    },
  };
  const before = await student.model.norm.weight.data();
  const steps: boolean[] = [];
  await t.rejects(
    distill(
      { student, teacher, loss: poisoned, data },
      { learningRate: 1e-3, totalSteps: 20, gradientAccumulationSteps: 2, maxBadSteps: 2, outputDir: join(dir, "nan"), modelDir: studentDir, onStep: (r) => steps.push(r.skipped) },
    ),
    TrainingDivergedError,
  );
  t.same(steps, [false, true, false, false, true], "steps 2 and 5 skipped (max_bad_steps 2); the third bad step, 6, stops the run");
  const after = await student.model.norm.weight.data();
  t.ok(after.every((v) => Number.isFinite(v)), "no NaN reached the weights");
  t.notSame(Array.from(after), Array.from(before), "the good steps did update");
  student.dispose();
  teacherModel.dispose();
});
