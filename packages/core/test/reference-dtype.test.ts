// Reference backend: dtype conversions, memory bookkeeping and argument validation.
import t from "tap";
import {
  EcomlaError,
  ReferenceBackend,
  ShapeError,
  bf16BitsToF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
} from "@ecomla/core";

/** The f32 value with the given raw bits (to build inputs that are not short decimals). */
function f32FromBits(bits: number): number {
  return new Float32Array(new Uint32Array([bits]).buffer)[0]!;
}

t.test("bf16 rounds to nearest, ties to even", async (t) => {
  t.equal(f32ToBf16Bits(1), 0x3f80);
  t.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80, "1+2^-8 is a tie between 1 and 1+2^-7: goes to even 1");
  t.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82, "1+3·2^-8 is a tie between 1+2^-7 and 1+2^-6: goes to even 1+2^-6");
  t.equal(bf16BitsToF32(0x3f82), 1 + 2 ** -6);
  t.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -16), 0x3f81, "just above the tie rounds up");
  t.equal(f32ToBf16Bits(-2), 0xc000);
  t.equal(f32ToBf16Bits(f32FromBits(0x7f7fffff)), 0x7f80, "f32 max rounds up to +Inf");
  t.equal(f32ToBf16Bits(-Infinity), 0xff80);
  const nanBits = f32ToBf16Bits(NaN);
  t.equal(nanBits & 0x7f80, 0x7f80, "NaN keeps an all-ones exponent");
  t.ok((nanBits & 0x0040) !== 0, "NaN is quiet");
  t.ok(Number.isNaN(bf16BitsToF32(nanBits)));
  t.equal(bf16BitsToF32(0x0001), 2 ** -133, "bf16 subnormals decode exactly");
  t.equal(f32ToBf16Bits(-0), 0x8000, "negative zero keeps its sign");
});

t.test("f16 rounds to nearest even with subnormals and overflow", async (t) => {
  t.equal(f32ToF16Bits(1), 0x3c00);
  t.equal(f32ToF16Bits(65504), 0x7bff, "max finite");
  t.equal(f32ToF16Bits(65519), 0x7bff, "below the midpoint to 65536 stays finite");
  t.equal(f32ToF16Bits(65520), 0x7c00, "65520 is the tie to 2^16: goes to even, i.e. +Inf");
  t.equal(f32ToF16Bits(-1e6), 0xfc00);
  t.equal(f32ToF16Bits(2 ** -24), 0x0001, "smallest subnormal");
  t.equal(f32ToF16Bits(2 ** -25), 0x0000, "half the smallest subnormal is a tie to even 0");
  t.equal(f32ToF16Bits(1.5 * 2 ** -25), 0x0001);
  t.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002, "1.5 units ties to even 2");
  t.equal(f32ToF16Bits(2 ** -14), 0x0400, "smallest normal");
  t.equal(f32ToF16Bits(2 ** -14 - 2 ** -25), 0x0400, "the top subnormal tie rounds into the normals");
  t.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00, "1+2^-11 ties to even 1");
  t.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
  t.equal(f32ToF16Bits(1 / 3), 0x3555);
  t.equal(f16BitsToF32(0x3555), 0.333251953125);
  t.equal(f16BitsToF32(0x7bff), 65504);
  t.equal(f16BitsToF32(0x0001), 2 ** -24);
  t.equal(f16BitsToF32(0x8000), -0);
  t.equal(f16BitsToF32(0xfc00), -Infinity);
  t.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
  // Every f16 value survives f16 → f32 → f16.
  let mismatches = 0;
  for (let bits = 0; bits < 0x10000; bits++) {
    const v = f16BitsToF32(bits);
    if (Number.isNaN(v)) continue;
    if (f32ToF16Bits(v) !== bits) mismatches++;
  }
  t.equal(mismatches, 0, "all 63,488 non-NaN f16 values round-trip");
});

