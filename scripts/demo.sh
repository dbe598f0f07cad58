#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, and run the main job — the demo on the
# bundled tiny teacher (convert at the seed's KV fractions, distil, evaluate, print the table).
# Safe to repeat: a finished student is reused. Extra flags go to `ecomla demo` (e.g. --quick).
source "$(dirname "$0")/lib/setup.sh"
setup_all
pnpm --silent ecomla demo "$@"
