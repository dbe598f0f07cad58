// ecomla's charts as Vega specs, rendered to SVG headless (no browser, no canvas). Every text in
// them is placed by Vega's layout (axes, titles, legends) or by placeLabels below, so no two labels
// overlap and none is clipped; svgTextBoxes checks that on the rendered SVG.
import type { Spec } from "vega";

/** One line of a chart: (x, y) points in order. */
export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  /** Draw a marker at each point (default: when the series has fewer than 40 points). */
  markers?: boolean;
}

/** One panel of a {@link linePanelsSpec}: a y axis and its series over a shared x. */
export interface Panel {
  yTitle: string;
  series: readonly Series[];
  /** Pixels (default 200). */
  height?: number;
  /** Log-scale y (perplexities). */
  logY?: boolean;
}

const FONT = "sans-serif";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

/** Vega's own estimate of a text's width without a canvas (what its layout uses headless). */
export function textWidth(text: string, fontSize: number): number {
  return Math.floor(0.8 * text.length * fontSize);
}

function finite(series: readonly Series[]): { series: string; x: number; y: number; i: number }[] {
  return series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y], i) => ({ series: s.name, x, y, i })));
}

/**
 * Panels stacked over one x axis (e.g. loss on top, KL below), each with its own y axis and a
 * legend naming its series; a panel without data says so.
 */
export function linePanelsSpec(options: { title: string; xTitle: string; panels: readonly Panel[]; width?: number }): Spec {
  const width = options.width ?? 560;
  const allX = options.panels.flatMap((p) => finite(p.series).map((d) => d.x));
  const xDomain = allX.length ? [Math.min(...allX), Math.max(...allX) === Math.min(...allX) ? Math.min(...allX) + 1 : Math.max(...allX)] : [0, 1];
  const panels = options.panels.map((panel, k) => {
    const rows = finite(panel.series);
    const height = panel.height ?? 200;
    const names = panel.series.map((s) => s.name);
    const withMarkers = new Set(panel.series.filter((s) => s.markers ?? s.points.length < 40).map((s) => s.name));
    const last = k === options.panels.length - 1;
    const data = `panel${k}`;
    return {
      type: "group",
      name: `panel${k}`,
      encode: { enter: { width: { value: width }, height: { value: height } } },
      data: [{ name: data, values: rows }, { name: `${data}-markers`, source: data, transform: [{ type: "filter", expr: `indexof(${JSON.stringify([...withMarkers])}, datum.series) >= 0` }] }],
      scales: [
        // Explicit pixel ranges: "width"/"height" would name the top-level view's signals, not this panel's size.
        { name: "x", type: "linear", domain: xDomain, range: [0, width], zero: false, nice: false },
        { name: "y", type: panel.logY ? "log" : "linear", domain: rows.length ? { data, field: "y" } : [0, 1], range: [height, 0], zero: false, nice: true },
        { name: "color", type: "ordinal", domain: names, range: COLORS.slice(0, Math.max(1, names.length)) },
      ],
      axes: [
        { orient: "bottom", scale: "x", title: last ? options.xTitle : undefined, labels: last, labelOverlap: true, labelFlush: true, tickCount: 6, grid: false },
        { orient: "left", scale: "y", title: panel.yTitle, labelOverlap: true, tickCount: 5, grid: true, gridColor: "#eee" },
      ],
      legends: names.length ? [{ fill: "color", stroke: "color", orient: "right", symbolType: "stroke", symbolStrokeWidth: 2, labelLimit: 260 }] : [],
      marks: [
        {
          type: "group",
          from: { facet: { name: `${data}-series`, data, groupby: "series" } },
          marks: [{
            type: "line", from: { data: `${data}-series` }, sort: { field: "datum.x" },
            encode: { enter: { x: { scale: "x", field: "x" }, y: { scale: "y", field: "y" }, stroke: { scale: "color", field: "series" }, strokeWidth: { value: 1.5 } } },
          }],
        },
        { type: "symbol", from: { data: `${data}-markers` }, encode: { enter: { x: { scale: "x", field: "x" }, y: { scale: "y", field: "y" }, fill: { scale: "color", field: "series" }, size: { value: 16 } } } },
        ...(rows.length ? [] : [{ type: "text", encode: { enter: { x: { value: width / 2 }, y: { value: height / 2 }, text: { value: `no ${panel.yTitle} yet` }, align: { value: "center" }, baseline: { value: "middle" }, fill: { value: "#888" }, fontSize: { value: 12 }, font: { value: FONT } } } }]),
      ],
    };
  });
  return {
    $schema: "https://vega.github.io/schema/vega/v6.json",
    padding: 10,
    background: "white",
    autosize: { type: "pad" },
    config: { font: FONT, axis: { labelFont: FONT, titleFont: FONT }, legend: { labelFont: FONT }, title: { font: FONT } },
    title: { text: options.title, fontSize: 14, limit: width + 200 },
    layout: { columns: 1, padding: 24, bounds: "full", align: "each" },
    marks: panels,
  } as unknown as Spec;
}

