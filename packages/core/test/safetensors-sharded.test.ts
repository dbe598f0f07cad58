// Sharded checkpoints: writer output checked by hand, round trip, index validation, folder modes.
import t from "tap";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SafetensorsCheckpoint, SafetensorsError, planShards, writeSafetensors, writeShardedSafetensors, type TensorToWrite } from "@ecomla/core";

const root = mkdtempSync(join(tmpdir(), "ecomla-st-sharded-"));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let folderCounter = 0;
const freshFolder = () => {
  const folder = join(root, `c${folderCounter++}`);
  mkdirSync(folder);
  return folder;
};

/** A small Llama-like set of tensors: values = index + offset, so each tensor is recognisable. */
function tinyModel(): TensorToWrite[] {
  const make = (name: string, dtype: TensorToWrite["dtype"], shape: number[], offset: number): TensorToWrite => {
    const numel = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: numel }, (_, i) => i + offset);
    return { name, dtype, shape, data: dtype === "I32" ? new Int32Array(values) : () => new Float32Array(values) };
  };
  return [
    make("model.embed_tokens.weight", "BF16", [16, 8], 0), // 256 bytes
    make("model.layers.0.self_attn.q_proj.weight", "F32", [8, 8], 100), // 256 bytes
    make("model.layers.0.mlp.up_proj.weight", "F16", [8, 4], 200), // 64 bytes
    make("model.layers.1.self_attn.q_proj.weight", "BF16", [8, 8], 300), // 128 bytes
    make("model.norm.weight", "F32", [8], 400), // 32 bytes
    make("positions", "I32", [3], 500), // 12 bytes
  ];
}

t.test("planShards is HF's greedy split; a too-big tensor gets its own shard", async (t) => {
  const model = tinyModel();
  // Sizes 256, 256, 64, 128, 32, 12 bytes.
  t.same(planShards(model, 200).map((s) => s.length), [1, 1, 2, 2]);
  t.same(planShards(model, 300).map((s) => s.length), [1, 1, 4]);
  t.same(planShards(model, 100).map((s) => s.length), [1, 1, 1, 1, 2]);
  t.same(planShards(model, 10_000).map((s) => s.length), [6]);
  t.same(planShards([], 10).length, 1);
});

