// A size-bucketed pool of GPU storage buffers. Freed buffers go back to their bucket and are handed
// out again by the next alloc of that bucket, so a training step that allocates the same shapes
// every step creates no GPU buffers after the first one. Reuse is safe without waiting: every
// command runs in queue order, so a kernel recorded after the free sees the buffer only after the
// earlier ones are done with it.

/** Pool occupancy (capacity, not the live-buffer accounting of memoryStats). */
export interface PoolStats {
  /** GPU buffers created since the pool was made. */
  created: number;
  /** Buffers idle in the pool now. */
  cachedBuffers: number;
  /** Bytes of the idle buffers. */
  cachedBytes: number;
  /** Bytes of every GPU buffer the pool owns (idle or handed out). */
  capacityBytes: number;
}

/** Bucket size for a request: 256-byte minimum, then four steps per power of two (≤ 25 % slack). */
export function bucketBytes(bytes: number): number {
  if (bytes <= 256) return 256;
  const power = 2 ** Math.floor(Math.log2(bytes));
  const step = power / 4;
  return Math.ceil(bytes / step) * step;
}

/** See the file comment. */
export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly stats: PoolStats = { created: 0, cachedBuffers: 0, cachedBytes: 0, capacityBytes: 0 };

  constructor(
    private readonly device: GPUDevice,
    private readonly usage: number = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    /** The device's maxBufferSize: a bucket never rounds a request past it. */
    private readonly maxBufferBytes = Number.MAX_SAFE_INTEGER,
  ) {}

  /** A buffer of at least `bytes` bytes (its size is the bucket's). */
  acquire(bytes: number): GPUBuffer {
    const size = Math.max(bytes, Math.min(bucketBytes(bytes), Math.floor(this.maxBufferBytes / 4) * 4));
    const list = this.free.get(size);
    const reused = list?.pop();
    if (reused !== undefined) {
      this.stats.cachedBuffers--;
      this.stats.cachedBytes -= size;
      return reused;
    }
    this.stats.created++;
    this.stats.capacityBytes += size;
    return this.device.createBuffer({ size, usage: this.usage });
  }

  /** Give a buffer back for reuse. */
  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    let list = this.free.get(size);
    if (list === undefined) {
      list = [];
      this.free.set(size, list);
    }
    list.push(buffer);
    this.stats.cachedBuffers++;
    this.stats.cachedBytes += size;
  }

  /** Destroy every idle buffer (call only when no recorded-but-unsubmitted command uses them). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const buffer of list) {
        this.stats.capacityBytes -= buffer.size;
        buffer.destroy();
      }
    }
    this.free.clear();
    this.stats.cachedBuffers = 0;
    this.stats.cachedBytes = 0;
  }

  snapshot(): PoolStats {
    return { ...this.stats };
  }
}
