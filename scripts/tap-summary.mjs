#!/usr/bin/env node
// Reads raw TAP on stdin (from `tap -R tap`), prints one line per test file and the details of
// every failure, then the line CI reads: `N passed, N failed`. N counts leaf assertions; a subtest
// or file that closes "not ok" with no failing assertion of its own (a crash, a timeout, a bad
// plan) counts as one failure.
import { Parser } from "tap-parser";

const totals = { passed: 0, failed: 0, skipped: 0 };

/** Watch one parser; returns its subtree's failure count (live). */
function watch(parser, depth) {
  const stats = { failures: 0 };
  let lastChild = null;
  parser.on("child", (child) => {
    lastChild = watch(child, depth + 1);
  });
  parser.on("assert", (res) => {
    if (res.skip || res.todo) {
      if (!res.closingTestPoint) totals.skipped++;
      return;
    }
    if (res.closingTestPoint) {
      const child = lastChild ?? { failures: 0 };
      lastChild = null;
      if (!res.ok && child.failures === 0) {
        child.failures = 1;
        totals.failed++;
        process.stdout.write(`  not ok: ${res.fullname} (closed without a failing assertion: ${JSON.stringify(res.diag ?? {}).slice(0, 500)})\n`);
      }
      stats.failures += child.failures;
      if (depth === 0) process.stdout.write(`${res.ok ? "ok    " : "FAILED"} ${res.name}${res.time ? ` (${Math.round(res.time)} ms)` : ""}\n`);
      return;
    }
    if (res.ok) {
      totals.passed++;
    } else {
      totals.failed++;
      stats.failures++;
      process.stdout.write(`  not ok: ${res.fullname}\n`);
      if (res.diag) process.stdout.write(`    ${JSON.stringify(res.diag).slice(0, 2000)}\n`);
    }
  });
  return stats;
}

const root = new Parser();
watch(root, 0);
root.on("complete", (results) => {
  if (!results.ok && totals.failed === 0) totals.failed = 1; // never report green for a red run
  const skipped = totals.skipped ? `, ${totals.skipped} skipped` : "";
  process.stdout.write(`\n${totals.passed} passed, ${totals.failed} failed${skipped}\n`);
  process.exitCode = totals.failed > 0 ? 1 : 0;
});
process.stdin.pipe(root);
