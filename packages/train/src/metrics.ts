import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
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
    await writeFileAtomically(join(this.outputDir, "training_curves.svg"), curvesSvg(title, this.records));
  }
}

interface Series {
  label: string;
  color: string;
  points: [number, number][];
}

function niceTicks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(+v.toPrecision(12));
  return out;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function panel(series: Series[], x0: number, y0: number, w: number, h: number, yLabel: string): string {
  const pts = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (pts.length === 0) return `<text x="${x0 + w / 2}" y="${y0 + h / 2}" text-anchor="middle" fill="#888">no ${esc(yLabel)} yet</text>`;
  let [xMin, xMax] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [yMin, yMax] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (xMax === xMin) xMax = xMin + 1;
  if (yMax === yMin) [yMin, yMax] = [yMin - 0.5, yMax + 0.5];
  const pad = (yMax - yMin) * 0.05;
  [yMin, yMax] = [yMin - pad, yMax + pad];
  const sx = (x: number) => x0 + ((x - xMin) / (xMax - xMin)) * w;
  const sy = (y: number) => y0 + h - ((y - yMin) / (yMax - yMin)) * h;
  const parts: string[] = [`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#999"/>`];
  for (const t of niceTicks(yMin, yMax, 5)) {
    parts.push(`<line x1="${x0}" x2="${x0 + w}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#eee"/>`);
    parts.push(`<text x="${x0 - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end" font-size="11">${+t.toPrecision(4)}</text>`);
  }
  for (const t of niceTicks(xMin, xMax, 6)) {
    parts.push(`<text x="${sx(t).toFixed(1)}" y="${y0 + h + 16}" text-anchor="middle" font-size="11">${t}</text>`);
  }
  parts.push(`<text x="${x0 - 44}" y="${y0 + h / 2}" transform="rotate(-90 ${x0 - 44} ${y0 + h / 2})" text-anchor="middle" font-size="12">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    const finite = s.points.filter(([, y]) => Number.isFinite(y));
    if (finite.length === 0) return;
    const d = finite.map(([x, y], k) => `${k ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`);
    if (finite.length < 40) for (const [x, y] of finite) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
    parts.push(`<text x="${x0 + w - 8}" y="${y0 + 16 + 14 * i}" text-anchor="end" font-size="11" fill="${s.color}">${esc(s.label)}</text>`);
  });
  return parts.join("\n");
}

/**
 * A self-contained SVG of the run: training loss and validation loss over steps in the top panel,
 * validation KL to the teacher (or DPO preference accuracy) in the bottom one.
 */
export function curvesSvg(title: string, records: readonly MetricsRecord[]): string {
  const series = (kind: "train" | "eval", key: string): [number, number][] =>
    records.filter((r) => r.kind === kind && typeof r[key] === "number").map((r) => [r.step, r[key] as number]);
  const width = 720;
  const height = 520;
  const top = panel(
    [
      { label: "train loss", color: "#1f77b4", points: series("train", "loss") },
      { label: "validation loss", color: "#d62728", points: series("eval", "loss") },
    ],
    70, 40, width - 100, 190, "loss",
  );
  const hasKl = records.some((r) => r.kind === "eval" && typeof r["kl"] === "number");
  const bottomKey = hasKl ? "kl" : "accuracy";
  const bottom = panel(
    [{ label: hasKl ? "validation KL(teacher ‖ student)" : "validation preference accuracy", color: "#2ca02c", points: series("eval", bottomKey) }],
    70, 290, width - 100, 190, hasKl ? "KL (nats/token)" : "accuracy",
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    top,
    bottom,
    `<text x="${70 + (width - 100) / 2}" y="${height - 8}" text-anchor="middle" font-size="12">optimizer step</text>`,
    `</svg>`,
    "",
  ].join("\n");
}