t.test("cast converts by value between every dtype pair", async (t) => {
  const be = new ReferenceBackend();
  const src = be.alloc("f32", 4);
  be.upload(src, new Float32Array([-1.7, 1.7, 2.5, 1 + 3 * 2 ** -8]));
  const asI32 = be.alloc("i32", 4);
  be.cast(src, asI32, 4);
  t.same(Array.from(await be.download(asI32)), [-1, 1, 2, 1], "f32 → i32 truncates toward zero");
  const back = be.alloc("f32", 4);
  be.cast(asI32, back, 4);
  t.same(Array.from(await be.download(back)), [-1, 1, 2, 1]);
  const bf = be.alloc("bf16", 4);
  be.cast(src, bf, 4);
  t.equal((await be.download(bf))[3], 0x3f82, "f32 → bf16 rounds ties to even");
  const half = be.alloc("f16", 4);
  be.cast(bf, half, 4);
  be.cast(half, back, 4);
  t.same(Array.from(await be.download(back)), [bf16BitsToF32(f32ToBf16Bits(-1.7)), bf16BitsToF32(f32ToBf16Bits(1.7)), 2.5, 1 + 2 ** -6], "bf16 → f16 → f32 keeps bf16 values that f16 can hold");
  const copy = be.alloc("bf16", 4);
  be.cast(bf, copy, 4);
  t.same(await be.download(copy), await be.download(bf), "same-dtype cast copies bits");
  const big = be.alloc("f32", 2);
  be.upload(big, new Float32Array([3e9, NaN]));
  be.cast(big, asI32, 2);
  t.same(Array.from(await be.download(asI32, 0, 2)), [2147483647, 0], "f32 → i32 saturates; NaN gives 0");
});

t.test("f64 precision stores f32 buffers in float64; download rounds to f32", async (t) => {
  const be = new ReferenceBackend({ precision: "f64" });
  const x = be.alloc("f32", 2);
  be.writeF64(x, [0.1, 1 + 2 ** -40]);
  t.same(Array.from(be.readF64(x)), [0.1, 1 + 2 ** -40], "readF64 returns the exact stored values");
  const down = await be.download(x);
  t.type(down, Float32Array);
  t.same(Array.from(down), [Math.fround(0.1), 1]);
  const y = be.alloc("f32", 2);
  be.unary("scale", x, y, 2, 3);
  t.equal(be.readF64(y)[0], 0.1 * 3, "kernels compute and store in float64");
  const f32 = new ReferenceBackend();
  const z = f32.alloc("f32", 1);
  f32.writeF64(z, [0.1]);
  t.equal(f32.readF64(z)[0], Math.fround(0.1), "f32 precision rounds on store");
  const h = be.alloc("f16", 1);
  be.writeF64(h, [1 / 3]);
  t.equal(be.readF64(h)[0], 0.333251953125, "writeF64/readF64 encode and decode 16-bit formats");
});

t.test("memoryStats counts exactly", async (t) => {
  const be = new ReferenceBackend();
  t.same(be.memoryStats(), { liveBuffers: 0, liveBytes: 0, peakBytes: 0, allocCount: 0 });
  const a = be.alloc("f32", 10);
  const b = be.alloc("bf16", 3);
  t.same(be.memoryStats(), { liveBuffers: 2, liveBytes: 46, peakBytes: 46, allocCount: 2 });
  be.free(a);
  const c = be.alloc("i32", 1);
  t.same(be.memoryStats(), { liveBuffers: 2, liveBytes: 10, peakBytes: 46, allocCount: 3 });
  be.free(b);
  be.free(c);
  t.same(be.memoryStats(), { liveBuffers: 0, liveBytes: 0, peakBytes: 46, allocCount: 3 });
  be.resetPeak();
  t.equal(be.memoryStats().peakBytes, 0);
  const wide = new ReferenceBackend({ precision: "f64" });
  wide.alloc("f32", 2);
  t.equal(wide.memoryStats().liveBytes, 8, "bytes are counted at the logical dtype size in f64 mode too");
});

