import type { Command } from "commander";
import { ConfigError } from "@ecomla/core";
import { readTrainConfig, runDpoConfig } from "@ecomla/train";
import { openPipeline, type GlobalOptions } from "../context.js";
import { describe } from "./distill.js";
import { trainEnvironment } from "./train-env.js";

/** `ecomla dpo --config FILE`: direct preference optimisation (sigmoid loss, β) against a frozen copy of the starting model. */
export function dpoCommand(program: Command): void {
  program
    .command("dpo")
    .description("preference-tune a model with DPO (pairs JSONL: prompt, chosen, rejected) with the settings of --config FILE.yaml")
    .option("--resume", "continue from the newest checkpoint in output_dir (bit-for-bit)")
    .option("--json", "print the run summary as JSON")
    .action(async (opts: { resume?: boolean; json?: boolean }, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      if (!globals.config) throw new ConfigError("dpo: --config FILE.yaml is required");
      const config = readTrainConfig(globals.config, "dpo");
      const pipeline = await openPipeline(globals);
      const { env, stop } = await trainEnvironment(pipeline, config.backend, "dpo");
      let summary;
      try {
        summary = await runDpoConfig(config, env, opts.resume ?? false);
      } finally {
        stop();
      }
      process.stdout.write(opts.json ? JSON.stringify(summary, null, 2) + "\n" : describe(summary as unknown as Record<string, unknown>));
    });
}
