import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { linePanelsSpec, renderSvg } from "@ecomla/plot";
import { writeFileAtomically } from "./atomic.js";

/** One line of metrics.jsonl: a training step ("train") or a validation pass ("eval"). */
export interface MetricsRecord {
  kind: "train" | "eval";
  step: number;
  [key: string]: number | string;
}

/**
 * The run's metrics: appended one JSON line at a time to output_dir/metrics.jsonl (a crash loses
 * at most the line being written), and drawn as output_dir/training_curves.svg.
 */
export class MetricsLog {
  readonly path: string;
  readonly records: MetricsRecord[] = [];

  constructor(readonly outputDir: string) {
    this.path = join(outputDir, "metrics.jsonl");
  }

  /**
   * Keep the lines up to `step` from an earlier run (a resume), dropping those a killed run wrote
   * after its last checkpoint, so the log reads as one uninterrupted run.
   */
  async resumeAt(step: number): Promise<void> {
    this.records.length = 0;
    if (existsSync(this.path)) {
      for (const line of readFileSync(this.path, "utf8").split("\n")) {
        if (!line.trim()) continue;
        try {
          const r = JSON.parse(line) as MetricsRecord;
          if (r.step <= step) this.records.push(r);
        } catch {
          // a line cut by the kill: drop it
        }
      }
    }
    await writeFileAtomically(this.path, this.records.map((r) => JSON.stringify(r) + "\n").join(""));
  }

  /** Append one record. */
  add(record: MetricsRecord): void {
    this.records.push(record);
    appendFileSync(this.path, JSON.stringify(record) + "\n");
  }

  /** Redraw the SVG plot of the curves. */
  async plot(title: string): Promise<void> {
    await writeFileAtomically(join(this.outputDir, "training_curves.svg"), await curvesSvg(title, this.records));
  }
}

/**
 * The run's curves as an SVG (drawn by @ecomla/plot): training and validation loss over steps in
 * the top panel, validation KL to the teacher (or DPO preference accuracy) in the bottom one.
 */
export async function curvesSvg(title: string, records: readonly MetricsRecord[]): Promise<string> {
  const series = (kind: "train" | "eval", key: string): [number, number][] =>
    records.filter((r) => r.kind === kind && typeof r[key] === "number").map((r) => [r.step, r[key] as number]);
  const hasKl = records.some((r) => r.kind === "eval" && typeof r["kl"] === "number");
  const spec = linePanelsSpec({
    title,
    xTitle: "optimizer step",
    panels: [
      { yTitle: "loss", series: [{ name: "train loss", points: series("train", "loss") }, { name: "validation loss", points: series("eval", "loss") }] },
      {
        yTitle: hasKl ? "KL (nats/token)" : "accuracy",
        series: [{ name: hasKl ? "validation KL(teacher ‖ student)" : "validation preference accuracy", points: series("eval", hasKl ? "kl" : "accuracy") }],
      },
    ],
  });
  return (await renderSvg(spec)) + "\n";
}
