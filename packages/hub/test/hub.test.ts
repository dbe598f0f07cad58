import t from "tap";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { hubIdOfPath, hubSettings, parseHubId, pickDataFiles, repoFolderName, resolveDatasetSource, resolveModelSource } from "../src/index.js";
import { startFakeHub, type FakeRepo } from "./fake-hub.js";

const here = dirname(fileURLToPath(import.meta.url));
const tiny = resolve(here, "../../../examples/tiny-llama");
const SHA = "0123456789abcdef0123456789abcdef01234567";

function tinyRepo(extra: Partial<FakeRepo> = {}): FakeRepo {
  const files: Record<string, Uint8Array> = {};
  for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"]) files[f] = readFileSync(join(tiny, f));
  files["pytorch_model.bin"] = new Uint8Array(2048); // not a file ecomla reads: must not be fetched
  files["README.md"] = new TextEncoder().encode("---\nlicense: mit\n---\n# tiny\n");
  return { type: "model", id: "ecomla-test/tiny-llama", sha: SHA, files, ...extra };
}

t.test("Hub ids parse; paths do not", async (t) => {
  t.same(parseHubId("meta-llama/Llama-3.2-1B"), { repo: "meta-llama/Llama-3.2-1B", revision: "main" });
  t.same(parseHubId("org/name@v1.0"), { repo: "org/name", revision: "v1.0" });
  t.equal(parseHubId("./org/name"), null);
  t.equal(parseHubId("/abs/dir"), null);
  t.equal(parseHubId("a/b/c"), null);
  t.equal(parseHubId("../x"), null);
  t.equal(repoFolderName("org/name", "dataset"), "datasets--org--name");
  t.same(hubIdOfPath(`/c/hub/models--org--name/snapshots/${SHA}`), { type: "model", repo: "org/name", commit: SHA });
  t.same(pickDataFiles(["data/test-0.parquet", "data/train-0.parquet", "data/train-1.parquet", "x.jsonl"]), ["data/train-0.parquet", "data/train-1.parquet"]);
});

t.test("settings come from the environment as huggingface_hub reads it", async (t) => {
  const s = hubSettings({ HF_HOME: "/h", HF_ENDPOINT: "http://e/", HF_TOKEN: "hf_x", HF_HUB_OFFLINE: "1" });
  t.same(s, { cacheDir: "/h/hub", endpoint: "http://e", token: "hf_x", offline: true });
  t.equal(hubSettings({ HF_HUB_CACHE: "/c", HOME: "/nohome" }).cacheDir, "/c");
});

