// Op and dtype ids of the native ABI: ops.generated.h is written from core's op table
// (packages/core/src/interfaces/ops.ts) by scripts/gen-op-header.mjs, and test/op-header.test.ts
// fails when it drifts. The kernels use its enumerators (F32, B_ADD, U_EXP, R_SUM, …).
#pragma once
#include "ops.generated.h"

namespace ecomla_gpu {
using namespace ecomla;
}  // namespace ecomla_gpu
