// Shared test fixtures: the tiny Llama/MLA checkpoints of core, a character tokenizer with a vocabulary
// that fits their 96 ids, synthetic text, and a minimal forward-KL loss registered the way a plugin would.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HfTokenizer, Rng, createScope, differentiateLoss, ops, provide, registryOf } from "@ecomla/core";
import type { DistillationBatch, DistillationLoss, LossResult } from "@ecomla/core";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "../../../..");
export const teacherDir = join(repoRoot, "packages/core/test/fixtures/llama/mha-f32");
export const studentDir = join(repoRoot, "packages/core/test/fixtures/mla/mha-f32-full");
export const cliBin = join(repoRoot, "packages/cli/dist/bin.js");

const CHARS = [..."abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,!?'\n0123456789-:;\"()"];

/** tokenizer.json + tokenizer_config.json of a character-level BPE (no merges): ids 0-2 special, 78 in all. */
export function tokenizerFiles(): { json: Record<string, unknown>; config: Record<string, unknown> } {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  CHARS.forEach((c, i) => (vocab[c] = i + 3));
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    json: {
      version: "1.0", truncation: null, padding: null,
      added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
      normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null,
      model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
    },
    config: { bos_token: "<s>", eos_token: "</s>", chat_template: "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}" },
  };
}

/** The character tokenizer as an HfTokenizer. */
export function charTokenizer(): HfTokenizer {
  const { json, config } = tokenizerFiles();
  return new HfTokenizer(json, config);
}

/** Copy a fixture model folder into `dir` and add the character tokenizer, so commands can load it whole. */
export function modelWithTokenizer(src: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(src)) if (f !== "expected.safetensors") copyFileSync(join(src, f), join(dir, f));
  const { json, config } = tokenizerFiles();
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(json));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(config));
  return dir;
}

const WORDS = "the of and to in is was for that with as on by at from his her this which or an be are had not but were they have".split(" ");

/** `docs` pseudo-English documents (seeded), each a few sentences. */
export function syntheticDocs(docs: number, seed: number): string[] {
  const rng = new Rng(seed);
  return Array.from({ length: docs }, () => {
    const n = 6 + rng.int(10);
    const words = Array.from({ length: n }, () => WORDS[rng.int(WORDS.length)]!);
    return words.join(" ") + ".";
  });
}

/** Forward KL(teacher ‖ student) at τ = 1, mean over rows: the minimal loss tests register until @ecomla/losses is installed. */
export class TestForwardKl implements DistillationLoss {
  readonly name = "forward-kl";
  compute({ studentLogits, teacher, mask }: DistillationBatch): LossResult {
    if (!teacher) throw new Error("forward-kl: no teacher");
    const t = teacher.kind === "logits" ? { logits: teacher.logits } : { indices: teacher.indices, logprobs: teacher.logprobs };
    return differentiateLoss(studentLogits, (s) => ops.klDiv(s, t, { weights: mask }));
  }
}

/** A registry holding the test forward-KL under "forward-kl" (through provide, as a plugin registers). */
export function testLoss(): DistillationLoss {
  const scope = createScope();
  provide(scope, "loss", "forward-kl", { useValue: new TestForwardKl() });
  return registryOf(scope).resolve("loss", "forward-kl");
}

/** A scratch folder with the student, a synthetic corpus, and a writer of small distill configs run through the CLI. */
export function cliDistillSetup(prefix: string, steps: number) {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const student = modelWithTokenizer(studentDir, join(root, "student"));
  const dataset = join(root, "corpus.jsonl");
  writeFileSync(dataset, syntheticDocs(60, 11).map((text) => JSON.stringify({ text })).join("\n") + "\n");
  const plugin = join(here, "test-loss-plugin.mjs");
  const config = (name: string, extra = ""): string => {
    const file = join(root, `${name}.yaml`);
    writeFileSync(
      file,
      `plugins: [${JSON.stringify(plugin)}]
student: ${student}
teacher: ${teacherDir}
dataset: ${dataset}
backend: reference
loss: forward-kl
seq_len: 8
per_device_train_batch_size: 2
gradient_accumulation_steps: 2
learning_rate: 5.0e-3
warmup_ratio: 0.1
lr_scheduler_type: cosine
weight_decay: 0.01
max_grad_norm: 1.0
max_steps: ${steps}
eval_steps: 8
save_steps: 2
save_total_limit: 2
seed: 42
output_dir: ${join(root, name)}
${extra}`,
    );
    return file;
  };
  const ecomla = (args: string[]) => {
    const r = spawnSync(process.execPath, [cliBin, ...args], { encoding: "utf8" });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  return { root, student, dataset, config, ecomla };
}
