import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve as resolvePath } from "node:path";
import { pathToFileURL } from "node:url";
import type { DependencyContainer, InjectionToken } from "tsyringe";
import { Lifecycle } from "tsyringe";
import { TOKENS } from "./di.js";
import type { LazyBackend, TensorBackend } from "./interfaces/backend.js";
import type { AttentionConverter } from "./interfaces/converter.js";
import type { DataSource } from "./interfaces/data.js";
import type { Evaluator } from "./interfaces/evaluator.js";
import type { DistillationLoss } from "./interfaces/loss.js";
import type { InferenceEngine, ModelExporter } from "./interfaces/engine.js";
import type { Teacher } from "./interfaces/teacher.js";
import type { Tokenizer } from "./interfaces/tokenizer.js";
import { PluginLoadError, UnknownNameError } from "./errors.js";

/** What each kind of named implementation resolves to. */
export interface KindMap {
  /** A ready backend, or one created on first use (see {@link PluginRegistry.backend}). */
  backend: TensorBackend | LazyBackend;
  converter: AttentionConverter;
  loss: DistillationLoss;
  evaluator: Evaluator;
  teacher: Teacher;
  tokenizer: Tokenizer;
  datasource: DataSource;
  /** A whole-model runtime (`--engine`); ecomla's own forward is "ecomla". */
  engine: InferenceEngine;
  /** A model-folder exporter, registered under its format name (`ecomla export <format>`). */
  exporter: ModelExporter;
}

/** The kinds of implementation a plugin can register by name. */
export type Kind = keyof KindMap;

/** All kinds, in the order listings show them. */
export const KINDS: readonly Kind[] = ["backend", "converter", "loss", "evaluator", "teacher", "tokenizer", "datasource", "engine", "exporter"];

/** The plugin contract: a package default-exports this object. */
export interface EcomlaPlugin {
  /** Package name, e.g. "@ecomla/backend-cpu". */
  name: string;
  /** Package version. */
  version: string;
  /** Register named implementations into the container (through {@link provide}). */
  register(container: DependencyContainer): void | Promise<void>;
}

/** One named implementation and who registered it. */
export interface Registration {
  kind: Kind;
  name: string;
  /** Plugin that registered it ("(direct)" when registered outside any plugin). */
  plugin: string;
  /** One line saying what it is. */
  description?: string;
}

/** How to build an implementation: a class (resolved by the container, so it may use @inject), a value, or a factory. */
export type Provider<T> =
  | { useClass: new (...args: any[]) => T }
  | { useValue: T }
  | { useFactory: (c: DependencyContainer) => T };

/** The token under which the container holds kind/name. */
export function namedToken(kind: Kind, name: string): InjectionToken<unknown> {
  return `ecomla:${kind}:${name}`;
}

/**
 * Core's book of named implementations, one per container. Pipelines select implementations by
 * name (`backend: cpu`, `loss: forward-kl`); an unknown name lists what is registered.
 */
export class PluginRegistry {
  private readonly entries = new Map<string, Registration>();
  private readonly plugins: { name: string; version: string }[] = [];
  private loading: string | null = null;

  constructor(private readonly container: DependencyContainer) {}

  /** Record a named implementation and register its provider in the container. */
  add<K extends Kind>(kind: K, name: string, provider: Provider<KindMap[K]>, options: { description?: string; singleton?: boolean } = {}): void {
    const key = `${kind}:${name}`;
    const token = namedToken(kind, name);
    if ("useClass" in provider) {
      this.container.register(token, { useClass: provider.useClass }, { lifecycle: options.singleton === false ? Lifecycle.Transient : Lifecycle.ContainerScoped });
    } else if ("useValue" in provider) {
      this.container.register(token, { useValue: provider.useValue });
    } else {
      this.container.register(token, { useFactory: provider.useFactory });
    }
    this.entries.set(key, { kind, name, plugin: this.loading ?? "(direct)", description: options.description });
  }

  /** Whether kind/name is registered. */
  has(kind: Kind, name: string): boolean {
    return this.entries.has(`${kind}:${name}`);
  }

  /** Names registered for a kind, sorted. */
  names(kind: Kind): string[] {
    return [...this.entries.values()].filter((e) => e.kind === kind).map((e) => e.name).sort();
  }

  /** Every registration, in registration order. */
  list(): Registration[] {
    return [...this.entries.values()];
  }

  /** Plugins loaded into this registry, in load order. */
  loadedPlugins(): { name: string; version: string }[] {
    return [...this.plugins];
  }

  /** Resolve kind/name from the container; an unknown name lists the registered ones. */
  resolve<K extends Kind>(kind: K, name: string): KindMap[K] {
    if (!this.has(kind, name)) {
      const known = this.names(kind);
      throw new UnknownNameError(
        `unknown ${kind} "${name}"; registered ${kind} names: ${known.length ? known.map((n) => `"${n}"`).join(", ") : "(none — load a plugin that provides one)"}`,
      );
    }
    return this.container.resolve(namedToken(kind, name)) as KindMap[K];
  }

