// `ecomla export onnx`: check the model, build the decoder graph in a temporary folder next to the
// destination, then rename it into place (a failed export leaves nothing behind).
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import {
  ConfigError, LlamaForCausalLM, ReferenceBackend, SafetensorsCheckpoint, ShapeError, checkpointWeights, packageVersion, readLlamaConfig, readMlaConfig,
  type ExportOptions, type ExportReport, type ModelExporter, type Tensor, type WeightSource,
} from "@ecomla/core";
import { buildDecoder, type DecoderLayout, type WeightReader } from "./decoder.js";
import { ExternalDataWriter, GraphBuilder, type WeightDtype } from "./graph.js";

/** Architectures the exporter knows (config.json "architectures"). */
export const SUPPORTED_ARCHITECTURES = ["LlamaForCausalLM"] as const;
/** Opsets the graph is written for. */
export const MIN_OPSET = 17;
export const MAX_OPSET = 21;
/** The manifest beside model.onnx. */
export const MANIFEST = "ecomla-onnx.json";
/** Files copied from the model folder when present. */
const COPIED = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "config.json", "MLA_config.json", "mla_layer_config.json"];

/** ecomla-onnx.json: the graph's inputs and cache layout, for runtimes that load the export. */
export interface OnnxManifest extends DecoderLayout {
  format: "ecomla-onnx";
  version: 1;
  opset: number;
  /** Weight storage dtype (computation and cache are float32). */
  weightDtype: WeightDtype;
  cacheDtype: "float32";
  eosTokenIds: number[];
  bosTokenId: number | null;
  inputs: string[];
  outputs: string[];
  source: string;
}

/** Options of {@link exportOnnx}. */
export interface OnnxExportOptions extends ExportOptions {
  dtype?: WeightDtype;
}

/**
 * Every parameter of the model must be in the checkpoint with its shape (all problems reported at
 * once, before anything is written); returns a reader of parameter values by tensor.
 */
function checkParameters(model: LlamaForCausalLM, source: WeightSource): WeightReader {
  const params = model.namedParameters();
  const missing = params.filter(([name]) => !source.has(name)).map(([name]) => name);
  if (missing.length) {
    throw new ConfigError(`${source.location}: ${missing.length} tensor(s) the graph needs are missing: ${missing.slice(0, 8).join(", ")}${missing.length > 8 ? ", …" : ""}`);
  }
  const wrong = params
    .map(([name, t]) => ({ name, expected: t.shape, found: source.shapeOf(name) }))
    .filter((m) => m.expected.length !== m.found.length || m.expected.some((d, i) => d !== m.found[i]));
  if (wrong.length) {
    throw new ShapeError(`${source.location}: ` + wrong.map((w) => `tensor ${w.name} does not fit the graph: expected [${w.expected.join(", ")}] (from config.json), found [${w.found.join(", ")}]`).join("; "));
  }
  const names = new Map<Tensor, string>(params.map(([name, t]) => [t, name]));
  return async (t) => {
    const name = names.get(t);
    return name ? source.readF32(name) : Float32Array.from((await t.data()) as Float32Array);
  };
}

