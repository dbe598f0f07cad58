// `ecomla convert` and `ecomla kv-report` end to end on a tiny fixture checkpoint.
import t from "tap";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ReferenceBackend, SafetensorsCheckpoint, Tensor, loadLlama, tidy } from "@ecomla/core";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, "../dist/bin.js");
const source = resolve(here, "../../core/test/fixtures/llama/mha-f32");

function ecomla(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test("convert a hybrid, report its cache, and run it", async (t) => {
  const out = join(mkdtempSync(join(tmpdir(), "ecomla-cli-convert-")), "mla");
  const r = ecomla(["convert", "-m", source, "-o", out, "--kv-rank", "16", "--q-rank", "24", "--rope-dim", "4", "--layers", "1", "-b", "reference", "--json"]);
  t.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  t.match(report, { converter: "xecomla", baseElementsPerToken: 128, elementsPerToken: 64 + 20, svd: "reference" });
  t.same(report.layers.map((l: { layer: number }) => l.layer), [1]);
  t.same(JSON.parse(readFileSync(join(out, "MLA_config.json"), "utf8")).attn_layers, [0]);

  const kv = ecomla(["kv-report", "-m", out, "--json"]);
  t.equal(kv.code, 0, kv.stderr);
  const k = JSON.parse(kv.stdout);
  t.same(k.layers.map((l: { kind: string; elementsPerToken: number }) => [l.kind, l.elementsPerToken]), [["gqa", 64], ["mla", 20]]);
  t.equal(k.bytesPerToken, 84 * 2, "bf16 bytes");
  t.equal(k.compressionRatio, 128 / 84);

  // `logits` runs the hybrid; it must equal the library's forward of the same folder.
  const ids = [5, 9, 30, 2, 77];
  const file = join(out, "logits.safetensors");
  const l = ecomla(["logits", "-m", out, "--ids", ids.join(","), "-o", file, "-b", "reference"]);
  t.equal(l.code, 0, l.stderr);
  const be = new ReferenceBackend();
  const { model } = await loadLlama(out, be);
  const want = tidy(() => model.forward(Tensor.from(be, Int32Array.from(ids), [1, ids.length])));
  const wantData = (await want.data()) as Float32Array;
  const ckpt = await SafetensorsCheckpoint.open(file);
  const got = await ckpt.readF32("logits");
  await ckpt.close();
  t.equal(got.reduce((m, v, i) => Math.max(m, Math.abs(v - wantData[i]!)), 0), 0, "same numbers as the library");
  want.dispose();
  model.dispose();
});

t.test("kv-report on the base model is 1×; text output names the ratio", async (t) => {
  const r = ecomla(["kv-report", "-m", source]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /100\.0% of the base model's cache \(128 elements\/token\): 1\.00× smaller/);
});

t.test("bad flags are clear errors", async (t) => {
  const out = mkdtempSync(join(tmpdir(), "ecomla-cli-convert-"));
  t.match(ecomla(["convert", "-m", source, "-o", out, "--layers", "0,5", "-b", "reference"]).stderr, /--layers: expected "all" or comma-separated layer indices in \[0, 2\), found "0,5"/);
  t.match(ecomla(["convert", "-m", source, "-o", out, "--rope-dim", "3", "-b", "reference"]).stderr, /--rope-dim: expected an even integer in \[0, 8\], found "3"/);
  t.match(ecomla(["convert", "-m", source, "-o", out, "--converter", "nope", "-b", "reference"]).stderr, /unknown converter "nope"; registered converter names: "partial-rope", "random", "xecomla"/);
  t.match(ecomla(["convert", "-m", source, "-o", out, "--kv-rank", "72", "-b", "reference"]).stderr, /kv_lora_rank: rank 72 exceeds min\(64, 32\) = 32/);
});
