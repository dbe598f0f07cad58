/** A text tokenizer (HF tokenizer.json semantics). */
export interface Tokenizer {
  /** Number of ids the model's embedding must cover. */
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** Ids of `text`; special tokens (BOS) only when asked and the tokenizer config says so. */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`. */
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  /** Render chat messages with the tokenizer's chat template, when it has one. */
  applyChatTemplate?(messages: { role: string; content: string }[], options?: { addGenerationPrompt?: boolean }): string;
}
