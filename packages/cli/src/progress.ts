import cliProgress from "cli-progress";

/** A progress bar on stderr when it is a terminal; silent otherwise (logs, pipes, CI). */
export interface Progress {
  update(done: number, total: number, label?: string): void;
  stop(): void;
}

/** Start a progress bar titled `title`. */
export function progressBar(title: string): Progress {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { format: `${title} [{bar}] {value}/{total} {label} | {duration_formatted} elapsed, ETA {eta_formatted}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, label = "") {
      if (!started) {
        bar.start(total, 0, { label });
        started = true;
      }
      bar.setTotal(total);
      bar.update(done, { label });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
