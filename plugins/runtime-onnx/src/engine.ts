// The onnxruntime-node engine: runs an ecomla ONNX export (decoder with past) on onnxruntime's CPU
// or WebGPU execution provider. A Hugging Face checkpoint folder is exported first, into a
// temporary folder that is removed once the session holds the weights.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import {
  ConfigError, ShapeError, flattenIds,
  type EngineCache, type EngineLoadOptions, type EngineModel, type InferenceEngine,
} from "@ecomla/core";
import { MANIFEST, exportOnnx, type OnnxManifest } from "./export.js";

/** Execution providers of the onnxruntime-node package itself (CUDA needs binaries it does not ship). */
export const EXECUTION_PROVIDERS = ["cpu", "webgpu"] as const;

/** A batch's cache: the present tensors of the last run, fed back as the next past. */
class OrtCache implements EngineCache {
  length = 0;
  constructor(readonly batch: number, readonly maxLength: number, public past: Map<string, ort.Tensor>) {}
  free(): void {
    for (const t of this.past.values()) t.dispose();
    this.past.clear();
  }
}

/** A loaded ONNX export. */
export class OrtEngineModel implements EngineModel {
  readonly vocabSize: number;
  readonly eosTokenIds: readonly number[];
  readonly cachedElementsPerToken: number;
  constructor(readonly session: ort.InferenceSession, readonly manifest: OnnxManifest, readonly executionProvider: string) {
    this.vocabSize = manifest.vocabSize;
    this.eosTokenIds = manifest.eosTokenIds;
    this.cachedElementsPerToken = manifest.elementsPerToken;
  }

  /** Past tensors of length 0 for `batch` sequences. */
  private emptyPast(batch: number): Map<string, ort.Tensor> {
    const past = new Map<string, ort.Tensor>();
    for (const layer of this.manifest.layers) {
      for (const t of layer.tensors) {
        const dims = t.shape.map((d) => (d === "batch" ? batch : d === "past_sequence_length" ? 0 : Number(d)));
        past.set(t.name, new ort.Tensor("float32", new Float32Array(0), dims));
      }
    }
    return past;
  }

  createCache(batch: number, maxLength: number): EngineCache {
    if (maxLength > this.manifest.maxPositions) {
      throw new ShapeError(`onnxruntime engine: ${maxLength} positions exceed the export's RoPE tables (${this.manifest.maxPositions} positions)`);
    }
    return new OrtCache(batch, maxLength, this.emptyPast(batch));
  }

  /** Run the graph on ids (B, T) after `past` (length P); returns logits (B, T, V) and the present tensors. */
  private async run(ids: readonly (readonly number[])[], pastLength: number, past: Map<string, ort.Tensor>): Promise<{ logits: Float32Array; present: Map<string, ort.Tensor> }> {
    const { data, batch, tokens } = flattenIds(ids, "onnxruntime engine");
    const total = pastLength + tokens;
    if (total > this.manifest.maxPositions) throw new ShapeError(`onnxruntime engine: position ${total - 1} is past the export's RoPE tables (${this.manifest.maxPositions} positions)`);
    const positions = new BigInt64Array(batch * tokens);
    for (let b = 0; b < batch; b++) for (let t = 0; t < tokens; t++) positions[b * tokens + t] = BigInt(pastLength + t);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(data, (v) => BigInt(v)), [batch, tokens]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(batch * total).fill(1n), [batch, total]),
      position_ids: new ort.Tensor("int64", positions, [batch, tokens]),
    };
    for (const [name, t] of past) feeds[name] = t;
    const out = await this.session.run(feeds);
    const present = new Map<string, ort.Tensor>();
    for (const layer of this.manifest.layers) for (const t of layer.tensors) present.set(t.name, out[t.present]!);
    const logits = out["logits"]!;
    const values = logits.data as Float32Array;
    logits.dispose();
    return { logits: values, present };
  }

  private cacheOf(cache: EngineCache, batch: number): OrtCache {
    if (!(cache instanceof OrtCache)) throw new ConfigError("onnxruntime engine: the cache was not created by this engine's model");
    if (batch !== cache.batch) throw new ShapeError(`onnxruntime engine: ${batch} sequences for a cache of batch ${cache.batch}`);
    return cache;
  }

  async prefill(cache: EngineCache, ids: readonly (readonly number[])[], options: { lastOnly?: boolean } = {}): Promise<Float32Array> {
    const c = this.cacheOf(cache, ids.length);
    const tokens = ids[0]?.length ?? 0;
    if (c.length + tokens > c.maxLength) throw new ShapeError(`onnxruntime engine: cache full: ${c.length} + ${tokens} positions exceed its ${c.maxLength}`);
    const { logits, present } = await this.run(ids, c.length, c.past);
    c.free();
    c.past = present;
    c.length += tokens;
    if (!options.lastOnly || tokens === 1) return logits;
    const v = this.vocabSize;
    const last = new Float32Array(ids.length * v);
    for (let b = 0; b < ids.length; b++) last.set(logits.subarray(((b + 1) * tokens - 1) * v, (b + 1) * tokens * v), b * v);
    return last;
  }

  decode(cache: EngineCache, ids: readonly number[]): Promise<Float32Array> {
    return this.prefill(cache, ids.map((id) => [id]));
  }

  async forward(ids: readonly (readonly number[])[]): Promise<Float32Array> {
    const past = this.emptyPast(ids.length);
    const { logits, present } = await this.run(ids, 0, past);
    for (const t of present.values()) t.dispose();
    return logits;
  }

  async free(): Promise<void> {
    await this.session.release();
  }
}

/** Read and check ecomla-onnx.json in an export folder. */
export function readManifest(dir: string): OnnxManifest {
  const path = join(dir, MANIFEST);
  const manifest = JSON.parse(readFileSync(path, "utf8")) as OnnxManifest;
  if (manifest.format !== "ecomla-onnx" || manifest.version !== 1) throw new ConfigError(`${path}: expected format "ecomla-onnx" version 1, found ${JSON.stringify(manifest.format)} version ${manifest.version}`);
  return manifest;
}

/** Open an inference session on an export folder. */
export async function openSession(dir: string, options: EngineLoadOptions = {}): Promise<OrtEngineModel> {
  const ep = options.executionProvider ?? "cpu";
  if (!(EXECUTION_PROVIDERS as readonly string[]).includes(ep)) throw new ConfigError(`--ep: expected one of ${EXECUTION_PROVIDERS.join(", ")}, found "${ep}"`);
  const manifest = readManifest(dir);
  const session = await ort.InferenceSession.create(join(dir, "model.onnx"), {
    executionProviders: [ep],
    graphOptimizationLevel: "all",
    logSeverityLevel: 3, // errors only: the WebGPU provider warns that shape ops stay on the CPU, as intended
    ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
  });
  return new OrtEngineModel(session, manifest, ep);
}

/** The engine registered as "onnxruntime". */
export class OnnxRuntimeEngine implements InferenceEngine {
  readonly name = "onnxruntime";
  async load(modelDir: string, options: EngineLoadOptions = {}): Promise<EngineModel> {
    if (existsSync(join(modelDir, MANIFEST))) return openSession(modelDir, options);
    // A checkpoint folder: export it first (the session keeps the weights in memory).
    const tmp = mkdtempSync(join(tmpdir(), "ecomla-onnx-"));
    try {
      const out = join(tmp, "export");
      await exportOnnx(modelDir, out);
      return await openSession(out, options);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}
