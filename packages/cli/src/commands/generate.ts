import type { Command } from "commander";
import { generate } from "@ecomla/core";
import { openPipeline, resolveBackend, type GlobalOptions } from "../context.js";
import { loadModelWithProgress, loadTokenizer, numberFlag } from "./model-io.js";

interface GenerateOptions {
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
  program
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
    .option("--json", "print one JSON object instead of text")
    .action(async (opts: GenerateOptions, cmd: Command) => {
      const maxNewTokens = numberFlag(opts.maxNewTokens, "--max-new-tokens", 32, (n) => Number.isInteger(n) && n >= 1, "an integer ≥ 1");
      const temperature = numberFlag(opts.temperature, "--temperature", 0, (n) => n >= 0, "a number ≥ 0");
      const topP = numberFlag(opts.topP, "--top-p", 1, (n) => n > 0 && n <= 1, "a number in (0, 1]");
      const seed = numberFlag(opts.seed, "--seed", 0, (n) => Number.isInteger(n), "an integer");
      const tokenizer = loadTokenizer(opts.model);
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      const backend = await resolveBackend(pipeline, opts.backend);
      const { model, loadMs } = await loadModelWithProgress(opts.model, backend);
      try {
        const prompt = [...(opts.bos && tokenizer.bosTokenId !== null ? [tokenizer.bosTokenId] : []), ...tokenizer.encode(opts.prompt)];
        const eos = model.config.eosTokenId;
        const stopTokenIds = [...(Array.isArray(eos) ? eos : eos !== null ? [eos] : []), ...(tokenizer.eosTokenId !== null ? [tokenizer.eosTokenId] : [])];
        let printed = "";
        const streamed: number[] = [];
        const result = await generate(model, prompt, {
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
          backend: backend.name, promptTokens: prompt.length, newTokens: result.tokens.length,
          loadMs: Math.round(loadMs), prefillTokensPerSecond: +result.prefillTokensPerSecond.toFixed(2), decodeTokensPerSecond: +result.decodeTokensPerSecond.toFixed(2),
        };
        if (opts.json) {
          process.stdout.write(JSON.stringify({ prompt: opts.prompt, text, tokens: result.tokens, ...stats }) + "\n");
        } else {
          process.stdout.write(text.slice(printed.length) + "\n");
          process.stderr.write(`[${stats.newTokens} tokens; prefill ${stats.prefillTokensPerSecond} tok/s, decode ${stats.decodeTokensPerSecond} tok/s on ${stats.backend}]\n`);
        }
      } finally {
        model.dispose();
      }
    });
}
