// Serving frees what it allocates: after rounds of mixed requests (plain, streamed, echo with
// log-probs, stop strings), the backend holds exactly the model's buffers again and no cache bytes.
import t from "tap";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HfTokenizer, ReferenceBackend, loadLlama } from "@ecomla/core";
import { BatchedLlama, createServer } from "../src/index.js";

const teacher = resolve(dirname(fileURLToPath(import.meta.url)), "../../../examples/tiny-llama");

t.test("live buffers return to the model's after each round", async (t) => {
  const backend = new ReferenceBackend();
  const { model } = await loadLlama(teacher, backend);
  const modelBuffers = backend.memoryStats().liveBuffers;
  const { app, scheduler } = createServer({ model: new BatchedLlama(model), tokenizer: HfTokenizer.fromDir(teacher), modelName: "tiny", maxBatch: 4 });
  try {
    for (let round = 0; round < 2; round++) {
      const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => app.inject({
        method: "POST", url: "/v1/completions",
        payload: { prompt: "The president" + " the".repeat(i), max_tokens: 3, temperature: i % 2 ? 0.8 : 0, seed: i, stream: i % 2 === 0, logprobs: i % 3 === 0 ? 2 : null, echo: i === 3, stop: i === 5 ? ["the"] : null },
      })));
      t.same(replies.map((r) => r.statusCode), Array(6).fill(200), `round ${round}: all answered`);
      t.equal(backend.memoryStats().liveBuffers, modelBuffers, `round ${round}: live buffers back to the model's ${modelBuffers}`);
      t.equal(scheduler.stats.cacheBytes, 0);
      t.equal(scheduler.stats.running, 0);
    }
  } finally {
    await app.close();
    model.dispose();
  }
});