/** A labelled point of a {@link scatterSpec}. */
export interface LabelledPoint {
  x: number;
  y: number;
  label: string;
  /** Colour group, named in the legend (e.g. "teacher", "SVD init", "random init"). */
  group: string;
}

/** A label placed in plot pixels: its anchor point, alignment and box. */
export interface PlacedLabel {
  text: string;
  x: number;
  y: number;
  align: "left" | "right" | "center";
  baseline: "top" | "middle" | "bottom";
  box: Box;
}

/** An axis-aligned box: [x0, y0] top-left, [x1, y1] bottom-right. */
export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

const overlaps = (a: Box, b: Box) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;

/**
 * Place a label beside each point (pixel coordinates within a width × height plot): the first of
 * eight positions, at growing distances, that stays inside the plot and clears every marker and
 * every label placed before. A label with no free place is left out (the legend still names it).
 */
export function placeLabels(points: readonly { x: number; y: number; text: string }[], width: number, height: number, fontSize = 11, markerRadius = 5): (PlacedLabel | null)[] {
  const markers = points.map((p) => ({ x0: p.x - markerRadius, y0: p.y - markerRadius, x1: p.x + markerRadius, y1: p.y + markerRadius }));
  const placed: Box[] = [];
  return points.map((p) => {
    const w = textWidth(p.text, fontSize);
    const h = fontSize;
    for (const gap of [markerRadius + 3, markerRadius + 10, markerRadius + 20]) {
      const candidates: Omit<PlacedLabel, "text">[] = [
        { x: p.x + gap, y: p.y, align: "left", baseline: "middle", box: { x0: p.x + gap, y0: p.y - h / 2, x1: p.x + gap + w, y1: p.y + h / 2 } },
        { x: p.x - gap, y: p.y, align: "right", baseline: "middle", box: { x0: p.x - gap - w, y0: p.y - h / 2, x1: p.x - gap, y1: p.y + h / 2 } },
        { x: p.x, y: p.y - gap, align: "center", baseline: "bottom", box: { x0: p.x - w / 2, y0: p.y - gap - h, x1: p.x + w / 2, y1: p.y - gap } },
        { x: p.x, y: p.y + gap, align: "center", baseline: "top", box: { x0: p.x - w / 2, y0: p.y + gap, x1: p.x + w / 2, y1: p.y + gap + h } },
        { x: p.x + gap * 0.7, y: p.y - gap * 0.7, align: "left", baseline: "bottom", box: { x0: p.x + gap * 0.7, y0: p.y - gap * 0.7 - h, x1: p.x + gap * 0.7 + w, y1: p.y - gap * 0.7 } },
        { x: p.x + gap * 0.7, y: p.y + gap * 0.7, align: "left", baseline: "top", box: { x0: p.x + gap * 0.7, y0: p.y + gap * 0.7, x1: p.x + gap * 0.7 + w, y1: p.y + gap * 0.7 + h } },
        { x: p.x - gap * 0.7, y: p.y - gap * 0.7, align: "right", baseline: "bottom", box: { x0: p.x - gap * 0.7 - w, y0: p.y - gap * 0.7 - h, x1: p.x - gap * 0.7, y1: p.y - gap * 0.7 } },
        { x: p.x - gap * 0.7, y: p.y + gap * 0.7, align: "right", baseline: "top", box: { x0: p.x - gap * 0.7 - w, y0: p.y + gap * 0.7, x1: p.x - gap * 0.7, y1: p.y + gap * 0.7 + h } },
      ];
      const ok = candidates.find((c) => c.box.x0 >= 0 && c.box.y0 >= 0 && c.box.x1 <= width && c.box.y1 <= height && !markers.some((m) => overlaps(m, c.box)) && !placed.some((b) => overlaps(b, c.box)));
      if (ok) {
        placed.push(ok.box);
        return { text: p.text, ...ok };
      }
    }
    return null;
  });
}

