import type { Command } from "commander";
import { generate, generateWithEngine, type GenerationResult, type SamplingOptions } from "@ecomla/core";
import { openPipeline, resolveBackend, type GlobalOptions } from "../context.js";
import { loadModelWithProgress, loadTokenizer, numberFlag } from "./model-io.js";
import { engineOptions, loadEngineModel, usesRuntimeEngine, type EngineFlags } from "./engine-io.js";

interface GenerateOptions extends EngineFlags {
  model: string;
  prompt: string;
  maxNewTokens?: string;
  temperature?: string;
  topP?: string;
  seed?: string;
  backend?: string;
  bos?: boolean;
  json?: boolean;
}

/** `ecomla generate`: prefill a prompt, decode over the KV cache, print the text and tokens/s. */
export function generateCommand(program: Command): void {
  const command = program
    .command("generate")
    .description("generate text from a prompt (greedy, or temperature/top-p sampling with a seed)")
    .requiredOption("-m, --model <dir>", "Hugging Face model folder (config.json + safetensors + tokenizer.json)")
    .requiredOption("--prompt <text>", "the prompt")
    .option("-n, --max-new-tokens <n>", "tokens to generate", "32")
    .option("-t, --temperature <t>", "sampling temperature; 0 = greedy", "0")
    .option("--top-p <p>", "nucleus sampling mass (0, 1]", "1")
    .option("--seed <s>", "sampling seed", "0")
    .option("--bos", "prefix the prompt with the tokenizer's BOS token")
    .option("-b, --backend <name>", "tensor backend (default: cpu when installed, else reference)")
    .option("--json", "print one JSON object instead of text");
  engineOptions(command)
    .action(async (opts: GenerateOptions, cmd: Command) => {
      const maxNewTokens = numberFlag(opts.maxNewTokens, "--max-new-tokens", 32, (n) => Number.isInteger(n) && n >= 1, "an integer ≥ 1");
      const temperature = numberFlag(opts.temperature, "--temperature", 0, (n) => n >= 0, "a number ≥ 0");
      const topP = numberFlag(opts.topP, "--top-p", 1, (n) => n > 0 && n <= 1, "a number in (0, 1]");
      const seed = numberFlag(opts.seed, "--seed", 0, (n) => Number.isInteger(n), "an integer");
      const tokenizer = loadTokenizer(opts.model);
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      let run: (prompt: number[], options: SamplingOptions) => Promise<GenerationResult>;
      let eosIds: readonly number[];
      let device: string;
      let engine = "ecomla";
      let loadMs: number;
      let release: () => unknown;
      if (usesRuntimeEngine(opts)) {
        const loaded = await loadEngineModel(pipeline, opts, opts.model);
        run = (prompt, options) => generateWithEngine(loaded.model, prompt, options);
        ({ engine, device, loadMs } = loaded);
        eosIds = loaded.model.eosTokenIds;
        release = () => loaded.model.free();
      } else {
        const backend = await resolveBackend(pipeline, opts.backend);
        const loaded = await loadModelWithProgress(opts.model, backend);
        run = (prompt, options) => generate(loaded.model, prompt, options);
        const eos = loaded.model.config.eosTokenId;
        eosIds = Array.isArray(eos) ? eos : eos !== null ? [eos] : [];
        device = backend.name;
        loadMs = loaded.loadMs;
        release = () => loaded.model.dispose();
      }
      try {
        const prompt = [...(opts.bos && tokenizer.bosTokenId !== null ? [tokenizer.bosTokenId] : []), ...tokenizer.encode(opts.prompt)];
        const stopTokenIds = [...eosIds, ...(tokenizer.eosTokenId !== null ? [tokenizer.eosTokenId] : [])];
        let printed = "";
        const streamed: number[] = [];
        const result = await run(prompt, {
          maxNewTokens, temperature, topP, seed, stopTokenIds,
          onToken: opts.json ? undefined : (id) => {
            // Stream the text as it grows (decoding the whole suffix keeps multi-byte characters intact).
            streamed.push(id);
            const text = tokenizer.decode(streamed);
            if (!text.endsWith("\uFFFD")) {
              process.stdout.write(text.slice(printed.length));
              printed = text;
            }
          },
        });
        const text = tokenizer.decode(result.tokens);
        const stats = {
          ...(engine !== "ecomla" ? { engine } : {}), backend: device, promptTokens: prompt.length, newTokens: result.tokens.length,
          loadMs: Math.round(loadMs), prefillTokensPerSecond: +result.prefillTokensPerSecond.toFixed(2), decodeTokensPerSecond: +result.decodeTokensPerSecond.toFixed(2),
        };
        if (opts.json) {
          process.stdout.write(JSON.stringify({ prompt: opts.prompt, text, tokens: result.tokens, ...stats }) + "\n");
        } else {
          process.stdout.write(text.slice(printed.length) + "\n");
          process.stderr.write(`[${stats.newTokens} tokens; prefill ${stats.prefillTokensPerSecond} tok/s, decode ${stats.decodeTokensPerSecond} tok/s on ${engine !== "ecomla" ? `${engine} ` : ""}${stats.backend}]\n`);
        }
      } finally {
        await release();
      }
    });
}
