// Size-bucketed pool of native blocks: a freed buffer's block is kept for the next alloc of the same
// bucket, so a training step that allocates and frees the same shapes reaches a steady state with
// no native allocation at all.
import type { NativeAddon } from "./native.js";

/** Bucket capacity in bytes: powers of two split in quarters (≤ 25% slack), at least 256 bytes. */
export function bucketBytes(bytes: number): number {
  if (bytes <= 256) return 256;
  const pow = 2 ** Math.floor(Math.log2(bytes));
  const quarter = pow / 4;
  return pow + Math.ceil((bytes - pow) / quarter) * quarter;
}

/** Counters of the pool itself (memoryStats counts live buffers only). */
export interface PoolStats {
  /** Blocks waiting for reuse. */
  pooledBlocks: number;
  /** Bytes held by those blocks. */
  pooledBytes: number;
  /** Native allocations made (a pool hit makes none). */
  nativeAllocs: number;
}

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private pooledBytes = 0;
  private pooledBlocks = 0;
  private nativeAllocs = 0;

  constructor(
    private readonly native: NativeAddon,
    /** Blocks beyond this many pooled bytes are released to the allocator instead. */
    private readonly maxPooledBytes: number,
  ) {}

  take(bytes: number): ArrayBuffer {
    const size = bucketBytes(bytes);
    const list = this.free.get(size);
    const hit = list?.pop();
    if (hit) {
      this.pooledBytes -= size;
      this.pooledBlocks--;
      return hit;
    }
    this.nativeAllocs++;
    return this.native.alloc(size);
  }

  give(block: ArrayBuffer): void {
    const size = block.byteLength;
    if (this.pooledBytes + size > this.maxPooledBytes) return;  // dropped: the GC finalizer frees it
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(block);
    this.pooledBytes += size;
    this.pooledBlocks++;
  }

  /** Drop every pooled block (their memory returns once the GC runs the finalizers). */
  trim(): void {
    this.free.clear();
    this.pooledBytes = 0;
    this.pooledBlocks = 0;
  }

  stats(): PoolStats {
    return { pooledBlocks: this.pooledBlocks, pooledBytes: this.pooledBytes, nativeAllocs: this.nativeAllocs };
  }
}
