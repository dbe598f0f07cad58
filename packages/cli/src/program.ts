import { Command } from "commander";
import { packageVersion } from "@ecomla/core";
import { pluginsCommand } from "./commands/plugins.js";
import { benchCommand } from "./commands/bench.js";
import { logitsCommand } from "./commands/logits.js";
import { generateCommand } from "./commands/generate.js";
import { convertCommand } from "./commands/convert.js";
import { kvReportCommand } from "./commands/kv-report.js";
import { pretrainCommand } from "./commands/pretrain.js";
import { demoCommand } from "./commands/demo.js";
import { evalCommand } from "./commands/eval.js";
import { distillCommand } from "./commands/distill.js";
import { dpoCommand } from "./commands/dpo.js";
import { exportCommand } from "./commands/export.js";
import { serveCommand } from "./commands/serve.js";
import { pushCommand } from "./commands/push.js";
import { resolveHubModelsBeforeAction } from "./hub.js";

/** The `ecomla` command line, with every subcommand attached. */
export function buildProgram(): Command {
  const program = new Command("ecomla")
    .description("Upcycle a Transformer's attention into Multi-head Latent Attention (MLA): convert, distill, evaluate, serve.")
    .version(packageVersion(import.meta.url), "-V, --version", "print the version")
    .option("-c, --config <file>", "pipeline config (YAML or JSON) whose keys mirror the flags")
    .option("-p, --plugin <package...>", "load more plugins by package name or path")
    .showHelpAfterError()
    .configureHelp({ sortSubcommands: true });
  pluginsCommand(program);
  benchCommand(program);
  logitsCommand(program);
  generateCommand(program);
  convertCommand(program);
  kvReportCommand(program);
  pretrainCommand(program);
  demoCommand(program);
  evalCommand(program);
  distillCommand(program);
  dpoCommand(program);
  exportCommand(program);
  serveCommand(program);
  pushCommand(program);
  resolveHubModelsBeforeAction(program);
  return program;
}
