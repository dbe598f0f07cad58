#!/usr/bin/env bash
# Quick start, command 2: install what is missing, build, and run every test. Safe to repeat.
# Ends with the line `N passed, N failed`; exits non-zero on any failure.
source "$(dirname "$0")/lib/setup.sh"
setup_all
say "running tests (tap)"
mkdir -p .ci-report
set +e
pnpm exec tap -R tap "$@" | tee .ci-report/tap.txt | node scripts/tap-summary.mjs
status=("${PIPESTATUS[@]}")
set -e
[ "${status[0]}" = 0 ] && [ "${status[2]}" = 0 ]
