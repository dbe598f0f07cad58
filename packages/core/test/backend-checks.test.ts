// The argument checks and memory bookkeeping a backend plugin takes from core (BackendChecks), on a
// toy buffer class: the messages name backend, kernel and argument, expected and found.
import t from "tap";
import { BackendChecks, EcomlaError, ShapeError, stridedSpan, type DType } from "@ecomla/core";

class ToyBuffer {
  readonly backend = "toy";
  freed = false;
  constructor(readonly owner: object, readonly dtype: DType, readonly length: number) {}
}

t.test("ownership, liveness, dtype and range are checked with named errors", async (t) => {
  const me = {};
  const other = {};
  const checks = new BackendChecks<ToyBuffer>("ToyBackend", "toy", me, (b): b is ToyBuffer => b instanceof ToyBuffer);
  const mine = new ToyBuffer(me, "f32", 10);
  t.equal(checks.typed("gemm", "a", mine, "f32", 4, 6), mine, "elements [6, 10) of a 10-element f32 buffer");
  t.throws(() => checks.typed("gemm", "a", mine, "f32", 5, 6), new ShapeError("ToyBackend.gemm: argument 'a' needs elements [6, 11) but has length 10"));
  t.throws(() => checks.typed("gemm", "a", mine, "i32", 1), new ShapeError("ToyBackend.gemm: argument 'a' has dtype f32, expected i32"));
  t.throws(() => checks.own("gemm", "b", new ToyBuffer(other, "f32", 1)), new EcomlaError("ToyBackend.gemm: argument 'b' belongs to another ToyBackend instance"));
  t.throws(() => checks.own("gemm", "b", { backend: "cpu", dtype: "f32", length: 1 }), new EcomlaError("ToyBackend.gemm: argument 'b' is a buffer of backend 'cpu', expected one of 'toy'"));
  mine.freed = true;
  t.throws(() => checks.own("gemm", "a", mine), new EcomlaError("ToyBackend.gemm: argument 'a' was already freed (use after free)"));
});

t.test("integers, shapes and broadcasting", async (t) => {
  const checks = new BackendChecks<ToyBuffer>("ToyBackend", "toy", {}, (b): b is ToyBuffer => b instanceof ToyBuffer);
  t.throws(() => checks.ints("rope", { tokens: 2.5 }), new ShapeError("ToyBackend.rope: tokens must be an integer ≥ 0, found 2.5"));
  t.throws(() => checks.ints("rope", { heads: 0 }, 1), new ShapeError("ToyBackend.rope: heads must be an integer ≥ 1, found 0"));
  t.throws(() => checks.shape("sum", "xShape", [2, -1]), new ShapeError("ToyBackend.sum: xShape[1] must be an integer ≥ 0, found -1"));
  t.throws(() => checks.shape("sum", "xShape", [1, 1, 1], 2), new ShapeError("ToyBackend.sum: xShape has rank 3, at most 2 supported: [1, 1, 1]"));
  t.doesNotThrow(() => checks.broadcast("add", "bShape", [3, 1], "outShape", [2, 3, 4]));
  t.throws(() => checks.broadcast("add", "bShape", [2, 4], "outShape", [2, 3, 4]), new ShapeError("ToyBackend.add: bShape [2, 4] does not broadcast to outShape [2, 3, 4]"));
});

t.test("memory statistics: live, peak, allocations", async (t) => {
  const checks = new BackendChecks<ToyBuffer>("ToyBackend", "toy", {}, (b): b is ToyBuffer => b instanceof ToyBuffer);
  checks.allocated(100);
  checks.allocated(50);
  checks.released(100);
  t.same(checks.snapshot(), { liveBuffers: 1, liveBytes: 50, peakBytes: 150, allocCount: 2 });
  checks.resetPeak();
  t.equal(checks.snapshot().peakBytes, 50);
});

t.test("stridedSpan: the elements a strided view touches", async (t) => {
  t.same(stridedSpan(3, [2, 3], [10, 1]), [3, 16], "rows 3..5 and 13..15");
  t.same(stridedSpan(9, [4], [-2]), [3, 10], "a negative stride walks down from the offset");
  t.equal(stridedSpan(0, [2, 0], [1, 1]), null, "an empty view touches nothing");
});

