import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { ConfigError, EcomlaError, readLlamaConfig, type EngineModel, type LanguageModel, type Pipeline, type TensorBackend } from "@ecomla/core";
import { resolveBackend } from "../context.js";
import { numberFlag } from "./model-io.js";

/** Flags of commands that run a model through an inference engine. */
export interface EngineFlags {
  engine?: string;
  ep?: string;
  threads?: string;
  backend?: string;
}

/** Add --engine, --ep and --threads to a command. */
export function engineOptions(command: Command): Command {
  return command
    .option("--engine <name>", "inference engine: ecomla (its own forward, default) or a registered one, e.g. onnxruntime (@ecomla/runtime-onnx)")
    .option("--ep <provider>", "execution provider of a runtime engine, e.g. cpu (default) or webgpu")
    .option("--threads <n>", "threads of a runtime engine (default: its own choice)");
}

/** Whether the flags ask for an engine other than ecomla's own forward. */
export function usesRuntimeEngine(flags: EngineFlags): boolean {
  return flags.engine !== undefined && flags.engine !== "ecomla";
}

/** Load a model folder through the engine the flags name (ecomla's own runs on --backend). */
export async function loadEngineModel(pipeline: Pipeline, flags: EngineFlags, modelDir: string): Promise<{ model: EngineModel; engine: string; device: string; loadMs: number }> {
  const name = flags.engine ?? "ecomla";
  if (!pipeline.registry.has("engine", name)) {
    const known = pipeline.registry.names("engine");
    throw new ConfigError(`--engine: no engine "${name}"; registered: ${known.join(", ")} (onnxruntime comes with @ecomla/runtime-onnx)`);
  }
  if (name !== "ecomla" && flags.backend !== undefined) throw new ConfigError(`--backend applies to the ecomla engine only; ${name} takes --ep`);
  if (name === "ecomla" && flags.ep !== undefined) throw new ConfigError("--ep applies to runtime engines (e.g. --engine onnxruntime); the ecomla engine takes --backend");
  const threads = flags.threads === undefined ? undefined : numberFlag(flags.threads, "--threads", 0, (n) => Number.isInteger(n) && n >= 1, "an integer ≥ 1");
  const engine = pipeline.registry.resolve("engine", name);
  const backend = name === "ecomla" ? await resolveBackend(pipeline, flags.backend) : undefined;
  const t0 = performance.now();
  const model = await engine.load(modelDir, { backend, executionProvider: flags.ep, threads });
  return { model, engine: name, device: backend ? backend.name : (flags.ep ?? "cpu"), loadMs: performance.now() - t0 };
}

/**
 * An engine's model seen as a {@link LanguageModel} for evaluators: logits come from the engine
 * (hostLogits) and are scored on `backend`; the context window is the folder's config.json's.
 */
export function engineLanguageModel(model: EngineModel, backend: TensorBackend, modelDir: string): LanguageModel & { backend: TensorBackend; config: { maxPositionEmbeddings?: number }; kvCacheElementsPerToken(): number } {
  const configFile = join(modelDir, "config.json");
  const maxPositionEmbeddings = existsSync(configFile) ? readLlamaConfig(configFile).maxPositionEmbeddings : undefined;
  return {
    vocabSize: model.vocabSize,
    backend,
    config: { maxPositionEmbeddings },
    forward(): never {
      throw new EcomlaError("this model runs in an inference engine: call hostLogits, not forward");
    },
    kvCacheElementsPerToken: () => model.cachedElementsPerToken,
    kvCacheBytesPerToken: () => model.cachedElementsPerToken * 2,
    hostLogits: (ids, batch, tokens) => model.forward(Array.from({ length: batch }, (_, b) => Array.from(ids.subarray(b * tokens, (b + 1) * tokens)))),
  };
}
