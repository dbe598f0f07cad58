// The tiny teacher's data groundwork: corpus, byte-level BPE tokenizer, evaluation tasks.
export * from "./corpus.js";
export * from "./bpe.js";
export * from "./tasks.js";
export * from "./demo.js";
