# Sourced by the quick-start scripts: installs what a fresh Debian/Ubuntu machine with Node 20
# lacks, then the workspace's dependencies, then builds. Safe to repeat: each step checks first.
set -euo pipefail

ECOMLA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ECOMLA_ROOT"

# System packages the native and WebGPU backends need (grows with the plugins that need them);
# python3-onnx checks the ONNX exports (onnx.checker) in plugins/runtime-onnx's tests.
# hipcc + libamdhip64-dev (ROCm 5.2 with clang 15: ≤ 70 MB download, ~370 MB installed) let CI compile the shared
# CUDA kernel source for AMD (gfx90a) too, about 30 s on 2 cores, so a CUDA-only construct in
# packages/gpu-common/kernels fails a test here instead of on an AMD machine. (nvcc comes with the image.)
ECOMLA_APT_PACKAGES=(libopenblas-dev python3-onnx hipcc libamdhip64-dev)
# Packages that must come from bookworm-backports (Dawn refuses older Mesa).
ECOMLA_BACKPORTS_PACKAGES=(mesa-vulkan-drivers)

say() { printf '\033[1m[ecomla]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; return 1; fi
}

ensure_node() {
  if ! command -v node >/dev/null; then say "Node.js 20+ is required (https://nodejs.org)"; exit 1; fi
  local major; major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$major" -lt 20 ]; then say "Node.js 20+ is required, found $(node --version)"; exit 1; fi
}

ensure_pnpm() {
  if command -v pnpm >/dev/null && [ "$(pnpm --version | cut -d. -f1)" = 10 ]; then return; fi
  say "installing pnpm 10 (npm i -g pnpm@10)"
  npm i -g pnpm@10 >/dev/null
}

apt_missing() {
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  echo "${missing[@]:-}"
}

# Backports packages whose installed major version is below 25 (Mesa) count as missing too.
backports_missing() {
  local missing=() p v
  for p in "$@"; do
    v="$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)"
    if [ -z "$v" ] || [ "${v%%.*}" -lt 25 ] 2>/dev/null; then missing+=("$p"); fi
  done
  echo "${missing[@]:-}"
}

ensure_system_packages() {
  [ ${#ECOMLA_APT_PACKAGES[@]} -gt 0 ] || [ ${#ECOMLA_BACKPORTS_PACKAGES[@]} -gt 0 ] || return 0
  if ! command -v apt-get >/dev/null; then
    say "not a Debian/Ubuntu machine: install ${ECOMLA_APT_PACKAGES[*]} ${ECOMLA_BACKPORTS_PACKAGES[*]} yourself"; return 0
  fi
  local missing; missing="$(apt_missing "${ECOMLA_APT_PACKAGES[@]}")"
  local missing_bp; missing_bp="$(backports_missing "${ECOMLA_BACKPORTS_PACKAGES[@]}")"
  local codename; codename="$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")"
  [ -z "$missing$missing_bp" ] && return 0
  say "installing system packages: $missing $missing_bp"
  export DEBIAN_FRONTEND=noninteractive
  if [ -n "$missing_bp" ] && [ "$codename" = bookworm ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" | as_root tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  fi
  as_root apt-get update -qq
  # shellcheck disable=SC2086
  [ -n "$missing" ] && as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # shellcheck disable=SC2086
  if [ -n "$missing_bp" ]; then
    # Debian 12 needs bookworm-backports for Mesa 25; newer releases (and Ubuntu) ship it directly.
    if [ "$codename" = bookworm ]; then
      as_root apt-get install -y -qq --no-install-recommends -t bookworm-backports $missing_bp >/dev/null
    else
      as_root apt-get install -y -qq --no-install-recommends $missing_bp >/dev/null
    fi
  fi
  return 0
}

ensure_workspace() {
  say "installing dependencies (pnpm install)"
  pnpm install --frozen-lockfile
  say "building (tsc -b)"
  pnpm run --silent build
}

setup_all() {
  ensure_node
  ensure_pnpm
  ensure_system_packages
  ensure_workspace
}
