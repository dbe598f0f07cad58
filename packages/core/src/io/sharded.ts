// Hugging Face checkpoints: a folder with model.safetensors, or model.safetensors.index.json plus
// shards (read through one name → shard table), and the sharded writer.
import { mkdir, readFile, readdir, rm, stat } from "node:fs/promises";
import { isAbsolute, join, dirname, basename } from "node:path";
import {
  SafetensorsError,
  sameShape,
  shapeMismatch,
  tensorNotFound,
  tensorsMissing,
  type TensorInfo,
} from "./safetensors.js";
import { SafetensorsFile, type RawTensor, type SafetensorsSource } from "./safetensors-read.js";
import {
  commitTemporary,
  layoutSafetensors,
  storedByteLength,
  writeSafetensorsToTemporary,
  writeTextAtomically,
  type TensorToWrite,
  type WrittenFile,
} from "./safetensors-write.js";

/** The single-file weights name transformers looks for first. */
export const SAFE_WEIGHTS_NAME = "model.safetensors";
/** The index of a sharded checkpoint. */
export const SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json";

// An index names a few thousand tensors at most; anything this big is not an index.
const MAX_INDEX_BYTES = 100_000_000;

const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** A model's weights: one .safetensors file, or the shards of an index, behind one name lookup. */
export class SafetensorsCheckpoint implements SafetensorsSource {
  private constructor(
    /** The folder or file given to open(). */
    readonly path: string,
    /** The index file of a sharded checkpoint, undefined for a single file. */
    readonly indexPath: string | undefined,
    /** The opened files (one, or every shard). */
    readonly files: readonly SafetensorsFile[],
    /** The index's "metadata" object (e.g. total_size); empty for a single file. */
    readonly indexMetadata: Readonly<Record<string, unknown>>,
    private readonly owners: ReadonlyMap<string, SafetensorsFile>,
  ) {}

  /** Opens a folder (model.safetensors, else model.safetensors.index.json + shards), an index file, or one .safetensors file; headers only. */
  static async open(dirOrFile: string): Promise<SafetensorsCheckpoint> {
    let isDirectory: boolean;
    try {
      isDirectory = (await stat(dirOrFile)).isDirectory();
    } catch (error) {
      throw new SafetensorsError(`${dirOrFile}: cannot open checkpoint: ${(error as Error).message}`, { cause: error });
    }
    if (isDirectory) {
      // transformers prefers the single file when both exist; so do we.
      const single = join(dirOrFile, SAFE_WEIGHTS_NAME);
      if (await isFile(single)) return SafetensorsCheckpoint.fromFile(dirOrFile, single);
      const index = join(dirOrFile, SAFE_WEIGHTS_INDEX_NAME);
      if (await isFile(index)) return SafetensorsCheckpoint.fromIndex(dirOrFile, index);
      const found = (await readdir(dirOrFile).catch(() => [] as string[])).filter((f) => f.endsWith(".safetensors") || f.endsWith(".json"));
      throw new SafetensorsError(
        `${dirOrFile}: expected ${SAFE_WEIGHTS_NAME} or ${SAFE_WEIGHTS_INDEX_NAME} in the folder, found ${found.length > 0 ? found.sort().join(", ") : "neither (no .safetensors or .json files)"}`,
      );
    }
    if (dirOrFile.endsWith(".json")) return SafetensorsCheckpoint.fromIndex(dirOrFile, dirOrFile);
    return SafetensorsCheckpoint.fromFile(dirOrFile, dirOrFile);
  }

  private static async fromFile(path: string, file: string): Promise<SafetensorsCheckpoint> {
    const opened = await SafetensorsFile.open(file);
    const owners = new Map(opened.names().map((name) => [name, opened] as const));
    return new SafetensorsCheckpoint(path, undefined, [opened], {}, owners);
  }

