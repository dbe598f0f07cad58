// Public API of the safetensors I/O (re-exported from the core package index).
export {
  SafetensorsError,
  SAFETENSORS_DTYPE_BYTES,
  SUPPORTED_DTYPES,
  MAX_HEADER_BYTES,
  isSafetensorsDtype,
  parseHeaderLength,
  parseSafetensorsHeader,
  type SafetensorsDtype,
  type SupportedDtype,
  type TensorInfo,
  type ParsedHeader,
} from "./safetensors.js";
export { SafetensorsFile, type RawTensor, type SafetensorsSource } from "./safetensors-read.js";
export {
  writeSafetensors,
  layoutSafetensors,
  type WritableDtype,
  type TensorData,
  type TensorToWrite,
  type WrittenFile,
  type SafetensorsLayout,
} from "./safetensors-write.js";
export {
  SafetensorsCheckpoint,
  writeShardedSafetensors,
  planShards,
  SAFE_WEIGHTS_NAME,
  SAFE_WEIGHTS_INDEX_NAME,
  type ShardedWriteOptions,
  type WrittenCheckpoint,
} from "./sharded.js";
