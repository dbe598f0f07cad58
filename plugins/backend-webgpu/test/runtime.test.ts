// What the conformance suite cannot see: the buffer pool keeps memory flat, kernels only enqueue
// (no readback, no submit, between kernels of a step), and memoryStats is the exact live accounting.
import t from "tap";
import { Tensor, ops, tidy } from "@ecomla/core";
import { bucketBytes, createWebGpuBackend } from "@ecomla/backend-webgpu";

const be = await createWebGpuBackend();
t.teardown(() => be.destroy());

t.test("bucket sizes: ≥ the request, ≤ 25 % slack above 256 bytes", async (t) => {
  for (const bytes of [1, 4, 256, 257, 1000, 4096, 5000, 1 << 20, (1 << 20) + 1, 123457]) {
    const size = bucketBytes(bytes);
    t.ok(size >= bytes && size % 64 === 0 && (bytes <= 256 || size <= bytes * 1.25 + 64), `${bytes} → ${size}`);
  }
});

t.test("100 alloc/free cycles reuse pooled buffers and keep memoryStats flat", async (t) => {
  const start = be.memoryStats();
  const sizes = [17, 1000, 4096, 333, 65536];
  const cycle = () => {
    const bufs = sizes.map((n, i) => be.alloc(i % 2 === 0 ? "f32" : "bf16", n));
    for (const b of bufs) be.fill(b, 1.5, b.length);
    for (const b of bufs) be.free(b);
  };
  cycle();
  const created = be.poolStats().created;
  const capacity = be.poolStats().capacityBytes;
  for (let i = 0; i < 99; i++) cycle();
  await be.sync();
  const end = be.memoryStats();
  t.equal(be.poolStats().created, created, "no GPU buffer created after the first cycle");
  t.equal(be.poolStats().capacityBytes, capacity, "pool capacity flat");
  t.equal(end.liveBuffers, start.liveBuffers, "liveBuffers back to the start");
  t.equal(end.liveBytes, start.liveBytes, "liveBytes back to the start");
  t.equal(end.allocCount - start.allocCount, 500, "allocCount counts every alloc");
  const one = be.alloc("bf16", 3);
  t.equal(be.memoryStats().liveBytes - start.liveBytes, 6, "liveBytes is the logical size (3 bf16 = 6 bytes), not the bucket");
  be.free(one);
});

t.test("a training-like step records kernels without any readback or submit; download maps once", async (t) => {
  const x = Tensor.from(be, Float32Array.from({ length: 8 * 16 }, (_, i) => Math.sin(i)), [8, 16]);
  const w = Tensor.from(be, Float32Array.from({ length: 16 * 16 }, (_, i) => Math.cos(i) / 4), [16, 16]);
  w.requiresGrad = true;
  await be.sync();
  const before = be.counters();
  const loss = tidy(() => {
    const h = ops.matmul(x, w);
    const l = ops.mean(ops.reshape(ops.mul(h, h), [8 * 16]));
    l.backward();
    return l;
  });
  const during = be.counters();
  t.equal(during.maps - before.maps, 0, "no mapAsync between kernels");
  t.equal(during.submits - before.submits, 0, "no submit between kernels (one encoder batches them)");
  t.ok(during.dispatches - before.dispatches >= 3, `${during.dispatches - before.dispatches} dispatches recorded`);
  const value = await loss.item();
  const after = be.counters();
  t.equal(after.maps - during.maps, 1, "the download is the one readback");
  t.equal(after.submits - during.submits, 1, "and submits the batch once");
  t.ok(Number.isFinite(value) && value > 0);
  const hostX = await x.data();
  const hostW = await w.data();
  let expected = 0;
  for (let i = 0; i < 8; i++) {
    for (let j = 0; j < 16; j++) {
      let h = 0;
      for (let p = 0; p < 16; p++) h += hostX[i * 16 + p]! * hostW[p * 16 + j]!;
      expected += h * h;
    }
  }
  expected /= 8 * 16;
  t.ok(Math.abs(value - expected) <= 1e-5 * Math.max(1, expected), `mean(h²) = ${value} vs host ${expected}`);
  loss.dispose();
  x.dispose();
  w.grad?.dispose();
  w.dispose();
});

t.test("pipelines are compiled once per shader variant", async (t) => {
  const a = be.alloc("f32", 64);
  be.fill(a, 2, 64);
  be.unary("exp", a, a, 64);
  const compiled = be.counters().pipelines;
  for (let i = 0; i < 10; i++) be.unary("exp", a, a, 64);
  t.equal(be.counters().pipelines, compiled, "no recompilation for repeated kernels");
  const out = await be.download(a as typeof a & { dtype: "f32" }, 0, 1);
  t.ok(Number.isFinite(out[0]!) || out[0] === Infinity);
  be.free(a);
});
