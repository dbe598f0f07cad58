import { textWidth, type Box } from "./charts.js";

/** A text of a rendered SVG with its box in canvas pixels. */
export interface TextBox extends Box {
  text: string;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decode(s: string): string {
  return s.replace(/&(#x?[0-9a-fA-F]+|\w+);/g, (m, e: string) =>
    e.startsWith("#x") ? String.fromCodePoint(parseInt(e.slice(2), 16)) : e.startsWith("#") ? String.fromCodePoint(Number(e.slice(1))) : (ENTITIES[e] ?? m),
  );
}

function translateOf(transform: string | undefined): [number, number] {
  const m = /^\s*translate\(\s*([-\d.e]+)[ ,]\s*([-\d.e]+)\s*\)/.exec(transform ?? "");
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

const attr = (tag: string, name: string) => new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];

/**
 * The box of every text of an SVG as Vega writes it (group translations, `translate(x,y)` and
 * `rotate(-90)` on texts, text-anchor, font-size, the alphabetic baseline), widths by the same
 * estimate Vega lays out with (0.8 em per character: wider than real glyphs, so a check on these
 * boxes is on the safe side).
 */
export function svgTextBoxes(svg: string): { width: number; height: number; boxes: TextBox[] } {
  const root = /<svg\b[^>]*>/.exec(svg)?.[0] ?? "";
  const width = Number(attr(root, "width"));
  const height = Number(attr(root, "height"));
  const boxes: TextBox[] = [];
  const stack: [number, number][] = [[0, 0]];
  const tags = /<(\/?)(g|text)\b([^>]*?)(\/?)>(?:([^<]*)<\/text>)?/g;
  for (let m = tags.exec(svg); m; m = tags.exec(svg)) {
    const [, closing, name, attrs, selfClosing, content] = m;
    const [ox, oy] = stack.at(-1)!;
    if (name === "g") {
      if (closing) stack.pop();
      else if (!selfClosing) {
        const [tx, ty] = translateOf(attr(` ${attrs}`, "transform"));
        stack.push([ox + tx, oy + ty]);
      }
      continue;
    }
    if (closing || content === undefined) continue;
    const text = decode(content);
    if (!text.trim()) continue;
    const tag = ` ${attrs}`;
    // Vega hides the tick labels it drops for overlap with opacity 0: they are not drawn.
    if (Number(attr(tag, "opacity") ?? 1) === 0 || Number(attr(tag, "fill-opacity") ?? 1) === 0) continue;
    const size = parseFloat(attr(tag, "font-size") ?? "11");
    const transform = attr(tag, "transform") ?? "";
    const [tx, ty] = translateOf(transform);
    const x = ox + tx + Number(attr(tag, "x") ?? 0);
    const y = oy + ty + Number(attr(tag, "y") ?? 0);
    const w = textWidth(text, size);
    const anchor = attr(tag, "text-anchor") ?? "start";
    const u0 = anchor === "middle" ? -w / 2 : anchor === "end" ? -w : 0;
    const rotate = /rotate\(\s*([-\d.]+)\s*\)(?:\s*translate\(\s*([-\d.e]+)[ ,]\s*([-\d.e]+)\s*\))?/.exec(transform);
    if (!rotate) {
      boxes.push({ text, x0: x + u0, x1: x + u0 + w, y0: y - 0.79 * size, y1: y + 0.21 * size });
    } else if (Number(rotate[1]) === -90 || Number(rotate[1]) === 270) {
      // Local (u, v) after rotate(-90) maps to (x + v, y - u).
      const du = Number(rotate[2] ?? 0);
      const dv = Number(rotate[3] ?? 0);
      boxes.push({ text, x0: x - 0.79 * size + dv, x1: x + 0.21 * size + dv, y0: y - (u0 + w + du), y1: y - (u0 + du) });
    } else {
      throw new Error(`svgTextBoxes: text "${text}" is rotated by ${rotate[1]}°; only -90° is handled`);
    }
  }
  return { width, height, boxes };
}

/** What is wrong with an SVG's texts: boxes outside the canvas, and pairs that overlap (empty when all is well). */
export function labelProblems(svg: string): string[] {
  const { width, height, boxes } = svgTextBoxes(svg);
  const problems: string[] = [];
  const r = (b: Box) => `[${b.x0.toFixed(1)}, ${b.y0.toFixed(1)}, ${b.x1.toFixed(1)}, ${b.y1.toFixed(1)}]`;
  for (const b of boxes) {
    if (b.x0 < 0 || b.y0 < 0 || b.x1 > width || b.y1 > height) problems.push(`"${b.text}" ${r(b)} leaves the ${width}×${height} canvas`);
  }
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i]!;
      const b = boxes[j]!;
      // Touching is fine; a shared edge of rounding size is not an overlap.
      if (a.x0 < b.x1 - 0.5 && b.x0 < a.x1 - 0.5 && a.y0 < b.y1 - 0.5 && b.y0 < a.y1 - 0.5) problems.push(`"${a.text}" ${r(a)} overlaps "${b.text}" ${r(b)}`);
    }
  }
  return problems;
}
