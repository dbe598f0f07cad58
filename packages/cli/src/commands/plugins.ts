import type { Command } from "commander";
import { FUSED_KERNELS, KINDS, nativeKernelsOf, type BackendProbe, type FusedKernelName, type KindMap, type LazyBackend, type Pipeline } from "@ecomla/core";
import { openPipeline, type GlobalOptions } from "../context.js";

/** Which fused kernels a backend runs natively (the rest are composed by core), and whether it is available. */
interface BackendKernels {
  native: readonly FusedKernelName[] | null;
  composed: readonly FusedKernelName[] | null;
  probe?: BackendProbe;
}

function isLazy(backend: KindMap["backend"]): backend is LazyBackend {
  return "lazy" in backend && backend.lazy === true;
}

/**
 * Describe a registered backend without acquiring a device: a ready backend is inspected, a lazy
 * one answers from its declared kernels and its probe (a throwing probe counts as unavailable).
 */
async function backendKernels(pipeline: Pipeline, name: string): Promise<BackendKernels> {
  let found: KindMap["backend"];
  try {
    found = pipeline.registry.resolve("backend", name);
  } catch (err) {
    return { native: null, composed: null, probe: { available: false, reason: err instanceof Error ? err.message : String(err) } };
  }
  const split = (native: readonly FusedKernelName[] | undefined) =>
    native ? { native, composed: FUSED_KERNELS.filter((k) => !native.includes(k)) } : { native: null, composed: null };
  if (!isLazy(found)) return split(nativeKernelsOf(found));
  let probe: BackendProbe | undefined;
  try {
    probe = await found.probe?.();
  } catch (err) {
    probe = { available: false, reason: err instanceof Error ? err.message : String(err) };
  }
  return { ...split(found.nativeKernels), ...(probe ? { probe } : {}) };
}

/** `ecomla plugins`: the loaded plugins and what each registers. */
export function pluginsCommand(program: Command): void {
  program
    .command("plugins")
    .description("list the loaded plugins, the implementations each registers, and each backend's native fused kernels")
    .option("--json", "print one JSON object instead of text")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      const registrations = pipeline.registry.list();
      const plugins = await Promise.all(
        pipeline.registry.loadedPlugins().map(async (p) => ({
          ...p,
          provides: await Promise.all(
            registrations
              .filter((r) => r.plugin === p.name)
              .sort((a, b) => KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind) || a.name.localeCompare(b.name))
              .map(async ({ kind, name, description }) => ({
                kind,
                name,
                ...(description ? { description } : {}),
                ...(kind === "backend" ? { kernels: await backendKernels(pipeline, name) } : {}),
              })),
          ),
        })),
      );
      if (opts.json) {
        process.stdout.write(JSON.stringify({ plugins }, null, 2) + "\n");
        return;
      }
      for (const p of plugins) {
        process.stdout.write(`${p.name} ${p.version}\n`);
        if (p.provides.length === 0) process.stdout.write("  (registers nothing)\n");
        for (const r of p.provides) {
          process.stdout.write(`  ${r.kind.padEnd(10)} ${r.name}${r.description ? ` — ${r.description}` : ""}\n`);
          if (!r.kernels) continue;
          const { native, composed, probe } = r.kernels;
          if (probe) process.stdout.write(`             ${probe.available ? "available" : "unavailable"}${probe.reason ? `: ${probe.reason}` : ""}${probe.detail ? ` (${probe.detail})` : ""}\n`);
          if (native) {
            process.stdout.write(`             native fused kernels: ${native.length ? native.join(", ") : "none"}\n`);
            if (composed?.length) process.stdout.write(`             composed from primitives: ${composed.join(", ")}\n`);
          }
        }
      }
    });
}
