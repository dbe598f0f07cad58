// The OpenAI-compatible HTTP surface on fastify: /v1/models, /v1/completions, /v1/chat/completions,
// /health, /metrics. Every error is OpenAI's shape: { error: { message, type, param, code } }.
import { randomUUID } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Tokenizer } from "@ecomla/core";
import { completionLogprobs, type PositionLogprobs } from "./logprobs.js";
import { createMetrics } from "./metrics.js";
import type { ServedModel } from "./model.js";
import { Scheduler } from "./scheduler.js";
import { chatSchema, completionSchema, type ChatBody, type CompletionBody, type SamplingBody } from "./schemas.js";
import { SequenceAborted, startSequence, type SequenceDelta, type SequenceJob, type SequenceOutcome } from "./sequence.js";

/** Options of {@link createServer}. */
export interface ServerOptions {
  model: ServedModel;
  /** Tokenizer of the model folder (null: prompts as token ids only, no chat). */
  tokenizer: Tokenizer | null;
  /** Model name clients send (`model`), e.g. the folder's name. */
  modelName: string;
  /** Sequences in one decode step at most (default 16). */
  maxBatch?: number;
  /** Largest request body in bytes (default 1 MiB). */
  bodyLimitBytes?: number;
  /** Whether the tokenizer has a chat template (chat completions answer 400 without one). */
  hasChatTemplate?: boolean;
  logger?: boolean;
}

/** A 4xx/5xx answered in OpenAI's error shape. */
export class HttpError extends Error {
  constructor(readonly statusCode: number, message: string, readonly param: string | null = null, readonly code: string | null = null) {
    super(message);
  }
}

