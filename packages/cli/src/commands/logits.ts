import type { Command } from "commander";
import { ConfigError, Tensor, tidy, writeSafetensors, type Pipeline } from "@ecomla/core";
import { openPipeline, resolveBackend, type GlobalOptions } from "../context.js";
import { loadModelWithProgress, loadTokenizer, parseIds } from "./model-io.js";
import { engineOptions, loadEngineModel, usesRuntimeEngine, type EngineFlags } from "./engine-io.js";

interface LogitsOptions extends EngineFlags {
  model: string;
  ids?: string;
  text?: string;
  out: string;
  backend?: string;
  json?: boolean;
}

/** `ecomla logits`: one forward pass, logits written as safetensors (tensor `logits`, [T, vocab], F32). */
export function logitsCommand(program: Command): void {
  const command = program
    .command("logits")
    .description("run one forward pass and write the logits (tensor `logits`, shape [T, vocab], F32) to a safetensors file")
    .requiredOption("-m, --model <dir>", "Hugging Face model folder (config.json + safetensors)")
    .option("--ids <ids>", "comma-separated token ids")
    .option("--text <text>", "text to tokenize with the model's tokenizer.json (no BOS unless the tokenizer adds it)")
    .requiredOption("-o, --out <file>", "output .safetensors file (written atomically)")
    .option("-b, --backend <name>", "tensor backend (default: cpu when installed, else reference)")
    .option("--json", "print a JSON summary");
  engineOptions(command)
    .action(async (opts: LogitsOptions, cmd: Command) => {
      if ((opts.ids === undefined) === (opts.text === undefined)) throw new ConfigError("logits: give exactly one of --ids or --text");
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      if (usesRuntimeEngine(opts)) return logitsWithEngine(pipeline, opts);
      const backend = await resolveBackend(pipeline, opts.backend);
      const { model, loadMs } = await loadModelWithProgress(opts.model, backend);
      try {
        const ids = opts.ids !== undefined ? parseIds(opts.ids, "--ids", model.vocabSize) : loadTokenizer(opts.model).encode(opts.text!);
        if (ids.length === 0) throw new ConfigError("logits: --text tokenized to no tokens");
        const t0 = performance.now();
        const logits = tidy(() => model.forward(Tensor.from(backend, Int32Array.from(ids), [1, ids.length])));
        const data = (await logits.data()) as Float32Array;
        logits.dispose();
        const forwardMs = performance.now() - t0;
        await writeSafetensors(opts.out, [{ name: "logits", dtype: "F32", shape: [ids.length, model.vocabSize], data }], { format: "pt" });
        const summary = { out: opts.out, tokens: ids.length, vocab: model.vocabSize, backend: backend.name, loadMs: Math.round(loadMs), forwardMs: Math.round(forwardMs) };
        process.stdout.write(opts.json ? JSON.stringify(summary) + "\n" : `wrote logits [${ids.length}, ${model.vocabSize}] to ${opts.out} (${backend.name}, forward ${summary.forwardMs} ms)\n`);
      } finally {
        model.dispose();
      }
    });
}

/** `ecomla logits --engine NAME`: the same output through a registered inference engine. */
async function logitsWithEngine(pipeline: Pipeline, opts: LogitsOptions): Promise<void> {
  const { model, engine, device, loadMs } = await loadEngineModel(pipeline, opts, opts.model);
  try {
    const ids = opts.ids !== undefined ? parseIds(opts.ids, "--ids", model.vocabSize) : loadTokenizer(opts.model).encode(opts.text!);
    if (ids.length === 0) throw new ConfigError("logits: --text tokenized to no tokens");
    const t0 = performance.now();
    const data = await model.forward([ids]);
    const forwardMs = performance.now() - t0;
    await writeSafetensors(opts.out, [{ name: "logits", dtype: "F32", shape: [ids.length, model.vocabSize], data }], { format: "pt" });
    const summary = { out: opts.out, tokens: ids.length, vocab: model.vocabSize, engine, backend: device, loadMs: Math.round(loadMs), forwardMs: Math.round(forwardMs) };
    process.stdout.write(opts.json ? JSON.stringify(summary) + "\n" : `wrote logits [${ids.length}, ${model.vocabSize}] to ${opts.out} (${engine} on ${device}, forward ${summary.forwardMs} ms)\n`);
  } finally {
    await model.free();
  }
}
