// safetensors reading: values from hand-built files, every validation error, streaming reads.
import t, { type Test } from "tap";
import { mkdtempSync, rmSync, writeFileSync, openSync, ftruncateSync, writeSync, closeSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SafetensorsError, SafetensorsFile } from "@ecomla/core";

const dir = mkdtempSync(join(tmpdir(), "ecomla-st-read-"));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
/** Writes `8-byte N ‖ header ‖ data` by hand (header given as an object or raw text) and returns the path. */
function buildFile(header: unknown, data: Uint8Array = new Uint8Array(0), options: { rawHeader?: Uint8Array; declaredLength?: bigint } = {}): string {
  const headerBytes = options.rawHeader ?? new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, options.declaredLength ?? BigInt(headerBytes.byteLength), true);
  const path = join(dir, `f${fileCounter++}.safetensors`);
  writeFileSync(path, Buffer.concat([prefix, headerBytes, data]));
  return path;
}

/** Little-endian bytes of f32 values. */
function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}
/** Little-endian bytes of 16-bit words. */
function u16Bytes(words: number[]): Uint8Array {
  return new Uint8Array(new Uint16Array(words).buffer);
}

t.test("reads F32, BF16, F16 and I32 tensors from a hand-built file", async (t) => {
  // Data section: a F32 [2,2] at 0..16, b BF16 [3] at 16..22, 2 gap bytes, c F16 [3] at 24..30, d I32 [2] at 32..40.
  const data = new Uint8Array(40);
  data.set(f32Bytes([1.5, -2, 0.25, 3e38]), 0);
  data.set(u16Bytes([0x3f80, 0xc040, 0x3f81]), 16); // 1, -3, 1+2^-7
  data.set(u16Bytes([0x3c00, 0x0001, 0x7bff]), 24); // 1, 2^-24 (subnormal), 65504
  data.set(new Uint8Array(new Int32Array([-7, 2147483647]).buffer), 32);
  const path = buildFile(
    {
      __metadata__: { format: "pt" },
      a: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] },
      b: { dtype: "BF16", shape: [3], data_offsets: [16, 22] },
      c: { dtype: "F16", shape: [3], data_offsets: [24, 30] },
      d: { dtype: "I32", shape: [2], data_offsets: [32, 40] },
    },
    data,
  );
  const file = await SafetensorsFile.open(path);
  t.teardown(() => file.close());
  t.same(file.names(), ["a", "b", "c", "d"]);
  t.same(file.metadata, { format: "pt" });
  const headerLength = file.headerByteLength;
  t.same(file.info("c"), { name: "c", dtype: "F16", shape: [3], byteOffset: 8 + headerLength + 24, byteLength: 6, file: path });
  t.same([...(await file.readF32("a"))], [1.5, -2, 0.25, Math.fround(3e38)]);
  t.same([...(await file.readF32("b"))], [1, -3, 1 + 2 ** -7]);
  t.same([...(await file.readF32("c"))], [1, 2 ** -24, 65504]);
  t.same([...(await file.readI32("d"))], [-7, 2147483647]);
  const raw = await file.read("b");
  t.same({ dtype: raw.dtype, shape: raw.shape, bytes: [...raw.data] }, { dtype: "BF16", shape: [3], bytes: [0x80, 0x3f, 0x40, 0xc0, 0x81, 0x3f] });
  await t.rejects(file.readI32("a"), /tensor a in .*f\d+\.safetensors: readI32 reads dtype I32, found F32/);
  await t.rejects(file.readF32("d"), /tensor d in .*: readF32 reads dtype F32, F16, BF16, found I32/);
});

