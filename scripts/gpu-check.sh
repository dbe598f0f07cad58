#!/usr/bin/env bash
# gpu-check.sh — `bash scripts/gpu-check.sh cuda` (after `… pack` on a built machine) checks the CUDA
# backend: see scripts/lib/gpu-check-native.sh. Without an argument: run the WebGPU backend's
# conformance suite and kernel bench on a machine with an NVIDIA GPU and no internet, through the GPU's Vulkan driver (Dawn → Vulkan → NVIDIA ICD).
# Budget: under 5 minutes on a GPU (mostly shader compilation in the tests; the bench with
# --repeats 3 takes seconds there).
#
# Bringing it over (nothing is downloaded on the GPU machine):
#   1. On a prepared machine (this repo's CI image): `pnpm install && pnpm build`. node_modules
#      then holds everything, including webgpu's prebuilt Dawn (node_modules/.pnpm/webgpu@*/
#      node_modules/webgpu/dist/linux-x64/dawn.node) and tap.
#   2. Node may be absent on the GPU machine: `node` is a single self-contained binary, so copy it
#      with the repo: `cp "$(command -v node)" ./node-bin` (Node 20, linux-x64, glibc ≥ 2.28).
#   3. Copy the tree with symlinks kept (pnpm's node_modules are symlinks):
#      `tar czf ecomla.tgz --exclude=.git .` → scp → `tar xzf ecomla.tgz`, or `rsync -a`.
#   4. On the GPU machine: `bash scripts/gpu-check.sh` (NODE=/path/to/node to pick a binary).
# The NVIDIA driver ships its Vulkan ICD (/usr/share/vulkan/icd.d/nvidia_icd.json) and
# libvulkan.so.1 is needed (Debian/Ubuntu: libvulkan1). Dawn picks the discrete GPU over lavapipe
# (powerPreference "high-performance"); the adapter it chose is printed first, and the script stops
# there if it is a CPU rasteriser (lavapipe/llvmpipe/SwiftShader), since then nothing is checked on
# the GPU. To run every step on lavapipe anyway (e.g. to try the script on a CI machine), pass
# --allow-cpu or set ECOMLA_GPU_CHECK_ALLOW_CPU=1; the bench then takes minutes, not seconds, so
# give it more time with ECOMLA_GPU_CHECK_BENCH_TIMEOUT (seconds, default 120) and fewer repeats
# with ECOMLA_GPU_CHECK_REPEATS (default 3).
#
# Steps: the adapter and its limits; the conformance suite, the runtime tests, the Llama fixtures and
# 20 training steps, and the chunked paths (every kernel with a tiny storage-binding limit, so the
# device's binding-offset alignment is exercised); then `ecomla bench kernels`. The bench compares
# with the CPU backend's BLAS when that backend loads there (it needs libopenblas0), else it says
# why in "baselines.skipped". Results go to $OUT when that is set (a device runner's output folder),
# else /tmp: ecomla-gpu-bench.json and ecomla-gpu-tap.txt.
#
# On lavapipe, Dawn prints two "maxDynamic…BuffersPerPipelineLayout artificially reduced" warnings
# while it enumerates adapters: lavapipe reports 1,000,000 dynamic buffers per pipeline layout and
# Dawn clamps that to 16 (harmless; not caused by the limits ecomla requests). NVIDIA's driver
# reports at most 16 there, so they are not expected on the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
# The native GPU backends (CUDA, ROCm) have their own steps: `pack` here, then `cuda` / `rocm` on the
# GPU machine; see scripts/lib/gpu-check-native.sh. With no argument (or --allow-cpu) this checks WebGPU.
case "${1:-}" in
  pack|cuda|rocm) exec bash scripts/lib/gpu-check-native.sh "$@" ;;
esac

NODE="${NODE:-}"
if [ -z "$NODE" ]; then
  if [ -x ./node-bin ]; then NODE=./node-bin; elif command -v node >/dev/null; then NODE="$(command -v node)"; else
    echo "gpu-check: no node: copy a Node 20 linux-x64 binary to ./node-bin (see the header of this script)" >&2; exit 1
  fi
