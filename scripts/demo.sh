#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, and run the main job. Safe to repeat.
source "$(dirname "$0")/lib/setup.sh"
setup_all
pnpm --silent ecomla --help "$@"
