// The plugin object of a GPU backend (one for cuda, one for rocm): a LazyBackend whose probe says,
// without acquiring the device, whether the build, the driver, a device and the BLAS library are
// there, and whose create() fails with the same reason (a BackendUnavailableError), never a crash.
import type { DependencyContainer } from "tsyringe";
import { provide, type BackendProbe, type EcomlaPlugin, type LazyBackend } from "@ecomla/core";
import { BLAS_ENV, blasCandidates, blasNotFoundMessage } from "./blas-search.js";
import { GPU_NATIVE_KERNELS, GpuBackend, type GpuBackendOptions } from "./gpu.js";
import { BackendUnavailableError, loadAddon, readBuildStatus, type GpuFlavor } from "./native.js";

/** Which plugin package a GPU backend is built into. */
export interface GpuPackage {
  flavor: GpuFlavor;
  /** The plugin's folder (where build/ lives). */
  pkgDir: string;
  /** e.g. "@ecomla/backend-cuda". */
  pkgName: string;
  version: string;
}

const LABEL: Record<GpuFlavor, string> = { cuda: "CUDA", rocm: "ROCm" };

/** Cheap availability check: build outcome, addon load, driver/device, a loadable BLAS library. */
export function probeGpu(pkg: GpuPackage): BackendProbe {
  const status = readBuildStatus(pkg.pkgDir, pkg.pkgName);
  if (!status.available) return { available: false, reason: status.reason ?? "the native build failed" };
  let addon;
  try {
    addon = loadAddon(pkg.pkgDir, pkg.pkgName, pkg.flavor);
  } catch (error) {
    return { available: false, reason: error instanceof BackendUnavailableError ? error.reason : String(error) };
  }
  const built = `binary for ${addon.compiledTargets}`;
  const device = addon.probe();
  if (!device.ok) return { available: false, reason: `no usable ${LABEL[pkg.flavor]} device: ${device.error}`, detail: built };
  const candidates = blasCandidates(pkg.flavor);
  const errors: string[] = [];
  for (const path of candidates) {
    const why = addon.dlopenCheck(path);
    if (why === "") return { available: true, detail: `${device.name} (${device.arch}), ${built}, BLAS ${path}` };
    errors.push(`${path}: ${why}`);
  }
  // create() also asks python3 for the wheel's folder; the probe stays cheap and says so.
  return {
    available: false,
    reason: `${blasNotFoundMessage(pkg.flavor, candidates, errors.join("\n"))} (the backend also asks python3 for the nvidia-cublas wheel when created; ${BLAS_ENV[pkg.flavor]} overrides)`,
    detail: `${device.name} (${device.arch}), ${built}`,
  };
}

/** Create the backend of a plugin package, or throw a BackendUnavailableError with the reason. */
export async function createGpuBackend(pkg: GpuPackage, options: GpuBackendOptions = {}): Promise<GpuBackend> {
  const addon = loadAddon(pkg.pkgDir, pkg.pkgName, pkg.flavor);
  return GpuBackend.create(pkg.flavor, addon, options);
}

/** The plugin object a GPU backend package default-exports. */
export function createGpuPlugin(pkg: GpuPackage, description: string): EcomlaPlugin {
  return {
    name: pkg.pkgName,
    version: pkg.version,
    register(container: DependencyContainer) {
      const lazy: LazyBackend = {
        lazy: true,
        name: pkg.flavor,
        nativeKernels: GPU_NATIVE_KERNELS,
        probe: () => probeGpu(pkg),
        create: () => createGpuBackend(pkg),
      };
      provide(container, "backend", pkg.flavor, { useValue: lazy }, { description });
    },
  };
}
