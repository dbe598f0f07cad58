// `ecomla demo --quick` end to end on the bundled teacher: every stage runs and writes its outputs.
import t from "tap";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { labelProblems } from "@ecomla/plot";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, "../../../packages/cli/dist/bin.js");

t.test("demo --quick converts, distils, evaluates and reports", async (t) => {
  const out = mkdtempSync(join(tmpdir(), "ecomla-demo-"));
  const started = Date.now();
  const r = spawnSync(process.execPath, [bin, "demo", "--quick", "--out", out, "--json"], { encoding: "utf8", timeout: 600_000 });
  t.equal(r.status, 0, r.stderr.slice(-2000));
  const printed = JSON.parse(r.stdout) as { minutes: number; models: { name: string; init: string; kvFraction: number; compressionRatio: number; average: number; percentOfTeacher: number; tasks: Record<string, Record<string, number>> }[] };
  t.ok(Date.now() - started < 5 * 60_000, "finishes within five minutes");
  t.same(printed.models.map((m) => m.name), ["teacher", "mla-53.1%", "mla-28.1%", "mla-15.6%", "mla-9.4%", "random-15.6%"]);
  const fractions = printed.models.map((m) => +m.kvFraction.toFixed(4));
  t.same(fractions, [1, 0.5313, 0.2813, 0.1563, 0.0938, 0.1563], "the seed's KV fractions: 17/32, 9/32, 5/32, 3/32 (and random init at 5/32)");
  t.same(printed.models.slice(1).map((m) => +m.compressionRatio.toFixed(1)), [1.9, 3.6, 6.4, 10.7, 6.4]);
  for (const m of printed.models) {
    t.same(Object.keys(m.tasks).sort(), ["continuation-4way", "last-word", "minimal-pairs"], `${m.name}: every task scored`);
    t.ok(m.average >= 0 && m.average <= 1, `${m.name}: average ${m.average} is a score`);
  }
  const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
  t.equal(results.models.length, 6);
  for (const f of ["report.md", "score-vs-kv.svg", "training-curves.svg", "perplexity-by-position.svg"]) t.ok(existsSync(join(out, f)), `${f} written`);
  for (const f of ["score-vs-kv.svg", "training-curves.svg", "perplexity-by-position.svg"]) {
    t.same(labelProblems(readFileSync(join(out, f), "utf8")), [], `${f}: every label inside the canvas, none overlapping`);
  }
  t.match(readFileSync(join(out, "report.md"), "utf8"), /\| mla-15\.6% \| svd \| 15\.6 \| 6\.4× \|/);
  for (const m of results.models.slice(1)) t.ok(existsSync(join(m.checkpoint, "model.safetensors")), `${m.name}: checkpoint folder`);
});
