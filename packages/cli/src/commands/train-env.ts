import { ConfigError, PluginLoadError, type DistillationLoss, type Pipeline } from "@ecomla/core";
import type { RunEnvironment, StepReport } from "@ecomla/train";
import { resolveBackend } from "../context.js";
import { downloadProgress } from "../hub.js";
import { progressBar } from "../progress.js";

/**
 * The registered loss `name`, configured with the config's loss options. Losses of @ecomla/losses
 * are registered with default options and carry them in `options`; such a loss is rebuilt through
 * its constructor with the config's options. A loss without options must not be given any.
 */
async function configuredLoss(pipeline: Pipeline, name: string, options: Record<string, number | undefined>): Promise<DistillationLoss> {
  if (!pipeline.registry.has("loss", name)) {
    try {
      await pipeline.load("@ecomla/losses", process.cwd());
    } catch (err) {
      if (!(err instanceof PluginLoadError && err.notInstalled)) throw err;
    }
  }
  const loss = pipeline.get("loss", name);
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  if (Object.keys(given).length === 0) return loss;
  if (!("options" in loss)) throw new ConfigError(`loss "${name}" takes no options, but the config sets ${Object.keys(given).join(", ")}`);
  const Ctor = loss.constructor as new (o: Record<string, number>) => DistillationLoss;
  return new Ctor(given as Record<string, number>);
}

/** A {@link RunEnvironment} for `distill` / `dpo` / `--write-topk`: backend, loss and converter from the pipeline, a progress bar on a TTY. */
export async function trainEnvironment(pipeline: Pipeline, backendName: string | undefined, title: string): Promise<{ env: RunEnvironment; stop: () => void }> {
  const bar = progressBar(title);
  const downloads = downloadProgress();
  const label = (r: StepReport) =>
    Number.isFinite(r.loss)
      ? `loss ${r.loss.toFixed(4)} | ${Math.round(r.tokensPerSecond)} tok/s | lr ${r.lr.toExponential(2)}${r.extra["accuracy"] !== undefined ? ` | acc ${r.extra["accuracy"].toFixed(2)}` : ""}`
      : `${r.tokens} tokens`;
  const env: RunEnvironment = {
    backend: await resolveBackend(pipeline, backendName),
    converter: (name) => pipeline.get("converter", name),
    onStep: (r) => bar.update(r.step, r.totalSteps, label(r)),
    log: (m) => process.stderr.write(m + "\n"),
    onDownload: downloads.onProgress,
  };
  return {
    env,
    stop: () => {
      downloads.stop();
      bar.stop();
    },
  };
}

/** Resolve the configured loss once (async) before the run. */
export async function withLoss(env: RunEnvironment, pipeline: Pipeline, name: string, options: Record<string, number | undefined>): Promise<void> {
  const loss = await configuredLoss(pipeline, name, options);
  env.loss = () => loss;
}
