#!/usr/bin/env node
// Load test of `ecomla serve` on the loopback interface: CLIENTS concurrent streaming clients for
// SECONDS, each sending completion after completion. Reports requests, errors, tokens/s, time to
// first token (p50/p99) and the server's resident memory before, right after and after a second
// round (growth between rounds = a leak). Bounded in time and count; listens on 127.0.0.1 only.
//
//   node scripts/serve-load.mjs [--model examples/tiny-llama] [--clients 64] [--seconds 60] [--max-tokens 32] [--max-batch 64]
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    model: { type: "string", default: join(root, "examples/tiny-llama") },
    clients: { type: "string", default: "64" },
    seconds: { type: "string", default: "60" },
    "max-tokens": { type: "string", default: "32" },
    "max-batch": { type: "string", default: "64" },
    "settle-seconds": { type: "string", default: "3" },
  },
});
const clients = Math.min(256, Math.max(1, Number(values.clients)));
const seconds = Math.min(600, Math.max(1, Number(values.seconds)));
const maxTokens = Number(values["max-tokens"]);

const server = spawn(process.execPath, [join(root, "packages/cli/dist/bin.js"), "serve", "-m", values.model, "--host", "127.0.0.1", "--port", "0", "--max-batch", values["max-batch"], "--json"], { stdio: ["ignore", "pipe", "inherit"] });
const line = await new Promise((ok, fail) => {
  createInterface({ input: server.stdout }).once("line", ok);
  server.once("exit", (code) => fail(new Error(`ecomla serve exited with ${code}`)));
});
const base = JSON.parse(line).url;
const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, "utf8"))[1]) / 1024;
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const PROMPTS = ["The president said", "In the year of our Lord", "We the people", "The Congress shall", "Our nation", "It is my duty", "Peace and", "The war"];

/** One streaming completion: time to first token and tokens received. */
async function request(i) {
  const t0 = performance.now();
  const r = await fetch(`${base}/completions`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: PROMPTS[i % PROMPTS.length], max_tokens: maxTokens, temperature: 0.8, seed: i, stream: true }),
  });
  if (!r.ok || r.headers.get("content-type") !== "text/event-stream") throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  let ttft = null;
  let chunks = 0;
  let buffer = "";
  let done = false;
  const decoder = new TextDecoder();
  for await (const part of r.body) {
    buffer += decoder.decode(part, { stream: true });
    let at;
    while ((at = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      if (!event.startsWith("data: ")) continue;
      const data = event.slice(6);
      if (data === "[DONE]") { done = true; continue; }
      const json = JSON.parse(data);
      if (json.error) throw new Error(json.error.message);
      if (json.choices[0].text) {
        ttft ??= performance.now() - t0;
        chunks++;
      }
    }
  }
  if (!done) throw new Error("stream ended without [DONE]");
  return { ttft: ttft ?? performance.now() - t0, chunks, ms: performance.now() - t0 };
}

async function round(durationS) {
  const stopAt = performance.now() + durationS * 1000;
  const ttfts = [];
  const errors = [];
  let requests = 0;
  let tokens = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    let i = c;
    while (performance.now() < stopAt) {
      try {
        const r = await request(i);
        ttfts.push(r.ttft);
        tokens += r.chunks;
        requests++;
      } catch (err) {
        errors.push(err.message);
      }
      i += clients;
    }
  }));
  const wallS = (performance.now() - t0) / 1000;
  ttfts.sort((a, b) => a - b);
  const pct = (p) => (ttfts.length ? +ttfts[Math.min(ttfts.length - 1, Math.floor((p / 100) * ttfts.length))].toFixed(1) : null);
  return { seconds: +wallS.toFixed(1), requests, errors: errors.length, firstErrors: [...new Set(errors)].slice(0, 3), streamedChunksPerSecond: +(tokens / wallS).toFixed(1), ttftMs: { p50: pct(50), p99: pct(99), max: pct(100) } };
}

try {
  await request(0); // warm up
  const rssBefore = rssMiB();
  const main = await round(seconds);
  await sleep(Number(values["settle-seconds"]) * 1000);
  const rssAfter = rssMiB();
  const second = await round(Math.min(seconds, 20));
  await sleep(Number(values["settle-seconds"]) * 1000);
  const rssAfterSecond = rssMiB();
  const metrics = await (await fetch(base.replace(/\/v1$/, "") + "/metrics")).text();
  const cacheBytes = Number(/^ecomla_cache_bytes (\S+)/m.exec(metrics)?.[1]);
  console.log(JSON.stringify({
    clients, maxTokens, main, second,
    rssMiB: { beforeLoad: +rssBefore.toFixed(1), afterLoad: +rssAfter.toFixed(1), afterSecondRound: +rssAfterSecond.toFixed(1) },
    cacheBytesAfter: cacheBytes,
  }, null, 2));
} finally {
  server.kill("SIGTERM");
}