t.test("f16 widening matches a closed form on every bit pattern; bf16 is a 16-bit shift", async (t) => {
  const n = 65536;
  const words = Array.from({ length: n }, (_, i) => i);
  const path = buildFile(
    {
      h: { dtype: "F16", shape: [n], data_offsets: [0, 2 * n] },
      b: { dtype: "BF16", shape: [n], data_offsets: [2 * n, 4 * n] },
    },
    Buffer.concat([u16Bytes(words), u16Bytes(words)]),
  );
  const file = await SafetensorsFile.open(path);
  t.teardown(() => file.close());
  const halves = await file.readF32("h");
  const brains = await file.readF32("b");
  let f16Mismatches = 0;
  let bf16Mismatches = 0;
  const bits = new Uint32Array(brains.buffer);
  for (let i = 0; i < n; i++) {
    const sign = i & 0x8000 ? -1 : 1;
    const exponent = (i >> 10) & 31;
    const mantissa = i & 1023;
    const expected =
      exponent === 0 ? sign * mantissa * 2 ** -24 : exponent === 31 ? (mantissa ? NaN : sign * Infinity) : sign * (1024 + mantissa) * 2 ** (exponent - 25);
    if (!Object.is(halves[i], expected) && !(Number.isNaN(expected) && Number.isNaN(halves[i]))) f16Mismatches++;
    if (bits[i] !== i * 65536) bf16Mismatches++;
  }
  t.equal(f16Mismatches, 0, "f16 → f32 exact for all 65536 patterns (incl. subnormals, ±0, Inf, NaN)");
  t.equal(bf16Mismatches, 0, "bf16 → f32 keeps the bits in the upper half for all 65536 patterns");
});

