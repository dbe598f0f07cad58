import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** Where the Hub lives and who we are, read from the environment as Python's huggingface_hub reads it. */
export interface HubSettings {
  /** The cache root holding `models--org--name/` folders (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`). */
  cacheDir: string;
  /** The Hub's base URL (`$HF_ENDPOINT`, else https://huggingface.co). */
  endpoint: string;
  /** An access token (`$HF_TOKEN`, else the token file `huggingface-cli login` writes). */
  token?: string;
  /** Cache only, no network (`$HF_HUB_OFFLINE=1`). */
  offline: boolean;
}

const TRUE_VALUES = new Set(["1", "on", "yes", "true"]);

/** The Hugging Face home (`$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`). */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  return env["HF_HOME"] ?? join(env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "huggingface");
}

/** The Hub settings of an environment (defaults: `process.env`). */
export function hubSettings(env: NodeJS.ProcessEnv = process.env): HubSettings {
  const cacheDir = env["HF_HUB_CACHE"] ?? env["HUGGINGFACE_HUB_CACHE"] ?? join(hfHome(env), "hub");
  const endpoint = (env["HF_ENDPOINT"] ?? "https://huggingface.co").replace(/\/+$/, "");
  const tokenFile = env["HF_TOKEN_PATH"] ?? join(hfHome(env), "token");
  let token = env["HF_TOKEN"] ?? env["HUGGING_FACE_HUB_TOKEN"];
  if (!token && existsSync(tokenFile)) token = readFileSync(tokenFile, "utf8").trim() || undefined;
  const offline = TRUE_VALUES.has((env["HF_HUB_OFFLINE"] ?? "").toLowerCase()) || TRUE_VALUES.has((env["TRANSFORMERS_OFFLINE"] ?? "").toLowerCase());
  return { cacheDir, endpoint, token, offline };
}

/** A Hub repository reference: `org/name[@revision]`. */
export interface HubRef {
  repo: string;
  revision: string;
}

const HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([\w.-]+)(?:@([\w./-]+))?$/;

/**
 * `org/name[@revision]` as a {@link HubRef}, or null when `spec` is not shaped like a Hub id
 * (a path starting with `.`, `/` or `~`, or with more than one `/` before the `@`).
 */
export function parseHubId(spec: string): HubRef | null {
  const m = HUB_ID.exec(spec);
  if (!m || m[2] === "." || m[2] === ".." || m[1]!.startsWith(".")) return null;
  return { repo: `${m[1]}/${m[2]}`, revision: m[3] ?? "main" };
}

/** The cache folder of a repo, as huggingface_hub names it: `models--org--name`, `datasets--org--name`. */
export function repoFolderName(repo: string, type: "model" | "dataset"): string {
  return [`${type}s`, ...repo.split("/")].join("--");
}

/** The Hub id of a folder inside the cache (`…/models--org--name/snapshots/<sha>`), or null for any other folder. */
export function hubIdOfPath(dir: string): { repo: string; type: "model" | "dataset"; commit: string } | null {
  const m = /(?:^|[\\/])(models|datasets)--([^\\/]+?)--([^\\/]+)[\\/]snapshots[\\/]([0-9a-f]{40})(?:[\\/]|$)/.exec(dir);
  if (!m) return null;
  return { type: m[1] === "models" ? "model" : "dataset", repo: `${m[2]}/${m[3]}`, commit: m[4]! };
}
