import type { Command } from "commander";
import { KINDS } from "@ecomla/core";
import { openPipeline, type GlobalOptions } from "../context.js";

/** `ecomla plugins`: the loaded plugins and what each registers. */
export function pluginsCommand(program: Command): void {
  program
    .command("plugins")
    .description("list the loaded plugins and the implementations each registers")
    .option("--json", "print one JSON object instead of text")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      const registrations = pipeline.registry.list();
      const plugins = pipeline.registry.loadedPlugins().map((p) => ({
        ...p,
        provides: registrations
          .filter((r) => r.plugin === p.name)
          .sort((a, b) => KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind) || a.name.localeCompare(b.name))
          .map(({ kind, name, description }) => ({ kind, name, ...(description ? { description } : {}) })),
      }));
      if (opts.json) {
        process.stdout.write(JSON.stringify({ plugins }, null, 2) + "\n");
        return;
      }
      for (const p of plugins) {
        process.stdout.write(`${p.name} ${p.version}\n`);
        if (p.provides.length === 0) process.stdout.write("  (registers nothing)\n");
        for (const r of p.provides) {
          process.stdout.write(`  ${r.kind.padEnd(10)} ${r.name}${r.description ? ` — ${r.description}` : ""}\n`);
        }
      }
    });
}
