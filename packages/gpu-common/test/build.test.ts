// Both GPU plugins compile from the one kernel source when their compiler is here, for the
// targets asked; without the compiler the install still succeeds and records why.
import t from "tap";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { addonPath, probeGpu, readBuildStatus } from "@ecomla/gpu-common";
import { cudaFatbinEntries, cuobjdumpListElf, hipOffloadTargets } from "./offload.js";

const script = join(dirname(dirname(fileURLToPath(import.meta.url))), "scripts", "build-native.mjs");

function which(tool: string): string | null {
  const r = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** A scratch plugin folder to build into (its build/ is what the plugin would get). */
function scratchPackage(t: { teardown(fn: () => void): void }, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `ecomla-${name}-`));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: `@ecomla/${name}`, version: "0.0.0" }));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function build(flavor: string, pkgDir: string, env: Record<string, string> = {}) {
  const started = Date.now();
  const r = spawnSync(process.execPath, [script, "--flavor", flavor, "--pkg-dir", pkgDir, "--force"], { encoding: "utf8", env: { ...process.env, ...env } });
  return { ...r, seconds: (Date.now() - started) / 1000 };
}

t.test("nvcc builds the CUDA addon with sm_80 and sm_90 code", { skip: which("nvcc") ? false : "nvcc is not installed here" }, async (t) => {
  const dir = scratchPackage(t, "backend-cuda");
  const r = build("cuda", dir);
  t.equal(r.status, 0, "the build script exits 0");
  const status = readBuildStatus(dir, "@ecomla/backend-cuda");
  t.equal(status.available, true, `built (${status.reason ?? "ok"})`);
  t.same(status.targets, ["sm_80", "sm_90"], "default targets");
  t.comment(`nvcc: kernels ${status.kernelSeconds} s, addon ${status.addonSeconds} s, script ${r.seconds.toFixed(1)} s in all`);
  const addon = addonPath(dir);
  t.ok(existsSync(addon), "the addon exists");
  const entries = cudaFatbinEntries(addon);
  const elf = new Set(entries.filter((e) => e.kind === "elf").map((e) => e.sm));
  t.ok(elf.has(80) && elf.has(90), `SASS for sm_80 and sm_90 (found ${[...elf].join(", ")})`);
  t.ok(entries.some((e) => e.kind === "ptx" && e.sm === 90), "PTX for sm_90 (JIT on newer GPUs)");
  // One fat binary per kernel file, each with both targets.
  t.equal(entries.filter((e) => e.kind === "elf" && e.sm === 90).length, entries.filter((e) => e.kind === "elf" && e.sm === 80).length);
  const listed = cuobjdumpListElf(addon);
  if (listed !== null) t.match(listed, /sm_90/, "cuobjdump --list-elf shows sm_90");
  else t.comment("cuobjdump is not installed here: the fat binaries were read directly");
  // The addon loads without a driver and says so.
  const probe = probeGpu({ flavor: "cuda", pkgDir: dir, pkgName: "@ecomla/backend-cuda", version: "0.0.0" });
  if (!probe.available) t.match(probe.reason, /device|driver/i, `no device here: ${probe.reason}`);
});

t.test("ECOMLA_CUDA_ARCHS picks other targets", { skip: which("nvcc") && process.env.ECOMLA_TEST_GPU_BUILD_MATRIX === "1" ? false : "set ECOMLA_TEST_GPU_BUILD_MATRIX=1 (another ~20 s of nvcc)" }, async (t) => {
  const dir = scratchPackage(t, "backend-cuda");
  build("cuda", dir, { ECOMLA_CUDA_ARCHS: "90" });
  const elf = new Set(cudaFatbinEntries(addonPath(dir)).filter((e) => e.kind === "elf").map((e) => e.sm));
  t.same([...elf], [90]);
});

t.test("hipcc builds the same kernels for gfx90a", { skip: which("hipcc") ? false : "hipcc is not installed here (apt-get install hipcc libamdhip64-dev)" }, async (t) => {
  const dir = scratchPackage(t, "backend-rocm");
  const r = build("rocm", dir);
  t.equal(r.status, 0, "the build script exits 0");
  const status = readBuildStatus(dir, "@ecomla/backend-rocm");
  t.equal(status.available, true, `built (${status.reason ?? "ok"})`);
  t.same(status.targets, ["gfx90a"]);
  t.comment(`hipcc: kernels ${status.kernelSeconds} s, addon ${status.addonSeconds} s, script ${r.seconds.toFixed(1)} s in all`);
  const { targets, tool } = hipOffloadTargets(addonPath(dir));
  t.same(targets, ["gfx90a"], `offload bundles for gfx90a (read with ${tool})`);
});

t.test("without the compiler the install succeeds and records the reason", async (t) => {
  for (const [flavor, env] of [["cuda", { ECOMLA_NVCC: "/nonexistent/nvcc" }], ["rocm", { ECOMLA_HIPCC: "/nonexistent/hipcc" }]] as const) {
    const dir = scratchPackage(t, `backend-${flavor}`);
    const r = build(flavor, dir, env);
    t.equal(r.status, 0, `${flavor}: the install step exits 0`);
    const status = JSON.parse(readFileSync(join(dir, "build", "gpu-status.json"), "utf8"));
    t.equal(status.available, false);
    t.match(status.reason, flavor === "cuda" ? /nvcc \(CUDA ≥ 12\) not found at ECOMLA_NVCC=\/nonexistent\/nvcc/ : /hipcc not found at ECOMLA_HIPCC=/);
    const probe = probeGpu({ flavor, pkgDir: dir, pkgName: `@ecomla/backend-${flavor}`, version: "0.0.0" });
    t.same(probe, { available: false, reason: status.reason }, "the probe reports the build's reason");
  }
  const dir = scratchPackage(t, "backend-cuda");
  const r = build("cuda", dir, { ECOMLA_GPU_SKIP_BUILD: "1" });
  t.equal(r.status, 0);
  t.match(readBuildStatus(dir, "x").reason, /skipped \(ECOMLA_GPU_SKIP_BUILD=1/);
  const never = scratchPackage(t, "backend-cuda");
  t.match(readBuildStatus(never, "@ecomla/backend-cuda").reason, /was not built .*pnpm install/, "no build at all: says how to build");
});
