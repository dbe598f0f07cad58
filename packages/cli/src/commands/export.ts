import type { Command } from "commander";
import { ConfigError } from "@ecomla/core";
import { openPipeline, type GlobalOptions } from "../context.js";
import { progressBar } from "../progress.js";
import { numberFlag } from "./model-io.js";

interface ExportCommandOptions {
  model: string;
  out: string;
  opset?: string;
  dtype?: string;
  overwrite?: boolean;
  json?: boolean;
}

/**
 * `ecomla export <format>`: write a model folder in another format through the exporter registered
 * under that format's name (e.g. "onnx" from @ecomla/runtime-onnx).
 */
export function exportCommand(program: Command): void {
  program
    .command("export")
    .description("export a model folder to another format through a registered exporter (onnx: decoder with past, MLA layers cache only the latent)")
    .argument("<format>", "format name, e.g. onnx (see `ecomla plugins` for the registered exporters)")
    .requiredOption("-m, --model <dir>", "model folder (Llama, X-EcoMLA or hybrid)")
    .requiredOption("-o, --out <dir>", "output folder (written to a temporary folder, then renamed into place)")
    .option("--opset <n>", "format version (ONNX opset; default the exporter's)")
    .option("--dtype <dtype>", "weight storage dtype: f32 or f16", "f32")
    .option("--overwrite", "replace an existing output folder")
    .option("--json", "print a JSON summary")
    .action(async (format: string, opts: ExportCommandOptions, cmd: Command) => {
      const opset = opts.opset === undefined ? undefined : numberFlag(opts.opset, "--opset", 0, (n) => Number.isInteger(n) && n > 0, "a positive integer");
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      if (!pipeline.registry.has("exporter", format)) {
        const known = pipeline.registry.names("exporter");
        throw new ConfigError(`export: no exporter for "${format}"; registered: ${known.length ? known.join(", ") : "none"} (the onnx exporter comes with @ecomla/runtime-onnx)`);
      }
      const exporter = pipeline.registry.resolve("exporter", format);
      const bar = opts.json ? null : progressBar(`export ${format}`);
      let report;
      try {
        report = await exporter.export(opts.model, opts.out, {
          opset, dtype: opts.dtype, overwrite: opts.overwrite, onProgress: bar ? (done, total, what) => bar.update(done, total, what) : undefined,
        });
      } finally {
        bar?.stop();
      }
      const summary = { format, model: opts.model, out: report.outDir, files: report.files, bytes: report.bytes, elapsedMs: Math.round(report.elapsedMs), ...report.details };
      process.stdout.write(opts.json ? JSON.stringify(summary) + "\n" : `wrote ${format} export of ${opts.model} to ${report.outDir} (${report.files.join(", ")}; ${(report.bytes / 1e6).toFixed(1)} MB in ${summary.elapsedMs} ms)\n`);
    });
}
