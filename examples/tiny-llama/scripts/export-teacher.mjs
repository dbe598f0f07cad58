#!/usr/bin/env node
// Copies a pretrained model folder (f32 safetensors, e.g. runs/pretrain-tiny-llama) into this
// example as the bundled teacher: bf16 weights (round-to-nearest-even), config.json with
// torch_dtype bfloat16. Usage: node examples/tiny-llama/scripts/export-teacher.mjs RUN_DIR
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsCheckpoint, writeSafetensors } from "@ecomla/core";

const here = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const src = process.argv[2];
if (!src) {
  console.error("usage: export-teacher.mjs RUN_DIR");
  process.exit(2);
}
const ckpt = await SafetensorsCheckpoint.open(src);
const tensors = ckpt.names().sort().map((name) => ({ name, dtype: "BF16", shape: [...ckpt.info(name).shape], data: () => ckpt.readF32(name) }));
const written = await writeSafetensors(join(here, "model.safetensors"), tensors, { format: "pt" });
await ckpt.close();
const config = JSON.parse(readFileSync(join(src, "config.json"), "utf8"));
config.torch_dtype = "bfloat16";
writeFileSync(join(here, "config.json"), JSON.stringify(config, null, 2) + "\n");
console.log(JSON.stringify({ out: here, bytes: written.byteLength, tensors: tensors.length }));
