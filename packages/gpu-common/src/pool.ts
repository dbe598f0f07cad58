// Size-bucketed pool of device allocations: a freed buffer's block waits for the next alloc of the
// same bucket, so a training step that allocates and frees the same shapes reaches a steady state
// with no cudaMalloc/cudaFree (both synchronise the device). Reuse is safe without events because
// every kernel runs on the backend's one stream, in program order.

/** Bucket capacity in bytes: powers of two split in quarters (≤ 25% slack), at least 256 bytes. */
export function bucketBytes(bytes: number): number {
  if (bytes <= 256) return 256;
  const pow = 2 ** Math.floor(Math.log2(bytes));
  const quarter = pow / 4;
  return pow + Math.ceil((bytes - pow) / quarter) * quarter;
}

/** The device allocator the pool sits on (the addon, or a fake in tests). */
export interface DeviceAllocator {
  alloc(bytes: number): number;
  free(ptr: number): void;
}

/** Counters of the pool itself (memoryStats counts live buffers only). */
export interface PoolStats {
  /** Blocks waiting for reuse. */
  pooledBlocks: number;
  /** Bytes held by those blocks. */
  pooledBytes: number;
  /** Device allocations made (a pool hit makes none). */
  deviceAllocs: number;
  /** Device frees made (trim, overflow, or retry after an allocation failure). */
  deviceFrees: number;
}

export class DevicePool {
  private readonly free = new Map<number, number[]>();
  private pooledBytes = 0;
  private pooledBlocks = 0;
  private deviceAllocs = 0;
  private deviceFrees = 0;

  constructor(
    private readonly device: DeviceAllocator,
    /** Blocks beyond this many pooled bytes are freed instead of kept. */
    private readonly maxPooledBytes: number,
  ) {}

  /** A block of bucketBytes(bytes); on an allocation failure the pool is emptied and the allocation retried once. */
  take(bytes: number): { ptr: number; capacity: number } {
    const capacity = bucketBytes(bytes);
    const hit = this.free.get(capacity)?.pop();
    if (hit !== undefined) {
      this.pooledBytes -= capacity;
      this.pooledBlocks--;
      return { ptr: hit, capacity };
    }
    let ptr: number;
    try {
      ptr = this.device.alloc(capacity);
    } catch (error) {
      if (this.pooledBlocks === 0) throw error;
      this.trim();
      ptr = this.device.alloc(capacity);
    }
    this.deviceAllocs++;
    return { ptr, capacity };
  }

  give(ptr: number, capacity: number): void {
    if (this.pooledBytes + capacity > this.maxPooledBytes) {
      this.device.free(ptr);
      this.deviceFrees++;
      return;
    }
    let list = this.free.get(capacity);
    if (!list) this.free.set(capacity, (list = []));
    list.push(ptr);
    this.pooledBytes += capacity;
    this.pooledBlocks++;
  }

  /** Free every pooled block on the device. */
  trim(): void {
    for (const list of this.free.values()) {
      for (const ptr of list) {
        this.device.free(ptr);
        this.deviceFrees++;
      }
    }
    this.free.clear();
    this.pooledBytes = 0;
    this.pooledBlocks = 0;
  }

  stats(): PoolStats {
    return { pooledBlocks: this.pooledBlocks, pooledBytes: this.pooledBytes, deviceAllocs: this.deviceAllocs, deviceFrees: this.deviceFrees };
  }
}
