// Op and dtype ids of the native ABI: the same ids as core's op table
// (packages/core/src/interfaces/ops.ts: BINARY_OPS, UNARY_OPS, REDUCE_OPS, DTYPES).
// test/ops-header.test.ts fails when this file and core's table drift apart.
#pragma once

namespace ecomla_gpu {
enum DTypeId { DT_F32 = 0, DT_BF16 = 1, DT_F16 = 2, DT_I32 = 3 };
enum BinaryOpId { BIN_ADD = 0, BIN_SUB = 1, BIN_MUL = 2, BIN_DIV = 3, BIN_MAX = 4, BIN_MIN = 5, BIN_POW = 6 };
enum UnaryOpId {
  UN_NEG = 0, UN_EXP = 1, UN_LOG = 2, UN_SQRT = 3, UN_RSQRT = 4, UN_ABS = 5, UN_SQUARE = 6, UN_RECIPROCAL = 7,
  UN_RELU = 8, UN_SIGMOID = 9, UN_SILU = 10, UN_TANH = 11, UN_GELU = 12, UN_SCALE = 13, UN_ADD_SCALAR = 14,
  UN_POW_SCALAR = 15
};
enum ReduceOpId { RED_SUM = 0, RED_MAX = 1, RED_MEAN = 2, RED_SUMSQ = 3 };
}  // namespace ecomla_gpu
