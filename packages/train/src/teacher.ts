import {
  ConfigError,
  SafetensorsCheckpoint,
  Tensor,
  noGrad,
  ops,
  writeSafetensors,
  type LanguageModel,
  type Teacher,
  type TeacherTargets,
  type TensorBackend,
  type TokenBatch,
} from "@ecomla/core";
import { splitBatch } from "./data.js";

/** Input ids (B, T) i32 of a batch on a backend. */
export function inputIds(backend: TensorBackend, batch: TokenBatch): Tensor {
  return Tensor.from(backend, splitBatch(batch).inputs, [batch.batch, batch.seqLen]);
}

/**
 * An in-process teacher: a loaded model (the student's base, or any checkpoint sharing its
 * vocabulary) run without gradients; full logits for every position.
 */
export class ModelTeacher implements Teacher {
  readonly name = "model";
  constructor(
    readonly model: LanguageModel,
    readonly backend: TensorBackend,
  ) {}

  async targets(batch: TokenBatch): Promise<TeacherTargets> {
    const logits = noGrad(() => {
      const ids = inputIds(this.backend, batch);
      const out = this.model.forward(ids);
      const flat = out.view([batch.batch * batch.seqLen, this.model.vocabSize]); // (N, V)
      ids.dispose();
      out.dispose();
      return flat;
    });
    return { kind: "logits", logits };
  }
}

/** A teacher whose targets come from a file, positioned by a resumable row counter. */
export interface StatefulTeacher extends Teacher {
  state(): unknown;
  restore(state: unknown): void;
}

/**
 * Precomputed top-k teacher: a safetensors file with `indices` I32 [N, K] and `logprobs` F32
 * [N, K], one row per training position in the order the data stream serves them (as written by
 * {@link TopKWriter} over the same data, seed and batch sizes).
 */
export class TopKFileTeacher implements StatefulTeacher {
  readonly name = "topk-file";
  private row = 0;
  readonly rows: number;
  readonly k: number;

  private constructor(
    private readonly file: SafetensorsCheckpoint,
    private readonly indices: Int32Array,
    readonly path: string,
    readonly backend: TensorBackend,
  ) {
    const idx = file.info("indices");
    const lp = file.info("logprobs");
    if (idx.shape.length !== 2 || lp.shape.length !== 2 || idx.shape[0] !== lp.shape[0] || idx.shape[1] !== lp.shape[1]) {
      throw new ConfigError(`${path}: "indices" [${idx.shape.join(", ")}] and "logprobs" [${lp.shape.join(", ")}] must both be [N, K]`);
    }
    if (idx.dtype !== "I32") throw new ConfigError(`${path}: "indices" must be I32, found ${idx.dtype}`);
    this.rows = idx.shape[0]!;
    this.k = idx.shape[1]!;
  }

  /** Open a top-k file. */
  static async open(path: string, backend: TensorBackend): Promise<TopKFileTeacher> {
    let file: SafetensorsCheckpoint;
    try {
      file = await SafetensorsCheckpoint.open(path);
    } catch (err) {
      throw new ConfigError(`teacher_topk ${path}: ${(err as Error).message}`, { cause: err });
    }
    for (const name of ["indices", "logprobs"]) {
      if (!file.has(name)) throw new ConfigError(`teacher_topk ${path}: no tensor "${name}" (expected "indices" I32 [N, K] and "logprobs" F32 [N, K])`);
    }
    // Ids are read whole (the f32 range reader refuses I32); log-probs stream per batch.
    return new TopKFileTeacher(file, await file.readI32("indices"), path, backend);
  }

  async targets(batch: TokenBatch): Promise<TeacherTargets> {
    const n = batch.batch * batch.seqLen;
    if (this.row + n > this.rows) {
      throw new ConfigError(`teacher_topk ${this.path}: holds ${this.rows} positions, training needs rows ${this.row}..${this.row + n} (write it for at least as many steps)`);
    }
    const at = this.row * this.k;
    const idx = this.indices.slice(at, at + n * this.k);
    const lp = await this.file.readF32Range("logprobs", at, n * this.k);
    this.row += n;
    return {
      kind: "topk",
      indices: Tensor.from(this.backend, idx, [n, this.k]),
      logprobs: Tensor.from(this.backend, lp, [n, this.k]),
    };
  }

