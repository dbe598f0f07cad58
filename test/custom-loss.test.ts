// A community plugin, loaded by package name through a pipeline config, resolved by name and used.
import t from "tap";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pipeline, ReferenceBackend, Tensor, UnknownNameError, readPipelineConfig } from "@ecomla/core";

t.test("examples/custom-loss loads by package name and computes τ²·KL at τ=2", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ecomla-pipeline-"));
  const file = join(dir, "pipeline.yaml");
  writeFileSync(file, "plugins:\n  - '@ecomla/example-custom-loss'\nloss: tempered-kl\n");
  // Resolve from the repository root, where the workspace installs the example package.
  const pipeline = await Pipeline.create(readPipelineConfig(file).config, { baseDir: process.cwd() });
  t.same(pipeline.registry.loadedPlugins(), [{ name: "@ecomla/example-custom-loss", version: "0.1.0" }]);
  const loss = pipeline.get("loss");
  t.equal(loss.name, "tempered-kl");
  t.throws(() => pipeline.get("loss", "reverse-kl"), { constructor: UnknownNameError, message: 'unknown loss "reverse-kl"; registered loss names: "tempered-kl"' });

  // Closed form for one row: student logits 0 (uniform q), teacher logits [ln 1, ln 2, ln 3]·τ so
  // that p = softmax(teacher/τ) = [1/6, 2/6, 3/6]: loss = τ²·Σ p ln(p/q), grad = τ·(q − p).
  const be = new ReferenceBackend();
  const tau = 2;
  const student = Tensor.zeros(be, [1, 3]);
  const teacher = Tensor.from(be, [0, Math.log(2) * tau, Math.log(3) * tau], [1, 3]);
  const { loss: value, gradLogits } = loss.compute({ studentLogits: student, teacher: { kind: "logits", logits: teacher } });
  const p = [1 / 6, 2 / 6, 3 / 6];
  const expected = tau * tau * p.reduce((s, pi) => s + pi * Math.log(pi / (1 / 3)), 0);
  t.ok(Math.abs((await value.item()) - expected) < 1e-6, `loss ${await value.item()} ≈ ${expected}`);
  const grad = await gradLogits.toArray();
  p.forEach((pi, j) => t.ok(Math.abs(grad[j]! - tau * (1 / 3 - pi)) < 1e-6, `grad[${j}] = τ(q−p) = ${tau * (1 / 3 - pi)}`));
});