t.test("sharded write: files, index by hand, round trip through the checkpoint", async (t) => {
  const folder = freshFolder();
  const model = tinyModel();
  const result = await writeShardedSafetensors(folder, model, { maxShardBytes: 200 });
  t.same(readdirSync(folder).sort(), [
    "model-00001-of-00004.safetensors",
    "model-00002-of-00004.safetensors",
    "model-00003-of-00004.safetensors",
    "model-00004-of-00004.safetensors",
    "model.safetensors.index.json",
  ]);
  const indexText = readFileSync(join(folder, "model.safetensors.index.json"), "utf8");
  const index = JSON.parse(indexText);
  t.equal(index.metadata.total_size, 256 + 256 + 64 + 128 + 32 + 12);
  t.equal(result.totalSize, index.metadata.total_size);
  t.same(Object.keys(index.weight_map), [...Object.keys(index.weight_map)].sort(), "weight_map sorted by name");
  t.same(index.weight_map, {
    "model.embed_tokens.weight": "model-00001-of-00004.safetensors",
    "model.layers.0.mlp.up_proj.weight": "model-00003-of-00004.safetensors",
    "model.layers.0.self_attn.q_proj.weight": "model-00002-of-00004.safetensors",
    "model.layers.1.self_attn.q_proj.weight": "model-00003-of-00004.safetensors",
    "model.norm.weight": "model-00004-of-00004.safetensors",
    positions: "model-00004-of-00004.safetensors",
  });
  t.match(indexText, /^\{\n  "metadata": \{\n    "total_size": 748\n  \},\n  "weight_map": \{\n    "model\.embed_tokens\.weight": "model-00001-of-00004\.safetensors",\n/);
  // Shard 3 by hand: BF16 before F16 (alignment order), format=pt metadata.
  const shard = readFileSync(join(folder, "model-00003-of-00004.safetensors"));
  const n = Number(shard.readBigUInt64LE(0));
  const header = JSON.parse(shard.subarray(8, 8 + n).toString());
  t.same(header.__metadata__, { format: "pt" });
  t.same(header["model.layers.1.self_attn.q_proj.weight"].data_offsets, [0, 128]);
  t.same(header["model.layers.0.mlp.up_proj.weight"].data_offsets, [128, 192]);
  t.equal(shard.readUInt16LE(8 + n + 2), 0x4396, "bf16(301) = 0x4396: 1.0010110|1·2^8 is a tie, kept LSB even → 300");

  const checkpoint = await SafetensorsCheckpoint.open(folder);
  t.teardown(() => checkpoint.close());
  t.equal(checkpoint.files.length, 4);
  t.equal(checkpoint.indexPath, join(folder, "model.safetensors.index.json"));
  t.same(checkpoint.indexMetadata, { total_size: 748 });
  t.same(checkpoint.metadata, { format: "pt" });
  t.same(checkpoint.names().sort(), model.map((m) => m.name).sort());
  t.equal(checkpoint.info("model.norm.weight").file, join(folder, "model-00004-of-00004.safetensors"));
  t.same([...(await checkpoint.readF32("model.norm.weight"))], [400, 401, 402, 403, 404, 405, 406, 407]);
  t.same([...(await checkpoint.readI32("positions"))], [500, 501, 502]);
  const embed = await checkpoint.readF32("model.embed_tokens.weight");
  t.same([embed[0], embed[127]], [0, 127], "integers below 256 are exact in bf16");
  const up = await checkpoint.readF32("model.layers.0.mlp.up_proj.weight");
  t.same([up[0], up[31]], [200, 231], "exact in f16");
  const q1 = await checkpoint.readF32("model.layers.1.self_attn.q_proj.weight");
  t.same([q1[0], q1[1], q1[2], q1[3]], [300, 300, 302, 304], "bf16 RNE of 300..303 (ulp 2, ties to even)");
  checkpoint.requireTensors(["model.norm.weight", "positions"]);
  t.throws(
    () => checkpoint.requireTensors(["model.norm.weight", "lm_head.weight", "model.layers.2.mlp.up_proj.weight"], "a 3-layer Llama"),
    /model\.safetensors\.index\.json: 2 of 3 tensors required by a 3-layer Llama not found: lm_head\.weight, model\.layers\.2\.mlp\.up_proj\.weight \(has 6 tensors/,
  );
  t.throws(() => checkpoint.info("lm_head.weight"), /tensor lm_head\.weight not found in .*model\.safetensors\.index\.json \(has 6 tensors, e\.g\. /);
  t.throws(() => checkpoint.expectShape("model.norm.weight", [16]), /tensor model\.norm\.weight in .*model-00004-of-00004\.safetensors: expected shape \[16\], found \[8\]/);
  t.ok(checkpoint.has("positions"));
});

t.test("a rewrite with fewer shards removes stale shards; a failed one leaves the old checkpoint", async (t) => {
  const folder = freshFolder();
  await writeShardedSafetensors(folder, tinyModel(), { maxShardBytes: 100 });
  t.equal(readdirSync(folder).filter((f) => f.endsWith(".safetensors")).length, 5);
  writeFileSync(join(folder, "model.safetensors"), "would shadow the index");
  await writeShardedSafetensors(folder, tinyModel(), { maxShardBytes: 10_000, metadata: { note: "x" } });
  t.same(readdirSync(folder).sort(), ["model-00001-of-00001.safetensors", "model.safetensors.index.json"]);
  const before = readFileSync(join(folder, "model-00001-of-00001.safetensors"));
  const failing = tinyModel().map((m, i) => (i === 4 ? { ...m, data: () => Promise.reject(new Error("out of disk (simulated)")) } : m));
  await t.rejects(writeShardedSafetensors(folder, failing, { maxShardBytes: 200 }), /out of disk \(simulated\)/);
  t.same(readdirSync(folder).sort(), ["model-00001-of-00001.safetensors", "model.safetensors.index.json"], "no new shards, no temporary files");
  t.same(readFileSync(join(folder, "model-00001-of-00001.safetensors")), before);
  const checkpoint = await SafetensorsCheckpoint.open(folder);
  t.same(checkpoint.metadata, { format: "pt", note: "x" });
  t.equal(checkpoint.names().length, 6);
  await checkpoint.close();
});

t.test("open: a folder with model.safetensors, a file, an index file; errors for empty folders", async (t) => {
  const folder = freshFolder();
  await writeSafetensors(join(folder, "model.safetensors"), [{ name: "w", dtype: "F32", shape: [2], data: new Float32Array([1, 2]) }]);
  for (const path of [folder, join(folder, "model.safetensors")]) {
    const checkpoint = await SafetensorsCheckpoint.open(path);
    t.equal(checkpoint.indexPath, undefined);
    t.same([...(await checkpoint.readF32("w"))], [1, 2]);
    t.throws(() => checkpoint.info("v"), /tensor v not found in .*model\.safetensors \(has 1 tensor, e\.g\. w\)/);
    await checkpoint.close();
  }
  const sharded = freshFolder();
  await writeShardedSafetensors(sharded, tinyModel(), { maxShardBytes: 200 });
  const viaIndex = await SafetensorsCheckpoint.open(join(sharded, "model.safetensors.index.json"));
  t.equal(viaIndex.files.length, 4);
  await viaIndex.close();

  const empty = freshFolder();
  writeFileSync(join(empty, "config.json"), "{}");
  await t.rejects(SafetensorsCheckpoint.open(empty), /c\d+: expected model\.safetensors or model\.safetensors\.index\.json in the folder, found config\.json/);
  await t.rejects(SafetensorsCheckpoint.open(join(root, "missing")), /missing: cannot open checkpoint: ENOENT/);
});

t.test("index validation", async (t) => {
  const make = async (index: string | object, shards: Record<string, TensorToWrite[]> = {}) => {
    const folder = freshFolder();
    for (const [file, tensors] of Object.entries(shards)) await writeSafetensors(join(folder, file), tensors);
    writeFileSync(join(folder, "model.safetensors.index.json"), typeof index === "string" ? index : JSON.stringify(index));
    return folder;
  };
  const w = (name: string): TensorToWrite => ({ name, dtype: "F32", shape: [1], data: new Float32Array([1]) });
  const expectError = async (folder: string, pattern: RegExp) => {
    const error = await SafetensorsCheckpoint.open(folder).then(() => undefined, (e: unknown) => e);
    t.type(error, SafetensorsError, String(pattern));
    t.match((error as Error | undefined)?.message, pattern);
  };
  await expectError(await make("{ not json"), /model\.safetensors\.index\.json: index is not valid JSON/);
  await expectError(await make("[]"), /index\.json: index must be a JSON object with a weight_map, found \[\]/);
  await expectError(await make({ metadata: {} }), /index\.json: weight_map must be an object .* found no weight_map/);
  await expectError(await make({ weight_map: { a: 3 } }), /tensor a in .*index\.json: weight_map value must be a shard file name .* found 3/);
  await expectError(await make({ weight_map: { a: "../evil.safetensors" } }), /tensor a in .*: weight_map value must be a shard file name in the index's folder, found "\.\.\/evil\.safetensors"/);
  await expectError(await make({ weight_map: { a: "s1.safetensors", b: "gone.safetensors", c: "gone.safetensors" } }, { "s1.safetensors": [w("a")] }), /index\.json: weight_map names shard gone\.safetensors \(for tensor b and 1 more\), which does not exist in /);
  await expectError(
    await make({ weight_map: { a: "s1.safetensors", b: "s1.safetensors" } }, { "s1.safetensors": [w("a")], "s2.safetensors": [w("b")] }),
    /tensor b in .*index\.json: weight_map places it in s1\.safetensors, but that shard does not hold it \(s1\.safetensors has 1 tensors\)/,
  );
  await expectError(
    await make({ weight_map: { a: "s1.safetensors", b: "s2.safetensors" } }, { "s1.safetensors": [w("a"), w("b")], "s2.safetensors": [w("b")] }),
    /tensor b in .*index\.json: appears in two shards, s1\.safetensors and s2\.safetensors; expected exactly one/,
  );
  // A corrupt shard surfaces its own error (file named), and the other shards get closed.
  const corrupt = await make({ weight_map: { a: "s1.safetensors", b: "s2.safetensors" } }, { "s1.safetensors": [w("a")] });
  writeFileSync(join(corrupt, "s2.safetensors"), Buffer.from([1, 0]));
  await expectError(corrupt, /s2\.safetensors: file is 2 bytes, shorter than the 8-byte header length prefix/);
  await t.rejects(writeShardedSafetensors(freshFolder(), tinyModel(), { maxShardBytes: 0 }), /maxShardBytes must be a positive number, found 0/);
});
