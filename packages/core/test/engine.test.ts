// Tensor lifetime, scopes and the tape.
import t from "tap";
import { ReferenceBackend, Tensor, keep, noGrad, ops, tidy, tidyAsync } from "@ecomla/core";

const be = new ReferenceBackend();
const live = () => be.memoryStats().liveBuffers;

t.test("tidy frees what the block created, except what it returns", async (t) => {
  const before = live();
  const a = Tensor.from(be, [1, 2, 3], [3]);
  const out = tidy(() => {
    const b = ops.scale(a, 2);
    const c = ops.add(b, a);
    return { c, extra: [ops.exp(c)] };
  });
  t.equal(live(), before + 3, "a, c and exp(c) survive; b is freed");
  t.same(await out.c.toArray(), [3, 6, 9]);
  out.c.dispose();
  out.extra[0]!.dispose();
  a.dispose();
  t.equal(live(), before);
});

t.test("nested scopes hand survivors to the parent; keep() escapes all of them", async (t) => {
  const before = live();
  let kept: Tensor | null = null;
  tidy(() => {
    const inner = tidy(() => Tensor.from(be, [1], [1]));
    kept = keep(Tensor.from(be, [2], [1]));
    t.equal(live(), before + 2);
    void inner;
  });
  t.equal(live(), before + 1, "the inner survivor died with the outer scope; the kept one lives");
  t.same(await kept!.toArray(), [2]);
  kept!.dispose();
  kept!.dispose(); // idempotent
  t.equal(live(), before);
});

t.test("tidy frees on throw; tidyAsync awaits", async (t) => {
  const before = live();
  t.throws(() => tidy(() => {
    Tensor.from(be, [1, 2], [2]);
    throw new Error("boom");
  }), /boom/);
  t.equal(live(), before);
  const v = await tidyAsync(async () => {
    const x = Tensor.from(be, [4, 5], [2]);
    const s = ops.sumAll(x);
    return (await s.item()) + 1;
  });
  t.equal(v, 10);
  t.equal(live(), before);
});

t.test("views share memory; the buffer is freed with the last holder", async (t) => {
  const before = live();
  const x = Tensor.from(be, [1, 2, 3, 4, 5, 6], [2, 3]);
  const v = x.view([3, 2]);
  x.dispose();
  t.equal(live(), before + 1, "still held by the view");
  t.same(await v.toArray(), [1, 2, 3, 4, 5, 6]);
  t.throws(() => x.view([6]), /was disposed/);
  t.throws(() => v.view([4]), /cannot view \[3, 2\] \(6 elements\) as \[4\]/);
  v.dispose();
  t.equal(live(), before);
});

t.test("backward: chain rule, accumulation, and noGrad", async (t) => {
  const x = Tensor.from(be, [1, 2, 3], [3], { requiresGrad: true });
  tidy(() => ops.sumAll(ops.mul(x, x)).backward()); // d/dx Σx² = 2x
  t.same(await x.grad!.toArray(), [2, 4, 6]);
  tidy(() => ops.sumAll(ops.scale(x, 3)).backward()); // accumulates +3
  t.same(await x.grad!.toArray(), [5, 7, 9]);
  const y = noGrad(() => ops.mul(x, x));
  t.equal(y.requiresGrad, false, "noGrad records nothing");
  t.equal(y.node, null);
  t.throws(() => y.backward(), /does not require grad/);
  const z = ops.mul(x, x);
  t.throws(() => z.backward(), /root has shape \[3\]; pass gradOutput/);
  const g = Tensor.from(be, [1, 0, -1], [3]);
  x.grad!.dispose();
  x.grad = null;
  z.backward(g); // vector-Jacobian product: 2x ⊙ g
  t.same(await x.grad!.toArray(), [2, 0, -6]);
  t.equal(z.node, null, "the tape is cut after backward");
  for (const u of [x.grad!, x, y, z, g]) u.dispose();
});

t.test("a value used twice receives both gradients; errors name shapes", async (t) => {
  const a = Tensor.from(be, [1, 2], [2], { requiresGrad: true });
  const b = Tensor.from(be, [3, 4, 5], [3], { requiresGrad: true });
  tidy(() => ops.sumAll(ops.add(ops.mul(a, a), a)).backward()); // 2a + 1
  t.same(await a.grad!.toArray(), [3, 5]);
  t.throws(() => ops.add(a, b), /add: shapes \[2\] and \[3\] do not broadcast/);
  t.throws(() => ops.matmul(Tensor.zeros(be, [2, 3]), Tensor.zeros(be, [4, 2])), /matmul: inner dims differ/);
  t.throws(() => ops.embedding(Tensor.zeros(be, [2]), Tensor.zeros(be, [3, 2])), /embedding: ids must be i32, found f32/);
  a.grad!.dispose();
  a.dispose();
  b.dispose();
});

t.test("matmul and fused losses match closed forms", async (t) => {
  const a = Tensor.from(be, [1, 2, 3, 4, 5, 6], [2, 3]);
  const b = Tensor.from(be, [7, 8, 9, 10, 11, 12], [3, 2]);
  t.same(await ops.matmul(a, b).toArray(), [58, 64, 139, 154]);
  t.same(await ops.matmul(a, b, { transA: true, transB: true }).toArray(), [39, 49, 59, 54, 68, 82, 69, 87, 105]);
  // Uniform logits: CE = ln V for every row.
  const logits = Tensor.zeros(be, [3, 5]);
  const labels = Tensor.from(be, [0, 4, 2], [3], { dtype: "i32" });
  t.ok(Math.abs((await ops.crossEntropy(logits, labels).item()) - Math.log(5)) < 1e-6);
  // KL of a distribution with itself is 0.
  const p = Tensor.from(be, [0.1, 2, -1, 0.5], [1, 4]);
  t.ok(Math.abs(await ops.klDiv(p, { logits: p }).item()) < 1e-6);
});
