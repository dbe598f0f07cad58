// Metric arithmetic as lm-evaluation-harness aggregates it.

/** Index of the largest value, the first one on ties (numpy.argmax). */
export function firstArgmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** Arithmetic mean (NaN for no values). */
export function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** lm-eval's mean_stderr: sample standard deviation (n − 1) over √n; undefined below two values. */
export function meanStderr(values: readonly number[]): number | undefined {
  const n = values.length;
  if (n < 2) return undefined;
  const mu = mean(values);
  const variance = values.reduce((a, v) => a + (v - mu) * (v - mu), 0) / (n - 1);
  return Math.sqrt(variance) / Math.sqrt(n);
}

/** Length in characters as Python's len() counts them (code points, not UTF-16 units). */
export function charLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Length in UTF-8 bytes. */
export function byteLength(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** Per-item outcome of a multiple-choice item, as 0/1 per metric. */
export interface McOutcome {
  acc: number;
  acc_norm: number;
  acc_bytes: number;
}

/**
 * Score one item from its choices' summed log-likelihoods: `acc` = argmax of the sums,
 * `acc_norm` = argmax of sum / len(choice) in characters, `acc_bytes` = argmax of sum / UTF-8
 * bytes (each argmax takes the first index on ties). `choices` are the strings lm-eval measures
 * (doc_to_choice, without the target delimiter).
 */
export function scoreChoices(logLikelihoods: readonly number[], choices: readonly string[], gold: number): McOutcome {
  const hit = (values: number[]) => (firstArgmax(values) === gold ? 1 : 0);
  return {
    acc: hit([...logLikelihoods]),
    acc_norm: hit(logLikelihoods.map((ll, i) => ll / charLength(choices[i]!))),
    acc_bytes: hit(logLikelihoods.map((ll, i) => ll / byteLength(choices[i]!))),
  };
}

/** lm-eval's count_words: pieces of re.split(r"\s+", text) (leading/trailing whitespace count an empty piece). */
export function countWords(text: string): number {
  return text.split(/\s+/).length;
}

/** Mean of each named metric over items, plus `<metric>_stderr` (lm-eval's mean and mean_stderr). */
export function aggregateMeans(perItem: readonly Record<string, number>[], names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of names) {
    const values = perItem.map((o) => o[name]!);
    out[name] = mean(values);
    const se = meanStderr(values);
    if (se !== undefined) out[`${name}_stderr`] = se;
  }
  return out;
}
