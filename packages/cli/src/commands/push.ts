import type { Command } from "commander";
import { pushModel } from "@ecomla/hub";

/** `ecomla push -m DIR --repo org/name`: upload a converted or distilled model folder with its model card. */
export function pushCommand(program: Command): void {
  program
    .command("push")
    .description("upload a converted or distilled model folder (configs, tokenizer, safetensors, README.md model card, plots) to a Hugging Face Hub repo (HF_TOKEN, HF_ENDPOINT)")
    .requiredOption("-m, --model <dir>", "model folder written by convert, distill or dpo")
    .requiredOption("--repo <id>", "Hub repo id org/name (created when missing)")
    .option("--private", "create the repo as private")
    .option("--json", "print what was uploaded as JSON")
    .action(async (opts: { model: string; repo: string; private?: boolean; json?: boolean }) => {
      const out = await pushModel(opts.model, opts.repo, { private: opts.private });
      process.stdout.write(opts.json ? JSON.stringify(out, null, 2) + "\n" : `pushed ${out.files.length} files to ${out.repo}${out.commit ? ` (commit ${out.commit})` : ""}: ${out.files.join(", ")}\n`);
    });
}
