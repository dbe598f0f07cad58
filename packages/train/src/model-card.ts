import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import YAML from "yaml";
import { cacheElementsPerLayer, ranksOf, readLlamaConfig, readMlaConfig } from "@ecomla/core";
import { hubIdOfPath, parseHubId } from "@ecomla/hub";
import { writeFileAtomically } from "./atomic.js";

/** What made a model folder, for its model card. */
export interface ModelCardInfo {
  /** The model folder; the card is written to `dir/README.md`. */
  dir: string;
  /** The model it was made from: a Hub id, a folder in the Hugging Face cache, or any folder. */
  base?: string;
  kind: "convert" | "distill" | "dpo";
  /** The attention converter used (convert, or a config's student.convert). */
  converter?: string;
  /** Training settings, shown as given (undefined ones are left out). */
  recipe?: Record<string, string | number | boolean | null | undefined>;
  /** Tokens trained on. */
  tokens?: number;
  /** Data sources as the config gave them; Hub ids go to the front matter's `datasets`. */
  datasets?: readonly string[];
  /** More model folders whose card's license applies when the base's card has none (a converted student's). */
  licenseFrom?: readonly string[];
  /** An evaluation table: one row per model or checkpoint, one column per metric. */
  evaluation?: { caption?: string; rows: { name: string; metrics: Record<string, number | string> }[] };
}

const TAGS = ["mla", "kv-cache-compression", "x-ecomla"];

/** The YAML front matter of a folder's README.md (a model card), or null when it has none. */
export function readCardFrontMatter(dir: string): Record<string, unknown> | null {
  const file = join(dir, "README.md");
  if (!existsSync(file)) return null;
  const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?/.exec(readFileSync(file, "utf8"));
  if (!m) return null;
  try {
    const data = YAML.parse(m[1]!) as unknown;
    return data && typeof data === "object" && !Array.isArray(data) ? (data as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The Hub id of a model source (a Hub id itself, or a snapshot folder of the Hugging Face cache), else null. */
export function hubIdOf(source: string | undefined): string | null {
  if (!source) return null;
  if (!existsSync(source) && parseHubId(source)) return parseHubId(source)!.repo;
  return hubIdOfPath(source)?.repo ?? null;
}

function table(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.map(String).join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

const fmt = (n: number) => (Number.isInteger(n) ? n.toLocaleString("en-US") : n.toPrecision(4));

/**
 * A Hugging Face model card for an ecomla model folder: YAML front matter (base_model,
 * library_name, tags, datasets, license copied from the base's card) and a body with the ranks per
 * layer, the KV cache against the base's, the recipe and tokens, and the evaluation table if any.
 */
export function buildModelCard(info: ModelCardInfo): string {
  const config = readLlamaConfig(join(info.dir, "config.json"));
  const mla = readMlaConfig(info.dir, config);
  const baseId = hubIdOf(info.base);
  const baseCard = info.base && existsSync(info.base) ? readCardFrontMatter(info.base) : null;
  const ownCard = readCardFrontMatter(info.dir);
  const license = [baseCard, ...(info.licenseFrom ?? []).map((d) => (existsSync(d) ? readCardFrontMatter(d) : null)), ownCard].find((c) => c?.["license"] !== undefined)?.["license"];
  const datasets = (info.datasets ?? []).map((d) => (!existsSync(d) && parseHubId(d) ? parseHubId(d)!.repo : hubIdOfPath(d)?.type === "dataset" ? hubIdOfPath(d)!.repo : null)).filter((d): d is string => !!d);
  const front: Record<string, unknown> = {};
  if (baseId) front["base_model"] = baseId;
  front["library_name"] = "ecomla";
  front["tags"] = TAGS;
  if (datasets.length) front["datasets"] = [...new Set(datasets)];
  if (license !== undefined) front["license"] = license;

  const perLayer = cacheElementsPerLayer(config, mla);
  const basePerLayer = cacheElementsPerLayer(config, null);
  const total = perLayer.reduce((a, b) => a + b, 0);
  const baseTotal = basePerLayer.reduce((a, b) => a + b, 0);
  const baseName = baseId ? `[${baseId}](https://huggingface.co/${baseId})` : info.base ? `\`${basename(info.base)}\`` : "its base model";
  const made = info.kind === "convert" ? "converted" : info.kind === "distill" ? "converted and distilled" : "preference-tuned (DPO)";
  const out: string[] = [`---\n${YAML.stringify(front).trimEnd()}\n---`, "", `# ${basename(info.dir)}`, ""];
  out.push(
    `${baseName}, ${made} with ecomla: ` +
      (mla ? `${mla.mlaLayers.length} of ${config.numHiddenLayers} attention layers use Multi-head Latent Attention (X-EcoMLA), ` : "a plain Llama attention model, ") +
      `so its KV cache holds ${fmt(total)} elements per token instead of ${fmt(baseTotal)}.`,
    "",
    "## KV cache",
    "",
    table(["", "elements per token", "bytes per token (bf16)", "share of the base"], [
      ["base", fmt(baseTotal), fmt(2 * baseTotal), "100%"],
      ["this model", fmt(total), fmt(2 * total), `${((100 * total) / baseTotal).toFixed(1)}%`],
    ]),
    "",
    `KV-cache ratio: **${(baseTotal / total).toFixed(2)}× smaller** than the base.`,
    "",
  );
  if (mla) {
    out.push("## Ranks per layer", "", table(["layer", "attention", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "cache elements per token"],
      perLayer.map((elements, layer) => {
        if (!mla.mlaLayers.includes(layer)) return [layer, config.numKeyValueHeads === config.numAttentionHeads ? "MHA" : "GQA", "–", "–", "–", "–", elements];
        const r = ranksOf(mla, layer);
        return [layer, "MLA", r.kvRank, r.qRank ?? "full", mla.qkRopeHeadDim, mla.qkNopeHeadDim, elements];
      })), "");
  }
  const recipe = Object.entries({ method: info.kind, converter: info.converter, ...info.recipe }).filter(([, v]) => v !== undefined);
  out.push("## Training recipe", "", table(["setting", "value"], recipe.map(([k, v]) => [k, String(v)])), "");
  if (info.tokens !== undefined) out.push(`Trained on ${fmt(info.tokens)} tokens${info.datasets?.length ? ` of ${info.datasets.map((d) => `\`${hubIdOf(d) ?? (parseHubId(d) ? d : basename(d))}\``).join(", ")}` : ""}.`, "");
  else if (info.kind === "convert") out.push("Initialised by SVD of the base's attention weights; not trained yet (distil it with `ecomla distill`).", "");
  if (info.evaluation && info.evaluation.rows.length > 0) {
    const cols = [...new Set(info.evaluation.rows.flatMap((r) => Object.keys(r.metrics)))];
    out.push("## Evaluation", "");
    if (info.evaluation.caption) out.push(info.evaluation.caption, "");
    out.push(table(["", ...cols], info.evaluation.rows.map((r) => [r.name, ...cols.map((c) => (typeof r.metrics[c] === "number" ? fmt(r.metrics[c] as number) : (r.metrics[c] ?? "–")))])), "");
  }
  out.push("## Usage", "", "```sh", `ecomla generate -m ${basename(info.dir)} --prompt "Hello"`, `ecomla kv-report -m ${basename(info.dir)}`, "```", "");
  return out.join("\n");
}

/** Write `dir/README.md` (see {@link buildModelCard}); returns its path. */
export async function writeModelCard(info: ModelCardInfo): Promise<string> {
  const file = join(info.dir, "README.md");
  await writeFileAtomically(file, buildModelCard(info));
  return file;
}
