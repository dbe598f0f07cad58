// kill -9 of `ecomla distill` at a random step, then --resume: the final weights are bit-identical
// to those of an uninterrupted run; and unknown config keys are errors naming the key and the file.
import t from "tap";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "@ecomla/core";
import { cliBin, cliDistillSetup } from "./helpers/fixtures.js";

const STEPS = 16;
const { root, config, ecomla } = cliDistillSetup("ecomla-resume-", STEPS);

t.test("kill -9 at a random step, then --resume: bit-identical final weights", async (t) => {
  const straight = ecomla(["distill", "--config", config("straight"), "--json"]);
  t.equal(straight.code, 0, "uninterrupted run exits 0", { stderr: straight.stderr });
  const summary = JSON.parse(straight.stdout);
  t.equal(summary.steps, STEPS);
  const reference = readFileSync(join(root, "straight", "model.safetensors"));

  const killAt = 2 * (1 + new Rng(Date.now() % 1e6).int(STEPS / 2 - 2)); // an even step in [2, STEPS − 4]
  const file = config("killed");
  const out = join(root, "killed");
  const child = spawn(process.execPath, [cliBin, "distill", "--config", file, "--json"], { stdio: "ignore" });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let killedAtStep = -1;
  for (let i = 0; i < 6000 && child.exitCode === null; i++) {
    const steps = existsSync(out) ? readdirSync(out).map((f) => /^checkpoint-(\d+)$/.exec(f)?.[1]).filter(Boolean).map(Number) : [];
    if (steps.some((s) => s >= killAt)) {
      child.kill("SIGKILL");
      killedAtStep = Math.max(...steps);
      break;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await exited;
  t.ok(killedAtStep >= killAt, `killed with SIGKILL after checkpoint-${killedAtStep} (target step ${killAt} of ${STEPS})`);
  t.notOk(existsSync(join(out, "model.safetensors")), "the killed run never reached its end");

  const resumed = ecomla(["distill", "--config", file, "--resume", "--json"]);
  t.equal(resumed.code, 0, "resumed run exits 0", { stderr: resumed.stderr });
  const r = JSON.parse(resumed.stdout);
  t.ok(r.resumedFrom >= killAt, `resumed from step ${r.resumedFrom}`);
  t.equal(r.steps, STEPS);
  const got = readFileSync(join(out, "model.safetensors"));
  t.ok(got.equals(reference), `model.safetensors (${got.length} bytes) is byte-identical to the uninterrupted run's`);

  const checkpoints = readdirSync(out).filter((f) => f.startsWith("checkpoint-")).sort();
  t.same(checkpoints, [`checkpoint-${STEPS - 2}`, `checkpoint-${STEPS}`], "save_total_limit 2 keeps the newest two");
  for (const f of ["config.json", "MLA_config.json", "mla_layer_config.json", "optimizer.safetensors", "trainer_state.json", "tokenizer.json"]) {
    t.ok(existsSync(join(out, `checkpoint-${STEPS}`, f)), `checkpoint holds ${f}`);
  }
  const metrics = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  t.same(metrics.filter((m) => m.kind === "train").map((m) => m.step), Array.from({ length: STEPS }, (_, i) => i + 1), "the metrics log reads as one run");
  const svg = readFileSync(join(out, "training_curves.svg"), "utf8");
  t.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/, "an SVG plot next to the checkpoints");
  t.match(svg, /validation KL/);
});

t.test("unknown config keys are errors naming the key and the file", async (t) => {
  const file = config("bad", "learning_rat: 1\n");
  const r = ecomla(["distill", "--config", file]);
  t.not(r.code, 0);
  t.match(r.stderr, `${file}: unknown key "learning_rat"`);
});
