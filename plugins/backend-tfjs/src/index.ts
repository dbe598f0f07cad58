// @ecomla/backend-tfjs: registers the TensorFlow.js backend as backend "tfjs". Loading the plugin
// imports no tfjs code (≈150 ms saved on every CLI start): tfjs loads when a command asks for it.
import type { DependencyContainer } from "tsyringe";
import { provide, type BackendProbe, type EcomlaPlugin, type FusedKernelName, type LazyBackend } from "@ecomla/core";
import type { TfjsBackend } from "./backend.js";

export type { TfjsBackend } from "./backend.js";
export type { TfjsBuffer, TfjsPrimitives } from "./primitives.js";
export type { TfjsCandidateId, TfjsSelection } from "./select.js";

/** The fused kernels {@link TfjsBackend} implements (a test checks this against the class). */
export const TFJS_NATIVE_KERNELS: readonly FusedKernelName[] = ["sumToShape", "softmax", "softmaxBackward", "rmsNorm", "rmsNormBackward", "rope", "attention", "attentionBackward", "swiglu", "swigluBackward", "embeddingBackward", "crossEntropy", "klDiv", "adamw"];

/**
 * Create the tfjs backend on the best installed tfjs backend (tfjs-node-gpu > tfjs-node > wasm >
 * cpu), or on `prefer` / the environment variable ECOMLA_TFJS_BACKEND ("node-gpu", "node", "wasm", "cpu").
 */
export async function createTfjsBackend(options: { prefer?: string } = {}): Promise<TfjsBackend> {
  const [{ TfjsBackend }, { selectTfjsBackend }] = await Promise.all([import("./backend.js"), import("./select.js")]);
  return new TfjsBackend(await selectTfjsBackend(options.prefer));
}

/** What `ecomla plugins` shows: the tfjs backend that runs, and why each better one does not. */
async function probe(): Promise<BackendProbe> {
  try {
    const { selectTfjsBackend } = await import("./select.js");
    const selection = await selectTfjsBackend();
    return { available: true, detail: selection.report.join("; ") };
  } catch (err) {
    return { available: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * The plugin: `backend: tfjs` is a lazy backend — tfjs is imported and its backend initialised
 * (asynchronously) only when a command asks for it.
 */
const plugin: EcomlaPlugin = {
  name: "@ecomla/backend-tfjs",
  version: "0.0.0",
  register(container: DependencyContainer) {
    const lazy: LazyBackend = { lazy: true, name: "tfjs", nativeKernels: TFJS_NATIVE_KERNELS, probe, create: () => createTfjsBackend() };
    provide(container, "backend", "tfjs", { useValue: lazy }, { description: "TensorFlow.js: tfjs-core kernels on tfjs-node-gpu, tfjs-node, wasm or cpu (the best installed)" });
  },
};

export default plugin;