  private static async fromIndex(path: string, indexPath: string): Promise<SafetensorsCheckpoint> {
    const { weightMap, metadata } = await readIndex(indexPath);
    const folder = dirname(indexPath);
    // Shards in order of first mention, each with the tensors the index places there.
    const byShard = new Map<string, string[]>();
    for (const [name, shard] of weightMap) {
      const list = byShard.get(shard) ?? [];
      list.push(name);
      byShard.set(shard, list);
    }
    for (const [shard, names] of byShard) {
      if (!(await isFile(join(folder, shard)))) {
        const others = names.length > 1 ? ` and ${names.length - 1} more` : "";
        throw new SafetensorsError(
          `${indexPath}: weight_map names shard ${shard} (for tensor ${names[0]}${others}), which does not exist in ${folder}`,
        );
      }
    }
    const settled = await Promise.allSettled([...byShard.keys()].map((shard) => SafetensorsFile.open(join(folder, shard))));
    const files = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    try {
      const failure = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
      if (failure) throw failure.reason;
      const owners = new Map<string, SafetensorsFile>();
      for (const file of files) {
        for (const name of file.names()) {
          const other = owners.get(name);
          if (other) {
            throw new SafetensorsError(`tensor ${name} in ${indexPath}: appears in two shards, ${basename(other.path)} and ${basename(file.path)}; expected exactly one`);
          }
          owners.set(name, file);
        }
      }
      for (const [name, shard] of weightMap) {
        const owner = owners.get(name);
        const expected = join(folder, shard);
        if (owner?.path !== expected) {
          const shardFile = files.find((f) => f.path === expected)!;
          throw new SafetensorsError(
            `tensor ${name} in ${indexPath}: weight_map places it in ${shard}, but that shard does not hold it (${shard} has ${shardFile.names().length} tensors${owner ? `; found in ${basename(owner.path)}` : ""})`,
          );
        }
      }
      return new SafetensorsCheckpoint(path, indexPath, files, metadata, owners);
    } catch (error) {
      await Promise.all(files.map((f) => f.close().catch(() => undefined)));
      throw error;
    }
  }

  /** `__metadata__` of the (first) file. */
  get metadata(): Readonly<Record<string, string>> {
    return this.files[0]?.metadata ?? {};
  }

  /** Where names are looked up, for messages: the index, or the single file. */
  private get where(): string {
    return this.indexPath ?? this.files[0]!.path;
  }

  names(): string[] {
    return [...this.owners.keys()];
  }

  has(name: string): boolean {
    return this.owners.has(name);
  }

  info(name: string): TensorInfo {
    return this.owner(name).info(name);
  }

  read(name: string): Promise<RawTensor> {
    return this.owner(name).read(name);
  }

  readF32(name: string): Promise<Float32Array> {
    return this.owner(name).readF32(name);
  }

  readF32Range(name: string, start: number, count: number): Promise<Float32Array> {
    return this.owner(name).readF32Range(name, start, count);
  }

  readI32(name: string): Promise<Int32Array> {
    return this.owner(name).readI32(name);
  }

  requireTensors(names: Iterable<string>, context?: string): void {
    const required = [...names];
    const missing = required.filter((name) => !this.owners.has(name));
    if (missing.length > 0) throw tensorsMissing(missing, required.length, this.where, this.names(), context);
  }

  expectShape(name: string, shape: readonly number[], context?: string): TensorInfo {
    const info = this.info(name);
    if (!sameShape(info.shape, shape)) throw shapeMismatch(info, shape, context);
    return info;
  }

