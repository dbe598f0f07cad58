import type { Command } from "commander";
import { cacheElementsPerLayer, readLlamaConfig, readMlaConfig } from "@ecomla/core";
import { join } from "node:path";

/** `ecomla kv-report`: cached elements and bytes per token, per layer and in total, against the base model. */
export function kvReportCommand(program: Command): void {
  program
    .command("kv-report")
    .description("KV-cache size per token (per layer and total, bf16 bytes) and the ratio to the base model")
    .requiredOption("-m, --model <dir>", "model folder (Llama or X-EcoMLA / hybrid)")
    .option("--bytes-per-element <n>", "cache element size in bytes (bf16 = 2)", "2")
    .option("--json", "print one JSON object")
    .action(async (opts: { model: string; bytesPerElement: string; json?: boolean }) => {
      const base = readLlamaConfig(join(opts.model, "config.json"));
      const mla = readMlaConfig(opts.model, base);
      const bytes = Number(opts.bytesPerElement);
      const perLayer = cacheElementsPerLayer(base, mla);
      const basePerLayer = cacheElementsPerLayer(base, null);
      const total = perLayer.reduce((a, b) => a + b, 0);
      const baseTotal = basePerLayer.reduce((a, b) => a + b, 0);
      const report = {
        model: opts.model,
        layers: perLayer.map((elements, layer) => ({
          layer, kind: mla?.mlaLayers.includes(layer) ? "mla" : "gqa", elementsPerToken: elements, bytesPerToken: elements * bytes,
        })),
        elementsPerToken: total,
        bytesPerToken: total * bytes,
        baseElementsPerToken: baseTotal,
        baseBytesPerToken: baseTotal * bytes,
        fractionOfBase: total / baseTotal,
        compressionRatio: baseTotal / total,
      };
      if (opts.json) {
        process.stdout.write(JSON.stringify(report, null, 2) + "\n");
        return;
      }
      process.stdout.write("| layer | kind | elements/token | bytes/token |\n|---:|---|---:|---:|\n");
      for (const l of report.layers) process.stdout.write(`| ${l.layer} | ${l.kind} | ${l.elementsPerToken} | ${l.bytesPerToken} |\n`);
      process.stdout.write(`| total | | ${total} | ${total * bytes} |\n\n`);
      process.stdout.write(`${(100 * report.fractionOfBase).toFixed(1)}% of the base model's cache (${baseTotal} elements/token): ${report.compressionRatio.toFixed(2)}× smaller\n`);
    });
}
