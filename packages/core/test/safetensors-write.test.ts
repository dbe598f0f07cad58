// safetensors writing: bytes checked by hand-parsing (and against HF's own serializer test vectors),
// bf16/f16 rounding, lazy tensors, atomicity.
import t from "tap";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SafetensorsError, SafetensorsFile, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, writeSafetensors, type TensorToWrite } from "@ecomla/core";

const dir = mkdtempSync(join(tmpdir(), "ecomla-st-write-"));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Splits a file by hand: header length, header text (with padding), parsed JSON, data section. */
function parseByHand(path: string): { n: number; headerText: string; header: Record<string, any>; data: Buffer } {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const headerText = bytes.subarray(8, 8 + n).toString("utf8");
  return { n, headerText, header: JSON.parse(headerText), data: bytes.subarray(8 + n) };
}

t.test("byte-exact with HF's serializer test vectors", async (t) => {
  // safetensors/src/tensor.rs test_serialization: "attn.0" F32 [1,2,3] = 0..5, no padding needed (64-byte header).
  const a = join(dir, "hf-a.safetensors");
  await writeSafetensors(a, [{ name: "attn.0", dtype: "F32", shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) }]);
  t.same(
    [...readFileSync(a)],
    [
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104,
      97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93,
      125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ],
  );
  // test_serialization_forced_alignement: "attn0" [1,1,2,3], 65-byte JSON padded with 7 spaces to 72.
  const b = join(dir, "hf-b.safetensors");
  await writeSafetensors(b, [{ name: "attn0", dtype: "F32", shape: [1, 1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) }]);
  t.same(
    [...readFileSync(b)],
    [
      72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97,
      112, 101, 34, 58, 91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52,
      93, 125, 125, 32, 32, 32, 32, 32, 32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ],
  );
  // test_empty: no tensors, then no tensors with metadata {"framework": "pt"}.
  const empty = join(dir, "hf-empty.safetensors");
  await writeSafetensors(empty, []);
  t.same([...readFileSync(empty)], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  await writeSafetensors(empty, [], { framework: "pt" });
  t.same(
    [...readFileSync(empty)],
    [40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32],
  );
});

t.test("layout: dtype alignment then name, offsets contiguous, values little-endian", async (t) => {
  const path = join(dir, "layout.safetensors");
  const written = await writeSafetensors(
    path,
    [
      { name: "z.bf16", dtype: "BF16", shape: [3], data: new Float32Array([1, -2, 0.5]) },
      { name: "b.f32", dtype: "F32", shape: [2], data: new Float32Array([1.5, -0.25]) },
      { name: "10", dtype: "I32", shape: [1, 2], data: new Int32Array([-1, 123456789]) },
      { name: "a.f16", dtype: "F16", shape: [1], data: new Float32Array([65504]) },
      { name: "a.f32", dtype: "F32", shape: [], data: new Float32Array([7]) },
      { name: "2", dtype: "I32", shape: [1], data: new Int32Array([5]) },
    ],
    { format: "pt", b: "2", a: "1" },
  );
  const { n, headerText, header, data } = parseByHand(path);
  t.equal(n % 8, 0, "header length is a multiple of 8");
  t.match(headerText, /^\{.*\} *$/, "JSON then space padding");
  t.equal(headerText.length - headerText.trimEnd().length < 8, true);
  t.same(Object.keys(JSON.parse(headerText.replace(/"(\d+)":/g, '"#$1":'))), ["__metadata__", "a.f32", "b.f32", "#10", "#2", "z.bf16", "a.f16"], "F32, then I32, then BF16, then F16; by name within");
  t.same(header.__metadata__, { a: "1", b: "2", format: "pt" });
  t.same(header["a.f32"], { dtype: "F32", shape: [], data_offsets: [0, 4] });
  t.same(header["b.f32"], { dtype: "F32", shape: [2], data_offsets: [4, 12] });
  t.same(header["10"], { dtype: "I32", shape: [1, 2], data_offsets: [12, 20] });
  t.same(header["2"], { dtype: "I32", shape: [1], data_offsets: [20, 24] });
  t.same(header["z.bf16"], { dtype: "BF16", shape: [3], data_offsets: [24, 30] });
  t.same(header["a.f16"], { dtype: "F16", shape: [1], data_offsets: [30, 32] });
  t.equal(data.length, 32);
  t.same(written, { path, byteLength: 8 + n + 32, dataByteLength: 32 });
  t.equal(data.readFloatLE(0), 7);
  t.same([data.readFloatLE(4), data.readFloatLE(8)], [1.5, -0.25]);
  t.same([data.readInt32LE(12), data.readInt32LE(16), data.readInt32LE(20)], [-1, 123456789, 5]);
  t.same([data.readUInt16LE(24), data.readUInt16LE(26), data.readUInt16LE(28)], [0x3f80, 0xc000, 0x3f00], "bf16 1, -2, 0.5");
  t.equal(data.readUInt16LE(30), 0x7bff, "f16 65504");
});

