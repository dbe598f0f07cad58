// JSON schemas of the request bodies (fastify validates them with ajv; a mismatch is a 400).

const stop = {
  anyOf: [
    { type: "string", minLength: 1 },
    { type: "array", items: { type: "string", minLength: 1 }, maxItems: 4 },
    { type: "null" },
  ],
} as const;

const sampling = {
  model: { type: "string" },
  max_tokens: { anyOf: [{ type: "integer", minimum: 0 }, { type: "null" }] },
  temperature: { anyOf: [{ type: "number", minimum: 0, maximum: 2 }, { type: "null" }] },
  top_p: { anyOf: [{ type: "number", exclusiveMinimum: 0, maximum: 1 }, { type: "null" }] },
  seed: { anyOf: [{ type: "integer" }, { type: "null" }] },
  stop,
  stream: { anyOf: [{ type: "boolean" }, { type: "null" }] },
  n: { anyOf: [{ type: "integer", minimum: 1, maximum: 1 }, { type: "null" }] },
} as const;

/** POST /v1/completions */
export const completionSchema = {
  type: "object",
  required: ["prompt"],
  properties: {
    ...sampling,
    prompt: {
      anyOf: [
        { type: "string" },
        { type: "array", minItems: 1, items: { type: "integer", minimum: 0 } },
        { type: "array", minItems: 1, items: { type: "string" } },
        { type: "array", minItems: 1, items: { type: "array", minItems: 1, items: { type: "integer", minimum: 0 } } },
      ],
    },
    logprobs: { anyOf: [{ type: "integer", minimum: 0, maximum: 20 }, { type: "null" }] },
    echo: { anyOf: [{ type: "boolean" }, { type: "null" }] },
    /** vLLM's extension: log-prob keys as "token_id:N" (unambiguous; what the remote teacher asks for). */
    return_tokens_as_token_ids: { anyOf: [{ type: "boolean" }, { type: "null" }] },
  },
} as const;

/** POST /v1/chat/completions */
export const chatSchema = {
  type: "object",
  required: ["messages"],
  properties: {
    ...sampling,
    max_completion_tokens: { anyOf: [{ type: "integer", minimum: 0 }, { type: "null" }] },
    messages: {
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        required: ["role", "content"],
        properties: { role: { type: "string", enum: ["system", "user", "assistant", "tool", "developer"] }, content: { type: "string" } },
      },
    },
    logprobs: { anyOf: [{ type: "boolean" }, { type: "null" }] },
    top_logprobs: { anyOf: [{ type: "integer", minimum: 0, maximum: 20 }, { type: "null" }] },
  },
} as const;

/** Fields both endpoints read. */
export interface SamplingBody {
  model?: string;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  stream?: boolean | null;
}

export interface CompletionBody extends SamplingBody {
  prompt: string | number[] | string[] | number[][];
  logprobs?: number | null;
  echo?: boolean | null;
  return_tokens_as_token_ids?: boolean | null;
}

export interface ChatBody extends SamplingBody {
  max_completion_tokens?: number | null;
  messages: { role: string; content: string }[];
  logprobs?: boolean | null;
  top_logprobs?: number | null;
}
