// Prometheus metrics (prom-client, one registry per server so several can share a process).
import { Counter, Gauge, Registry } from "prom-client";
import type { Scheduler } from "./scheduler.js";

/** The server's metrics: request counts by route and status, token counts, cache bytes, batch size. */
export function createMetrics(scheduler: Scheduler) {
  const registry = new Registry();
  const requests = new Counter({ name: "ecomla_requests_total", help: "HTTP requests answered, by route and status code", labelNames: ["route", "status"] as const, registers: [registry] });
  const fromStats = (name: string, help: string, read: () => number, type: "gauge" | "counter") => {
    if (type === "gauge") new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
    else new Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(read()); } });
  };
  fromStats("ecomla_prompt_tokens_total", "Prompt tokens prefilled", () => scheduler.stats.promptTokens, "counter");
  fromStats("ecomla_generation_tokens_total", "Tokens generated", () => scheduler.stats.generatedTokens, "counter");
  fromStats("ecomla_decode_steps_total", "Shared decode steps run", () => scheduler.stats.decodeSteps, "counter");
  fromStats("ecomla_cache_bytes", "Bytes held by the caches of running sequences (latent only for MLA layers)", () => scheduler.stats.cacheBytes, "gauge");
  fromStats("ecomla_batch_size", "Sequences in the last decode step", () => scheduler.stats.batchSize, "gauge");
  fromStats("ecomla_running_sequences", "Sequences holding a cache", () => scheduler.stats.running, "gauge");
  fromStats("ecomla_waiting_sequences", "Sequences waiting for a place in the batch", () => scheduler.stats.waiting, "gauge");
  return { registry, requests };
}
