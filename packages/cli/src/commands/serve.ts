import { basename, resolve } from "node:path";
import type { Command } from "commander";
import { ConfigError, HfTokenizer, type Tokenizer } from "@ecomla/core";
import { BatchedLlama, EngineServedModel, createServer, type ServedModel } from "@ecomla/serve";
import { openPipeline, resolveBackend, type GlobalOptions } from "../context.js";
import { loadModelWithProgress, numberFlag } from "./model-io.js";
import { engineOptions, loadEngineModel, usesRuntimeEngine, type EngineFlags } from "./engine-io.js";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

interface ServeOptions extends EngineFlags {
  model: string;
  host: string;
  port: string;
  maxBatch: string;
  maxBodyBytes: string;
  name?: string;
  json?: boolean;
}

/** The context length of a model folder (config.json's max_position_embeddings). */
function maxContextOf(modelDir: string): number {
  const file = join(modelDir, "config.json");
  const config = JSON.parse(readFileSync(file, "utf8")) as { max_position_embeddings?: unknown };
  const n = config.max_position_embeddings;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1) throw new ConfigError(`${file}: max_position_embeddings must be a positive integer, found ${JSON.stringify(n)}`);
  return n;
}

/** `ecomla serve`: an OpenAI-compatible HTTP server with continuous batching over per-sequence (latent for MLA) caches. */
export function serveCommand(program: Command): void {
  const command = program
    .command("serve")
    .description("serve a model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /v1/models, /health, /metrics) with continuous batching")
    .requiredOption("-m, --model <dir>", "Hugging Face model folder (config.json + safetensors, tokenizer.json for text prompts)")
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "port (0 = any free port; the chosen one is printed)", "8000")
    .option("--max-batch <n>", "sequences in one decode step at most", "16")
    .option("--max-body-bytes <n>", "largest request body", String(1 << 20))
    .option("--name <id>", "model name clients send (default: the folder's name)")
    .option("-b, --backend <name>", "tensor backend of the ecomla engine (default: cpu when installed, else reference)")
    .option("--json", "print the listening address as one JSON line");
  engineOptions(command).action(async (opts: ServeOptions, cmd: Command) => {
    const port = numberFlag(opts.port, "--port", 8000, (n) => Number.isInteger(n) && n >= 0 && n < 65536, "an integer port 0-65535");
    const maxBatch = numberFlag(opts.maxBatch, "--max-batch", 16, (n) => Number.isInteger(n) && n >= 1, "an integer ≥ 1");
    const bodyLimitBytes = numberFlag(opts.maxBodyBytes, "--max-body-bytes", 1 << 20, (n) => Number.isInteger(n) && n >= 1024, "an integer ≥ 1024");
    const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
    const modelDir = resolve(opts.model);
    let served: ServedModel;
    let engine = "ecomla";
    if (usesRuntimeEngine(opts)) {
      const loaded = await loadEngineModel(pipeline, opts, modelDir);
      served = new EngineServedModel(loaded.model, maxContextOf(modelDir));
      engine = loaded.engine;
    } else {
      const backend = await resolveBackend(pipeline, opts.backend);
      served = new BatchedLlama((await loadModelWithProgress(modelDir, backend)).model);
    }
    const tokenizer: Tokenizer | null = existsSync(join(modelDir, "tokenizer.json")) ? HfTokenizer.fromDir(modelDir) : null;
    const modelName = opts.name ?? basename(modelDir);
    const { app } = createServer({
      model: served, tokenizer, modelName, maxBatch, bodyLimitBytes,
      hasChatTemplate: tokenizer instanceof HfTokenizer ? tokenizer.hasChatTemplate : false,
    });
    const address = await app.listen({ host: opts.host, port });
    const summary = { url: `${address}/v1`, model: modelName, engine, maxBatch, maxContext: served.maxContext };
    process.stdout.write(opts.json ? JSON.stringify(summary) + "\n" : `serving ${modelName} (${engine}) at ${summary.url} — max batch ${maxBatch}, context ${served.maxContext}\n`);
    const stop = async () => {
      // Requests in flight get a few seconds to finish.
      setTimeout(() => process.exit(0), 5000).unref();
      await app.close();
      await served.free();
      process.exit(0);
    };
    process.once("SIGINT", () => void stop());
    process.once("SIGTERM", () => void stop());
  });
}