t.test("bf16 rounds to nearest even, fast path agrees with f32ToBf16Bits on every kind of value", async (t) => {
  const special = [1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -16, -(1 + 2 ** -8), 3.4028234663852886e38, -Infinity, Infinity, NaN, 0, -0, 1e-45, 2 ** -126];
  const random = new Uint32Array(200_000);
  let state = 12345;
  for (let i = 0; i < random.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    random[i] = state;
  }
  const values = new Float32Array(special.length + random.length);
  values.set(special);
  new Uint32Array(values.buffer).set(random, special.length); // random bit patterns incl. NaNs with payloads, subnormals
  const path = join(dir, "bf16.safetensors");
  await writeSafetensors(path, [{ name: "x", dtype: "BF16", shape: [values.length], data: values }]);
  const { data } = parseByHand(path);
  const stored = new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
  t.equal(stored[0], 0x3f80, "1+2^-8 → 1 (tie to even)");
  t.equal(stored[1], 0x3f82, "1+3·2^-8 → 1+2^-6 (tie to even)");
  t.equal(stored[2], 0x3f81, "just above the tie rounds up");
  t.equal(stored[3], 0xbf80, "negative tie to even");
  t.equal(stored[4], 0x7f80, "f32 max rounds to +Inf");
  t.same([stored[5], stored[6]], [0xff80, 0x7f80]);
  t.equal(stored[7]! & 0x7fc0, 0x7fc0, "NaN stays a quiet NaN");
  t.same([stored[8], stored[9]], [0x0000, 0x8000], "±0 keep their sign");
  let mismatches = 0;
  for (let i = 0; i < values.length; i++) if (stored[i] !== f32ToBf16Bits(values[i]!)) mismatches++;
  t.equal(mismatches, 0, `all ${values.length} values match f32ToBf16Bits`);
  // Reading back is exact: each stored value is the bf16 bits shifted up.
  const file = await SafetensorsFile.open(path);
  t.teardown(() => file.close());
  const back = new Uint32Array((await file.readF32("x")).buffer);
  t.ok(back.every((bits, i) => bits === stored[i]! * 65536));
});

t.test("f16: hand-computed bits, round trip and the reference converter", async (t) => {
  const values = new Float32Array([1, -2, 0.5, 65504, 2 ** -24, 2 ** -14, 1 / 3, 65520, 1e-8, -0, 1 + 2 ** -11, 1 + 3 * 2 ** -11]);
  const path = join(dir, "f16.safetensors");
  await writeSafetensors(path, [{ name: "h", dtype: "F16", shape: [3, 4], data: values }]);
  const { data } = parseByHand(path);
  const bits = Array.from({ length: values.length }, (_, i) => data.readUInt16LE(2 * i));
  t.same(bits, [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x0400, 0x3555, 0x7c00, 0x0000, 0x8000, 0x3c00, 0x3c02]);
  t.same(bits, [...values].map((v) => f32ToF16Bits(v)));
  const file = await SafetensorsFile.open(path);
  t.teardown(() => file.close());
  const back = await file.readF32("h");
  t.same([...back.subarray(0, 6)], [1, -2, 0.5, 65504, 2 ** -24, 2 ** -14], "representable values round-trip exactly");
  t.equal(back[6], f16BitsToF32(0x3555));
  t.ok(Math.abs(back[6]! - 1 / 3) <= 2 ** -12, "1/3 within half an f16 ulp");
  t.equal(back[7], Infinity, "65520 is the overflow tie: rounds to Inf");
});

t.test("lazy tensors are produced in layout order, one at a time", async (t) => {
  const path = join(dir, "lazy.safetensors");
  const calls: string[] = [];
  const lazy = (name: string, values: number[]): TensorToWrite => ({
    name,
    dtype: "F32",
    shape: [values.length],
    data: async () => {
      calls.push(name);
      return new Float32Array(values);
    },
  });
  await writeSafetensors(path, [lazy("b", [2, 3]), lazy("a", [1]), { name: "c", dtype: "BF16", shape: [1], data: () => new Float32Array([4]) }]);
  t.same(calls, ["a", "b"]);
  const file = await SafetensorsFile.open(path);
  t.teardown(() => file.close());
  t.same([...(await file.readF32("a")), ...(await file.readF32("b")), ...(await file.readF32("c"))], [1, 2, 3, 4]);
});

