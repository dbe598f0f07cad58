// The suite can fail: a reference backend with one deliberately broken kernel must be reported
// under that kernel, and under no other.
import t from "tap";
import {
  ReferenceBackend,
  conformanceTap,
  runCompositionChecks,
  runConformance,
  runGradChecks,
  type ConformanceCheck,
  type TensorBackend,
} from "@ecomla/core";

/**
 * A reference backend with some methods replaced. A Proxy, not a subclass, so the reference's own
 * internal calls (if any) still reach the intact kernels.
 */
function broken(precision: "f32" | "f64", overrides: (base: ReferenceBackend) => Partial<TensorBackend>): ReferenceBackend {
  const base = new ReferenceBackend({ precision });
  const replaced = overrides(base) as Record<PropertyKey, unknown>;
  return new Proxy(base, {
    get(target, prop) {
      if (prop in replaced) return replaced[prop];
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function failing(checks: ConformanceCheck[]): string[] {
  return [...new Set(checks.filter((c) => !c.pass).map((c) => c.kernel))].sort();
}

const gemmIgnoresBeta = (b: ReferenceBackend): Partial<TensorBackend> => ({ gemm: (args) => b.gemm({ ...args, beta: 0 }) });
const softmaxOffBy1e3 = (b: ReferenceBackend): Partial<TensorBackend> => ({
  softmax: (x, out, rows, cols) => {
    b.softmax(x, out, rows, cols);
    b.unary("addScalar", out, out, rows * cols, 1e-3);
  },
});
const attentionWithoutMask = (b: ReferenceBackend): Partial<TensorBackend> => ({ attention: (args) => b.attention({ ...args, causal: false }) });
const klDivGradWithoutInvTemperature = (b: ReferenceBackend): Partial<TensorBackend> => ({
  klDiv: (args) => {
    b.klDiv(args);
    if (args.grad) b.unary("scale", args.grad, args.grad, args.rows * args.vocab, args.temperature ?? 1);
  },
});
const rmsNormBackwardOverwritesDWeight = (b: ReferenceBackend): Partial<TensorBackend> => ({
  rmsNormBackward: (x, weight, rstd, dy, dx, dWeight, rows, cols) => {
    b.fill(dWeight, 0, cols);
    b.rmsNormBackward(x, weight, rstd, dy, dx, dWeight, rows, cols);
  },
});

t.test("gemm that ignores beta", async (t) => {
  t.same(failing(await runConformance(broken("f32", gemmIgnoresBeta), { composed: false })), ["gemm"], "conformance of the native kernels");
  // The compositions that accumulate with beta = 1 (dWeight, dK/dV, dTable) inherit the broken
  // primitive, and are filed under their composed names; every other composition stays green.
  const accumulating = ["attentionBackward", "embeddingBackward", "rmsNormBackward"];
  t.same(failing(await runConformance(broken("f32", gemmIgnoresBeta))), [...accumulating.map((k) => `${k} (composed)`), "gemm"].sort(), "conformance with compositions");
  t.same(failing(await runCompositionChecks(broken("f32", gemmIgnoresBeta))), accumulating, "composition");
  t.same(failing(await runGradChecks({ backend: broken("f64", gemmIgnoresBeta) })), ["gemm"], "gradient (dC = beta·dOut)");
});

t.test("softmax off by 1e-3", async (t) => {
  t.same(failing(await runConformance(broken("f32", softmaxOffBy1e3))), ["softmax"], "conformance");
  t.same(failing(await runCompositionChecks(broken("f32", softmaxOffBy1e3))), ["softmax"], "composition");
  // The backward is fed the shifted forward output, so the softmax pair no longer agrees with finite
  // differences; the check is filed under the backward.
  t.same(failing(await runGradChecks({ backend: broken("f64", softmaxOffBy1e3) })), ["softmaxBackward"], "gradient");
});

t.test("attention that drops the causal mask", async (t) => {
  const checks = await runConformance(broken("f32", attentionWithoutMask));
  t.same(failing(checks), ["attention"], "conformance");
  t.ok(checks.filter((c) => c.kernel === "attention" && c.case.includes("non-causal")).every((c) => c.pass), "non-causal cases still pass");
  t.same(failing(await runCompositionChecks(broken("f32", attentionWithoutMask))), ["attention"], "composition");
  // The gradient check of the attention pair is filed under its backward, which no longer matches the forward.
  t.same(failing(await runGradChecks({ backend: broken("f64", attentionWithoutMask) })), ["attentionBackward"], "gradient");
});

t.test("klDiv whose gradient forgets 1/τ", async (t) => {
  const checks = await runConformance(broken("f32", klDivGradWithoutInvTemperature));
  t.same(failing(checks), ["klDiv"], "conformance");
  t.ok(checks.filter((c) => c.kernel === "klDiv" && c.case.includes("loss")).every((c) => c.pass), "losses still match");
  t.same(failing(await runCompositionChecks(broken("f32", klDivGradWithoutInvTemperature))), ["klDiv"], "composition");
  t.same(failing(await runGradChecks({ backend: broken("f64", klDivGradWithoutInvTemperature) })), ["klDiv"], "gradient");
});

t.test("rmsNormBackward that overwrites dWeight instead of accumulating", async (t) => {
  t.same(failing(await runConformance(broken("f32", rmsNormBackwardOverwritesDWeight))), ["rmsNormBackward"], "conformance");
  t.same(failing(await runGradChecks({ backend: broken("f64", rmsNormBackwardOverwritesDWeight) })), ["rmsNormBackward"], "gradient");
});

t.test("a kernel that throws fails its own cases and the suite goes on, memory balanced", async (t) => {
  const checks = await runConformance(
    broken("f32", () => ({
      rope: () => {
        throw new Error("rope: not implemented");
      },
    })),
  );
  t.same(failing(checks), ["rope"]);
  t.match(checks.find((c) => c.kernel === "rope")?.detail, /threw Error: rope: not implemented/);
});

t.test("a kernel that leaks a buffer fails the memory check", async (t) => {
  const checks = await runConformance(
    broken("f32", (b) => ({
      swiglu: (gate, up, out, n) => {
        b.alloc("f32", 1);
        b.swiglu(gate, up, out, n);
      },
    })),
  );
  t.same(failing(checks), ["memory"]);
  t.match(checks.find((c) => c.kernel === "memory" && !c.pass)?.detail, /before 0, after 2/);
});

t.test("conformanceTap: one subtest per kernel, one assertion per case", async (t) => {
  interface Recorded {
    name: string;
    asserts: { ok: boolean; message: string; diag: Record<string, unknown> }[];
    children: Recorded[];
  }
  const fake = (node: Recorded): unknown => ({
    test: async (name: string, fn: (t: unknown) => Promise<void> | void) => {
      const child: Recorded = { name, asserts: [], children: [] };
      node.children.push(child);
      await fn(fake(child));
    },
    ok: (ok: boolean, message: string, diag: Record<string, unknown>) => node.asserts.push({ ok, message, diag }),
  });
  const root: Recorded = { name: "root", asserts: [], children: [] };
  await conformanceTap(fake(root) as { test(name: string, fn: (t: any) => Promise<void> | void): unknown }, () => broken("f32", gemmIgnoresBeta), { kernels: ["gemm", "fill"] });
  const top = root.children[0]!;
  t.same(top.children.map((c) => c.name), ["fill", "gemm", "memory"]);
  const gemm = top.children[1]!;
  t.ok(gemm.asserts.length > 5);
  const failed = gemm.asserts.filter((a) => !a.ok);
  t.ok(failed.length > 0 && failed.every((a) => a.message.includes("beta=") && !a.message.includes("beta=0 ")), "failures are the beta ≠ 0 cases");
  t.match(failed[0]!.diag, { maxAbsErr: Number, maxRelErr: Number, atol: 2e-5, rtol: 1e-5, detail: String });
  t.ok(top.children[0]!.asserts.every((a) => a.ok), "fill passes");
});
