// `ecomla bench decode` over a GQA/MHA base and its MLA conversion in one run (ecomla's engine
// alone): cache bytes per token and their ratio from the configs, weight bytes against the
// safetensors file, bytes read per token and the per-cell ratio to the first model.
import t from "tap";
import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, "../dist/bin.js");
const base = resolve(here, "../../core/test/fixtures/llama/mha-f32");
const mla = resolve(here, "../../core/test/fixtures/mla/mha-f32-full");

t.test("bench decode: base and conversion, cache bytes, weight bytes, ratios", async (t) => {
  const r = spawnSync(process.execPath, [bin, "bench", "decode", "-m", base, mla, "--engine", "none", "--context", "16", "--batch", "1,2", "--tokens", "2", "--no-triad", "--json"], { encoding: "utf8" });
  t.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  const config = (dir: string) => JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  const b = config(base);
  const gqaElements = b.num_hidden_layers * 2 * b.num_key_value_heads * (b.head_dim ?? b.hidden_size / b.num_attention_heads);
  const m = JSON.parse(readFileSync(join(mla, "mla_layer_config.json"), "utf8")); // r_kv, d_rope
  const mlaElements = b.num_hidden_layers * (m.kv_lora_rank + m.qk_rope_head_dim);
  const [first, second] = report.models;
  t.equal(first.cachedElementsPerToken, gqaElements, `base: layers × 2 × n_kv × d_h = ${gqaElements}`);
  t.equal(second.cachedElementsPerToken, mlaElements, `MLA: layers × (r_kv + d_rope) = ${mlaElements}`);
  t.equal(first.cacheBytesPerToken, gqaElements * 4);
  t.equal(second.cacheBytesPerToken16, mlaElements * 2);
  t.equal(second.cacheRatioVsFirst, gqaElements / mlaElements);
  // f32 weights: the safetensors file is the weights plus a small JSON header.
  const fileBytes = statSync(join(base, "model.safetensors")).size;
  t.ok(first.weightBytes <= fileBytes && fileBytes - first.weightBytes < 4096, `weights ${first.weightBytes} B vs file ${fileBytes} B`);
  t.equal(report.cells.length, 4, "2 models × 1 context × 2 batch sizes");
  for (const c of report.cells) {
    const info = report.models.find((x: { model: string }) => x.model === c.model);
    t.equal(c.bytesReadPerToken, (info.weightBytes + c.batch * c.context * info.cacheBytesPerToken) / c.batch, "bytes read per token");
    t.ok(c.ecomla.tokensPerSecond > 0);
    if (c.model === mla) {
      const same = report.cells.find((x: { model: string; batch: number }) => x.model === base && x.batch === c.batch);
      t.ok(Math.abs(c.vsFirstModel - c.ecomla.tokensPerSecond / same.ecomla.tokensPerSecond) < 1e-9, "vsFirstModel = MLA ÷ base tokens/s");
    }
  }
});

t.test("bench decode: a folder without config.json is a clear error before any timing", async (t) => {
  const r = spawnSync(process.execPath, [bin, "bench", "decode", "-m", base, "/nonexistent-model-dir", "--engine", "none", "--context", "16", "--batch", "1"], { encoding: "utf8" });
  t.equal(r.status, 2);
  t.equal(r.stdout, "", "nothing was timed");
  t.match(r.stderr, /^ecomla: cannot read \/nonexistent-model-dir\/config\.json: ENOENT/);
  t.notMatch(r.stderr, /at .*\.js:\d+/, "no stack trace");
});