  /** Closes every file. */
  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }

  private owner(name: string): SafetensorsFile {
    const file = this.owners.get(name);
    if (!file) throw tensorNotFound(name, this.where, this.names());
    return file;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Reads and validates model.safetensors.index.json: { metadata?: {...}, weight_map: { name: shard } }. */
async function readIndex(indexPath: string): Promise<{ weightMap: Map<string, string>; metadata: Record<string, unknown> }> {
  let text: string;
  try {
    const indexStat = await stat(indexPath);
    if (!indexStat.isFile()) throw new SafetensorsError(`${indexPath}: expected a regular index file, found a ${indexStat.isDirectory() ? "directory" : "special file"}`);
    const size = indexStat.size;
    if (size > MAX_INDEX_BYTES) throw new SafetensorsError(`${indexPath}: index is ${size} bytes; expected at most ${MAX_INDEX_BYTES}`);
    text = await readFile(indexPath, "utf8");
  } catch (error) {
    if (error instanceof SafetensorsError) throw error;
    throw new SafetensorsError(`${indexPath}: cannot read index: ${(error as Error).message}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(`${indexPath}: index is not valid JSON (${(error as Error).message})`);
  }
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
  if (!isObject(json)) throw new SafetensorsError(`${indexPath}: index must be a JSON object with a weight_map, found ${JSON.stringify(json)?.slice(0, 80)}`);
  const { weight_map: map, metadata } = json;
  if (!isObject(map)) {
    throw new SafetensorsError(`${indexPath}: weight_map must be an object of tensor name → shard file, found ${map === undefined ? "no weight_map" : JSON.stringify(map).slice(0, 80)}`);
  }
  if (metadata !== undefined && !isObject(metadata)) {
    throw new SafetensorsError(`${indexPath}: metadata must be an object, found ${JSON.stringify(metadata).slice(0, 80)}`);
  }
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(map)) {
    // Shards are files beside the index; an absolute path or ".." would read outside the checkpoint.
    if (typeof shard !== "string" || shard === "" || isAbsolute(shard) || shard.split(/[\\/]/).includes("..")) {
      throw new SafetensorsError(`tensor ${name} in ${indexPath}: weight_map value must be a shard file name in the index's folder, found ${JSON.stringify(shard)}`);
    }
    weightMap.set(name, shard);
  }
  return { weightMap, metadata: metadata ?? {} };
}

/** Options of writeShardedSafetensors. */
export interface ShardedWriteOptions {
  /** Largest shard data size in bytes; a single bigger tensor gets a shard of its own (as HF does). */
  readonly maxShardBytes: number;
  /** `__metadata__` of every shard; `format: "pt"` is added unless given, since transformers checks it. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** What a sharded write produced. */
export interface WrittenCheckpoint {
  readonly indexPath: string;
  readonly shards: readonly WrittenFile[];
  /** Sum of all tensors' bytes (the index's metadata.total_size). */
  readonly totalSize: number;
}

/** Splits tensors, in the given order, into shards of at most maxShardBytes of data (HF's greedy rule). */
export function planShards(tensors: readonly TensorToWrite[], maxShardBytes: number): TensorToWrite[][] {
  const shards: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let currentBytes = 0;
  for (const tensor of tensors) {
    const bytes = storedByteLength(tensor);
    if (current.length > 0 && currentBytes + bytes > maxShardBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(tensor);
    currentBytes += bytes;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

/**
 * Writes `dir/model-0000i-of-0000n.safetensors` + `dir/model.safetensors.index.json`. All shards
 * are written to temporary files first and moved into place only when all succeeded, then the index
 * last; stale shards of an earlier save (and a model.safetensors that would shadow the index) are removed.
 */
export async function writeShardedSafetensors(dir: string, tensors: readonly TensorToWrite[], options: ShardedWriteOptions): Promise<WrittenCheckpoint> {
  const indexPath = join(dir, SAFE_WEIGHTS_INDEX_NAME);
  if (!(Number.isFinite(options.maxShardBytes) && options.maxShardBytes > 0)) {
    throw new SafetensorsError(`${indexPath}: maxShardBytes must be a positive number, found ${options.maxShardBytes}`);
  }
  const metadata = { format: "pt", ...options.metadata };
  layoutSafetensors(indexPath, tensors, metadata); // validates names (unique across shards), dtypes, shapes, eager data
  const plan = planShards(tensors, options.maxShardBytes);
  const pad = (i: number) => String(i).padStart(5, "0");
  const shardNames = plan.map((_, i) => `model-${pad(i + 1)}-of-${pad(plan.length)}.safetensors`);

  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw new SafetensorsError(`${dir}: cannot create checkpoint folder: ${(error as Error).message}`, { cause: error });
  }
  const pending: { temporary: string; written: WrittenFile }[] = [];
  try {
    for (let i = 0; i < plan.length; i++) pending.push(await writeSafetensorsToTemporary(join(dir, shardNames[i]!), plan[i]!, metadata));
  } catch (error) {
    await Promise.all(pending.map((p) => rm(p.temporary, { force: true }).catch(() => undefined)));
    throw error;
  }
  for (const { temporary, written } of pending) await commitTemporary(temporary, written.path);

  const totalSize = pending.reduce((sum, p) => sum + p.written.dataByteLength, 0);
  const weightMap = plan.flatMap((shard, i) => shard.map((t) => [t.name, shardNames[i]!] as const)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // Laid out as transformers writes it (json.dumps(indent=2, sort_keys=True)); built by hand so
  // integer-like tensor names keep their sorted place.
  const lines = weightMap.map(([name, shard]) => `    ${JSON.stringify(name)}: ${JSON.stringify(shard)}`);
  const indexText = `{\n  "metadata": {\n    "total_size": ${totalSize}\n  },\n  "weight_map": {\n${lines.join(",\n")}\n  }\n}\n`;
  await writeTextAtomically(indexPath, indexText);

  const keep = new Set(shardNames);
  const entries = await readdir(dir).catch(() => [] as string[]);
  for (const entry of entries) {
    if ((SHARD_NAME.test(entry) && !keep.has(entry)) || entry === SAFE_WEIGHTS_NAME) await rm(join(dir, entry), { force: true });
  }
  return { indexPath, shards: pending.map((p) => p.written), totalSize };
}
