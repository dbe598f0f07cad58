// Public API of @ecomla/serve.
export { createServer, HttpError, type EcomlaServer, type ServerOptions } from "./server.js";
export { BatchedLlama, EngineServedModel, type SequenceCache, type ServedModel } from "./model.js";
export { Scheduler, type FinishReason, type GenerationRequest, type SchedulerStats, type SequenceHandle } from "./scheduler.js";
export { logSoftmax, positionLogprobs, topIds, completionLogprobs, type CompletionLogprobs, type PositionLogprobs } from "./logprobs.js";