/** Asserts that opening the bytes fails with a SafetensorsError whose message matches. */
async function rejectsOpen(t: Test, path: string, pattern: RegExp): Promise<void> {
  const error = await SafetensorsFile.open(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(error, SafetensorsError, `rejects with a SafetensorsError matching ${pattern}`);
  t.match((error as Error | undefined)?.message, pattern);
  t.match((error as Error | undefined)?.message, path.split("/").pop()!, "the message names the file");
}

t.test("validation: prefix and header length", async (t) => {
  const short = join(dir, "short.safetensors");
  writeFileSync(short, Buffer.from([1, 2, 3]));
  await rejectsOpen(t, short, /file is 3 bytes, shorter than the 8-byte header length prefix/);
  await rejectsOpen(t, buildFile("{}", undefined, { declaredLength: 0n }), /header length is 0/);
  await rejectsOpen(t, buildFile("{}", undefined, { declaredLength: 100_000_001n }), /oversized header: header length 100000001 bytes exceeds the limit of 100000000/);
  await rejectsOpen(t, buildFile("{}", undefined, { declaredLength: 2n ** 64n - 1n }), /oversized header: header length 18446744073709551615 bytes exceeds/);
  await rejectsOpen(t, buildFile("{}", undefined, { declaredLength: 1000n }), /oversized header: header length 1000 bytes runs past the end of the file \(file is 10 bytes/);
});

t.test("validation: header JSON", async (t) => {
  await rejectsOpen(t, buildFile("", undefined, { rawHeader: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) }), /header \(4 bytes\) is not valid UTF-8/);
  await rejectsOpen(t, buildFile('{"a": '), /header is not valid JSON/);
  await rejectsOpen(t, buildFile("[1, 2]"), /header must be a JSON object of tensor entries, found an array/);
  await rejectsOpen(t, buildFile("42"), /header must be a JSON object .* found number 42/);
  await rejectsOpen(t, buildFile({ __metadata__: { n: 3 } }), /__metadata__\.n must be a string, found number 3/);
  await rejectsOpen(t, buildFile({ w: [1, 2] }), /tensor w in .*: expected an object with dtype, shape and data_offsets, found an array/);
  await rejectsOpen(t, buildFile({ w: { dtype: "F32", shape: [1] } }), /tensor w in .*: entry has no data_offsets/);
  await rejectsOpen(t, buildFile({ w: { shape: [1], data_offsets: [0, 4] } }), /tensor w in .*: entry has no dtype/);
  await rejectsOpen(t, buildFile({ w: { dtype: 32, shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /tensor w in .*: dtype must be a string, found number 32/);
  await rejectsOpen(t, buildFile({ w: { dtype: "F32", shape: "1", data_offsets: [0, 4] } }, new Uint8Array(4)), /tensor w in .*: shape must be an array of non-negative integers, found the string "1"/);
  await rejectsOpen(t, buildFile({ w: { dtype: "F32", shape: [2, -1], data_offsets: [0, 4] } }, new Uint8Array(4)), /tensor w in .*: shape must be an array of non-negative integers, found an array \[2,-1\]/);
  await rejectsOpen(t, buildFile({ w: { dtype: "F32", shape: [1.5], data_offsets: [0, 4] } }, new Uint8Array(4)), /tensor w in .*: shape must be .* \[1\.5\]/);
  await rejectsOpen(t, buildFile({ w: { dtype: "F32", shape: [1], data_offsets: [0] } }, new Uint8Array(4)), /tensor w in .*: data_offsets must be \[begin, end\] .* found an array \[0\]/);
  await rejectsOpen(t, buildFile({ w: { dtype: "F32", shape: [1], data_offsets: [-4, 0] } }, new Uint8Array(4)), /tensor w in .*: data_offsets must be/);
  await rejectsOpen(t, buildFile({ w: { dtype: "F32", shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4)), /tensor w in .*: data_offsets \[4, 0\] have begin > end/);
});

t.test("validation: dtypes", async (t) => {
  await rejectsOpen(t, buildFile({ w: { dtype: "Q4_K", shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /tensor w in .*: unknown dtype "Q4_K"; expected one of BOOL, U8, .*F32, F64, I64, U64/);
  await rejectsOpen(t, buildFile({ w: { dtype: "f32", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /tensor w in .*: unknown dtype "f32"/);
  // Known but unsupported dtypes parse; reading them is refused with the supported list.
  const path = buildFile(
    {
      d: { dtype: "F64", shape: [1], data_offsets: [0, 8] },
      l: { dtype: "I64", shape: [1], data_offsets: [8, 16] },
      u: { dtype: "U8", shape: [3], data_offsets: [16, 19] },
      e: { dtype: "F8_E4M3", shape: [1], data_offsets: [19, 20] },
    },
    new Uint8Array(20),
  );
  const file = await SafetensorsFile.open(path);
  t.teardown(() => file.close());
  t.same(file.names(), ["d", "l", "u", "e"]);
  await t.rejects(file.readF32("d"), /tensor d in .*f\d+\.safetensors: unsupported dtype F64; supported: F32, F16, BF16, I32/);
  await t.rejects(file.readI32("l"), /tensor l in .*: unsupported dtype I64; supported: F32, F16, BF16, I32/);
  await t.rejects(file.readF32("u"), /tensor u in .*: unsupported dtype U8/);
  t.same([...(await file.read("u")).data], [0, 0, 0], "raw bytes of any dtype stay readable");
});

t.test("validation: sizes, truncation, overlaps", async (t) => {
  await rejectsOpen(
    t,
    buildFile({ w: { dtype: "BF16", shape: [2, 3], data_offsets: [0, 10] } }, new Uint8Array(10)),
    /tensor w in .*: data_offsets \[0, 10\] span 10 bytes; expected 12 = 6 elements of shape \[2, 3\] × 2 bytes \(BF16\)/,
  );
  // A truncated file: the header promises 16 bytes of data, the file has 12.
  const truncated = buildFile({ w: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, new Uint8Array(12));
  await rejectsOpen(t, truncated, /tensor w in .*: data_offsets \[0, 16\] run past the end of the data section \(12 bytes\): file truncated or offsets wrong; expected a file of at least \d+ bytes, found \d+/);
  await rejectsOpen(
    t,
    buildFile(
      {
        a: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
        b: { dtype: "F32", shape: [2], data_offsets: [12, 20] },
      },
      new Uint8Array(20),
    ),
    /tensor b in .*: data_offsets \[12, 20\] overlap tensor a at \[0, 16\]/,
  );
  // Gaps, out-of-order entries and empty tensors are fine.
  const ok = buildFile(
    {
      late: { dtype: "F32", shape: [1], data_offsets: [24, 28] },
      early: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
      empty: { dtype: "F32", shape: [0, 5], data_offsets: [0, 0] },
      scalar: { dtype: "F32", shape: [], data_offsets: [8, 12] },
    },
    Buffer.concat([f32Bytes([1, 0, 2, 0, 0, 0, 3])]),
  );
  const file = await SafetensorsFile.open(ok);
  t.teardown(() => file.close());
  t.same([...(await file.readF32("late"))], [3]);
  t.same([...(await file.readF32("scalar"))], [2]);
  t.equal((await file.readF32("empty")).length, 0);
});

t.test("missing tensors and shapes: messages name file, tensor, expected and found", async (t) => {
  const path = buildFile(
    {
      "model.embed_tokens.weight": { dtype: "F32", shape: [4, 2], data_offsets: [0, 32] },
      "model.norm.weight": { dtype: "F32", shape: [2], data_offsets: [32, 40] },
    },
    new Uint8Array(40),
  );
  const file = await SafetensorsFile.open(path);
  t.teardown(() => file.close());
  t.ok(file.has("model.norm.weight"));
  t.notOk(file.has("lm_head.weight"));
  t.throws(() => file.info("lm_head.weight"), /tensor lm_head\.weight not found in .*f\d+\.safetensors \(has 2 tensors, e\.g\. model\.embed_tokens\.weight, model\.norm\.weight\)/);
  await t.rejects(file.readF32("lm_head.weight"), SafetensorsError);
  t.throws(
    () => file.requireTensors(["model.norm.weight", "lm_head.weight", "model.layers.0.self_attn.q_proj.weight"], "LlamaForCausalLM"),
    /f\d+\.safetensors: 2 of 3 tensors required by LlamaForCausalLM not found: lm_head\.weight, model\.layers\.0\.self_attn\.q_proj\.weight \(has 2 tensors/,
  );
  t.doesNotThrow(() => file.requireTensors(["model.norm.weight"]));
  t.equal(file.expectShape("model.embed_tokens.weight", [4, 2]).byteLength, 32);
  t.throws(() => file.expectShape("model.embed_tokens.weight", [5, 2]), /tensor model\.embed_tokens\.weight in .*f\d+\.safetensors: expected shape \[5, 2\], found \[4, 2\]/);
  t.throws(() => file.expectShape("model.norm.weight", [2, 1], "config hidden_size=2"), /tensor model\.norm\.weight in .* \(config hidden_size=2\): expected shape \[2, 1\], found \[2\]/);
});

t.test("open errors and close", async (t) => {
  await t.rejects(SafetensorsFile.open(join(dir, "nope.safetensors")), /nope\.safetensors: cannot open safetensors file: ENOENT/);
  await t.rejects(SafetensorsFile.open(dir), /expected a regular \.safetensors file, found a directory/);
  const fifo = join(dir, "pipe.safetensors");
  execFileSync("mkfifo", [fifo]); // opening a FIFO would block forever; it must be refused instead
  await t.rejects(SafetensorsFile.open(fifo), /pipe\.safetensors: expected a regular \.safetensors file, found a special file/);
  const path = buildFile({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, f32Bytes([5]));
  const file = await SafetensorsFile.open(path);
  await file.close();
  await file.close();
  await t.rejects(file.readF32("w"), /cannot read tensor w: the file was closed/);
});

t.test("a tensor of a 1 GiB sparse file is read from its offset, not the whole file", async (t) => {
  const gib = 2 ** 30;
  const header = JSON.stringify({
    big: { dtype: "F32", shape: [gib / 4], data_offsets: [0, gib] },
    tail: { dtype: "BF16", shape: [4], data_offsets: [gib, gib + 8] },
  });
  const path = join(dir, "sparse.safetensors");
  const fd = openSync(path, "w");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  writeSync(fd, Buffer.concat([prefix, Buffer.from(header)]));
  const dataStart = 8 + header.length;
  ftruncateSync(fd, dataStart + gib + 8); // sparse: the gigabyte costs no disk and no time
  writeSync(fd, u16Bytes([0x3f80, 0x4000, 0xbf80, 0x4040]), 0, 8, dataStart + gib);
  closeSync(fd);

  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  const file = await SafetensorsFile.open(path);
  t.teardown(() => file.close());
  t.same([...(await file.readF32("tail"))], [1, 2, -1, 3]);
  const elapsedMs = performance.now() - started;
  const rssGrowthMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
  t.ok(elapsedMs < 1000, `open + read of the tail took ${elapsedMs.toFixed(1)} ms`);
  t.ok(rssGrowthMb < 100, `RSS grew ${rssGrowthMb.toFixed(1)} MB (< 100)`);
  t.equal(file.info("big").byteLength, gib);
});
