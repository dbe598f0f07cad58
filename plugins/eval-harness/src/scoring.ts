// Log-likelihood scoring with lm-evaluation-harness semantics: the context/continuation token split
// of `_encode_pair`, left truncation that keeps the continuation, right-padded batches, and only
// the continuation's logits read back (per-token log-likelihoods from the fused cross-entropy kernel).
import { EcomlaError, Tensor, argmax, noGrad, ops, tidy, type LanguageModel, type TensorBackend, type Tokenizer } from "@ecomla/core";

/** One log-likelihood request in tokens: score `continuation` given `context`. */
export interface TokenRequest {
  context: readonly number[];
  continuation: readonly number[];
}

/** What scoring one request gives (lm-eval's `(logprob, is_greedy)` pair). */
export interface LoglikelihoodResult {
  /** Σ log p(continuation token | everything before it), natural log. */
  logLikelihood: number;
  /** Whether every continuation token is the argmax of its logits (teacher-forced greedy match). */
  isGreedy: boolean;
}

/** Options of {@link scoreRequests}. */
export interface ScoreOptions {
  /** The model's context window: inputs are cut from the left to this many tokens. */
  maxLength: number;
  /** Requests packed into one forward (default 4). */
  batchSize?: number;
  /** Also compute `isGreedy` (downloads the continuation's logit rows; off: isGreedy is false). */
  greedy?: boolean;
  /** Called after each batch with requests done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** How strings become tokens for scoring. */
export interface EncodeOptions {
  /** Token that stands in for an empty context (lm-eval's prefix token; ecomla uses end-of-text). */
  prefixTokenId: number;
  /** Ask the tokenizer for its special tokens (BOS) — only where the tokenizer config says so. */
  addSpecialTokens?: boolean;
}

/**
 * lm-eval's `_encode_pair`: trailing whitespace of the context moves to the continuation, the pair
 * is encoded whole and split where the context's own tokens end (so merges across the boundary
 * are charged to the continuation); an empty context becomes the prefix token.
 */
export function encodePair(tokenizer: Tokenizer, context: string, continuation: string, options: EncodeOptions): TokenRequest {
  const encode = (text: string) => tokenizer.encode(text, { addSpecialTokens: options.addSpecialTokens ?? false });
  // lm-eval tests `context == ""` before the split; the continuation is then encoded on its own.
  if (context === "") return { context: [options.prefixTokenId], continuation: encode(continuation) };
  const trailing = context.length - context.trimEnd().length;
  if (trailing > 0) {
    continuation = context.slice(context.length - trailing) + continuation;
    context = context.slice(0, context.length - trailing);
  }
  const whole = encode(context + continuation);
  const contextIds = encode(context);
  // A whitespace-only context encodes to nothing; lm-eval would then read logits before the
  // sequence start, so it gets the prefix token like an empty one.
  if (contextIds.length === 0) return { context: [options.prefixTokenId], continuation: whole };
  return { context: contextIds, continuation: whole.slice(contextIds.length) };
}

/** The backend a model's tensors live on (models built on core's Module expose it). */
export function modelBackend(model: LanguageModel): TensorBackend {
  const backend = (model as { backend?: TensorBackend }).backend;
  if (!backend || typeof backend.alloc !== "function") {
    throw new EcomlaError("eval: the model does not expose its tensor backend (a `backend` property); evaluators need it to build inputs");
  }
  return backend;
}

/**
 * Negative log-likelihood of each row's label: logits (N, V) f32, labels (N) i32 → (N) f32, from
 * the backend's fused log-softmax + cross-entropy kernel. core's ops.crossEntropy reduces to a
 * scalar; scoring needs the per-row values, so this calls the kernel directly.
 */
export function tokenNegLogLikelihoods(logits: Tensor, labels: Tensor): Tensor {
  const [rows, vocab] = logits.shape as [number, number];
  if (logits.rank !== 2 || labels.size !== rows || labels.dtype !== "i32") {
    throw new EcomlaError(`tokenNegLogLikelihoods: expected logits (N, V) and N i32 labels, found logits [${logits.shape.join(", ")}] and ${labels.size} ${labels.dtype} labels`);
  }
  const out = Tensor.empty(logits.backend, [rows]);
  if (rows > 0) logits.backend.crossEntropy({ logits: logits.buffer, rows, vocab, labels: labels.buffer, loss: out.buffer });
  return out;
}

interface Prepared {
  index: number;
  /** Model input: (context ‖ continuation) cut to the last maxLength+1 tokens, minus the last. */
  input: number[];
  targets: readonly number[];
}

/** lm-eval's input of one request; errors where the continuation cannot fit the window. */
function prepare(request: TokenRequest, index: number, maxLength: number): Prepared {
  const contLen = request.continuation.length;
  if (contLen > maxLength) {
    throw new EcomlaError(`eval: request ${index} has a continuation of ${contLen} tokens, longer than the model's max length ${maxLength}`);
  }
  if (contLen > 0 && request.context.length === 0) {
    throw new EcomlaError(`eval: request ${index} has no context token (an empty context needs the prefix token; see encodePair)`);
  }
  const whole = [...request.context, ...request.continuation];
  const input = whole.slice(Math.max(0, whole.length - (maxLength + 1)), whole.length - 1);
  return { index, input, targets: request.continuation };
}

/**
 * Score many requests in right-padded batches: one forward per batch, then only the rows that
 * predict continuation tokens go through the fused log-softmax. Requests run longest first (less
 * padding, as lm-eval's collator); results come back in request order.
 */
export async function scoreRequests(model: LanguageModel, requests: readonly TokenRequest[], options: ScoreOptions): Promise<LoglikelihoodResult[]> {
  const batchSize = options.batchSize ?? 4;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new EcomlaError(`eval: batch size must be an integer ≥ 1, found ${batchSize}`);
  if (!Number.isInteger(options.maxLength) || options.maxLength < 1) throw new EcomlaError(`eval: max length must be an integer ≥ 1, found ${options.maxLength}`);
  const results: LoglikelihoodResult[] = new Array(requests.length);
  const pending: Prepared[] = [];
  requests.forEach((r, i) => {
    // An empty continuation has log-likelihood 0 and is trivially greedy (lm-eval's empty slice).
    if (r.continuation.length === 0) results[i] = { logLikelihood: 0, isGreedy: true };
    else pending.push(prepare(r, i, options.maxLength));
  });
  pending.sort((a, b) => b.input.length - a.input.length || a.index - b.index);
  const backend = pending.length > 0 ? modelBackend(model) : null;
  let done = requests.length - pending.length;
  for (let start = 0; start < pending.length; start += batchSize) {
    const batch = pending.slice(start, start + batchSize);
    const scored = await scoreBatch(model, backend!, batch, options.greedy ?? false);
    batch.forEach((p, b) => (results[p.index] = scored[b]!));
    done += batch.length;
    options.onProgress?.(done, requests.length);
  }
  return results;
}

async function scoreBatch(model: LanguageModel, backend: TensorBackend, batch: readonly Prepared[], greedy: boolean): Promise<LoglikelihoodResult[]> {
  const seqLen = Math.max(...batch.map((p) => p.input.length));
  const vocab = model.vocabSize;
  // Pad on the right with id 0: causal attention keeps every real position blind to the padding.
  const ids = new Int32Array(batch.length * seqLen);
  batch.forEach((p, b) => ids.set(p.input, b * seqLen));
  const targets = batch.flatMap((p) => [...p.targets]);
  // A model run by an engine outside ecomla's tensors gives host logits; they are scored on `backend`.
  const hostLogits = model.hostLogits ? await model.hostLogits(ids, batch.length, seqLen) : null;
  const [nll, rows] = tidy(() =>
    noGrad(() => {
      const logits = hostLogits
        ? Tensor.from(backend, hostLogits, [batch.length, seqLen, vocab])
        : model.forward(Tensor.from(backend, ids, [batch.length, seqLen], { dtype: "i32" })); // (B, T, V)
      const flat = logits.view([batch.length * seqLen, vocab]); // (B·T, V)
      // Row t of a sequence predicts token t+1: the continuation's predictors are its last |cont| inputs.
      const parts = batch.map((p, b) => ops.narrow(flat, 0, b * seqLen + p.input.length - p.targets.length, p.targets.length));
      const picked = parts.length === 1 ? parts[0]! : ops.concat(parts, 0); // (N, V)
      const labels = Tensor.from(backend, Int32Array.from(targets), [targets.length], { dtype: "i32" });
      const perToken = tokenNegLogLikelihoods(picked, labels); // (N)
      return greedy ? [perToken, picked] : [perToken];
    }),
  );
  try {
    const nllHost = (await nll!.data()) as Float32Array;
    const rowsHost = rows ? ((await rows.data()) as Float32Array) : null;
    const out: LoglikelihoodResult[] = [];
    let at = 0;
    for (const p of batch) {
      let sum = 0;
      let isGreedy = rowsHost !== null;
      for (let j = 0; j < p.targets.length; j++, at++) {
        sum -= nllHost[at]!;
        // First index on ties, as torch.argmax.
        if (rowsHost && argmax(rowsHost.subarray(at * vocab, (at + 1) * vocab)) !== p.targets[j]) isGreedy = false;
      }
      out.push({ logLikelihood: sum, isGreedy });
    }
    return out;
  } finally {
    nll!.dispose();
    rows?.dispose();
  }
}

/**
 * The scoring windows of a rolling (perplexity) evaluation over `tokens`, preceded by the prefix
 * token: each window scores only the tokens the previous one did not, with up to maxLength tokens
 * of input; the window end advances by `stride`. stride = maxLength gives lm-eval's disjoint
 * `loglikelihood_rolling` windows; a smaller stride gives each window more left context (HF's
 * "perplexity of fixed-length models"). Every token is scored exactly once.
 */
export function rollingWindows(tokens: readonly number[], prefixTokenId: number, maxLength: number, stride: number = maxLength): TokenRequest[] {
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new EcomlaError(`perplexity: max length must be an integer ≥ 1, found ${maxLength}`);
  if (!Number.isInteger(stride) || stride < 1 || stride > maxLength) {
    throw new EcomlaError(`perplexity: stride must be an integer in [1, max length ${maxLength}], found ${stride}`);
  }
  const seq = [prefixTokenId, ...tokens];
  const last = seq.length - 1; // index of the last target
  const windows: TokenRequest[] = [];
  let scoredUpTo = 0; // targets 1..scoredUpTo are done
  for (let end = Math.min(maxLength, last); scoredUpTo < last; end = Math.min(end + stride, last)) {
    const inputStart = Math.max(0, end - maxLength);
    windows.push({ context: seq.slice(inputStart, scoredUpTo + 1), continuation: seq.slice(scoredUpTo + 1, end + 1) });
    scoredUpTo = end;
  }
  return windows;
}
