#!/usr/bin/env bash
# gpu-check.sh — run the WebGPU backend's conformance suite and kernel bench on a machine with an
# NVIDIA GPU and no internet, through the GPU's Vulkan driver (Dawn → Vulkan → NVIDIA ICD).
# Budget: under 5 minutes (conformance ~1 min on a GPU, bench with --repeats 3 a few seconds).
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
# (powerPreference "high-performance"); the adapter it chose is printed first.
set -euo pipefail
cd "$(dirname "$0")/.."

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

echo "== adapter"
timeout 60 "$NODE" --input-type=module -e '
import { createWebGpuBackend } from "./plugins/backend-webgpu/dist/index.js";
const be = await createWebGpuBackend();
console.log("webgpu adapter:", be.adapterInfo);
if (/llvmpipe|lavapipe|swiftshader/i.test(be.adapterInfo)) console.log("WARNING: a CPU rasteriser, not the GPU: is the NVIDIA Vulkan ICD installed?");
be.destroy();'

echo "== conformance (tap)"
timeout 180 node_modules/.bin/tap -R terse \
  plugins/backend-webgpu/test/conformance.test.ts plugins/backend-webgpu/test/runtime.test.ts plugins/backend-webgpu/test/llama.test.ts

echo "== kernel bench"
timeout 120 "$NODE" packages/cli/dist/bin.js bench kernels --backend webgpu --repeats 3 --no-pytorch --json | tee /tmp/ecomla-gpu-bench.json
echo "gpu-check: done (bench JSON in /tmp/ecomla-gpu-bench.json)"