t.test("atomic: a throwing lazy tensor leaves the old file intact and no temporary files", async (t) => {
  const folder = mkdtempSync(join(dir, "atomic-"));
  const path = join(folder, "model.safetensors");
  writeFileSync(path, "old contents");
  const big = new Float32Array(1 << 20).fill(1);
  await t.rejects(
    writeSafetensors(path, [
      { name: "a", dtype: "F32", shape: [big.length], data: big },
      { name: "b", dtype: "F32", shape: [1], data: () => { throw new Error("producer failed"); } },
    ]),
    /producer failed/,
  );
  t.equal(readFileSync(path, "utf8"), "old contents");
  t.same(readdirSync(folder), ["model.safetensors"]);
  // A lazy tensor returning the wrong length is caught the same way, naming the tensor.
  await t.rejects(
    writeSafetensors(path, [{ name: "w", dtype: "BF16", shape: [2, 2], data: () => new Float32Array(3) }]),
    /tensor w for .*model\.safetensors: shape \[2, 2\] has 4 elements, data has 3/,
  );
  t.same(readdirSync(folder), ["model.safetensors"]);
  t.equal(readFileSync(path, "utf8"), "old contents");
  // Success replaces it.
  await writeSafetensors(path, [{ name: "w", dtype: "F32", shape: [1], data: new Float32Array([9]) }]);
  t.same(readdirSync(folder), ["model.safetensors"]);
  const file = await SafetensorsFile.open(path);
  t.same([...(await file.readF32("w"))], [9]);
  await file.close();
});

t.test("raw bytes in the stored dtype are written unchanged (a tensor copied from another checkpoint)", async (t) => {
  const source = join(dir, "raw-source.safetensors");
  const copy = join(dir, "raw-copy.safetensors");
  // 1/3 and -2.5e-3 in bf16 and f16 are not exact, so a decode → re-encode round trip is checked too.
  const values = new Float32Array([1 / 3, -2.5e-3, 7, 0]);
  await writeSafetensors(source, [
    { name: "b", dtype: "BF16", shape: [2, 2], data: values },
    { name: "h", dtype: "F16", shape: [4], data: values },
  ]);
  const file = await SafetensorsFile.open(source);
  const b = await file.read("b");
  const h = await file.read("h");
  await writeSafetensors(copy, [
    { name: "b", dtype: "BF16", shape: [2, 2], data: b.data },
    { name: "h", dtype: "F16", shape: [4], data: async () => h.data },
  ]);
  const again = await SafetensorsFile.open(copy);
  t.same([...(await again.read("b")).data], [...b.data]);
  t.same([...(await again.read("h")).data], [...h.data]);
  t.same([...(await again.readF32("b"))], [...(await file.readF32("b"))]);
  t.same(readFileSync(copy), readFileSync(source), "same tensors, same layout: the files are byte-identical");
  await file.close();
  await again.close();
});

t.test("writer input validation names the tensor and what was found", async (t) => {
  const path = join(dir, "bad.safetensors");
  const cases: [TensorToWrite[], RegExp][] = [
    [[{ name: "w", dtype: "F32", shape: [2], data: new Int32Array(2) }], /tensor w for .*bad\.safetensors: dtype F32 needs a Float32Array, found Int32Array/],
    [[{ name: "i", dtype: "I32", shape: [2], data: new Float32Array(2) }], /tensor i for .*: dtype I32 needs an Int32Array, found Float32Array/],
    [[{ name: "w", dtype: "F32", shape: [2, 3], data: new Float32Array(5) }], /tensor w for .*: shape \[2, 3\] has 6 elements, data has 5/],
    [[{ name: "w", dtype: "BF16", shape: [2, 3], data: new Uint8Array(11) }], /tensor w for .*: shape \[2, 3\] in BF16 takes 12 bytes, the raw data has 11/],
    [[{ name: "w", dtype: "F64" as "F32", shape: [1], data: new Float32Array(1) }], /tensor w for .*: cannot write dtype "F64"; supported: F32, BF16, F16, I32/],
    [[{ name: "w", dtype: "F32", shape: [-1], data: new Float32Array(1) }], /tensor w for .*: shape must be an array of non-negative integers, found \[-1\]/],
    [
      [
        { name: "w", dtype: "F32", shape: [1], data: new Float32Array(1) },
        { name: "w", dtype: "F32", shape: [1], data: new Float32Array(1) },
      ],
      /tensor w for .*: name given twice/,
    ],
    [[{ name: "__metadata__", dtype: "F32", shape: [1], data: new Float32Array(1) }], /tensor name must be a non-empty string other than __metadata__/],
  ];
  for (const [tensors, pattern] of cases) {
    await t.rejects(writeSafetensors(path, tensors), pattern);
  }
  t.notOk(existsSync(path));
  t.same(readdirSync(dir).filter((f) => f.includes(".tmp-")), [], "no temporary files left");
  const error = await writeSafetensors(path, cases[0]![0]).catch((e: unknown) => e);
  t.type(error, SafetensorsError);
});
