// What a user sees of the GPU backends through the CLI: `ecomla plugins` lists cuda and rocm with
// their availability and reason, and choosing one (-b cuda / -b rocm) either runs (a GPU machine:
// the fixture logits must match the cpu backend within 1e-4) or fails with that reason as a
// one-line error, never a crash.
import t from "tap";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HfTokenizer, SafetensorsCheckpoint } from "@ecomla/core";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, "../../../packages/cli/dist/bin.js");
const teacher = resolve(here, "../../../examples/tiny-llama");
const out = mkdtempSync(join(tmpdir(), "ecomla-gpu-cli-"));
t.teardown(() => rmSync(out, { recursive: true, force: true }));
const LOGIT_TOL = 1e-4;

function ecomla(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Listed {
  name: string;
  provides: { kind: string; name: string; kernels?: { probe?: { available: boolean; reason?: string; detail?: string } } }[];
}

const listing = ecomla(["plugins", "--json"]);
const plugins = (JSON.parse(listing.stdout) as { plugins: Listed[] }).plugins;

for (const backend of ["cuda", "rocm"] as const) {
  const entry = plugins.find((p) => p.name === `@ecomla/backend-${backend}`)?.provides.find((r) => r.kind === "backend" && r.name === backend);
  const probe = entry?.kernels?.probe;

  t.test(`ecomla plugins lists ${backend} with its availability`, async (t) => {
    t.ok(entry, `@ecomla/backend-${backend} registers backend "${backend}"`);
    t.ok(probe, "with a probe result");
    if (probe && !probe.available) t.match(probe.reason, /not built|not found|no usable|could not be loaded|failed/, `unavailable: ${probe.reason}`);
    const text = ecomla(["plugins"]);
    t.equal(text.code, 0);
    t.match(text.stdout, new RegExp(`backend\\s+${backend} — `));
    if (probe && !probe.available) t.ok(text.stdout.includes(`unavailable: ${probe.reason!.split("\n")[0]}`), "the text listing shows the reason");
  });

  const ids = HfTokenizer.fromDir(teacher).encode("The old man walked to the");
  if (!probe?.available) {
    t.test(`-b ${backend} fails with the reason, not a crash`, async (t) => {
      for (const args of [["logits", "-m", teacher, "--ids", ids.join(","), "-o", join(out, "x.safetensors"), "-b", backend], ["bench", "kernels", "--backend", backend]]) {
        const r = ecomla(args);
        t.not(r.code, 0, `${args[0]} exits non-zero`);
        t.match(r.stderr, new RegExp(`backend "${backend}" is unavailable: `), "names the backend and why");
        if (probe?.reason) t.ok(r.stderr.includes(probe.reason.split("\n")[0]!), "the same reason as the probe");
        t.notMatch(r.stderr, /\n\s+at .*\.js:\d+/, "no stack trace");
      }
    });
  } else {
    t.test(`logits: ${backend} matches cpu within ${LOGIT_TOL}`, async (t) => {
      const read = async (b: string) => {
        const file = join(out, `${b}.safetensors`);
        const r = ecomla(["logits", "-m", teacher, "--ids", ids.join(","), "-o", file, "-b", b, "--json"]);
        t.equal(r.code, 0, `${b}: ${r.stderr}`);
        const ck = await SafetensorsCheckpoint.open(file);
        const data = await ck.readF32("logits");
        await ck.close();
        return data;
      };
      const gpu = await read(backend);
      const cpu = await read("cpu");
      t.equal(gpu.length, cpu.length);
      let worst = 0;
      for (let i = 0; i < cpu.length; i++) worst = Math.max(worst, Math.abs(gpu[i]! - cpu[i]!));
      t.ok(worst <= LOGIT_TOL, `max |Δlogit| ${worst.toExponential(2)} ≤ ${LOGIT_TOL}`);
    });
  }
}
