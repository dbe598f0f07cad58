import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createRepo, HubApiError, repoExists, uploadFiles } from "@huggingface/hub";
import { ConfigError } from "@ecomla/core";
import { isModelFile } from "./download.js";
import { hubSettings, parseHubId, type HubSettings } from "./env.js";

/** Options of {@link pushModel}. */
export interface PushOptions {
  settings?: HubSettings;
  /** Create the repo as private when it does not exist yet. */
  private?: boolean;
  commitTitle?: string;
  fetch?: typeof fetch;
}

/** The files of a model folder that a push uploads: configs, tokenizer, safetensors (+ index), the model card and its plots. */
export function filesToPush(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => statSync(join(dir, f)).isFile() && (isModelFile(f) || f.endsWith(".svg")))
    .sort();
}

/**
 * Upload a converted or distilled model folder to the Hub repo `org/name` (created when missing),
 * with its model card (README.md, which must exist: convert/distill/dpo write it).
 */
export async function pushModel(dir: string, repo: string, options: PushOptions = {}): Promise<{ repo: string; files: string[]; commit?: string }> {
  const settings = options.settings ?? hubSettings();
  const ref = parseHubId(repo);
  if (!ref || repo.includes("@")) throw new ConfigError(`--repo: expected a Hub repo id org/name, found "${repo}"`);
  if (!existsSync(join(dir, "config.json"))) throw new ConfigError(`${dir}: no config.json: not a model folder`);
  if (!existsSync(join(dir, "README.md"))) throw new ConfigError(`${dir}: no README.md (model card); convert, distill and dpo write one: rerun them, or write one by hand`);
  if (settings.offline) throw new ConfigError(`push ${repo}: HF_HUB_OFFLINE=1 forbids uploading`);
  if (!settings.token) throw new ConfigError(`push ${repo}: no access token: set HF_TOKEN to a token with write access`);
  const files = filesToPush(dir);
  const common = { repo: { type: "model" as const, name: ref.repo }, accessToken: settings.token, hubUrl: settings.endpoint, fetch: options.fetch };
  try {
    if (!(await repoExists(common))) await createRepo({ ...common, private: options.private ?? false });
    const out = await uploadFiles({
      ...common,
      files: files.map((f) => ({ path: f, content: pathToFileURL(join(dir, f)) })),
      commitTitle: options.commitTitle ?? `Upload ${files.length} files with ecomla`,
    });
    return { repo: ref.repo, files, commit: out?.commit.oid };
  } catch (err) {
    if (err instanceof HubApiError) throw new ConfigError(`push ${repo} to ${settings.endpoint}: HTTP ${err.statusCode}: ${err.message}`, { cause: err });
    throw err;
  }
}
