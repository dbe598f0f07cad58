// The native backends' C header (plugins/backend-cpu/native/ops.generated.h) is generated from
// core's op table by scripts/gen-op-header.mjs and checked in: fail when it drifts from the table,
// when a shipped id changes, or when it stops compiling as C or C++.
import t from "tap";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { BINARY_OPS, DTYPES, REDUCE_OPS, UNARY_OPS, type OpEntry } from "@ecomla/core";
import { OP_HEADER_TARGETS, REGENERATE_COMMAND, renderOpHeader } from "../scripts/gen-op-header.mjs";

const root = dirname(dirname(fileURLToPath(import.meta.url)));

/** The ids native code has been built against so far: new ops may be appended, these never change. */
const SHIPPED_IDS: Record<string, [readonly OpEntry[], Record<string, number>]> = {
  DType: [DTYPES, { F32: 0, BF16: 1, F16: 2, I32: 3 }],
  BinaryOp: [BINARY_OPS, { B_ADD: 0, B_SUB: 1, B_MUL: 2, B_DIV: 3, B_MAX: 4, B_MIN: 5, B_POW: 6 }],
  UnaryOp: [
    UNARY_OPS,
    {
      U_NEG: 0, U_EXP: 1, U_LOG: 2, U_SQRT: 3, U_RSQRT: 4, U_ABS: 5, U_SQUARE: 6, U_RECIPROCAL: 7, U_RELU: 8,
      U_SIGMOID: 9, U_SILU: 10, U_TANH: 11, U_GELU: 12, U_SCALE: 13, U_ADD_SCALAR: 14, U_POW_SCALAR: 15,
    },
  ],
  ReduceOp: [REDUCE_OPS, { R_SUM: 0, R_MAX: 1, R_MEAN: 2, R_SUMSQ: 3 }],
};

/** `NAME = id` pairs of one `typedef enum Type { … } Type;` block of the header. */
function enumerators(header: string, type: string): Map<string, number> {
  const block = new RegExp(`typedef enum ${type} \\{([^}]*)\\} ${type};`).exec(header);
  if (!block) throw new Error(`no enum ${type} in the generated header`);
  return new Map([...block[1]!.matchAll(/^\s*([A-Z][A-Z0-9_]*) = (\d+),$/gm)].map((m) => [m[1]!, Number(m[2])]));
}

t.test("the checked-in op headers equal the header rendered from core's op table", async (t) => {
  const expected = renderOpHeader();
  for (const target of OP_HEADER_TARGETS) {
    const found = readFileSync(join(root, target), "utf8");
    if (found === expected) {
      t.pass(`${target} is up to date`);
      continue;
    }
    const want = expected.split("\n");
    const got = found.split("\n");
    const line = want.findIndex((w, i) => w !== got[i]);
    t.fail(
      `${target} differs from packages/core/src/interfaces/ops.ts (first at line ${line + 1}: expected ${JSON.stringify(want[line])}, found ${JSON.stringify(got[line])}); regenerate it with: ${REGENERATE_COMMAND}`,
    );
  }
});

t.test("every table entry is in the header with its id, and shipped ids are unchanged", async (t) => {
  const header = renderOpHeader();
  for (const [type, [table, shipped]] of Object.entries(SHIPPED_IDS)) {
    const found = enumerators(header, type);
    t.equal(found.size, table.length, `${type}: one enumerator per table entry`);
    t.same([...found.values()].sort((a, b) => a - b), table.map((e) => e.id).sort((a, b) => a - b), `${type}: the table's ids`);
    for (const [name, id] of Object.entries(shipped)) t.equal(found.get(name), id, `${type} ${name} keeps id ${id}`);
    t.match(header, new RegExp(`#define ECOMLA_\\w+_COUNT ${table.length}\\b`), `${type}: count macro`);
  }
});

// The header is meant for every native backend (C++ here, CUDA/HIP next): it must stand alone in C and C++.
const compilers = [
  { cc: "cc", args: ["-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", "c"] },
  { cc: "c++", args: ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", "c++"] },
];
for (const { cc, args } of compilers) {
  const present = spawnSync(cc, ["--version"]).status === 0;
  t.test(`the generated header compiles alone with ${cc} ${args[0]}`, { skip: present ? false : `${cc} not found` }, async (t) => {
    const source = `#include "${join(root, OP_HEADER_TARGETS[0]!)}"\nint main(void) { return (int)${cc === "c++" ? "ecomla::" : ""}U_POW_SCALAR - 15; }\n`;
    const result = spawnSync(cc, [...args, "-"], { input: source, encoding: "utf8" });
    t.equal(result.status, 0, result.stderr || "compiled");
  });
}
