// Memory bandwidth measured in the same run as a decode benchmark: STREAM's "add" kernel
// (a[i] = b[i] + c[i]: two reads, one write) run by the tensor backend's own binary kernel over
// arrays far larger than the caches, on the threads the decode uses; the best pass counts, as in
// STREAM. (A plain JS loop reaches only a fraction of the bandwidth, so it is not used.)
import type { TensorBackend } from "@ecomla/core";

/** Bytes/s of a[i] = b[i] + c[i] in f32 (STREAM's count: 3 × 4 bytes per element), best of `passes`. */
export async function streamAddBandwidth(backend: TensorBackend, options: { elements?: number; passes?: number } = {}): Promise<{ bytesPerSecond: number; elements: number; kernel: string }> {
  const n = options.elements ?? 1 << 26; // 3 × 256 MiB
  const passes = options.passes ?? 6;
  const [a, b, c] = [0, 1, 2].map(() => backend.alloc("f32", n));
  try {
    backend.fill(b!, 1, n);
    backend.fill(c!, 2, n);
    let best = Infinity;
    for (let p = 0; p < passes; p++) {
      await backend.sync();
      const t0 = performance.now();
      backend.binary("add", b!, [n], c!, [n], a!, [n]);
      await backend.sync();
      if (p > 0) best = Math.min(best, performance.now() - t0); // the first pass faults the pages in
    }
    return { bytesPerSecond: (3 * 4 * n) / (best / 1000), elements: n, kernel: `${backend.name} binary add` };
  } finally {
    for (const buf of [a, b, c]) backend.free(buf!);
  }
}
