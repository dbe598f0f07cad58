import type { Command } from "commander";
import { ConfigError } from "@ecomla/core";
import { readTrainConfig, runPretrainConfig } from "@ecomla/train";
import { openPipeline, type GlobalOptions } from "../context.js";
import { describe } from "./distill.js";
import { trainEnvironment } from "./train-env.js";

/** `ecomla pretrain --config FILE`: train a Llama-style model from scratch on next-token cross-entropy. */
export function pretrainCommand(program: Command): void {
  program
    .command("pretrain")
    .description("pretrain a Llama-style model from scratch (architecture under `model:`, tokenizer, dataset) with the settings of --config FILE.yaml")
    .option("--resume", "continue from the newest checkpoint in output_dir (bit-for-bit)")
    .option("--json", "print the run summary as JSON")
    .action(async (opts: { resume?: boolean; json?: boolean }, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      if (!globals.config) throw new ConfigError("pretrain: --config FILE.yaml is required");
      const config = readTrainConfig(globals.config, "pretrain");
      const pipeline = await openPipeline(globals);
      const { env, stop } = await trainEnvironment(pipeline, config.backend, "pretraining");
      let summary;
      try {
        summary = await runPretrainConfig(config, env, opts.resume ?? false);
      } finally {
        stop();
      }
      process.stdout.write(opts.json ? JSON.stringify(summary, null, 2) + "\n" : describe(summary as unknown as Record<string, unknown>));
    });
}
