import "reflect-metadata";
import { container } from "tsyringe";
import type { DependencyContainer } from "tsyringe";

// tsyringe ships CommonJS and keeps its root container in module state: two copies would give two
// containers. Plugins take tsyringe as a peer dependency and everything reaches the container here.
export { container, injectable, inject, singleton, Lifecycle, delay } from "tsyringe";
export type { DependencyContainer, InjectionToken } from "tsyringe";

/** Tokens for shared services a plugin may ask for with `@inject(TOKEN)`. */
export const TOKENS = {
  /** The {@link PluginRegistry} of the container. */
  registry: Symbol.for("ecomla.registry"),
  /** The TensorBackend selected by the pipeline. */
  backend: Symbol.for("ecomla.backend"),
} as const;

/** A fresh child container whose registrations do not leak into the root one (tests, pipelines). */
export function createScope(parent: DependencyContainer = container): DependencyContainer {
  return parent.createChildContainer();
}