function errorType(status: number): string {
  if (status === 404) return "not_found_error";
  if (status === 413) return "request_too_large";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

function errorBody(status: number, message: string, param: string | null, code: string | null) {
  return { error: { message, type: errorType(status), param, code } };
}

/** The validated sampling fields shared by both endpoints. */
interface Sampling {
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  stop: string[];
  stream: boolean;
}

/** A built server: the fastify app and its scheduler. */
export interface EcomlaServer {
  app: FastifyInstance;
  scheduler: Scheduler;
}

/** Build the HTTP server over a served model (call `app.listen` to start it). */
export function createServer(options: ServerOptions): EcomlaServer {
  const { model, tokenizer, modelName } = options;
  const scheduler = new Scheduler(model, options.maxBatch ?? 16);
  const metrics = createMetrics(scheduler);
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimitBytes ?? 1 << 20,
    // Strict types: "0.5" is not a number, extra keys (OpenAI clients send many) are ignored.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  const created = Math.floor(Date.now() / 1000);
  const eos = model.eosTokenIds;
  const tokenText = (asIds: boolean) => (id: number) => asIds ? `token_id:${id}` : tokenizer ? tokenizer.decode([id]) : `token_id:${id}`;

  app.addHook("onRequest", async (request, reply) => {
    const route = request.routeOptions.url ?? "unknown";
    reply.raw.once("close", () => metrics.requests.inc({ route, status: String(reply.raw.statusCode) }));
  });
  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown; validationContext?: string; code?: string }, _request, reply) => {
    if (err instanceof HttpError) return reply.code(err.statusCode).send(errorBody(err.statusCode, err.message, err.param, err.code));
    if (err.validation) {
      const first = (err.validation as { instancePath?: string }[])[0];
      const param = first?.instancePath ? first.instancePath.replace(/^\//, "").replaceAll("/", ".") : null;
      return reply.code(400).send(errorBody(400, `invalid request: ${err.validationContext ?? "body"}${err.message.replace(/^body/, "")}`, param, "invalid_parameter"));
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    const message = err.code === "FST_ERR_CTP_INVALID_JSON_BODY" || err instanceof SyntaxError ? `malformed JSON body: ${err.message}` : err.message;
    return reply.code(status).send(errorBody(status, message, null, err.code ?? null));
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody(404, `no route ${request.method} ${request.url}`, null, "not_found"));
  });

  app.get("/health", async () => ({ status: "ok" }));
  app.get("/metrics", async (_request, reply) => {
    reply.header("content-type", metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get("/v1/models", async () => ({
    object: "list",
    data: [{ id: modelName, object: "model", created, owned_by: "ecomla", max_model_len: model.maxContext }],
  }));

  /** Checks every request shares: the model name and the sampling values. */
  const sampling = (body: SamplingBody, maxTokensDefault: number, maxTokens = body.max_tokens): Sampling => {
    if (body.model !== undefined && body.model !== modelName) throw new HttpError(404, `model "${body.model}" does not exist; this server serves "${modelName}"`, "model", "model_not_found");
    const stop = body.stop === undefined || body.stop === null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
    return {
      maxTokens: maxTokens ?? maxTokensDefault, temperature: body.temperature ?? 1, topP: body.top_p ?? 1,
      seed: body.seed ?? Math.floor(Math.random() * 2 ** 31), stop, stream: body.stream ?? false,
    };
  };
  const checkIds = (ids: number[], what: string): number[] => {
    if (ids.length === 0) throw new HttpError(400, `${what} is empty (it must hold at least one token)`, "prompt", "invalid_prompt");
    const bad = ids.find((id) => id >= model.vocabSize);
    if (bad !== undefined) throw new HttpError(400, `${what}: token id ${bad} is out of range for a vocabulary of ${model.vocabSize}`, "prompt", "invalid_prompt");
    return ids;
  };
  const encode = (text: string, what: string): number[] => {
    if (!tokenizer) throw new HttpError(400, `${what}: this model folder has no tokenizer.json; send token ids`, "prompt", "no_tokenizer");
    return checkIds(tokenizer.encode(text), what);
  };
  const checkContext = (prompt: number[], s: Sampling, what: string) => {
    if (prompt.length + s.maxTokens > model.maxContext) {
      throw new HttpError(400, `${what}: ${prompt.length} prompt tokens + max_tokens ${s.maxTokens} = ${prompt.length + s.maxTokens} exceed the model's context of ${model.maxContext} tokens`, "max_tokens", "context_length_exceeded");
    }
  };

  /** Run the jobs; stream deltas through `onDelta`; cancel them all if the client goes away. */
  const runJobs = async (reply: FastifyReply, jobs: SequenceJob[], onDelta?: (index: number, delta: SequenceDelta) => void, onFinish?: (index: number, outcome: SequenceOutcome) => void): Promise<SequenceOutcome[] | null> => {
    const running = jobs.map((job, i) => startSequence(scheduler, tokenizer, eos, job, onDelta && ((d) => onDelta(i, d))));
    const cancelAll = () => { for (const r of running) r.cancel(); };
    reply.raw.once("close", () => { if (!reply.raw.writableFinished) cancelAll(); });
    try {
      return await Promise.all(running.map((r, i) => r.done.then((o) => { onFinish?.(i, o); return o; })));
    } catch (err) {
      cancelAll();
      if (err instanceof SequenceAborted && reply.raw.destroyed) return null;
      throw err;
    }
  };

  /** Start an SSE stream (the reply is written by hand from here on). */
  const openStream = (reply: FastifyReply) => {
    reply.hijack();
    reply.raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    return {
      send: (data: unknown) => { if (!reply.raw.destroyed) reply.raw.write(`data: ${JSON.stringify(data)}\n\n`); },
      end: () => { if (!reply.raw.destroyed) reply.raw.end("data: [DONE]\n\n"); },
      fail: (err: Error) => {
        if (reply.raw.destroyed) return;
        reply.raw.end(`data: ${JSON.stringify(errorBody(500, err.message, null, null))}\n\ndata: [DONE]\n\n`);
      },
    };
  };

  app.post("/v1/completions", { schema: { body: completionSchema } }, async (request: FastifyRequest<{ Body: CompletionBody }>, reply) => {
    const body = request.body;
    const s = sampling(body, 16);
    const p = body.prompt;
    const prompts: number[][] =
      typeof p === "string" ? [encode(p, "prompt")]
      : p.every((x) => typeof x === "number") ? [checkIds(p as number[], "prompt")]
      : (p as (string | number[])[]).map((x, i) => typeof x === "string" ? encode(x, `prompt[${i}]`) : checkIds(x, `prompt[${i}]`));
    prompts.forEach((ids, i) => checkContext(ids, s, prompts.length > 1 ? `prompt[${i}]` : "prompt"));
    const n = body.logprobs ?? null;
    const echo = body.echo ?? false;
    const asText = tokenText(body.return_tokens_as_token_ids ?? false);
    const jobs = prompts.map((prompt): SequenceJob => ({ prompt, maxTokens: s.maxTokens, temperature: s.temperature, topP: s.topP, seed: s.seed, stop: s.stop, logprobs: n, promptLogprobs: echo && n !== null }));
    const promptText = prompts.map((ids) => (echo ? (tokenizer ? tokenizer.decode(ids, { skipSpecialTokens: false }) : "") : ""));
    const id = `cmpl-${randomUUID()}`;
    const usage = (outcomes: SequenceOutcome[]) => {
      const promptTokens = prompts.reduce((a, q) => a + q.length, 0);
      const completionTokens = outcomes.reduce((a, o) => a + o.tokens.length, 0);
      return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
    };
    const logprobsOf = (entries: SequenceOutcome["promptLogprobs"], offset: number) => (n === null ? null : completionLogprobs(entries, asText, offset));
    if (!s.stream) {
      const outcomes = await runJobs(reply, jobs);
      if (!outcomes) return reply;
      return {
        id, object: "text_completion", created: Math.floor(Date.now() / 1000), model: modelName,
        choices: outcomes.map((o, i) => ({
          index: i, text: promptText[i] + o.text,
          logprobs: logprobsOf([...(echo ? o.promptLogprobs : []), ...o.logprobs], 0),
          finish_reason: o.finishReason,
        })),
        usage: usage(outcomes),
      };
    }
    const stream = openStream(reply);
    const chunk = (index: number, text: string, logprobs: unknown, finish: string | null) =>
      stream.send({ id, object: "text_completion", created: Math.floor(Date.now() / 1000), model: modelName, choices: [{ index, text, logprobs, finish_reason: finish }] });
    const emitted = prompts.map(() => false);
    const offsets = promptText.map((t) => t.length);
    // The echoed prompt goes first, with its log-probs once the prefill has them.
    const sendPrompt = (i: number, entries: SequenceOutcome["promptLogprobs"] | null) => {
      if (emitted[i] || !echo) return;
      emitted[i] = true;
      chunk(i, promptText[i]!, entries ? logprobsOf(entries, 0) : null, null);
    };
    try {
      await runJobs(reply, jobs, (i, d) => {
        if (d.prompt) return sendPrompt(i, d.prompt);
        sendPrompt(i, null);
        const lp = n === null ? null : completionLogprobs(d.logprobs, asText, offsets[i]!);
        offsets[i]! += d.text.length;
        chunk(i, d.text, lp, null);
      }, (i, o) => {
        sendPrompt(i, n !== null ? o.promptLogprobs : null);
        chunk(i, "", null, o.finishReason);
      });
      stream.end();
    } catch (err) {
      if (!(err instanceof SequenceAborted)) stream.fail(err as Error);
    }
    return reply;
  });

  app.post("/v1/chat/completions", { schema: { body: chatSchema } }, async (request: FastifyRequest<{ Body: ChatBody }>, reply) => {
    const body = request.body;
    const s = sampling(body, model.maxContext, body.max_completion_tokens ?? body.max_tokens);
    const hasTemplate = options.hasChatTemplate ?? (tokenizer as { hasChatTemplate?: boolean } | null)?.hasChatTemplate ?? tokenizer?.applyChatTemplate !== undefined;
    if (!tokenizer || !hasTemplate) {
      throw new HttpError(400, `model "${modelName}" has no chat template (tokenizer_config.json has no chat_template); use /v1/completions with a prompt`, "messages", "no_chat_template");
    }
    let rendered: string;
    try {
      rendered = tokenizer.applyChatTemplate!(body.messages, { addGenerationPrompt: true });
    } catch (err) {
      throw new HttpError(400, `the chat template failed on these messages: ${(err as Error).message}`, "messages", "chat_template_error");
    }
    const prompt = encode(rendered, "messages (rendered with the chat template)");
    // Without max_tokens a chat answer may use the rest of the context.
    if (body.max_completion_tokens == null && body.max_tokens == null) s.maxTokens = Math.max(0, model.maxContext - prompt.length);
    checkContext(prompt, s, "messages");
    const top = body.logprobs ? (body.top_logprobs ?? 0) : null;
    const job: SequenceJob = { prompt, maxTokens: s.maxTokens, temperature: s.temperature, topP: s.topP, seed: s.seed, stop: s.stop, logprobs: top, promptLogprobs: false };
    const id = `chatcmpl-${randomUUID()}`;
    const text = tokenText(false);
    const chatLogprobs = (entries: PositionLogprobs[]) => top === null ? null : {
      content: entries.map((e) => ({
        token: text(e.token), logprob: e.logprob,
        top_logprobs: e.top.slice(0, top).map((t) => ({ token: text(t.id), logprob: t.logprob })),
      })),
    };
    if (!s.stream) {
      const outcomes = await runJobs(reply, [job]);
      if (!outcomes) return reply;
      const o = outcomes[0]!;
      return {
        id, object: "chat.completion", created: Math.floor(Date.now() / 1000), model: modelName,
        choices: [{ index: 0, message: { role: "assistant", content: o.text }, logprobs: chatLogprobs(o.logprobs), finish_reason: o.finishReason }],
        usage: { prompt_tokens: prompt.length, completion_tokens: o.tokens.length, total_tokens: prompt.length + o.tokens.length },
      };
    }
    const stream = openStream(reply);
    const chunk = (delta: Record<string, string>, logprobs: unknown, finish: string | null) =>
      stream.send({ id, object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model: modelName, choices: [{ index: 0, delta, logprobs, finish_reason: finish }] });
    chunk({ role: "assistant", content: "" }, null, null);
    try {
      await runJobs(reply, [job], (_i, d) => chunk({ content: d.text }, chatLogprobs(d.logprobs), null), (_i, o) => chunk({}, null, o.finishReason));
      stream.end();
    } catch (err) {
      if (!(err instanceof SequenceAborted)) stream.fail(err as Error);
    }
    return reply;
  });

  app.addHook("onClose", async () => {
    await scheduler.drain();
  });
  return { app, scheduler };
}