t.test("copyStrided and attention argument checks, shared by every backend", async (t) => {
  const me = {};
  const checks = new BackendChecks<ToyBuffer>("ToyBackend", "toy", me, (b): b is ToyBuffer => b instanceof ToyBuffer);
  const a = new ToyBuffer(me, "f32", 12);
  const b = new ToyBuffer(me, "f32", 12);
  const copy = { src: a, srcStrides: [4, 1], dst: b, dstOffset: 2, dstStrides: [1, 3], shape: [3, 3] };
  t.same(checks.copyStrided(copy), { src: a, dst: b, srcOffset: 0, dstOffset: 2, srcSpan: [0, 11] }, "offsets defaulted, the source span returned");
  t.throws(() => checks.copyStrided({ ...copy, dstOffset: 4 }), new ShapeError("ToyBackend.copyStrided: argument 'dst' needs elements [4, 13) but has length 12"));
  t.throws(() => checks.copyStrided({ ...copy, dst: new ToyBuffer(me, "i32", 12) }), new ShapeError("ToyBackend.copyStrided: src has dtype f32 but dst has dtype i32; they must match"));
  t.throws(() => checks.copyStrided({ ...copy, srcStrides: [4] }), /needs 2 strides, found srcStrides \[4\]/);
  t.throws(() => checks.copyStrided({ ...copy, shape: [1, 1, 1, 1, 1, 1, 1], srcStrides: [0, 0, 0, 0, 0, 0, 0], dstStrides: [0, 0, 0, 0, 0, 0, 0] }), /has rank 7, at most 6 supported/);

  // B=1, T=2, S=3, Hq=2, Hkv=1, D=2: q (1,2,2,2) = 8, k/v (1,3,1,2) = 6 elements.
  const q = new ToyBuffer(me, "f32", 8);
  const kv = new ToyBuffer(me, "f32", 6);
  const args = { batch: 1, queryLen: 2, keyLen: 3, numHeads: 2, numKvHeads: 1, qkDim: 2, vDim: 2, scale: 0.5, causal: true, q: { buf: q }, k: { buf: kv }, v: { buf: kv } };
  const got = checks.attention("attention", args);
  t.same([...got.packed], [1, 2, 3, 2, 1, 2, 2, 0.5, 1, 0, 8, 4, 2, 0, 6, 2, 2, 0, 6, 2, 2], "packed sizes, then offset and contiguous strides of q, k, v");
  t.same([got.rows, got.empty, got.q.buf === q], [4, false, true]);
  t.throws(() => checks.attention("attention", { ...args, numKvHeads: 3 }), new ShapeError("ToyBackend.attention: numKvHeads (3) must divide numHeads (2)"));
  t.throws(() => checks.attention("attention", { ...args, keyLen: 1 }), /causal attention needs keyLen ≥ queryLen, found keyLen 1 < queryLen 2/);
  t.throws(() => checks.attention("attention", { ...args, k: { buf: kv, offset: 1 } }), new ShapeError("ToyBackend.attention: argument 'k' needs elements [1, 7) but has length 6"));
  t.throws(() => checks.attention("attention", { ...args, v: { buf: new ToyBuffer(me, "bf16", 6) } }), new ShapeError("ToyBackend.attention: argument 'v' has dtype bf16, expected f32"));
});

t.test("gemm argument checks, shared by every backend", async (t) => {
  const me = {};
  const checks = new BackendChecks<ToyBuffer>("ToyBackend", "toy", me, (b): b is ToyBuffer => b instanceof ToyBuffer);
  // batch 2 of (3 × 4)·(4 × 5): A 24, B 40, C 30 elements when contiguous.
  const [a, b, c] = [new ToyBuffer(me, "f32", 24), new ToyBuffer(me, "f32", 40), new ToyBuffer(me, "f32", 30)];
  const args = { batch: 2, m: 3, n: 5, k: 4, transA: false, transB: false, alpha: 1, beta: 0, a, lda: 4, strideA: 12, b, ldb: 5, strideB: 20, c, ldc: 5, strideC: 15 };
  t.same(checks.gemm(args), { a, b, c, aOffset: 0, bOffset: 0, cOffset: 0 });
  t.throws(() => checks.gemm({ ...args, lda: 3 }), new ShapeError("ToyBackend.gemm: lda must be ≥ 4 (columns of A as stored), found 3"));
  t.throws(() => checks.gemm({ ...args, strideC: 0 }), new ShapeError("ToyBackend.gemm: strideC = 0 with batch 2 would write every batch to the same C"));
  t.throws(() => checks.gemm({ ...args, cOffset: 1 }), new ShapeError("ToyBackend.gemm: argument 'c' needs elements [1, 31) but has length 30"));
  t.throws(() => checks.gemm({ ...args, transB: true }), /argument 'b' needs elements \[0, 44\) but has length 40/, "transB reads B as (n, k) with ldb");
  t.throws(() => checks.gemm({ ...args, b: new ToyBuffer(me, "bf16", 40) }), new ShapeError("ToyBackend.gemm: argument 'b' has dtype bf16, expected f32"));
});