/**
 * A scatter of labelled points (e.g. score against KV-cache size), with a line through the points
 * of `lineGroups` in x order; each label placed by {@link placeLabels}, groups in a legend.
 */
export function scatterSpec(options: { title: string; xTitle: string; yTitle: string; points: readonly LabelledPoint[]; lineGroups?: readonly string[]; xFormat?: string; width?: number; height?: number }): Spec {
  const width = options.width ?? 520;
  const height = options.height ?? 320;
  const xs = options.points.map((p) => p.x);
  const ys = options.points.map((p) => p.y);
  // Explicit domains with a margin, so the labels' pixel positions are known before Vega draws.
  const span = (lo: number, hi: number) => (hi - lo || Math.abs(hi) || 1);
  const xDomain = [Math.min(0, ...xs), Math.max(...xs) + 0.08 * span(Math.min(0, ...xs), Math.max(...xs))];
  const yPad = 0.15 * span(Math.min(...ys), Math.max(...ys));
  const yDomain = [Math.min(...ys) - yPad, Math.max(...ys) + yPad];
  const px = (x: number) => ((x - xDomain[0]!) / (xDomain[1]! - xDomain[0]!)) * width;
  const py = (y: number) => height - ((y - yDomain[0]!) / (yDomain[1]! - yDomain[0]!)) * height;
  const labels = placeLabels(options.points.map((p) => ({ x: px(p.x), y: py(p.y), text: p.label })), width, height);
  const groups = [...new Set(options.points.map((p) => p.group))];
  const linePoints = options.points.filter((p) => options.lineGroups?.includes(p.group)).sort((a, b) => a.x - b.x);
  return {
    $schema: "https://vega.github.io/schema/vega/v6.json",
    width, height, padding: 10, background: "white", autosize: { type: "pad" },
    config: { font: FONT },
    title: { text: options.title, fontSize: 14, limit: width + 150 },
    data: [
      { name: "points", values: options.points },
      { name: "line", values: linePoints },
      { name: "labels", values: labels.filter((l): l is PlacedLabel => l !== null) },
    ],
    scales: [
      { name: "x", type: "linear", domain: xDomain, range: "width", nice: false, zero: false },
      { name: "y", type: "linear", domain: yDomain, range: "height", nice: false, zero: false },
      { name: "color", type: "ordinal", domain: groups, range: COLORS.slice(0, groups.length) },
    ],
    axes: [
      { orient: "bottom", scale: "x", title: options.xTitle, format: options.xFormat, labelOverlap: true, labelFlush: true, tickCount: 6 },
      { orient: "left", scale: "y", title: options.yTitle, labelOverlap: true, tickCount: 6, grid: true, gridColor: "#eee" },
    ],
    legends: [{ fill: "color", orient: "right", title: null, symbolType: "circle" }],
    marks: [
      { type: "line", from: { data: "line" }, encode: { enter: { x: { scale: "x", field: "x" }, y: { scale: "y", field: "y" }, stroke: { value: "#9ecae1" }, strokeWidth: { value: 1.5 } } } },
      { type: "symbol", from: { data: "points" }, encode: { enter: { x: { scale: "x", field: "x" }, y: { scale: "y", field: "y" }, fill: { scale: "color", field: "group" }, size: { value: 78 } } } },
      {
        type: "text", from: { data: "labels" }, name: "point-labels",
        encode: { enter: { x: { field: "x" }, y: { field: "y" }, text: { field: "text" }, align: { field: "align" }, baseline: { field: "baseline" }, fontSize: { value: 11 }, font: { value: FONT }, fill: { value: "#222" } } },
      },
    ],
  } as unknown as Spec;
}

/** Perplexity at each position of the context window, one line per model (teacher vs students), log y. */
export function perplexityByPositionSpec(options: { title?: string; models: readonly { name: string; perplexity: readonly number[] }[]; width?: number }): Spec {
  return linePanelsSpec({
    title: options.title ?? "Perplexity by position in the context window",
    xTitle: "position in the context window (tokens)",
    width: options.width,
    panels: [{ yTitle: "perplexity", logY: true, height: 260, series: options.models.map((m) => ({ name: m.name, points: m.perplexity.map((p, i) => [i, p] as const), markers: false })) }],
  });
}

/** Render a Vega spec to a standalone SVG string, headless (Vega's text-width estimate, no canvas). */
export async function renderSvg(spec: Spec): Promise<string> {
  const vega = await import("vega");
  const view = new vega.View(vega.parse(spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