t.test("a Hub model lands in the cache layout; resumes a cut download; works offline; names a missing file", async (t) => {
  const repo = tinyRepo({ token: "hf_secret" });
  const hub = await startFakeHub([repo]);
  t.teardown(() => hub.stop());
  const cacheDir = mkdtempSync(join(tmpdir(), "ecomla-hub-"));
  const settings = { cacheDir, endpoint: hub.endpoint, token: "hf_secret", offline: false };

  await t.rejects(resolveModelSource("ecomla-test/tiny-llama", { settings: { ...settings, token: undefined } }), /gated or private: set HF_TOKEN/);

  hub.cutNext("model.safetensors", 100_000);
  await t.rejects(resolveModelSource("ecomla-test/tiny-llama", { settings }), /stopped at .* bytes \(run again to resume\)/);
  const storage = join(cacheDir, "models--ecomla-test--tiny-llama");
  const partial = readdirSync(join(storage, "blobs")).find((f) => f.endsWith(".incomplete"));
  t.ok(partial, "the cut download left an .incomplete blob");

  hub.requests.length = 0;
  const progress: number[] = [];
  const dir = await resolveModelSource("ecomla-test/tiny-llama", { settings, onProgress: (f, done) => f === "model.safetensors" && progress.push(done) });
  t.equal(dir, join(storage, "snapshots", SHA));
  const resumed = hub.requests.find((r) => r.url.endsWith("/resolve/" + SHA + "/model.safetensors") && r.range && !r.range.startsWith("bytes=0-"));
  t.ok(resumed, `the download resumed with a Range request (${resumed?.range})`);
  t.ok(progress[0]! >= 100_000 && progress.at(-1) === repo.files["model.safetensors"]!.byteLength, "progress starts where the cut left and ends at the size");
  t.ok(hub.requests.every((r) => r.authorization === "Bearer hf_secret"), "the token goes with every request");

  // The layout Python's huggingface_hub writes: refs/main → commit; snapshot files are relative symlinks into blobs/.
  t.equal(readFileSync(join(storage, "refs", "main"), "utf8"), SHA);
  const weights = join(dir, "model.safetensors");
  t.ok(lstatSync(weights).isSymbolicLink());
  const sha256 = createHash("sha256").update(repo.files["model.safetensors"]!).digest("hex");
  t.equal(readlinkSync(weights), `../../blobs/${sha256}`, "LFS files are stored under their sha256");
  t.same(readFileSync(weights), Buffer.from(repo.files["model.safetensors"]!));
  t.same(readdirSync(dir).sort(), ["README.md", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"], "only the files ecomla reads");

  // A second resolve asks the Hub for the revision only.
  hub.requests.length = 0;
  t.equal(await resolveModelSource("ecomla-test/tiny-llama", { settings }), dir);
  t.same(hub.requests.map((r) => r.url.split("?")[0]), ["/api/models/ecomla-test/tiny-llama/revision/main"]);

  await hub.stop();
  const offline = { ...settings, offline: true };
  t.equal(await resolveModelSource("ecomla-test/tiny-llama", { settings: offline }), dir, "offline: the cache answers");
  t.equal(await resolveModelSource(`ecomla-test/tiny-llama@${SHA}`, { settings: offline }), dir, "offline: a commit needs no ref");
  await t.rejects(resolveModelSource("ecomla-test/tiny-llama@v2", { settings: offline }), /not in the cache \(no .*refs\/v2\) and HF_HUB_OFFLINE=1/);
  await t.rejects(resolveModelSource("ecomla-test/other", { settings: offline }), /ecomla-test\/other@main is not in the cache/);
  const { rmSync } = await import("node:fs");
  rmSync(join(dir, "config.json"));
  await t.rejects(resolveModelSource("ecomla-test/tiny-llama", { settings: offline }), /Hub model ecomla-test\/tiny-llama@main \(offline, HF_HUB_OFFLINE=1\): config.json is missing from the cache/);
  t.equal(await resolveModelSource(tiny, { settings: offline }), tiny, "a local folder is itself");
});

t.test("a Hub dataset: its train parquet files, into datasets--org--name", async (t) => {
  const bytes = (s: string) => new TextEncoder().encode(s);
  const hub = await startFakeHub([{ type: "dataset", id: "org/docs", sha: SHA, files: { "README.md": bytes("# d"), "data/train-00000-of-00001.parquet": bytes("PAR1…"), "data/test-00000-of-00001.parquet": bytes("PAR1") } }]);
  t.teardown(() => hub.stop());
  const cacheDir = mkdtempSync(join(tmpdir(), "ecomla-hub-"));
  const files = await resolveDatasetSource("org/docs", { settings: { cacheDir, endpoint: hub.endpoint, offline: false } });
  t.same(files, [join(cacheDir, "datasets--org--docs", "snapshots", SHA, "data/train-00000-of-00001.parquet")]);
  t.ok(existsSync(files[0]!));
  await hub.stop();
  t.same(await resolveDatasetSource("org/docs", { settings: { cacheDir, endpoint: hub.endpoint, offline: true } }), files);
});

t.test("push: checks before any request; the files it would upload", async (t) => {
  const { filesToPush, pushModel } = await import("../src/index.js");
  const { cpSync, writeFileSync, mkdirSync } = await import("node:fs");
  const dir = mkdtempSync(join(tmpdir(), "ecomla-push-"));
  for (const f of ["config.json", "tokenizer.json", "model.safetensors"]) cpSync(join(tiny, f), join(dir, f));
  writeFileSync(join(dir, "metrics.jsonl"), "{}\n");
  writeFileSync(join(dir, "training_curves.svg"), "<svg/>");
  mkdirSync(join(dir, "checkpoint-2"));
  const settings = { cacheDir: dir, endpoint: "http://127.0.0.1:9", token: "hf_x", offline: false };
  await t.rejects(pushModel(dir, "org/name", { settings }), /no README.md \(model card\)/);
  writeFileSync(join(dir, "README.md"), "---\nlibrary_name: ecomla\n---\n");
  await t.rejects(pushModel(dir, "not a repo", { settings }), /--repo: expected a Hub repo id org\/name, found "not a repo"/);
  await t.rejects(pushModel(dir, "org/name", { settings: { ...settings, token: undefined } }), /no access token: set HF_TOKEN/);
  await t.rejects(pushModel(dir, "org/name", { settings: { ...settings, offline: true } }), /HF_HUB_OFFLINE=1 forbids uploading/);
  t.same(filesToPush(dir), ["README.md", "config.json", "model.safetensors", "tokenizer.json", "training_curves.svg"], "weights, configs, card and plots; no logs or checkpoints");
});

t.test("push: uploads configs, weights (LFS) and the card; the repo then resolves to the same bytes", async (t) => {
  const { pushModel } = await import("../src/index.js");
  const { cpSync, writeFileSync } = await import("node:fs");
  const hub = await startFakeHub([]);
  t.teardown(() => hub.stop());
  const dir = mkdtempSync(join(tmpdir(), "ecomla-push-"));
  for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"]) cpSync(join(tiny, f), join(dir, f));
  writeFileSync(join(dir, "README.md"), "---\nlibrary_name: ecomla\ntags: [mla]\n---\n# pushed\n");
  const settings = { cacheDir: mkdtempSync(join(tmpdir(), "ecomla-hub-")), endpoint: hub.endpoint, token: "hf_writer", offline: false };
  const out = await pushModel(dir, "me/tiny-mla", { settings });
  t.same(out.files, ["README.md", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
  t.match(out.commit, /^[0-9a-f]{40}$/);
  t.ok(hub.requests.some((r) => r.url === "/api/repos/create"), "the missing repo was created");
  t.ok(hub.requests.some((r) => r.url.startsWith("/lfs-upload/")), "the weights went through LFS");
  const back = await resolveModelSource("me/tiny-mla", { settings });
  for (const f of out.files) t.same(readFileSync(join(back, f)), readFileSync(join(dir, f)), `${f} round-trips`);
});

t.test("a tokenizer-only repo resolves with only: tokenizer (and not as a model)", async (t) => {
  const files = { "tokenizer.json": readFileSync(join(tiny, "tokenizer.json")), "tokenizer_config.json": readFileSync(join(tiny, "tokenizer_config.json")) };
  const hub = await startFakeHub([{ type: "model", id: "org/tok", sha: SHA, files }]);
  t.teardown(() => hub.stop());
  const settings = { cacheDir: mkdtempSync(join(tmpdir(), "ecomla-hub-")), endpoint: hub.endpoint, offline: false };
  await t.rejects(resolveModelSource("org/tok", { settings }), /has no config.json; found tokenizer.json, tokenizer_config.json/);
  const dir = await resolveModelSource("org/tok", { settings, only: "tokenizer" });
  t.same(readdirSync(dir).sort(), ["tokenizer.json", "tokenizer_config.json"]);
  t.equal(await resolveModelSource("org/tok", { settings: { ...settings, offline: true }, only: "tokenizer" }), dir);
});
