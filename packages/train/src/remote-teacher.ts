// A teacher served elsewhere over the OpenAI completions protocol (ecomla serve, vLLM, SGLang,
// llama.cpp's server): the prompt's own top-K log-probs (echo, max_tokens 0, logprobs K) for each
// training sequence, fetched ahead of the student's step, retried with backoff.
import { ConfigError, EcomlaError, Tensor, type Teacher, type TeacherTargets, type TensorBackend, type TokenBatch, type Tokenizer } from "@ecomla/core";

/** `teacher: { url, model, top_k }` of a distill config. */
export interface RemoteTeacherSpec {
  /** Base URL of the API, e.g. http://127.0.0.1:8000/v1 */
  url: string;
  /** Model name the server serves. */
  model: string;
  /** Log-probs per position (K). */
  topK: number;
  /** Tries per request before the teacher counts as gone (default 5). */
  retries?: number;
  /** First wait between tries, doubled each time (default 500 ms). */
  backoffMs?: number;
  /** Per-request timeout (default 120 s). */
  timeoutMs?: number;
  /** Sequences in flight at once (default 8). */
  concurrency?: number;
}

/** The remote teacher could not be reached after every retry: the run stops at a resumable checkpoint. */
export class TeacherUnavailableError extends EcomlaError {
  /** The loop saves a checkpoint at the last finished step before rethrowing this. */
  readonly resumable = true;
}

/** Host-side top-k targets of one batch: indices and log-probs (N, K). */
interface HostTopK {
  indices: Int32Array;
  logprobs: Float32Array;
}

interface CompletionLogprobs {
  tokens: string[];
  top_logprobs: (Record<string, number> | null)[];
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/** "token_id:123" → 123 (vLLM's return_tokens_as_token_ids form). */
function tokenId(key: string, where: string): number {
  const m = /^token_id:(\d+)$/.exec(key);
  if (!m) throw new EcomlaError(`${where}: expected log-prob keys "token_id:N" (return_tokens_as_token_ids), found ${JSON.stringify(key)}; the server must support vLLM's return_tokens_as_token_ids`);
  return Number(m[1]);
}

/**
 * Targets from a remote teacher: for each row of a batch (T+1 tokens), one completions request
 * with the row as token ids, `echo: true`, `max_tokens: 0`, `logprobs: K` and
 * `return_tokens_as_token_ids: true`; the log-probs of prompt positions 1…T are the teacher's
 * distributions for the student's positions 0…T−1. `prefetch` starts a batch's requests while
 * the student still works on the one before.
 */
export class RemoteTeacher implements Teacher {
  readonly name = "remote";
  private readonly base: string;
  private readonly pending = new Map<TokenBatch, Promise<HostTopK>>();
  private checked: Promise<void> | null = null;

  constructor(readonly spec: RemoteTeacherSpec, readonly backend: TensorBackend, readonly tokenizer: Tokenizer, readonly vocabSize: number) {
    if (!(Number.isInteger(spec.topK) && spec.topK >= 1)) throw new ConfigError(`teacher.top_k must be an integer ≥ 1, found ${spec.topK}`);
    this.base = spec.url.replace(/\/+$/, "");
  }

