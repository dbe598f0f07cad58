// `ecomla serve` on the loopback interface with the bundled tiny teacher, used as a real client
// would: completions and chat (plain and streamed), prompt log-probs against `ecomla logits`,
// 32 concurrent requests against the same requests made alone, bad requests, a disconnect.
import t from "tap";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { SafetensorsCheckpoint } from "@ecomla/core";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, "../dist/bin.js");
const teacher = resolve(here, "../../../examples/tiny-llama");

// The tiny teacher with a chat template added (its own tokenizer config has none).
const modelDir = mkdtempSync(join(tmpdir(), "ecomla-serve-"));
for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) symlinkSync(join(teacher, f), join(modelDir, f));
const tokenizerConfig = JSON.parse(readFileSync(join(teacher, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
tokenizerConfig["chat_template"] = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
writeFileSync(join(modelDir, "tokenizer_config.json"), JSON.stringify(tokenizerConfig));

/** Start `ecomla serve` on 127.0.0.1 and a free port; resolves with its base URL. */
async function startServer(dir: string, extra: string[] = []): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [bin, "serve", "-m", dir, "--host", "127.0.0.1", "--port", "0", "--name", "tiny-llama", "--json", ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const line = await new Promise<string>((ok, fail) => {
    createInterface({ input: child.stdout! }).once("line", ok);
    child.once("exit", (code) => fail(new Error(`ecomla serve exited (${code}): ${stderr}`)));
  });
  return { url: (JSON.parse(line) as { url: string }).url.replace(/\/v1$/, ""), child };
}

const { url, child } = await startServer(modelDir);
t.teardown(() => { child.kill("SIGTERM"); });

async function post(path: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

/** The data lines of a server-sent event stream (until [DONE]). */
async function postStream(path: string, body: unknown): Promise<any[]> {
  const r = await fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...(body as object), stream: true }) });
  if (r.headers.get("content-type") !== "text/event-stream") throw new Error(`expected an event stream, got ${r.status} ${await r.text()}`);
  const text = await r.text();
  const events = text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
  if (events.at(-1) !== "[DONE]") throw new Error(`stream did not end with [DONE]: ${text.slice(-200)}`);
  return events.slice(0, -1).map((e) => JSON.parse(e));
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(url + "/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  if (!line) throw new Error(`no metric ${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

const ids = (tokens: string[]) => tokens.map((s) => Number(s.replace("token_id:", "")));

t.test("health, models", async (t) => {
  t.same(await (await fetch(url + "/health")).json(), { status: "ok" });
  const models = (await (await fetch(url + "/v1/models")).json()) as any;
  t.equal(models.data[0].id, "tiny-llama");
  t.equal(models.data[0].max_model_len, 512);
});

t.test("completions: greedy text = the argmax chain, streamed = plain, stop strings", async (t) => {
  const body = { model: "tiny-llama", prompt: "The president said that", max_tokens: 12, temperature: 0, logprobs: 3, return_tokens_as_token_ids: true };
  const plain = await post("/v1/completions", body);
  t.equal(plain.status, 200);
  const choice = plain.json.choices[0];
  t.equal(choice.finish_reason, "length");
  t.equal(plain.json.usage.completion_tokens, 12);
  // Greedy: each chosen token is the top entry of its own top-3.
  choice.logprobs.top_logprobs.forEach((top: Record<string, number>, i: number) => {
    const best = Object.entries(top).sort((a, b) => b[1] - a[1])[0]![0];
    t.equal(best, choice.logprobs.tokens[i], `token ${i} is the argmax`);
  });
  const events = await postStream("/v1/completions", { ...body, logprobs: null, return_tokens_as_token_ids: false });
  t.equal(events.map((e) => e.choices[0].text).join(""), choice.text, "streamed text = plain text");
  t.equal(events.at(-1).choices[0].finish_reason, "length");
  const words = choice.text.trim().split(/\s+/);
  const stopAt = words[Math.min(2, words.length - 1)];
  const stopped = await post("/v1/completions", { ...body, stop: [stopAt] });
  t.equal(stopped.json.choices[0].finish_reason, "stop");
  t.equal(stopped.json.choices[0].text, choice.text.slice(0, choice.text.indexOf(stopAt)), "text ends before the stop string");
  const prompted = await post("/v1/completions", { ...body, prompt: ids(choice.logprobs.tokens).slice(0, 3) });
  t.equal(prompted.status, 200, "prompt as token ids");
});

t.test("chat: the template's prompt, plain and streamed", async (t) => {
  const body = { model: "tiny-llama", messages: [{ role: "user", content: "Tell me about the war." }], max_tokens: 10, temperature: 0 };
  const plain = await post("/v1/chat/completions", body);
  t.equal(plain.status, 200);
  t.equal(plain.json.object, "chat.completion");
  t.equal(plain.json.choices[0].message.role, "assistant");
  // Same tokens as a completion of the rendered template.
  const rendered = "user: Tell me about the war.\nassistant:";
  const completion = await post("/v1/completions", { prompt: rendered, max_tokens: 10, temperature: 0 });
  t.equal(plain.json.choices[0].message.content, completion.json.choices[0].text);
  t.equal(plain.json.usage.prompt_tokens, completion.json.usage.prompt_tokens);
  const events = await postStream("/v1/chat/completions", body);
  t.equal(events[0].choices[0].delta.role, "assistant");
  t.equal(events.map((e) => e.choices[0].delta.content ?? "").join(""), plain.json.choices[0].message.content);
  t.equal(events.at(-1).choices[0].finish_reason, plain.json.choices[0].finish_reason);
});

t.test("echo + logprobs = the logits command's log-softmax (1e-4)", async (t) => {
  const r = await post("/v1/completions", { prompt: "We hold these truths to be self-evident, that all men", max_tokens: 0, echo: true, logprobs: 5, return_tokens_as_token_ids: true });
  t.equal(r.status, 200);
  const lp = r.json.choices[0].logprobs;
  const prompt = ids(lp.tokens);
  t.equal(lp.token_logprobs[0], null, "the first prompt token has no log-prob");
  const out = join(modelDir, "logits.safetensors");
  const run = spawnSync(process.execPath, [bin, "logits", "-m", teacher, "--ids", prompt.join(","), "-o", out], { encoding: "utf8" });
  t.equal(run.status, 0, run.stderr);
  const logits = await (await SafetensorsCheckpoint.open(out)).readF32("logits");
  const vocab = logits.length / prompt.length;
  let maxDiff = 0;
  for (let p = 1; p < prompt.length; p++) {
    const row = Array.from(logits.subarray((p - 1) * vocab, p * vocab));
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    maxDiff = Math.max(maxDiff, Math.abs(lp.token_logprobs[p] - (row[prompt[p]!]! - lse)));
    const top = Object.entries(lp.top_logprobs[p] as Record<string, number>);
    const want = row.map((v, i) => [i, v - lse] as const).sort((a, b) => b[1] - a[1]).slice(0, 5);
    for (const [id, value] of want) {
      const got = top.find(([k]) => k === `token_id:${id}`);
      t.ok(got, `position ${p}: token ${id} among the top 5`);
      if (got) maxDiff = Math.max(maxDiff, Math.abs(got[1] - value));
    }
  }
  t.ok(maxDiff < 1e-4, `max |server − logits command| = ${maxDiff.toExponential(2)}`);
  const streamed = await postStream("/v1/completions", { prompt: prompt.slice(0, 6), max_tokens: 2, temperature: 0, echo: true, logprobs: 1, return_tokens_as_token_ids: true });
  t.same(ids(streamed[0].choices[0].logprobs.tokens), prompt.slice(0, 6), "a stream echoes the prompt with its log-probs first");
});

t.test("32 concurrent requests: each equals the same request alone (greedy)", async (t) => {
  const words = ["The", "Congress", "In the year", "Our country", "We", "The people of", "It is", "Peace"];
  const bodies = Array.from({ length: 32 }, (_, i) => ({ prompt: `${words[i % 8]}${" the".repeat(i % 5)}`, max_tokens: 6 + (i % 7), temperature: 0, logprobs: 0, return_tokens_as_token_ids: true }));
  const alone: number[][] = [];
  for (const b of bodies) alone.push(ids((await post("/v1/completions", b)).json.choices[0].logprobs.tokens));
  const steps0 = await metric("ecomla_decode_steps_total");
  const together = await Promise.all(bodies.map((b) => post("/v1/completions", b)));
  t.ok(together.every((r) => r.status === 200), "all answered");
  t.same(together.map((r) => ids(r.json.choices[0].logprobs.tokens)), alone, "each = alone");
  const steps = (await metric("ecomla_decode_steps_total")) - steps0;
  const tokens = bodies.reduce((n, b) => n + b.max_tokens - 1, 0);
  t.ok(steps < tokens / 4, `batched: ${steps} decode steps for ${tokens} decoded tokens`);
});

t.test("bad requests: 4xx JSON errors, and the server keeps serving", async (t) => {
  const cases: [string, string, unknown, number][] = [
    ["malformed JSON", "/v1/completions", '{"prompt": "x",', 400],
    ["unknown model", "/v1/completions", { model: "gpt-9", prompt: "x" }, 404],
    ["over the context", "/v1/completions", { prompt: "The", max_tokens: 600 }, 400],
    ["over the context (token ids)", "/v1/completions", { prompt: Array(500).fill(5), max_tokens: 20 }, 400],
    ["temperature < 0", "/v1/completions", { prompt: "x", temperature: -1 }, 400],
    ["top_p 0", "/v1/completions", { prompt: "x", top_p: 0 }, 400],
    ["max_tokens as a string", "/v1/completions", { prompt: "x", max_tokens: "10" }, 400],
    ["logprobs 50", "/v1/completions", { prompt: "x", logprobs: 50 }, 400],
    ["n 2", "/v1/completions", { prompt: "x", n: 2 }, 400],
    ["no prompt", "/v1/completions", { max_tokens: 3 }, 400],
    ["empty prompt", "/v1/completions", { prompt: "" }, 400],
    ["token id out of range", "/v1/completions", { prompt: [1, 99999] }, 400],
    ["five stop strings", "/v1/completions", { prompt: "x", stop: ["a", "b", "c", "d", "e"] }, 400],
    ["body over the limit", "/v1/completions", { prompt: "x".repeat(2 << 20) }, 413],
    ["chat without messages", "/v1/chat/completions", { messages: [] }, 400],
    ["chat with a bad role", "/v1/chat/completions", { messages: [{ role: "wizard", content: "hi" }] }, 400],
    ["unknown route", "/v1/embeddings", { input: "x" }, 404],
  ];
  for (const [what, path, body, status] of cases) {
    const r = await post(path, body);
    t.equal(r.status, status, `${what}: ${status}`);
    t.type(r.json?.error?.message, "string", `${what}: OpenAI error shape (${r.json?.error?.message})`);
    t.type(r.json?.error?.type, "string");
  }
  const ok = await post("/v1/completions", { prompt: "The", max_tokens: 3, temperature: 0 });
  t.equal(ok.status, 200, "still serving");
});

t.test("chat on a model without a chat template: 400", async (t) => {
  const bare = await startServer(teacher);
  try {
    const r = await fetch(bare.url + "/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }) });
    t.equal(r.status, 400);
    t.match(((await r.json()) as any).error.message, /no chat template/);
  } finally {
    bare.child.kill("SIGTERM");
  }
});

t.test("a client that disconnects frees its cache", async (t) => {
  const controller = new AbortController();
  const r = await fetch(url + "/v1/completions", {
    method: "POST", headers: { "content-type": "application/json" }, signal: controller.signal,
    body: JSON.stringify({ prompt: "The", max_tokens: 500, temperature: 0.8, seed: 1, stream: true }),
  });
  const reader = r.body!.getReader();
  await reader.read();
  const held = await metric("ecomla_cache_bytes");
  t.ok(held > 0, `cache in use while streaming: ${held} bytes`);
  controller.abort();
  let left = held;
  for (let i = 0; i < 100 && left > 0; i++) {
    await new Promise((ok) => setTimeout(ok, 50));
    left = await metric("ecomla_cache_bytes");
  }
  t.equal(left, 0, "cache freed after the disconnect");
  t.equal(await metric("ecomla_running_sequences"), 0);
  const ok = await post("/v1/completions", { prompt: "The", max_tokens: 2 });
  t.equal(ok.status, 200, "still serving");
});

t.test("an MLA conversion: greedy tokens = `ecomla generate`, concurrent = alone, the cache holds the latent only", async (t) => {
  const mla = join(modelDir, "mla");
  const conv = spawnSync(process.execPath, [bin, "convert", "-m", teacher, "-o", mla, "--kv-rank", "32", "--rope-dim", "8", "--q-rank", "none"], { encoding: "utf8" });
  t.equal(conv.status, 0, conv.stderr);
  const server = await startServer(mla, ["--max-batch", "8"]);
  try {
    const ask = async (body: object) => {
      const r = await fetch(server.url + "/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ max_tokens: 10, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true, ...body }) });
      return ids(((await r.json()) as any).choices[0].logprobs.tokens);
    };
    const prompts = ["The president said", "In the year", "Our country is", "We the people of the United States"];
    for (const prompt of prompts.slice(0, 2)) {
      const gen = spawnSync(process.execPath, [bin, "generate", "-m", mla, "--prompt", prompt, "-n", "10", "--json"], { encoding: "utf8" });
      t.same(await ask({ prompt }), JSON.parse(gen.stdout).tokens, `"${prompt}": server = ecomla generate`);
    }
    const alone = [];
    for (const prompt of prompts) alone.push(await ask({ prompt }));
    t.same(await Promise.all(prompts.map((prompt) => ask({ prompt }))), alone, "concurrent = alone");
    // While one long stream runs, the caches hold (prompt + max_tokens) × 6 layers × (r_kv 32 + d_rope 8) f32.
    const controller = new AbortController();
    const r = await fetch(server.url + "/v1/completions", {
      method: "POST", headers: { "content-type": "application/json" }, signal: controller.signal,
      body: JSON.stringify({ prompt: [5, 6, 7], max_tokens: 400, temperature: 0.8, stream: true }),
    });
    await r.body!.getReader().read();
    const text = await (await fetch(server.url + "/metrics")).text();
    const bytes = Number(/^ecomla_cache_bytes (\S+)/m.exec(text)?.[1]);
    t.equal(bytes, (3 + 400) * 6 * (32 + 8) * 4, `cache bytes ${bytes} = latent only (GQA would hold ${(3 + 400) * 6 * 256 * 4})`);
    controller.abort();
  } finally {
    server.child.kill("SIGTERM");
  }
});

t.test("--engine onnxruntime serves the same greedy tokens as the ecomla engine", async (t) => {
  const mla = join(modelDir, "mla");
  const prompts = ["The president said", "We the people"];
  const servers = [await startServer(mla), await startServer(mla, ["--engine", "onnxruntime"])];
  try {
    for (const prompt of prompts) {
      const [ours, ort] = await Promise.all(servers.map(async (s) => {
        const r = await fetch(s.url + "/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt, max_tokens: 8, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true }) });
        return ids(((await r.json()) as any).choices[0].logprobs.tokens);
      }));
      t.same(ort, ours, `"${prompt}": onnxruntime = ecomla`);
    }
  } finally {
    for (const s of servers) s.child.kill("SIGTERM");
  }
});
