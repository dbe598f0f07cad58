// Model cards: the YAML front matter parses and carries base_model, library_name, tags, datasets and
// the base's license; the body states ranks per layer and the KV-cache ratio (checked against the
// fixture's config by hand), the recipe, the tokens and the evaluation table.
import t from "tap";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { buildModelCard, readCardFrontMatter, writeModelCard } from "@ecomla/train";

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = resolve(here, "../../core/test/fixtures");
const SHA = "a".repeat(40);

function frontMatter(card: string): Record<string, unknown> {
  const m = /^---\n([\s\S]*?)\n---\n/.exec(card);
  if (!m) throw new Error("no front matter");
  return YAML.parse(m[1]!) as Record<string, unknown>;
}

t.test("a distilled hybrid's card: front matter from the Hub base, per-layer ranks, KV ratio, recipe, evaluation", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "ecomla-card-"));
  const base = join(root, "hub", "models--org--tiny-base", "snapshots", SHA);
  mkdirSync(base, { recursive: true });
  cpSync(join(fixtures, "llama/mha-f32/config.json"), join(base, "config.json"));
  writeFileSync(join(base, "README.md"), "---\nlicense: apache-2.0\nlanguage: en\n---\n# base\n");
  const dir = join(root, "student");
  cpSync(join(fixtures, "mla/mha-f32-hybrid"), dir, { recursive: true });
  const dataset = join(root, "hub", "datasets--org--docs", "snapshots", SHA, "data", "train-0.parquet");
  const card = buildModelCard({
    dir, base, kind: "distill", converter: "xecomla", tokens: 204800, datasets: [dataset, join(root, "local.jsonl"), "org/more-docs"],
    recipe: { learning_rate: 8e-5, loss: "forward-kl", unset: undefined },
    evaluation: { rows: [{ name: "validation, step 100", metrics: { loss: 2.3456, perplexity: 10.44 } }] },
  });
  const front = frontMatter(card);
  t.same(front, { base_model: "org/tiny-base", library_name: "ecomla", tags: ["mla", "kv-cache-compression", "x-ecomla"], datasets: ["org/docs", "org/more-docs"], license: "apache-2.0" });
  // Layer 0 stays MHA: 2 · 4 heads · head_dim 8 = 64 elements; layer 1 is MLA: kv_lora_rank 16 + rope 4 = 20.
  t.match(card, /\| 0 \| MHA \| – \| – \| – \| – \| 64 \|/);
  t.match(card, /\| 1 \| MLA \| 16 \| 24 \| 4 \| 4 \| 20 \|/);
  t.match(card, /\| this model \| 84 \| 168 \| 65\.6% \|/);
  t.match(card, new RegExp(`KV-cache ratio: \\*\\*${(128 / 84).toFixed(2)}× smaller\\*\\*`));
  t.match(card, /\| learning_rate \| 0\.00008 \|/);
  t.notMatch(card, /unset/, "undefined settings are left out");
  t.match(card, /Trained on 204,800 tokens of `org\/docs`, `local.jsonl`, `org\/more-docs`\./);
  t.match(card, /## Evaluation\n\n\|  \| loss \| perplexity \|\n\| --- \| --- \| --- \|\n\| validation, step 100 \| 2\.346 \| 10\.44 \|/);

  await writeModelCard({ dir, base: join(root, "elsewhere"), kind: "convert" });
  const own = readCardFrontMatter(dir)!;
  t.notOk("base_model" in own, "a base that is not on the Hub gets no base_model");
  t.notOk("datasets" in own);
  t.equal(own["library_name"], "ecomla");
  t.match(readFileSync(join(dir, "README.md"), "utf8"), /not trained yet/);
});

t.test("a plain Llama folder: ratio 1, no ranks table", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ecomla-card-"));
  cpSync(join(fixtures, "llama/mha-f32/config.json"), join(dir, "config.json"));
  const card = buildModelCard({ dir, base: "meta-llama/Llama-3.2-1B", kind: "dpo", tokens: 10 });
  t.equal(frontMatter(card)["base_model"], "meta-llama/Llama-3.2-1B");
  t.match(card, /1\.00× smaller/);
  t.notMatch(card, /Ranks per layer/);
});
