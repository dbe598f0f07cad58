/** A batch of packed token sequences. */
export interface TokenBatch {
  /** (batch, seqLen + 1) row-major ids: inputs are [:, :-1], next-token labels [:, 1:]. */
  tokens: Int32Array;
  batch: number;
  seqLen: number;
}

/** A resumable stream of training batches. */
export interface DataSource {
  /** Registry name of the implementation. */
  readonly name: string;
  /** Next batch, or null at the end of an epoch-limited stream. */
  next(): Promise<TokenBatch | null>;
  /** A JSON-serialisable cursor from which {@link DataSource.restore} continues exactly. */
  state(): unknown;
  restore(state: unknown): void;
}
