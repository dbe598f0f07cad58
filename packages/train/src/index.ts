// Public API of @ecomla/train: data, teachers, schedules, checkpoints, the distillation and DPO trainers.
export {
  PackedDataSource, tokenizeFile, tokenizerFingerprint, readDocuments, documentsOf, sha256File, renderChat, packRows, permutation, concatCorpora, splitBatch, sha256,
  type PackedDataOptions, type PackedCursor, type TokenizeOptions, type TokenizedCorpus, type ChatMessage,
} from "./data.js";
export { ModelTeacher, TopKFileTeacher, TopKWriter, topKLogprobs, klToTeacher, disposeTargets, inputIds, type StatefulTeacher } from "./teacher.js";
export { learningRateAt, warmupStepsFor, clipFactor, gradSquaredNorm, type CosineSchedule } from "./schedule.js";
export { saveCheckpoint, loadCheckpoint, listCheckpoints, pruneCheckpoints, writeModelFolder, MODEL_SIDE_FILES, type TrainerState, type CheckpointContents } from "./checkpoint.js";
export { MetricsLog, curvesSvg, type MetricsRecord } from "./metrics.js";
export { perplexityByPosition } from "./position-perplexity.js";
export { runLoop, selectTrainable, TrainingDivergedError, type LoopOptions, type StepReport, type MicroResult, type TaskHooks, type RunSummary } from "./loop.js";
export { distill, DistillTask, type DistillInputs, type PrefetchingTeacher } from "./distill.js";
export { RemoteTeacher, TeacherUnavailableError, parseRemoteTeacher, type RemoteTeacherSpec } from "./remote-teacher.js";
export { dpo, DpoTask, readPairs, pairRows, dpoSigmoid, type DpoInputs, type TokenizedPair } from "./dpo.js";
export { readTrainConfig, parseTrainConfig, resolveSources, totalStepsOf, type TrainConfig, type StudentConvertSpec, type TrainKind } from "./config.js";
export { runDistillConfig, runDpoConfig, writeTeacherTopK, prepareStudent, type RunEnvironment } from "./run.js";
export { writeFileAtomically } from "./atomic.js";
export { buildModelCard, writeModelCard, readCardFrontMatter, hubIdOf, type ModelCardInfo } from "./model-card.js";
export { parquetColumnValues, parquetColumns, pickTextColumn } from "./parquet.js";
export { runPretrainConfig, pretrainModelConfig, PretrainTask } from "./pretrain.js";
