#!/usr/bin/env node
import { EcomlaError } from "@ecomla/core";
import { buildProgram } from "./program.js";

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  if (err instanceof EcomlaError) {
    process.stderr.write(`ecomla: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    throw err;
  }
}
