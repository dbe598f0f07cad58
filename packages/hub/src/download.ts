import { createWriteStream, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, copyFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { Readable } from "node:stream";
import { datasetInfo, downloadFile, fileDownloadInfo, HubApiError, listFiles, modelInfo, type RepoDesignation } from "@huggingface/hub";
import { ConfigError } from "@ecomla/core";
import { hubSettings, parseHubId, repoFolderName, type HubRef, type HubSettings } from "./env.js";

/** Bytes of one file so far; called as a download goes. */
export type DownloadProgress = (file: string, doneBytes: number, totalBytes: number) => void;

/** Options of {@link resolveModelSource} and {@link resolveDatasetSource}. */
export interface ResolveOptions {
  /** Where the Hub and the cache are (default: {@link hubSettings} of `process.env`). */
  settings?: HubSettings;
  onProgress?: DownloadProgress;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
  /** "tokenizer": only the tokenizer and config files (a `tokenizer:` entry); default: the whole model. */
  only?: "tokenizer";
}

type RepoType = "model" | "dataset";

/** Files of a model repo that ecomla reads: configs, tokenizer files, the model card, safetensors and their index. */
const MODEL_FILES = new Set([
  "config.json", "generation_config.json", "MLA_config.json", "mla_layer_config.json",
  "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
  "README.md", "model.safetensors.index.json",
]);
const INDEX = "model.safetensors.index.json";
const COMMIT = /^[0-9a-f]{40}$/;

/** Whether ecomla needs a model repo file (top-level config, tokenizer, card, safetensors). */
export function isModelFile(path: string): boolean {
  return !path.includes("/") && (MODEL_FILES.has(path) || path.endsWith(".safetensors"));
}

/**
 * A model as a local folder: an existing path is returned as is; a Hub id `org/name[@revision]`
 * is fetched into the Hugging Face cache (only the files ecomla reads; resumed where a previous
 * download stopped) and its snapshot folder returned. Offline (`HF_HUB_OFFLINE=1`), the cache alone
 * answers, and a missing file is an error naming it.
 */
export async function resolveModelSource(spec: string, options: ResolveOptions = {}): Promise<string> {
  if (existsSync(spec)) return resolve(spec);
  const ref = parseHubId(spec);
  if (!ref) return spec;
  const settings = options.settings ?? hubSettings();
  const storage = join(settings.cacheDir, repoFolderName(ref.repo, "model"));
  const check = (snapshot: string, id: string, files: () => string[]) =>
    options.only === "tokenizer" ? checkTokenizerSnapshot(snapshot, id, files) : checkModelSnapshot(snapshot, id, files);
  if (settings.offline) {
    const snapshot = offlineSnapshot(ref, storage, "model");
    check(snapshot, `${ref.repo}@${ref.revision} (offline, HF_HUB_OFFLINE=1)`, () => listSnapshot(snapshot));
    return snapshot;
  }
  const { commit, files } = await repoInfo(ref, "model", settings, options.fetch);
  const ctx = { ref, type: "model" as const, storage, commit, settings, options };
  writeRef(storage, ref.revision, commit);
  let wanted = files.filter(isModelFile);
  if (options.only === "tokenizer") {
    wanted = wanted.filter((f) => !f.endsWith(".safetensors") && f !== INDEX);
  } else {
    if (!files.includes("config.json")) throw new ConfigError(`Hub model ${ref.repo}@${ref.revision} (${settings.endpoint}) has no config.json; found ${files.slice(0, 12).join(", ") || "no files"}`);
    if (files.includes(INDEX)) {
      // A sharded checkpoint: the shards its index names, not any other safetensors beside them.
      const shards = new Set(Object.values(readIndex(await fetchIntoCache(ctx, INDEX))));
      wanted = wanted.filter((f) => !f.endsWith(".safetensors") || shards.has(f));
    }
  }
  for (const f of wanted) await fetchIntoCache(ctx, f);
  const snapshot = join(storage, "snapshots", commit);
  mkdirSync(snapshot, { recursive: true });
  check(snapshot, `${ref.repo}@${ref.revision}`, () => files);
  return snapshot;
}

/**
 * A dataset as local files: an existing path is itself; a Hub dataset id `org/name[@revision]`
 * is fetched into the cache: its parquet files (the `train` split's when the repo names splits),
 * else its JSONL files. Offline, the files in the cached snapshot.
 */
export async function resolveDatasetSource(spec: string, options: ResolveOptions = {}): Promise<string[]> {
  if (existsSync(spec)) return [resolve(spec)];
  const ref = parseHubId(spec);
  if (!ref) return [spec];
  const settings = options.settings ?? hubSettings();
  const storage = join(settings.cacheDir, repoFolderName(ref.repo, "dataset"));
  if (settings.offline) {
    const snapshot = offlineSnapshot(ref, storage, "dataset");
    const files = pickDataFiles(listSnapshot(snapshot));
    if (files.length === 0) throw new ConfigError(`Hub dataset ${ref.repo}@${ref.revision} (offline, HF_HUB_OFFLINE=1): no parquet or JSONL file in the cached snapshot ${snapshot}`);
    return files.map((f) => join(snapshot, f));
  }
  const { commit, files } = await repoInfo(ref, "dataset", settings, options.fetch);
  writeRef(storage, ref.revision, commit);
  const picked = pickDataFiles(files);
  if (picked.length === 0) throw new ConfigError(`Hub dataset ${ref.repo}@${ref.revision} (${settings.endpoint}) has no parquet or JSONL file; found ${files.slice(0, 12).join(", ") || "no files"}`);
  const ctx = { ref, type: "dataset" as const, storage, commit, settings, options };
  const out: string[] = [];
  for (const f of picked) out.push(await fetchIntoCache(ctx, f));
  return out;
}

/** The data files of a dataset repo: parquet (the train split's when splits are named), else JSONL; sorted. */
export function pickDataFiles(files: readonly string[]): string[] {
  const parquet = files.filter((f) => f.endsWith(".parquet")).sort();
  const pool = parquet.length > 0 ? parquet : files.filter((f) => f.endsWith(".jsonl")).sort();
  const train = pool.filter((f) => /(^|[/_.-])train([/_.-]|$)/.test(f));
  return train.length > 0 ? train : pool;
}

function hubError(err: unknown, ref: HubRef, type: RepoType, settings: HubSettings, what: string): Error {
  if (err instanceof ConfigError) return err;
  const id = `${type === "dataset" ? "dataset " : ""}${ref.repo}@${ref.revision}`;
  if (err instanceof HubApiError) {
    const why =
      err.statusCode === 401 || err.statusCode === 403
        ? settings.token ? "access denied with the token given (HF_TOKEN): is it allowed to read this gated or private repo?" : "the repo is gated or private: set HF_TOKEN to a token that may read it"
        : err.statusCode === 404 ? `not found (check the id and revision; no local folder "${ref.repo}" exists either)` : `HTTP ${err.statusCode}`;
    return new ConfigError(`Hub ${id} at ${settings.endpoint}: ${what}: ${why}`, { cause: err });
  }
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message;
  return new ConfigError(`Hub ${id} at ${settings.endpoint}: ${what}: ${(err as Error).message}${detail ? ` (${detail})` : ""}; set HF_HUB_OFFLINE=1 to use the cache only`, { cause: err });
}

async function repoInfo(ref: HubRef, type: RepoType, settings: HubSettings, fetchFn?: typeof fetch): Promise<{ commit: string; files: string[] }> {
  const common = { name: ref.repo, revision: ref.revision, hubUrl: settings.endpoint, accessToken: settings.token, fetch: fetchFn };
  try {
    if (type === "model") {
      const info = await modelInfo({ ...common, additionalFields: ["sha", "filePaths"] });
      return { commit: info.sha, files: info.filePaths };
    }
    const { sha } = await datasetInfo({ ...common, additionalFields: ["sha"] });
    const files: string[] = [];
    for await (const e of listFiles({ ...common, repo: { type: "dataset", name: ref.repo }, revision: sha, recursive: true })) if (e.type === "file") files.push(e.path);
    return { commit: sha, files };
  } catch (err) {
    throw hubError(err, ref, type, settings, "cannot read the repo's revision");
  }
}

function writeRef(storage: string, revision: string, commit: string): void {
  if (revision === commit) return;
  mkdirSync(dirname(join(storage, "refs", revision)), { recursive: true });
  writeFileSync(join(storage, "refs", revision), commit);
}

function offlineSnapshot(ref: HubRef, storage: string, type: RepoType): string {
  const id = `${type === "dataset" ? "dataset " : ""}${ref.repo}@${ref.revision}`;
  let commit = ref.revision;
  if (!COMMIT.test(commit)) {
    const refFile = join(storage, "refs", ref.revision);
    if (!existsSync(refFile)) throw new ConfigError(`Hub ${id} is not in the cache (no ${refFile}) and HF_HUB_OFFLINE=1 forbids downloading it: run once online, or unset HF_HUB_OFFLINE`);
    commit = readFileSync(refFile, "utf8").trim();
  }
  const snapshot = join(storage, "snapshots", commit);
  if (!existsSync(snapshot)) throw new ConfigError(`Hub ${id}: snapshot ${snapshot} is not in the cache and HF_HUB_OFFLINE=1 forbids downloading it`);
  return snapshot;
}

function listSnapshot(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listSnapshot(dir, rel));
    else out.push(rel);
  }
  return out;
}

