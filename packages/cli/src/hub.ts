import type { Command } from "commander";
import { resolveModelSource, type DownloadProgress } from "@ecomla/hub";
import { progressBar } from "./progress.js";

/** Options that name a model folder, in any command: each also takes a Hub id `org/name[@revision]`. */
const MODEL_OPTIONS = ["model", "teacher"] as const;

/** A download progress bar on a TTY: bytes of the file being fetched. */
export function downloadProgress(): { onProgress: DownloadProgress; stop: () => void } {
  const bar = progressBar("downloading");
  const mb = (n: number) => (n / 1e6).toFixed(1);
  return {
    onProgress: (file, done, total) => bar.update(done, total, `${file} ${mb(done)}/${mb(total)} MB`),
    stop: () => bar.stop(),
  };
}

/** A model folder or Hub id resolved to a local folder (downloaded into the Hugging Face cache when needed). */
export async function resolveModelFlag(spec: string): Promise<string> {
  const progress = downloadProgress();
  try {
    return await resolveModelSource(spec, { onProgress: progress.onProgress });
  } finally {
    progress.stop();
  }
}

/**
 * The one place where the CLI turns Hub ids into folders: before any command runs, its
 * `-m/--model` and `--teacher` values (one or several) are resolved, so commands only see folders.
 */
export function resolveHubModelsBeforeAction(program: Command): void {
  program.hook("preAction", async (_root, action) => {
    // push uploads a local folder: its -m is never a Hub id.
    if (action.name() === "push") return;
    for (const key of MODEL_OPTIONS) {
      const value = action.getOptionValue(key) as string | string[] | undefined;
      if (typeof value === "string") action.setOptionValue(key, await resolveModelFlag(value));
      else if (Array.isArray(value)) {
        const out: string[] = [];
        for (const v of value) out.push(await resolveModelFlag(v));
        action.setOptionValue(key, out);
      }
    }
  });
}
