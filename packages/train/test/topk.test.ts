// `ecomla distill --write-topk K` writes the teacher's top-k log-probs for the run's batches, and a
// top-k file teacher then trains the student.
import t from "tap";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cliDistillSetup } from "./helpers/fixtures.js";

const STEPS = 16;
const { root, config, ecomla } = cliDistillSetup("ecomla-topk-", STEPS);

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