function readIndex(path: string): Record<string, string> {
  try {
    return (JSON.parse(readFileSync(path, "utf8")) as { weight_map: Record<string, string> }).weight_map ?? {};
  } catch (err) {
    throw new ConfigError(`${path}: not a safetensors index (weight_map): ${(err as Error).message}`, { cause: err });
  }
}

/** Check a snapshot holds a tokenizer.json; the error names it. */
function checkTokenizerSnapshot(snapshot: string, id: string, repoFiles: () => string[]): void {
  if (!existsSync(join(snapshot, "tokenizer.json"))) {
    throw new ConfigError(`Hub tokenizer ${id}: tokenizer.json is missing from the cache (${join(snapshot, "tokenizer.json")})${repoFiles().includes("tokenizer.json") ? "" : "; the repo has no such file"}`);
  }
}

/** Check a snapshot holds config.json and its safetensors (every shard its index names); the error names the missing file. */
function checkModelSnapshot(snapshot: string, id: string, repoFiles: () => string[]): void {
  const need = (f: string) => {
    if (!existsSync(join(snapshot, f))) {
      throw new ConfigError(`Hub model ${id}: ${f} is missing from the cache (${join(snapshot, f)})${repoFiles().includes(f) ? "" : "; the repo has no such file"}`);
    }
  };
  need("config.json");
  const present = readdirSync(snapshot);
  if (present.includes(INDEX) || repoFiles().includes(INDEX)) {
    need(INDEX);
    for (const shard of new Set(Object.values(readIndex(join(snapshot, INDEX))))) need(shard);
  } else if (!present.some((f) => f.endsWith(".safetensors"))) {
    const found = repoFiles().filter((f) => /\.(bin|pth|pt|gguf)$/.test(f));
    throw new ConfigError(`Hub model ${id}: no safetensors weights${found.length ? ` (ecomla reads safetensors only; the repo has ${found.join(", ")})` : " in the cache"} under ${snapshot}`);
  }
}

