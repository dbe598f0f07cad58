import type { Command } from "commander";
import { openPipeline, resolveBackend, type GlobalOptions } from "../context.js";
import { numberFlag } from "./model-io.js";
import { trainEnvironment, withLoss } from "./train-env.js";

interface DemoFlags {
  out: string;
  quick?: boolean;
  tokens?: string;
  evalLimit?: string;
  backend?: string;
  teacher?: string;
  json?: boolean;
}

/** `ecomla demo`: the paper replayed small on the bundled tiny teacher (examples/tiny-llama). */
export function demoCommand(program: Command): void {
  program
    .command("demo")
    .description("replay X-EcoMLA on the bundled tiny teacher: convert at 53.1/28.1/15.6/9.4% KV, distil, evaluate, print the paper-style table")
    .option("-o, --out <dir>", "output folder", "runs/demo")
    .option("--quick", "a minimal run of every stage (about a minute)")
    .option("--tokens <n>", "training tokens per student (default: 204800; --quick: 1024)")
    .option("--eval-limit <n>", "items per task (default: 500 of 1000; --quick: 12)")
    .option("--teacher <dir>", "another teacher folder (default: the bundled examples/tiny-llama)")
    .option("-b, --backend <name>", "tensor backend (default: cpu when installed, else reference)")
    .option("--json", "print results.json instead of the table")
    .action(async (opts: DemoFlags, cmd: Command) => {
      // The demo lives with the bundled teacher; loaded here so the CLI's other commands never need it.
      const { runDemo, demoTable } = await import("@ecomla/example-tiny-llama");
      const positive = (n: number) => Number.isInteger(n) && n >= 1;
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      const backend = await resolveBackend(pipeline, opts.backend);
      const { env, stop } = await trainEnvironment(pipeline, backend.name, "distilling");
      await withLoss(env, pipeline, "forward-kl", {});
      const t0 = performance.now();
      let results;
      try {
        results = await runDemo(
          {
            out: opts.out, quick: opts.quick, teacherDir: opts.teacher,
            tokensPerStudent: opts.tokens === undefined ? undefined : numberFlag(opts.tokens, "--tokens", 0, positive, "an integer ≥ 1"),
            evalLimit: opts.evalLimit === undefined ? undefined : numberFlag(opts.evalLimit, "--eval-limit", 0, positive, "an integer ≥ 1"),
          },
          { ...env, evaluator: (name) => pipeline.get("evaluator", name), stage: (m) => process.stderr.write(`[demo] ${m}\n`) },
        );
      } finally {
        stop();
      }
      const minutes = (performance.now() - t0) / 60000;
      if (opts.json) {
        process.stdout.write(JSON.stringify({ minutes: +minutes.toFixed(2), models: results }, null, 2) + "\n");
        return;
      }
      const tasks = Object.keys(results[0]!.tasks);
      process.stdout.write(`${demoTable(results, tasks)}\n\nwrote ${opts.out}/results.json, report.md, score-vs-kv.svg, training-curves.svg in ${minutes.toFixed(1)} min\n`);
    });
}