fi
# pnpm's .bin shims call `node` by name: put the chosen binary on PATH under that name.
NODE="$(cd "$(dirname "$NODE")" && pwd)/$(basename "$NODE")"
NODE_DIR="$(mktemp -d)"
trap 'rm -rf "$NODE_DIR"' EXIT
ln -s "$NODE" "$NODE_DIR/node"
export PATH="$NODE_DIR:$PATH"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
[ -d node_modules ] || { echo "gpu-check: node_modules missing: copy the repo with its node_modules (built elsewhere)" >&2; exit 1; }
[ -f plugins/backend-webgpu/dist/index.js ] || { echo "gpu-check: plugins/backend-webgpu/dist missing: run pnpm build before copying" >&2; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || echo "gpu-check: nvidia-smi not found (continuing)"
{ ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; } || echo "gpu-check: libvulkan.so.1 not in the linker cache: Dawn needs the Vulkan loader (Debian/Ubuntu: libvulkan1)" >&2

ALLOW_CPU="${ECOMLA_GPU_CHECK_ALLOW_CPU:-0}"
for arg in "$@"; do
  case "$arg" in
    --allow-cpu) ALLOW_CPU=1 ;;
    *) echo "gpu-check: unknown argument $arg (only --allow-cpu)" >&2; exit 2 ;;
  esac
done
RESULTS="${OUT:-/tmp}"
mkdir -p "$RESULTS"

echo "== adapter"
ECOMLA_GPU_CHECK_ALLOW_CPU="$ALLOW_CPU" timeout 60 "$NODE" --input-type=module -e '
import { createWebGpuBackend } from "./plugins/backend-webgpu/dist/index.js";
const be = await createWebGpuBackend();
const l = be.device.limits;
console.log("webgpu adapter:", be.adapterInfo);
console.log(`limits: maxStorageBufferBindingSize ${l.maxStorageBufferBindingSize}, maxBufferSize ${l.maxBufferSize}, minStorageBufferOffsetAlignment ${l.minStorageBufferOffsetAlignment}, maxComputeWorkgroupStorageSize ${l.maxComputeWorkgroupStorageSize}`);
const cpu = /llvmpipe|lavapipe|swiftshader/i.test(be.adapterInfo);
be.destroy();
if (cpu && process.env.ECOMLA_GPU_CHECK_ALLOW_CPU !== "1") {
  console.error("gpu-check: the adapter is a CPU rasteriser, not the GPU: is the NVIDIA Vulkan ICD installed? (--allow-cpu runs the checks on it anyway)");
  process.exit(3);
}
if (cpu) console.log("gpu-check: running on a CPU rasteriser (--allow-cpu)");'

echo "== conformance, runtime, Llama fixtures + training, chunked paths (tap)"
timeout 240 node_modules/.bin/tap -R tap \
  plugins/backend-webgpu/test/conformance.test.ts plugins/backend-webgpu/test/runtime.test.ts \
  plugins/backend-webgpu/test/llama.test.ts plugins/backend-webgpu/test/chunked.test.ts > "$RESULTS/ecomla-gpu-tap.txt" 2>&1 \
  && tap_status=0 || tap_status=$?
grep -E '^\s*not ok|^# \{' "$RESULTS/ecomla-gpu-tap.txt" || true
[ "$tap_status" -eq 0 ] || { echo "gpu-check: tests failed (exit $tap_status); full output in $RESULTS/ecomla-gpu-tap.txt" >&2; exit "$tap_status"; }

echo "== kernel bench"
timeout "${ECOMLA_GPU_CHECK_BENCH_TIMEOUT:-120}" "$NODE" packages/cli/dist/bin.js bench kernels --backend webgpu \
  --repeats "${ECOMLA_GPU_CHECK_REPEATS:-3}" --no-pytorch --json > "$RESULTS/ecomla-gpu-bench.json"
cat "$RESULTS/ecomla-gpu-bench.json"
echo "gpu-check: done (bench JSON in $RESULTS/ecomla-gpu-bench.json, tap output in $RESULTS/ecomla-gpu-tap.txt)"
