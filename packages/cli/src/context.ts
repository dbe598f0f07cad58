import { fileURLToPath } from "node:url";
import { dirname } from "node:path";
import {
  Pipeline,
  loadPlugin,
  PluginLoadError,
  corePlugin,
  container as rootContainer,
  readPipelineConfig,
  registryOf,
  type PipelineConfig,
  type TensorBackend,
} from "@ecomla/core";

/**
 * First-party plugins the CLI loads when they are installed next to it. A missing one is skipped
 * (they are optional packages); a plugin named in a config or by --plugin must load or it is an error.
 */
export const DEFAULT_PLUGINS: readonly string[] = ["@ecomla/backend-cpu", "@ecomla/backend-webgpu", "@ecomla/backend-cuda", "@ecomla/backend-rocm", "@ecomla/backend-tfjs", "@ecomla/eval-harness", "@ecomla/converter-xecomla", "@ecomla/losses", "@ecomla/runtime-onnx"];

/** Options every command accepts. */
export interface GlobalOptions {
  config?: string;
  plugin?: string[];
}

/** Build the pipeline for a command: core built-ins, installed defaults, the config's plugins, then --plugin. */
export async function openPipeline(opts: GlobalOptions, overrides: Partial<PipelineConfig> = {}): Promise<Pipeline> {
  const { config, baseDir } = opts.config ? readPipelineConfig(opts.config) : { config: {} as PipelineConfig, baseDir: process.cwd() };
  const container = rootContainer.createChildContainer();
  await registryOf(container).install(corePlugin);
  const cliDir = dirname(fileURLToPath(import.meta.url));
  for (const spec of DEFAULT_PLUGINS) {
    try {
      await loadPlugin(container, spec, cliDir);
    } catch (err) {
      if (!(err instanceof PluginLoadError && err.notInstalled)) throw err;
    }
  }
  const pipeline = await Pipeline.create({ ...config, ...overrides }, { container, baseDir });
  for (const spec of opts.plugin ?? []) await pipeline.load(spec, process.cwd());
  return pipeline;
}

/** The backend a command runs on: --backend, else the config's, else "cpu" when installed, else "reference". */
export async function resolveBackend(pipeline: Pipeline, name?: string): Promise<TensorBackend> {
  const chosen = name ?? pipeline.config.backend ?? (pipeline.registry.has("backend", "cpu") ? "cpu" : "reference");
  return pipeline.backend(chosen);
}