t.test("lifetime and ownership errors name the kernel and the argument", async (t) => {
  const be = new ReferenceBackend();
  const other = new ReferenceBackend();
  const x = be.alloc("f32", 4);
  const y = be.alloc("f32", 4);
  be.free(y);
  t.throws(() => be.free(y), { constructor: EcomlaError, message: "ReferenceBackend.free: buffer (f32, length 4) was already freed (freeing twice)" });
  t.throws(() => be.unary("exp", x, y, 4), { message: "ReferenceBackend.unary(exp): argument 'out' was already freed (use after free)" });
  await t.rejects(be.download(y), { message: /download: argument 'buf' was already freed/ });
  t.throws(() => other.unary("exp", x, x, 4), { message: "ReferenceBackend.unary(exp): argument 'x' belongs to another ReferenceBackend instance" });
  const fake = { backend: "webgpu", dtype: "f32" as const, length: 4 };
  t.throws(() => be.fill(fake, 0, 4), { message: "ReferenceBackend.fill: argument 'out' is a buffer of backend 'webgpu', expected one of 'reference'" });
});

t.test("dtype, range and shape errors say what was expected and found", async (t) => {
  const be = new ReferenceBackend();
  const x = be.alloc("f32", 6);
  const ids = be.alloc("i32", 6);
  t.throws(
    () => be.gemm({ batch: 1, m: 2, n: 3, k: 1, transA: false, transB: false, alpha: 1, beta: 0, a: ids, lda: 1, strideA: 0, b: x, ldb: 3, strideB: 0, c: x, ldc: 3, strideC: 0 }),
    { constructor: ShapeError, message: "ReferenceBackend.gemm: argument 'a' has dtype i32, expected f32" },
  );
  t.throws(() => be.upload(x, new Float32Array(4), 3), { constructor: ShapeError, message: "ReferenceBackend.upload: argument 'buf' needs elements [3, 7) but has length 6" });
  t.throws(() => be.upload(x, new Int32Array(2)), { message: "ReferenceBackend.upload: a f32 buffer takes a Float32Array, found Int32Array" });
  t.throws(() => be.softmax(x, x, 2, 4), { message: "ReferenceBackend.softmax: argument 'x' needs elements [0, 8) but has length 6" });
  t.throws(() => be.binary("add", x, [2, 3], x, [2], x, [2, 3]), { message: "ReferenceBackend.binary(add): bShape [2] does not broadcast to outShape [2, 3]" });
  t.throws(
    () => be.copyStrided({ src: x, srcStrides: [1, 3], dst: x, dstStrides: [3, 1], shape: [2, 3] }),
    { message: "ReferenceBackend.copyStrided: argument 'src' needs elements [0, 8) but has length 6" },
  );
  t.throws(() => be.copyStrided({ src: x, srcStrides: [1], dst: ids, dstStrides: [1], shape: [6] }), { message: /src has dtype f32 but dst has dtype i32/ });
  be.upload(ids, new Int32Array([0, 1, 5, 1, 0, 2]));
  const table = be.alloc("f32", 10);
  t.throws(() => be.embedding(ids, table, be.alloc("f32", 12), 6, 5, 2), {
    constructor: EcomlaError,
    message: "ReferenceBackend.embedding: ids[2] = 5 is out of range [0, 5)",
  });
  const labels = be.alloc("i32", 2);
  be.upload(labels, new Int32Array([-1, 7]));
  t.throws(() => be.crossEntropy({ logits: x, rows: 2, vocab: 3, loss: be.alloc("f32", 2), labels }), {
    message: "ReferenceBackend.crossEntropy: labels[1] = 7 is out of range [0, 3)",
  });
  const q = { buf: x };
  t.throws(
    () => be.attention({ batch: 1, queryLen: 3, keyLen: 2, numHeads: 1, numKvHeads: 1, qkDim: 1, vDim: 1, scale: 1, causal: true, q, k: q, v: q, out: x }),
    { message: "ReferenceBackend.attention: causal attention needs keyLen ≥ queryLen, found keyLen 2 < queryLen 3" },
  );
  t.throws(() => be.unary("scale", x, x, 6), { message: "ReferenceBackend.unary(scale): op 'scale' needs alpha, found undefined" });
});