  state(): { row: number } {
    return { row: this.row };
  }

  restore(state: unknown): void {
    const row = (state as { row?: unknown } | null)?.row;
    if (!Number.isInteger(row) || (row as number) < 0 || (row as number) > this.rows) throw new ConfigError(`teacher_topk ${this.path}: bad saved row ${JSON.stringify(state)}`);
    this.row = row as number;
  }

  /** Close the file. */
  async close(): Promise<void> {
    await this.file.close();
  }
}

/** Top-k of each row of log-softmax(logits): logits (N, V) on the host → indices and log-probs (N, K), descending. */
export function topKLogprobs(logits: Float32Array, rows: number, vocab: number, k: number): { indices: Int32Array; logprobs: Float32Array } {
  const indices = new Int32Array(rows * k);
  const logprobs = new Float32Array(rows * k);
  const order = new Int32Array(vocab);
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    let max = -Infinity;
    for (let j = 0; j < vocab; j++) max = Math.max(max, row[j]!);
    let sum = 0;
    for (let j = 0; j < vocab; j++) sum += Math.exp(row[j]! - max);
    const lse = max + Math.log(sum);
    for (let j = 0; j < vocab; j++) order[j] = j;
    // Ties keep the lower id first, so files are reproducible.
    const top = Array.from(order).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, k);
    top.forEach((j, i) => {
      indices[r * k + i] = j;
      logprobs[r * k + i] = row[j]! - lse;
    });
  }
  return { indices, logprobs };
}

/**
 * Collects a teacher's top-k log-probs batch by batch and writes them as a {@link TopKFileTeacher}
 * file. Rows are held in memory until {@link TopKWriter.finish} (N·K·8 bytes).
 */
export class TopKWriter {
  private readonly indices: Int32Array[] = [];
  private readonly logprobs: Float32Array[] = [];
  private rows = 0;

  constructor(readonly k: number) {
    if (!(Number.isInteger(k) && k >= 1)) throw new ConfigError(`--write-topk must be an integer ≥ 1, found ${k}`);
  }

  /** Add the top-k of logits (N, V). */
  async add(logits: Tensor): Promise<void> {
    const [rows, vocab] = logits.shape as [number, number];
    if (this.k > vocab) throw new ConfigError(`--write-topk ${this.k} exceeds the vocabulary (${vocab})`);
    const host = (await logits.data()) as Float32Array;
    const t = topKLogprobs(host, rows, vocab, this.k);
    this.indices.push(t.indices);
    this.logprobs.push(t.logprobs);
    this.rows += rows;
  }

  /** Write the file atomically. */
  async finish(path: string): Promise<{ rows: number; k: number }> {
    const cat = <T extends Int32Array | Float32Array>(parts: T[], make: (n: number) => T): T => {
      const out = make(this.rows * this.k);
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.length;
      }
      return out;
    };
    await writeSafetensors(path, [
      { name: "indices", dtype: "I32", shape: [this.rows, this.k], data: cat(this.indices, (n) => new Int32Array(n)) },
      { name: "logprobs", dtype: "F32", shape: [this.rows, this.k], data: cat(this.logprobs, (n) => new Float32Array(n)) },
    ]);
    return { rows: this.rows, k: this.k };
  }
}

/** Mean KL(teacher ‖ student) per position of student logits (N, V), no gradient. */
export function klToTeacher(studentLogits: Tensor, teacher: TeacherTargets): Tensor {
  return noGrad(() => ops.klDiv(studentLogits, teacher.kind === "logits" ? { logits: teacher.logits } : { indices: teacher.indices, logprobs: teacher.logprobs }));
}

/** Free the tensors of teacher targets. */
export function disposeTargets(t: TeacherTargets): void {
  if (t.kind === "logits") t.logits.dispose();
  else {
    t.indices.dispose();
    t.logprobs.dispose();
  }
}
