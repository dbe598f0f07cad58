import { readFileSync } from "node:fs";
import { dirname, extname, resolve as resolvePath } from "node:path";
import YAML from "yaml";
import type { DependencyContainer } from "tsyringe";
import { container as rootContainer } from "./di.js";
import { ConfigError } from "./errors.js";
import { loadPlugin, registryOf, type Kind, type KindMap, type PluginRegistry } from "./plugin.js";
import type { TensorBackend } from "./interfaces/backend.js";

/**
 * A pipeline config: which plugin packages to load and which named implementations to use.
 * Other keys (the command's own settings) pass through untouched.
 */
export interface PipelineConfig {
  /** Plugin package names (or paths relative to the config file) to load. */
  plugins?: string[];
  backend?: string;
  converter?: string;
  loss?: string;
  evaluators?: string[];
  /** A model folder, or a served teacher's {url, model, top_k}. */
  teacher?: string | Record<string, unknown>;
  [key: string]: unknown;
}

/** Read a YAML or JSON pipeline config; errors name the file and the bad key. */
export function readPipelineConfig(path: string): { config: PipelineConfig; baseDir: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = extname(path).toLowerCase() === ".json" ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid ${extname(path) === ".json" ? "JSON" : "YAML"}: ${(err as Error).message}`, { cause: err });
  }
  return { config: validatePipelineConfig(parsed ?? {}, path), baseDir: dirname(resolvePath(path)) };
}

/** Check the keys this module reads; `source` names the file (or "config") in errors. */
export function validatePipelineConfig(value: unknown, source = "config"): PipelineConfig {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(`${source}: expected a mapping at the top level, found ${Array.isArray(value) ? "a list" : typeof value}`);
  }
  const cfg = value as Record<string, unknown>;
  const stringList = (key: string) => {
    const v = cfg[key];
    if (v !== undefined && !(Array.isArray(v) && v.every((x) => typeof x === "string"))) {
      throw new ConfigError(`${source}: key "${key}" must be a list of strings, found ${JSON.stringify(v)}`);
    }
  };
  const str = (key: string) => {
    const v = cfg[key];
    if (v !== undefined && typeof v !== "string") throw new ConfigError(`${source}: key "${key}" must be a string, found ${JSON.stringify(v)}`);
  };
  stringList("plugins");
  stringList("evaluators");
  for (const k of ["backend", "converter", "loss"]) str(k);
  // A teacher is a model folder, or a served one ({url, model, top_k}; checked by the trainer).
  const teacher = cfg["teacher"];
  if (teacher !== undefined && typeof teacher !== "string" && (typeof teacher !== "object" || teacher === null || Array.isArray(teacher))) {
    throw new ConfigError(`${source}: key "teacher" must be a model folder or {url, model, top_k}, found ${JSON.stringify(teacher)}`);
  }
  return cfg as PipelineConfig;
}

/**
 * A configured pipeline: the plugins of its config loaded into a container of its own, and its
 * named implementations resolved on demand.
 */
export class Pipeline {
  /** The registry of this pipeline's container. */
  readonly registry: PluginRegistry;

  private constructor(
    readonly config: PipelineConfig,
    readonly container: DependencyContainer,
  ) {
    this.registry = registryOf(container);
  }

  /** Load one more plugin (package name, or a path relative to baseDir). */
  async load(specifier: string, baseDir?: string): Promise<void> {
    await loadPlugin(this.container, specifier, baseDir);
  }

  /** Load every plugin the config names (relative to baseDir), in order. */
  static async create(config: PipelineConfig, options: { baseDir?: string; container?: DependencyContainer } = {}): Promise<Pipeline> {
    const pipeline = new Pipeline(config, options.container ?? rootContainer.createChildContainer());
    for (const spec of config.plugins ?? []) await pipeline.load(spec, options.baseDir);
    return pipeline;
  }

  /** Read a config file and create its pipeline. */
  static async fromFile(path: string, options: { container?: DependencyContainer } = {}): Promise<Pipeline> {
    const { config, baseDir } = readPipelineConfig(path);
    return Pipeline.create(config, { ...options, baseDir });
  }

  /** The backend named `name` (default: the config's `backend`), created if it is lazy. */
  async backend(name?: string): Promise<TensorBackend> {
    const chosen = name ?? this.config.backend;
    if (chosen === undefined) throw new ConfigError(`config: no "backend" chosen; registered: ${this.registry.names("backend").join(", ") || "(none)"}`);
    return this.registry.backend(chosen);
  }

  /** The implementation of `kind` named `name`, or by default the one the config names under the kind's key. */
  get<K extends Kind>(kind: K, name?: string): KindMap[K] {
    const chosen = name ?? (this.config[kind] as string | undefined);
    if (chosen === undefined) throw new ConfigError(`config: no "${kind}" chosen; registered: ${this.registry.names(kind).join(", ") || "(none)"}`);
    return this.registry.resolve(kind, chosen);
  }
}