interface FetchContext {
  ref: HubRef;
  type: RepoType;
  storage: string;
  commit: string;
  settings: HubSettings;
  options: ResolveOptions;
}

/** An ETag as the cache names blobs: no weak prefix, no quotes (git sha1 for small files, sha256 for LFS). */
function blobName(etag: string): string {
  return etag.replace(/^W\//, "").replace(/"/g, "");
}

/**
 * One file into the cache layout of huggingface_hub: the bytes in `blobs/<etag>` (downloaded into
 * `<etag>.incomplete` first, resumed from its length with a Range request), and
 * `snapshots/<commit>/<path>` a relative symlink to it.
 */
async function fetchIntoCache(ctx: FetchContext, path: string): Promise<string> {
  const pointer = join(ctx.storage, "snapshots", ctx.commit, path);
  if (existsSync(pointer)) return pointer;
  const { settings, options } = ctx;
  const repo: RepoDesignation = { type: ctx.type, name: ctx.ref.repo };
  const common = { repo, path, revision: ctx.commit, hubUrl: settings.endpoint, accessToken: settings.token, fetch: options.fetch };
  let info;
  try {
    info = await fileDownloadInfo(common);
  } catch (err) {
    throw hubError(err, ctx.ref, ctx.type, settings, `cannot read ${path}`);
  }
  if (!info) throw new ConfigError(`Hub ${ctx.ref.repo}@${ctx.ref.revision}: ${path} is not in the repo`);
  const blob = join(ctx.storage, "blobs", blobName(info.etag));
  if (!existsSync(blob)) {
    mkdirSync(dirname(blob), { recursive: true });
    const partial = `${blob}.incomplete`;
    let have = existsSync(partial) ? statSync(partial).size : 0;
    if (have > info.size) {
      rmSync(partial);
      have = 0;
    }
    if (have < info.size) {
      options.onProgress?.(path, have, info.size);
      try {
        const remote = await downloadFile({ ...common, downloadInfo: info });
        if (!remote) throw new ConfigError(`${path} vanished from the repo`);
        const out = createWriteStream(partial, { flags: "a" });
        try {
          for await (const chunk of Readable.fromWeb(remote.slice(have, info.size).stream() as import("node:stream/web").ReadableStream<Uint8Array>)) {
            if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
            have += (chunk as Uint8Array).byteLength;
            options.onProgress?.(path, have, info.size);
          }
        } finally {
          await new Promise<void>((r, reject) => out.end((err?: Error | null) => (err ? reject(err) : r())));
        }
      } catch (err) {
        throw hubError(err, ctx.ref, ctx.type, settings, `download of ${path} stopped at ${have} of ${info.size} bytes (run again to resume)`);
      }
    }
    const size = statSync(partial).size;
    if (size !== info.size) throw new ConfigError(`Hub ${ctx.ref.repo}: ${path}: expected ${info.size} bytes, found ${size} in ${partial} (run again to resume)`);
    renameSync(partial, blob);
  }
  mkdirSync(dirname(pointer), { recursive: true });
  if (existsSync(pointer) || isLink(pointer)) rmSync(pointer);
  try {
    symlinkSync(relative(dirname(pointer), blob), pointer);
  } catch {
    // Filesystems without symlinks get a copy, as huggingface_hub does.
    copyFileSync(blob, pointer);
  }
  return pointer;
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
