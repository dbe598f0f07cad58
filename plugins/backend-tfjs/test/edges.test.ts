// What the conformance suite does not reach, against the reference backend: copies whose
// destination repeats elements (sequential writes and adds), bf16 and wrapping i32 accumulation,
// f32 → i32 saturation, lifetime errors, memory counters, and attention's size limit.
import t from "tap";
import { ReferenceBackend, type DType, type DeviceBuffer, type HostArray, type TensorBackend } from "@ecomla/core";
import { createTfjsBackend } from "@ecomla/backend-tfjs";

const tfjs = await createTfjsBackend({ prefer: process.env.ECOMLA_TFJS_BACKEND ?? "wasm" });
const reference = new ReferenceBackend();

/** Run `body` on both backends with the same host inputs; returns both downloads of the buffer it returns. */
async function both(inputs: { dtype: DType; data: HostArray }[], body: (be: TensorBackend, bufs: DeviceBuffer[]) => DeviceBuffer): Promise<[HostArray, HostArray]> {
  const results: HostArray[] = [];
  for (const be of [tfjs, reference] as TensorBackend[]) {
    const bufs = inputs.map(({ dtype, data }) => {
      const buf = be.alloc(dtype, data.length);
      be.upload(buf, data);
      return buf;
    });
    const out = body(be, bufs);
    results.push(await be.download(out));
    for (const buf of bufs) be.free(buf);
  }
  return [results[0]!, results[1]!];
}

t.test("copyStrided into a destination that repeats elements: row-major order, bit for bit", async (t) => {
  const src = Float32Array.from({ length: 15 }, (_, i) => Math.fround(0.1 * (i + 1)) * (i % 2 ? -1e3 : 1));
  const dst = Float32Array.from([1e-3, 2e7, -5]);
  for (const accumulate of [false, true]) {
    const [got, want] = await both([{ dtype: "f32", data: src }, { dtype: "f32", data: dst }], (be, [s, d]) => {
      be.copyStrided({ src: s!, srcStrides: [5, 1], dst: d!, dstStrides: [1, 0], shape: [3, 5], accumulate });
      return d!;
    });
    t.same(Array.from(got), Array.from(want), accumulate ? "each row summed into one element in order" : "the last write of each row wins");
  }
});

t.test("copyStrided accumulate: bf16 rounds per add, i32 wraps", async (t) => {
  const bits = Uint16Array.from([0x3f80, 0x3f81, 0x4000, 0xc2f7, 0x0001, 0x7f7f]);
  const [gotHalf, wantHalf] = await both([{ dtype: "bf16", data: bits }, { dtype: "bf16", data: Uint16Array.from([0x3f80, 0x3c00, 0x4480]) }], (be, [s, d]) => {
    be.copyStrided({ src: s!, srcStrides: [3, 1], dst: d!, dstStrides: [0, 1], shape: [2, 3], accumulate: true });
    return d!;
  });
  t.same(Array.from(gotHalf), Array.from(wantHalf), "bf16");
  const big = Int32Array.from([2147483600, -2147483600, 7]);
  const [gotInt, wantInt] = await both([{ dtype: "i32", data: big }, { dtype: "i32", data: Int32Array.from([100, -100, -7]) }], (be, [s, d]) => {
    be.copyStrided({ src: s!, srcStrides: [1], dst: d!, dstStrides: [1], shape: [3], accumulate: true });
    return d!;
  });
  t.same(Array.from(gotInt), Array.from(wantInt), "i32 wraps like the reference");
});

t.test("cast f32 -> i32 truncates, saturates and maps NaN to 0 like the reference", async (t) => {
  const values = Float32Array.from([NaN, 3e9, -3e9, 2147483648, -2147483648, 2147483520, -2.7, 2.7, -0, Infinity, -Infinity]);
  const [got, want] = await both([{ dtype: "f32", data: values }, { dtype: "i32", data: new Int32Array(values.length) }], (be, [s, d]) => {
    be.cast(s!, d!, values.length);
    return d!;
  });
  t.same(Array.from(got), Array.from(want));
});

t.test("buffers: lifetime errors and memory counters", async (t) => {
  const before = tfjs.memoryStats();
  const tensorsBefore = tfjs.tfjsTensors();
  const a = tfjs.alloc("f32", 10);
  const b = tfjs.alloc("bf16", 6);
  t.equal(tfjs.memoryStats().liveBuffers, before.liveBuffers + 2);
  t.equal(tfjs.memoryStats().liveBytes, before.liveBytes + 40 + 12);
  tfjs.fill(a, 3, 4, 2);
  tfjs.upload(a, Float32Array.from([7, 8]), 8);
  t.same(Array.from(await tfjs.download(a, 2, 8)), [3, 3, 3, 3, 0, 0, 7, 8], "fill and upload write only their range");
  tfjs.fill(b, 1.5, 6);
  t.same(Array.from(await tfjs.download(b as DeviceBuffer & { dtype: "bf16" })), new Array(6).fill(0x3fc0), "bf16 fill stores raw bits");
  t.throws(() => tfjs.upload(a, new Int32Array(2)), /takes a Float32Array, found Int32Array/);
  t.throws(() => reference.free(a), /buffer of backend 'tfjs'/, "another backend refuses it");
  tfjs.free(a);
  tfjs.free(b);
  t.throws(() => tfjs.free(a), /freeing twice/);
  t.throws(() => tfjs.fill(a, 0, 1), /use after free/);
  t.equal(tfjs.memoryStats().liveBuffers, before.liveBuffers);
  t.equal(tfjs.tfjsTensors(), tensorsBefore, "no tfjs tensor left behind");
});

t.test("native attention declines score matrices past its limit (core's chunked composition runs them)", async (t) => {
  const args = (queryLen: number) => [{ batch: 1, numHeads: 32, numKvHeads: 8, queryLen, keyLen: queryLen, qkDim: 64, vDim: 64 }];
  t.equal(tfjs.supports("attention", args(512)), true);
  t.equal(tfjs.supports("attentionBackward", args(4096)), false);
  t.equal(tfjs.supports("softmax", []), true);
});
