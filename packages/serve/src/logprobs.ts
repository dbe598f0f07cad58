// Log-probabilities the way OpenAI/vLLM completions return them.

/** log-softmax of one logits row (V), in float64. */
export function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i]! - lse;
  return out;
}

/** The n largest entries of a row (ids, largest first; ties by lower id). */
export function topIds(values: ArrayLike<number>, n: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < values.length; i++) {
    if (best.length === n && values[i]! <= values[best[n - 1]!]!) continue;
    let j = best.length < n ? best.length : n - 1;
    while (j > 0 && values[best[j - 1]!]! < values[i]!) j--;
    best.splice(j, 0, i);
    if (best.length > n) best.pop();
  }
  return best;
}

/** One position's log-prob entry: the chosen token's log-prob and the top-n alternatives. */
export interface PositionLogprobs {
  token: number;
  logprob: number;
  /** Top-n ids with their log-probs (largest first), the chosen token added when outside them (as vLLM does). */
  top: { id: number; logprob: number }[];
}

/** The chosen token's log-prob and the top-n of the logits row it came from. */
export function positionLogprobs(row: ArrayLike<number>, token: number, n: number): PositionLogprobs {
  const lp = logSoftmax(row);
  const top = topIds(lp, n).map((id) => ({ id, logprob: lp[id]! }));
  if (!top.some((t) => t.id === token)) top.push({ id: token, logprob: lp[token]! });
  return { token, logprob: lp[token]!, top };
}

/** OpenAI completions' `logprobs` object. */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/** Build a completions `logprobs` object; `null` entries are the first prompt token's (no context). */
export function completionLogprobs(entries: (PositionLogprobs | { token: number; logprob: null })[], tokenText: (id: number) => string, startOffset = 0): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let offset = startOffset;
  for (const e of entries) {
    const text = tokenText(e.token);
    out.tokens.push(text);
    out.token_logprobs.push(e.logprob);
    out.top_logprobs.push("top" in e ? Object.fromEntries(e.top.map((t) => [tokenText(t.id), t.logprob])) : null);
    out.text_offset.push(offset);
    offset += text.length;
  }
  return out;
}
