// Acceptance: a fake Hub on 127.0.0.1 (the Hub's URL layout) serves the bundled tiny teacher and a
// parquet dataset; `ecomla convert` and `ecomla distill` run from Hub ids with HF_ENDPOINT; files
// land in the Hugging Face cache layout; a second run with the server stopped works offline
// (HF_HUB_OFFLINE=1); a file missing offline is a clear error.
import t from "tap";
import { execFile, spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readCardFrontMatter } from "@ecomla/train";
import { startFakeHub } from "../../hub/test/fake-hub.js";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, "../dist/bin.js");
const tiny = resolve(here, "../../../examples/tiny-llama");
const writeParquetHelper = resolve(here, "../../train/test/helpers/write-parquet.mjs");
const SHA = "feedfacefeedfacefeedfacefeedfacefeedface";
const DATA_SHA = "0000000000000000000000000000000000d47a00";

function ecomla(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Asynchronous: the fake Hub answers from this process's event loop.
  return new Promise((done) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

t.test("convert + distill from Hub ids, then offline from the cache", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "ecomla-hub-cli-"));
  const docs = readFileSync(join(tiny, "tasks/last-word.jsonl"), "utf8").trim().split("\n").slice(0, 80).map((l) => (JSON.parse(l) as { context: string }).context);
  const parquet = join(root, "train-00000-of-00001.parquet");
  const w = spawnSync(process.execPath, [writeParquetHelper], { input: JSON.stringify({ file: parquet, columnData: [{ name: "text", data: docs, type: "STRING" }], rowGroupSize: 32 }), encoding: "utf8" });
  t.equal(w.status, 0, w.stderr);
  const modelFiles = Object.fromEntries(["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"].map((f) => [f, readFileSync(join(tiny, f))]));
  modelFiles["README.md"] = Buffer.from("---\nlicense: mit\n---\n# tiny llama\n");
  const hub = await startFakeHub([
    { type: "model", id: "ecomla-test/tiny-llama", sha: SHA, files: modelFiles },
    { type: "dataset", id: "ecomla-test/docs", sha: DATA_SHA, files: { "data/train-00000-of-00001.parquet": readFileSync(parquet), "README.md": Buffer.from("# docs") } },
  ]);
  t.teardown(() => hub.stop());
  const env = { HF_HOME: join(root, "hf"), HF_ENDPOINT: hub.endpoint, HF_HUB_OFFLINE: "0" };
  const cache = join(root, "hf", "hub");

  const convert = (out: string, extra: Record<string, string> = {}) => ecomla(["convert", "-m", "ecomla-test/tiny-llama", "-o", out, "--kv-rank", "32", "-b", "reference", "--json"], { ...env, ...extra });
  const c1 = await convert(join(root, "student"));
  t.equal(c1.code, 0, c1.stderr);
  t.ok(existsSync(join(root, "student", "model.safetensors.index.json")));
  const card = readCardFrontMatter(join(root, "student"));
  t.same(card, { base_model: "ecomla-test/tiny-llama", library_name: "ecomla", tags: ["mla", "kv-cache-compression", "x-ecomla"], license: "mit" }, "convert's model card names the Hub base and copies its license");
  const snapshot = join(cache, "models--ecomla-test--tiny-llama", "snapshots", SHA);
  t.equal(readFileSync(join(cache, "models--ecomla-test--tiny-llama", "refs", "main"), "utf8"), SHA, "refs/main names the commit");
  t.ok(lstatSync(join(snapshot, "model.safetensors")).isSymbolicLink(), "snapshot files link into blobs/");

  const config = (name: string) => {
    const file = join(root, `${name}.json`);
    writeFileSync(file, JSON.stringify({
      student: { base: "ecomla-test/tiny-llama", convert: { kv_rank: 32 } }, teacher: "ecomla-test/tiny-llama", dataset: "ecomla-test/docs",
      backend: "reference", seq_len: 16, per_device_train_batch_size: 2, learning_rate: 1e-3, max_steps: 2, eval_steps: 0, save_steps: 0,
      validation_split: 0.05, output_dir: join(root, name), seed: 1,
    }));
    return file;
  };
  const d1 = await ecomla(["--config", config("distill-online"), "distill", "--json"], env);
  t.equal(d1.code, 0, d1.stderr);
  t.equal((JSON.parse(d1.stdout) as { steps: number }).steps, 2);
  const distilled = readCardFrontMatter(join(root, "distill-online"));
  t.same(distilled, { base_model: "ecomla-test/tiny-llama", library_name: "ecomla", tags: ["mla", "kv-cache-compression", "x-ecomla"], datasets: ["ecomla-test/docs"], license: "mit" }, "distill's model card");
  t.match(readFileSync(join(root, "distill-online", "README.md"), "utf8"), /Trained on 64 tokens of `ecomla-test\/docs`/);
  t.same(readdirSync(join(cache, "datasets--ecomla-test--docs", "snapshots", DATA_SHA, "data")), ["train-00000-of-00001.parquet"], "the dataset in datasets--org--name, nothing else beside it");
  t.ok(existsSync(join(root, "hf", "ecomla", "token-cache")), "token caches beside the hub cache, not inside it");

  await hub.stop();
  const offline = { HF_HUB_OFFLINE: "1" };
  const c2 = await convert(join(root, "student-offline"), offline);
  t.equal(c2.code, 0, c2.stderr);
  const shard = "model-00001-of-00001.safetensors";
  t.same(readFileSync(join(root, "student-offline", shard)), readFileSync(join(root, "student", shard)), "offline conversion = online conversion");
  const d2 = await ecomla(["--config", config("distill-offline"), "distill", "--json"], { ...env, ...offline });
  t.equal(d2.code, 0, d2.stderr);
  t.same(JSON.parse(d2.stdout).finalLoss ?? null, JSON.parse(d1.stdout).finalLoss ?? null, "the same run offline");

  rmSync(join(snapshot, "tokenizer.json"));
  rmSync(join(snapshot, "config.json"));
  const c3 = await convert(join(root, "student-missing"), offline);
  t.not(c3.code, 0);
  t.match(c3.stderr, /Hub model ecomla-test\/tiny-llama@main \(offline, HF_HUB_OFFLINE=1\): config.json is missing from the cache/);
});