/** The config's architecture, or a clear error when the exporter does not know it. */
function checkArchitecture(modelDir: string): void {
  const path = join(modelDir, "config.json");
  if (!existsSync(path)) throw new ConfigError(`${modelDir}: no config.json (expected a Hugging Face model folder)`);
  let raw: { architectures?: unknown; model_type?: unknown };
  try {
    raw = JSON.parse(readFileSync(path, "utf8")) as typeof raw;
  } catch (err) {
    throw new ConfigError(`${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const archs = Array.isArray(raw.architectures) ? raw.architectures.map(String) : [];
  const known = archs.length ? archs.some((a) => (SUPPORTED_ARCHITECTURES as readonly string[]).includes(a)) : raw.model_type === "llama";
  if (!known) {
    throw new ConfigError(
      `${path}: architecture ${archs.length ? archs.join(", ") : `model_type "${String(raw.model_type)}"`} has no ONNX export; supported: ${SUPPORTED_ARCHITECTURES.join(", ")} (plain, X-EcoMLA MLA, or hybrid)`,
    );
  }
}

function checkOptions(options: OnnxExportOptions): { opset: number; dtype: WeightDtype } {
  const opset = options.opset ?? MIN_OPSET;
  if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_OPSET) throw new ConfigError(`--opset: expected an integer in [${MIN_OPSET}, ${MAX_OPSET}], found ${opset}`);
  const dtype = options.dtype ?? "f32";
  if (dtype !== "f32" && dtype !== "f16") throw new ConfigError(`--dtype: expected f32 or f16, found "${String(dtype)}"`);
  return { opset, dtype };
}

/** Write model.onnx (+ model.onnx.data) and the manifest of a loaded model into `dir`. */
async function writeGraph(model: LlamaForCausalLM, read: WeightReader, dir: string, opset: number, dtype: WeightDtype, source: string, onProgress?: ExportOptions["onProgress"]): Promise<OnnxManifest> {
  const external = new ExternalDataWriter(join(dir, "model.onnx.data"), "model.onnx.data");
  let layout: DecoderLayout;
  let g: GraphBuilder;
  try {
    g = new GraphBuilder(opset, external);
    layout = await buildDecoder(g, model, dtype, read, (done, total) => onProgress?.(done, total + 1, `layer ${done - 1}`));
  } finally {
    external.close();
  }
  const bytes = g.encode("ecomla", packageVersion(import.meta.url), `decoder with past of ${source}; MLA layers cache only [kv_latent, k_rope]`);
  writeFileSync(join(dir, "model.onnx"), bytes);
  onProgress?.(layout.layers.length + 1, layout.layers.length + 1, "model.onnx");
  const eos = model.config.eosTokenId;
  return {
    format: "ecomla-onnx", version: 1, opset, weightDtype: dtype, cacheDtype: "float32",
    eosTokenIds: Array.isArray(eos) ? [...eos] : eos !== null ? [eos] : [],
    bosTokenId: model.config.bosTokenId ?? null,
    inputs: g.inputs.map((v) => v.name!), outputs: g.outputs.map((v) => v.name!), source, ...layout,
  };
}

/**
 * Export a Llama / X-EcoMLA / hybrid model folder to ONNX (decoder with past, Optimum naming).
 * Everything is checked and loaded before the first byte is written; the files are written into a
 * temporary folder beside outDir and renamed into place at the end.
 */
export async function exportOnnx(modelDir: string, outDir: string, options: OnnxExportOptions = {}): Promise<ExportReport & { manifest: OnnxManifest }> {
  const t0 = performance.now();
  const { opset, dtype } = checkOptions(options);
  checkArchitecture(modelDir);
  const target = resolve(outDir);
  if (existsSync(target) && !options.overwrite) throw new ConfigError(`${outDir} already exists (pass --overwrite to replace it)`);
  const config = readLlamaConfig(join(modelDir, "config.json"));
  const mla = readMlaConfig(modelDir, config);
  const checkpoint = await SafetensorsCheckpoint.open(modelDir);
  // The model's structure and RoPE tables only: parameters stay unallocated pages until read,
  // and each weight streams from the checkpoint into the external-data file (RSS ≈ the largest tensor).
  const model = new LlamaForCausalLM(new ReferenceBackend(), config, null, { mla });
  let tmp: string | null = null;
  try {
    const source = checkpointWeights(checkpoint, modelDir);
    const read = checkParameters(model, source);
    tmp = mkdtempSync(join(dirname(target), `.${basename(target)}.tmp-`));
    const manifest = await writeGraph(model, read, tmp, opset, dtype, resolve(modelDir), options.onProgress);
    for (const f of COPIED) if (existsSync(join(modelDir, f))) copyFileSync(join(modelDir, f), join(tmp, f));
    writeFileSync(join(tmp, MANIFEST), JSON.stringify(manifest, null, 2) + "\n");
    if (existsSync(target)) rmSync(target, { recursive: true });
    renameSync(tmp, target);
    tmp = null;
    const files = ["model.onnx", "model.onnx.data", MANIFEST, ...COPIED.filter((f) => existsSync(join(target, f)))];
    const bytes = files.reduce((n, f) => n + statSync(join(target, f)).size, 0);
    return { outDir: target, files, bytes, elapsedMs: performance.now() - t0, manifest, details: { opset, dtype, elementsPerToken: manifest.elementsPerToken } };
  } finally {
    model.dispose();
    await checkpoint.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

/** The exporter registered as "onnx". */
export class OnnxExporter implements ModelExporter {
  readonly format = "onnx";
  export(modelDir: string, outDir: string, options: ExportOptions = {}): Promise<ExportReport> {
    return exportOnnx(modelDir, outDir, options as OnnxExportOptions);
  }
}
