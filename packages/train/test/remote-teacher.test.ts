// A remote teacher: the bundled tiny teacher served by `ecomla serve` on 127.0.0.1, reached through
// a proxy in this process (so the test can cut it at an exact request). The student's top-k KL
// drops as much as with the in-process top-k teacher at the same k and steps; a teacher that goes
// away stops the run at a checkpoint, and the resumed run ends bit-identical to an unbroken one.
import t from "tap";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { cliBin, repoRoot, syntheticDocs } from "./helpers/fixtures.js";

const teacherDir = join(repoRoot, "examples/tiny-llama");
const root = mkdtempSync(join(tmpdir(), "ecomla-remote-"));
const STEPS = 10;
const K = 8;

/** Run the CLI without blocking this process (the proxy lives here). */
function ecomla(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    const child = spawn(process.execPath, [cliBin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => ok({ code, stdout, stderr }));
  });
}

/** `ecomla serve` for the tiny teacher on a free loopback port. */
async function serveTeacher(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [cliBin, "serve", "-m", teacherDir, "--host", "127.0.0.1", "--port", "0", "--json"], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((ok, fail) => {
    createInterface({ input: child.stdout! }).once("line", ok);
    child.once("exit", (code) => fail(new Error(`ecomla serve exited with ${code}`)));
  });
  return { url: (JSON.parse(line) as { url: string }).url, child };
}

// The proxy: forwards /v1/* to the current server; `cutAt` kills the server at that request.
let upstream = await serveTeacher();
let requests = 0;
let cutAt = Infinity;
const proxy = createServer(async (req: IncomingMessage, res: ServerResponse) => {
  requests++;
  if (requests === cutAt) {
    upstream.child.kill("SIGKILL");
    await new Promise((ok) => upstream.child.once("exit", ok));
  }
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  try {
    const r = await fetch(upstream.url.replace(/\/v1$/, "") + req.url, { method: req.method, headers: { "content-type": "application/json" }, body: req.method === "POST" ? Buffer.concat(chunks) : undefined });
    res.writeHead(r.status, { "content-type": r.headers.get("content-type") ?? "application/json" });
    res.end(Buffer.from(await r.arrayBuffer()));
  } catch (err) {
    res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { message: `upstream: ${(err as Error).message}`, type: "server_error" } }));
  }
});
await new Promise<void>((ok) => proxy.listen(0, "127.0.0.1", ok));
const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/v1`;
t.teardown(() => {
  proxy.closeAllConnections();
  proxy.close();
  upstream.child.kill("SIGTERM");
});

// The student: the tiny teacher converted to MLA (same tokenizer), trained on synthetic text.
const student = join(root, "student");
const conv = await ecomla(["convert", "-m", teacherDir, "-o", student, "--kv-rank", "32", "--q-rank", "none"]);
if (conv.code !== 0) throw new Error(`convert failed: ${conv.stderr}`);
const dataset = join(root, "corpus.jsonl");
writeFileSync(dataset, syntheticDocs(80, 5).map((text) => JSON.stringify({ text })).join("\n") + "\n");
const config = (name: string, teacher: string): string => {
  const file = join(root, `${name}.yaml`);
  writeFileSync(file, `student: ${student}
${teacher}
dataset: ${dataset}
backend: cpu
loss: forward-kl
seq_len: 32
per_device_train_batch_size: 2
learning_rate: 3.0e-3
warmup_ratio: 0.1
max_steps: ${STEPS}
eval_steps: 100
save_steps: 2
save_total_limit: 2
seed: 7
output_dir: ${join(root, name)}
`);
  return file;
};
const remote = (extra = "") => `teacher: { url: ${proxyUrl}, model: tiny-llama, top_k: ${K}, retries: 2, backoff_ms: 50${extra} }`;
const trainLosses = (name: string) => readFileSync(join(root, name, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((m) => m.kind === "train").map((m) => m.loss as number);
const drop = (losses: number[]) => (losses[0]! + losses[1]!) / 2 - (losses.at(-2)! + losses.at(-1)!) / 2;

t.test("the remote top-k teacher lowers the KL as much as the in-process top-k teacher", async (t) => {
  const r = await ecomla(["distill", "--config", config("remote", remote()), "--json"]);
  t.equal(r.code, 0, "remote run exits 0", { stderr: r.stderr });
  const w = await ecomla(["distill", "--config", config("write", `teacher: ${teacherDir}`), "--write-topk", String(K), "--json"]);
  t.equal(w.code, 0, "--write-topk exits 0", { stderr: w.stderr });
  const local = await ecomla(["distill", "--config", config("local", `teacher_topk: ${JSON.parse(w.stdout).path}`), "--json"]);
  t.equal(local.code, 0, "in-process top-k run exits 0", { stderr: local.stderr });
  const [dr, dl] = [drop(trainLosses("remote")), drop(trainLosses("local"))];
  t.ok(dl > 0, `in-process top-${K} KL drop ${dl.toFixed(4)}`);
  t.ok(Math.abs(dr - dl) <= 0.1 * dl, `remote top-${K} KL drop ${dr.toFixed(4)} within 10% of in-process ${dl.toFixed(4)}`);
});

t.test("a teacher that goes away stops the run at a checkpoint; the resumed run is bit-identical", async (t) => {
  const file = config("broken", remote());
  cutAt = requests + 9; // partway through the run
  const broken = await ecomla(["distill", "--config", file, "--json"]);
  t.not(broken.code, 0, "the run stops");
  t.match(broken.stderr, /did not answer after 2 tries.*stopped after step \d+ with a checkpoint.*--resume/s, "a clear message");
  const stoppedAt = Number(/stopped after step (\d+)/.exec(broken.stderr)?.[1]);
  t.ok(stoppedAt > 0 && stoppedAt < STEPS, `stopped after step ${stoppedAt} of ${STEPS}`);
  upstream = await serveTeacher();
  cutAt = Infinity;
  const resumed = await ecomla(["distill", "--config", file, "--resume", "--json"]);
  t.equal(resumed.code, 0, "the resumed run exits 0", { stderr: resumed.stderr });
  t.equal(JSON.parse(resumed.stdout).resumedFrom, stoppedAt, "resumed from that checkpoint");
  const a = readFileSync(join(root, "remote", "model.safetensors"));
  const b = readFileSync(join(root, "broken", "model.safetensors"));
  t.ok(a.equals(b), "final weights bit-identical to the unbroken remote run");
});

t.test("a teacher with another tokenizer is refused on the first request", async (t) => {
  const other = join(root, "other-student");
  const c = await ecomla(["convert", "-m", join(repoRoot, "packages/core/test/fixtures/llama/mha-f32"), "-o", other, "--kv-rank", "8"]);
  t.equal(c.code, 0, c.stderr);
  const { tokenizerFiles } = await import("./helpers/fixtures.js");
  const { json, config: tc } = tokenizerFiles();
  writeFileSync(join(other, "tokenizer.json"), JSON.stringify(json));
  writeFileSync(join(other, "tokenizer_config.json"), JSON.stringify(tc));
  const file = config("mismatch", remote()).replace(/$/, "");
  writeFileSync(file, readFileSync(file, "utf8").replace(`student: ${student}`, `student: ${other}`));
  const r = await ecomla(["distill", "--config", file]);
  t.not(r.code, 0);
  t.match(r.stderr, /tokenizes differently from the student/);
});
