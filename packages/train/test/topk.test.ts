// `ecomla distill --write-topk K` writes the teacher's top-k log-probs for the run's batches, and a
// top-k file teacher then trains the student.
import t from "tap";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliBin, modelWithTokenizer, studentDir, syntheticDocs, teacherDir } from "./helpers/fixtures.js";

const root = mkdtempSync(join(tmpdir(), "ecomla-topk-"));
const student = modelWithTokenizer(studentDir, join(root, "student"));
const dataset = join(root, "corpus.jsonl");
writeFileSync(dataset, syntheticDocs(60, 11).map((text) => JSON.stringify({ text })).join("\n") + "\n");
const plugin = join(import.meta.dirname, "helpers", "test-loss-plugin.mjs");
const STEPS = 16;

function config(name: string, extra = ""): string {
  const file = join(root, `${name}.yaml`);
  writeFileSync(
    file,
    `plugins: [${JSON.stringify(plugin)}]
student: ${student}
teacher: ${teacherDir}
dataset: ${dataset}
backend: reference
loss: forward-kl
seq_len: 8
per_device_train_batch_size: 2
gradient_accumulation_steps: 2
learning_rate: 5.0e-3
warmup_ratio: 0.1
lr_scheduler_type: cosine
weight_decay: 0.01
max_grad_norm: 1.0
max_steps: ${STEPS}
eval_steps: 8
save_steps: 2
save_total_limit: 2
seed: 42
output_dir: ${join(root, name)}
${extra}`,
  );
  return file;
}

function ecomla(args: string[]) {
  const r = spawnSync(process.execPath, [cliBin, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test("--write-topk writes the teacher's top-k, and a top-k teacher trains the student", async (t) => {
  const file = config("topk");
  const w = ecomla(["distill", "--config", file, "--write-topk", "8", "--json"]);
  t.equal(w.code, 0, "--write-topk exits 0", { stderr: w.stderr });
  const written = JSON.parse(w.stdout);
  t.same({ rows: written.rows, k: written.k }, { rows: STEPS * 2 * 2 * 8, k: 8 }, "one row per training position: steps × accumulation × batch × seq_len");
  const both = ecomla(["distill", "--config", config("topk-both", `teacher_topk: ${written.path}`)]);
  t.match(both.stderr, 'give "teacher" or "teacher_topk", not both');
  const file2 = config("topk-train", `teacher_topk: ${written.path}`);
  writeFileSync(file2, readFileSync(file2, "utf8").replace(/^teacher: .*\n/m, ""));
  const ok = ecomla(["distill", "--config", file2, "--json"]);
  t.equal(ok.code, 0, "training on the top-k file exits 0", { stderr: ok.stderr });
  const train = readFileSync(join(root, "topk-train", "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((m) => m.kind === "train");
  const mean = (xs: { loss: number }[]) => xs.reduce((a, m) => a + m.loss, 0) / xs.length;
  const [first, last] = [mean(train.slice(0, 3)), mean(train.slice(-3))];
  t.ok(last < 0.7 * first, `top-k KL training loss ${first.toFixed(4)} → ${last.toFixed(4)} (mean of the first and last 3 steps)`);
});