  /**
   * The named backend, ready to use: a {@link LazyBackend} is created on the first call (its device
   * acquired) and the same instance returned afterwards.
   */
  async backend(name: string): Promise<TensorBackend> {
    const found = this.resolve("backend", name);
    if (!("lazy" in found && found.lazy === true)) return found as TensorBackend;
    let pending = this.lazyBackends.get(name);
    if (!pending) {
      pending = found.create();
      this.lazyBackends.set(name, pending);
    }
    return pending;
  }
  private readonly lazyBackends = new Map<string, Promise<TensorBackend>>();

  /** Run a plugin's register() with its registrations attributed to it. */
  async install(plugin: EcomlaPlugin): Promise<void> {
    if (this.plugins.some((p) => p.name === plugin.name)) return;
    this.loading = plugin.name;
    try {
      await plugin.register(this.container);
    } finally {
      this.loading = null;
    }
    this.plugins.push({ name: plugin.name, version: plugin.version });
  }
}

/** The registry of a container (created on first use, one per container). */
export function registryOf(container: DependencyContainer): PluginRegistry {
  if (!container.isRegistered(TOKENS.registry, false)) {
    container.register(TOKENS.registry, { useValue: new PluginRegistry(container) });
  }
  return container.resolve<PluginRegistry>(TOKENS.registry);
}

/** Register a named implementation of `kind` in `container` (what a plugin's register() calls). */
export function provide<K extends Kind>(
  container: DependencyContainer,
  kind: K,
  name: string,
  provider: Provider<KindMap[K]>,
  options?: { description?: string; singleton?: boolean },
): void {
  registryOf(container).add(kind, name, provider, options);
}

/** Check that a module's default export (or the module itself) is an {@link EcomlaPlugin}. */
export function asPlugin(mod: unknown, source: string): EcomlaPlugin {
  const candidate = (mod as { default?: unknown })?.default ?? mod;
  const p = candidate as Partial<EcomlaPlugin> | undefined;
  if (!p || typeof p !== "object" || typeof p.register !== "function") {
    throw new PluginLoadError(
      `plugin "${source}" does not export a plugin: expected a default export { name, version, register(container) }, found ${describe(candidate)}`,
    );
  }
  if (typeof p.name !== "string" || typeof p.version !== "string") {
    throw new PluginLoadError(`plugin "${source}": its default export must have string "name" and "version" (found name=${describe(p.name)}, version=${describe(p.version)})`);
  }
  return p as EcomlaPlugin;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v !== "object") return typeof v;
  const keys = Object.keys(v as object);
  return keys.length ? `an object with keys ${keys.join(", ")}` : "an empty object";
}

/**
 * Find a plugin module by package name (or a relative/absolute path), resolving from `baseDir`
 * (the pipeline config's folder, or the working directory) so user-installed plugins are found.
 */
export function resolvePluginSpecifier(specifier: string, baseDir: string = process.cwd()): string {
  if (specifier.startsWith(".") || isAbsolute(specifier)) {
    return pathToFileURL(resolvePath(baseDir, specifier)).href;
  }
  const require = createRequire(join(baseDir, "__ecomla_resolve__.js"));
  try {
    return pathToFileURL(require.resolve(specifier)).href;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ERR_PACKAGE_PATH_NOT_EXPORTED") {
      // An ESM-only "exports" map without a require/default condition: read its "import" entry.
      const pkgJson = require.resolve(`${specifier}/package.json`);
      const pkg = JSON.parse(readFileSync(pkgJson, "utf8")) as { exports?: any };
      const entry = pkg.exports?.["."]?.import ?? pkg.exports?.import;
      const target = typeof entry === "string" ? entry : entry?.default;
      if (typeof target === "string") return pathToFileURL(join(dirname(pkgJson), target)).href;
    }
    throw new PluginLoadError(`plugin package "${specifier}" is not installed (looked from ${baseDir}): add it to your dependencies`, { cause: err }, true);
  }
}

/** Import a plugin by package name or path and install it into the container's registry. */
export async function loadPlugin(container: DependencyContainer, specifier: string, baseDir?: string): Promise<EcomlaPlugin> {
  const url = resolvePluginSpecifier(specifier, baseDir);
  let mod: unknown;
  try {
    mod = await import(url);
  } catch (err) {
    throw new PluginLoadError(`plugin "${specifier}" failed to load: ${(err as Error).message}`, { cause: err });
  }
  const plugin = asPlugin(mod, specifier);
  await registryOf(container).install(plugin);
  return plugin;
}