  /** POST a completions body, retried with exponential backoff on network errors and 5xx/429. */
  private async post(body: Record<string, unknown>): Promise<{ choices: { logprobs: CompletionLogprobs | null }[] }> {
    const tries = this.spec.retries ?? 5;
    let wait = this.spec.backoffMs ?? 500;
    let last = "";
    for (let attempt = 1; attempt <= tries; attempt++) {
      try {
        const r = await fetch(`${this.base}/completions`, {
          method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: this.spec.model, ...body }),
          signal: AbortSignal.timeout(this.spec.timeoutMs ?? 120_000),
        });
        const text = await r.text();
        if (r.ok) return JSON.parse(text);
        last = `HTTP ${r.status}: ${text.slice(0, 300)}`;
        // A 4xx other than 429 will not get better by asking again.
        if (r.status < 500 && r.status !== 429) throw new ConfigError(`remote teacher ${this.base} (model "${this.spec.model}") refused the request: ${last}`);
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        last = (err as Error).message + ((err as { cause?: { code?: string } }).cause?.code ? ` (${(err as { cause: { code: string } }).cause.code})` : "");
      }
      if (attempt < tries) {
        await sleep(wait);
        wait *= 2;
      }
    }
    throw new TeacherUnavailableError(`remote teacher ${this.base} did not answer after ${tries} tries: ${last}`);
  }

  /** Once: the server's tokenizer must give the student's ids for the same text. */
  private checkTokenizer(sample: readonly number[]): Promise<void> {
    this.checked ??= (async () => {
      const text = this.tokenizer.decode(sample.slice(0, 64), { skipSpecialTokens: true });
      const mine = this.tokenizer.encode(text);
      const r = await this.post({ prompt: text, max_tokens: 0, echo: true, logprobs: 0, return_tokens_as_token_ids: true });
      const theirs = (r.choices[0]?.logprobs?.tokens ?? []).map((k) => tokenId(k, `remote teacher ${this.base}`));
      // Servers such as vLLM add BOS to text prompts; the student's data does not.
      const bos = this.tokenizer.bosTokenId;
      const aligned = bos !== null && theirs[0] === bos && mine[0] !== bos ? theirs.slice(1) : theirs;
      if (aligned.length !== mine.length || aligned.some((id, i) => id !== mine[i])) {
        const at = aligned.findIndex((id, i) => id !== mine[i]);
        throw new ConfigError(
          `remote teacher ${this.base} (model "${this.spec.model}") tokenizes differently from the student: ${JSON.stringify(text.slice(0, 60))} → ` +
          `teacher [${aligned.slice(0, 12).join(", ")}…] vs student [${mine.slice(0, 12).join(", ")}…] (first difference at token ${at}); distillation needs the same tokenizer`,
        );
      }
    })();
    return this.checked;
  }

  /** Top-K of one row of T+1 tokens → rows (T, K). */
  private async row(tokens: readonly number[], out: HostTopK, at: number): Promise<void> {
    const k = this.spec.topK;
    const r = await this.post({ prompt: [...tokens], max_tokens: 0, echo: true, logprobs: k, return_tokens_as_token_ids: true, temperature: 0 });
    const lp = r.choices[0]?.logprobs;
    const where = `remote teacher ${this.base}`;
    if (!lp || lp.top_logprobs.length < tokens.length) throw new EcomlaError(`${where}: expected ${tokens.length} prompt log-prob entries (echo), found ${lp?.top_logprobs.length ?? "none"}`);
    for (let t = 1; t < tokens.length; t++) {
      const entries = Object.entries(lp.top_logprobs[t] ?? {}).map(([key, v]) => [tokenId(key, where), v] as const).sort((a, b) => b[1] - a[1] || a[0] - b[0]);
      if (entries.length < k) throw new EcomlaError(`${where}: position ${t} has ${entries.length} log-probs, top_k is ${k}`);
      for (let j = 0; j < k; j++) {
        const [id, value] = entries[j]!;
        if (id >= this.vocabSize) throw new ConfigError(`${where}: token id ${id} is outside the student's vocabulary (${this.vocabSize})`);
        out.indices[(at + t - 1) * k + j] = id;
        out.logprobs[(at + t - 1) * k + j] = value;
      }
    }
  }

  private fetchBatch(batch: TokenBatch): Promise<HostTopK> {
    const { batch: b, seqLen: t, tokens } = batch;
    const k = this.spec.topK;
    const out: HostTopK = { indices: new Int32Array(b * t * k), logprobs: new Float32Array(b * t * k) };
    const rows = Array.from({ length: b }, (_, r) => Array.from(tokens.subarray(r * (t + 1), (r + 1) * (t + 1))));
    return (async () => {
      await this.checkTokenizer(rows[0]!);
      const limit = this.spec.concurrency ?? 8;
      for (let start = 0; start < b; start += limit) {
        await Promise.all(rows.slice(start, start + limit).map((row, i) => this.row(row, out, (start + i) * t)));
      }
      return out;
    })();
  }

  /** Start fetching a batch's targets now (host-side only; no tensors are made until {@link targets}). */
  prefetch(batch: TokenBatch): void {
    if (this.pending.has(batch)) return;
    const p = this.fetchBatch(batch);
    p.catch(() => {}); // surfaced when targets() awaits it
    this.pending.set(batch, p);
  }

  /** Drop prefetched batches (a resume repositions the data). */
  discardPrefetched(): void {
    this.pending.clear();
  }

  async targets(batch: TokenBatch): Promise<TeacherTargets> {
    const p = this.pending.get(batch) ?? this.fetchBatch(batch);
    this.pending.delete(batch);
    const host = await p;
    const n = batch.batch * batch.seqLen;
    return {
      kind: "topk",
      indices: Tensor.from(this.backend, host.indices, [n, this.spec.topK]),
      logprobs: Tensor.from(this.backend, host.logprobs, [n, this.spec.topK]),
    };
  }
}

/** Check `teacher: { url, model, top_k, retries?, backoff_ms?, timeout_ms?, concurrency? }` of a distill config. */
export function parseRemoteTeacher(raw: object, where: string): RemoteTeacherSpec {
  if (Array.isArray(raw)) throw new ConfigError(`${where} must be a model folder or {url, model, top_k}, found a list`);
  const cfg = raw as Record<string, unknown>;
  const known = ["url", "model", "top_k", "retries", "backoff_ms", "timeout_ms", "concurrency"];
  for (const key of Object.keys(cfg)) if (!known.includes(key)) throw new ConfigError(`${where}: unknown key "${key}"; known keys: ${known.join(", ")}`);
  const url = cfg["url"];
  if (typeof url !== "string" || !/^https?:\/\/[^/]+/.test(url)) throw new ConfigError(`${where}: "url" must be the server's API base, e.g. http://127.0.0.1:8000/v1, found ${JSON.stringify(url)}`);
  const model = cfg["model"];
  if (typeof model !== "string" || model.length === 0) throw new ConfigError(`${where}: "model" must be the served model's name, found ${JSON.stringify(model)}`);
  const int = (key: string, min: number): number | undefined => {
    const v = cfg[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) throw new ConfigError(`${where}: "${key}" must be an integer ≥ ${min}, found ${JSON.stringify(v)}`);
    return v;
  };
  const topK = int("top_k", 1);
  if (topK === undefined) throw new ConfigError(`${where}: "top_k" is required (log-probs per position, e.g. 20)`);
  return { url, model, topK, retries: int("retries", 1), backoffMs: int("backoff_ms", 0), timeoutMs: int("timeout_ms", 1), concurrency: int("concurrency", 1) };
}
