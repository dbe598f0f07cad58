// The conformance suite, the composition checks and the gradient checks, green on the reference
// backend; the f64 reference must also pass the f32 tolerance table against the f32 reference.
import t from "tap";
import { CONFORMANCE_KERNELS, FUSED_KERNELS, ReferenceBackend, composedLabel, conformanceTap, runCompositionChecks, runConformance, type DeviceBuffer, type HostArray } from "@ecomla/core";

conformanceTap(t, () => new ReferenceBackend());

/** A reference backend that fingerprints every upload, to see which inputs the suite generates. */
function recording(): { backend: ReferenceBackend; uploads: string[] } {
  const base = new ReferenceBackend({ precision: "f64" });
  const uploads: string[] = [];
  const backend = new Proxy(base, {
    get(target, prop) {
      if (prop === "upload") {
        return (buf: DeviceBuffer, data: HostArray, offset?: number) => {
          uploads.push(Array.from(data.slice(0, 8)).join(","));
          target.upload(buf, data, offset);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { backend, uploads };
}

t.test("the suite covers every kernel and is deterministic", async (t) => {
  const first = recording();
  const checks = await runConformance(first.backend, { seed: 7 });
  // The reference implements every fused kernel, so each is also checked as core's composition.
  const expected = [...CONFORMANCE_KERNELS, ...FUSED_KERNELS.map(composedLabel)];
  t.same([...new Set(checks.map((c) => c.kernel))].sort(), expected.sort(), "one or more checks for every kernel and every composition");
  t.ok(checks.length > 250, `${checks.length} checks`);
  t.same(checks.filter((c) => !c.pass), [], "the f64 reference under test passes the f32 tolerances");
  const again = recording();
  await runConformance(again.backend, { seed: 7 });
  t.same(again.uploads, first.uploads, "same seed, same inputs");
  const reseeded = recording();
  await runConformance(reseeded.backend, { seed: 8 });
  t.notSame(reseeded.uploads, first.uploads, "another seed, other inputs");
  const filtered = recording();
  await runConformance(filtered.backend, { seed: 7, kernels: ["klDiv"] });
  t.ok(filtered.uploads.length > 0 && filtered.uploads.every((u) => first.uploads.includes(u)), "a filtered run sees the same inputs for its cases");
});

t.test("kernels option filters, and the memory check is always reported", async (t) => {
  const checks = await runConformance(new ReferenceBackend(), { kernels: ["softmax"] });
  t.same([...new Set(checks.map((c) => c.kernel))], ["softmax", "softmax (composed)", "memory"]);
  t.ok(checks.every((c) => c.pass));
  const nativeOnly = await runConformance(new ReferenceBackend(), { kernels: ["softmax"], composed: false });
  t.same([...new Set(nativeOnly.map((c) => c.kernel))], ["softmax", "memory"], "composed: false skips the compositions");
  const comp = await runCompositionChecks(new ReferenceBackend(), { kernels: ["attention"] });
  t.same([...new Set(comp.map((c) => c.kernel))], ["attention", "memory"]);
  t.ok(comp.every((c) => c.pass));
});

t.test("an explicit reference backend is used and left balanced", async (t) => {
  const reference = new ReferenceBackend();
  const checks = await runConformance(new ReferenceBackend(), { reference, kernels: ["cast", "rope"] });
  t.ok(checks.length > 5 && checks.every((c) => c.pass));
  t.equal(reference.memoryStats().liveBuffers, 0, "reference buffers freed");
  t.ok(reference.memoryStats().allocCount > 0, "the given reference did the work");
});
