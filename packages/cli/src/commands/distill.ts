import type { Command } from "commander";
import { ConfigError } from "@ecomla/core";
import { readTrainConfig, runDistillConfig, writeTeacherTopK } from "@ecomla/train";
import { openPipeline, type GlobalOptions } from "../context.js";
import { trainEnvironment, withLoss } from "./train-env.js";

interface DistillOptions {
  resume?: boolean;
  writeTopk?: string;
  json?: boolean;
}

/** `ecomla distill --config FILE`: distil an (MLA) student from a teacher, or precompute the teacher's top-k (--write-topk). */
export function distillCommand(program: Command): void {
  program
    .command("distill")
    .description("distil a student (an MLA conversion) from a teacher with the settings of --config FILE.yaml (keys as the seed's configs)")
    .option("--resume", "continue from the newest checkpoint in output_dir (bit-for-bit)")
    .option("--write-topk <k>", "instead of training, write the teacher's top-k log-probs for the run's batches to output_dir/teacher-topk.safetensors")
    .option("--json", "print the run summary as JSON")
    .action(async (opts: DistillOptions, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      if (!globals.config) throw new ConfigError("distill: --config FILE.yaml is required");
      const config = readTrainConfig(globals.config, "distill");
      const pipeline = await openPipeline(globals);
      const { env, stop } = await trainEnvironment(pipeline, config.backend, opts.writeTopk ? "teacher top-k" : "distilling");
      let summary: unknown;
      try {
        if (opts.writeTopk !== undefined) {
          summary = await writeTeacherTopK(config, env, Number(opts.writeTopk));
        } else {
          await withLoss(env, pipeline, config.loss, { temperature: config.temperature, kl_weight: config.klWeight, ce_weight: config.ceWeight });
          summary = await runDistillConfig(config, env, opts.resume ?? false);
        }
      } finally {
        stop();
      }
      process.stdout.write(opts.json ? JSON.stringify(summary, null, 2) + "\n" : describe(summary as Record<string, unknown>));
    });
}

/** One line per fact of a summary. */
export function describe(summary: Record<string, unknown>): string {
  return Object.entries(summary).map(([k, v]) => `${k}: ${typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)}\n`).join("");
}
