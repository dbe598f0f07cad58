// Finite-difference gradient checks of every backward kernel on the f64 reference backend.
import t from "tap";
import { gradCheckTap, runGradChecks } from "@ecomla/core";

gradCheckTap(t);

t.test("every kernel with a backward is grad-checked", async (t) => {
  const checks = await runGradChecks({ kernels: ["attentionBackward", "klDiv"] });
  t.same([...new Set(checks.map((c) => c.kernel))], ["attentionBackward", "klDiv"], "kernels option filters");
  const names = checks.map((c) => c.case).join("\n");
  for (const needle of ["GQA Hq/Hkv=4", "unequal dims", "causal S>T", "fused QKV", "top-1", "dense"]) t.match(names, needle);
});
