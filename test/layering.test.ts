// Layering of the workspace, checked on the import graph of every package's, plugin's and
// example's sources: no import cycles, io below the backends, interfaces below the tensor
// implementation, core importing no plugin, plugins importing no other plugin.
// dpdm parses each file with the TypeScript compiler and resolves our `.js` specifiers to the .ts
// sources through each package's tsconfig.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { parseCircular, parseDependencyTree, type DependencyTree } from "dpdm";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SOURCES = ["packages/*/src/**/*.ts", "plugins/*/src/**/*.ts", "examples/*/src/**/*.ts"];

/**
 * Type-only imports that close a cycle, each with why it stays. They are erased at compile time,
 * so they cannot change module evaluation order; a new one still fails this test.
 * [importer, imported], relative to the repository root.
 */
const KNOWN_TYPE_ONLY_EDGES: readonly (readonly [string, string, string])[] = [
  ["packages/core/src/tensor/engine.ts", "packages/core/src/tensor/tensor.ts", "the tape walker types what it walks as Tensor; tensor.ts imports the engine at run time"],
  ["packages/core/src/conformance/grad-cases.ts", "packages/core/src/conformance/gradcheck.ts", "the cases are typed by gradcheck's GradCase/GradProblem/F64Scratch"],
];

/** Import graph of the sources, paths relative to the root. `runtime`: type-only imports dropped, as tsc emits. */
async function importGraph(runtime: boolean, root = ROOT, sources = SOURCES): Promise<DependencyTree> {
  return parseDependencyTree(sources, {
    cwd: root,
    context: root,
    transform: runtime,
    // Follow our own sources only: a workspace package resolves to its built dist/, which is the
    // same code again (cycles across packages are refused by tsc -b's project references).
    exclude: /node_modules|\/dist\//,
  });
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function formatCycles(cycles: string[][]): string {
  return cycles.map((c) => `  ${[...c, c[0]].join(" -> ")}`).join("\n");
}

/** Every resolved import of a file whose path starts with `from` (an array of [importer, request, resolved]). */
function importsOf(tree: DependencyTree, from: string): [string, string, string | null][] {
  const out: [string, string, string | null][] = [];
  for (const [file, deps] of Object.entries(tree)) {
    if (!file.startsWith(from) || !deps) continue;
    for (const d of deps) out.push([file, d.request, d.id]);
  }
  return out;
}

/** Whether a resolved import is a file of this repository (not a Node builtin nor a dependency). */
function isWorkspaceFile(id: string | null): id is string {
  return id !== null && !id.startsWith("node:") && !id.startsWith("node_modules/") && fs.existsSync(path.join(ROOT, id));
}

function packageNameOf(dir: string): string | null {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, dir, "package.json"), "utf8")) as { name?: string }).name ?? null;
  } catch {
    return null;
  }
}

const [fullGraph, runtimeGraph] = await Promise.all([importGraph(false), importGraph(true)]);

t.test("the checker resolves our imports and finds a planted cycle", async (t) => {
  const sources = Object.keys(fullGraph).filter((f) => /^(packages|plugins|examples)\/[^/]+\/src\//.test(f));
  t.ok(sources.length > 100, `${sources.length} source files parsed`);
  const unresolved = importsOf(fullGraph, "").filter(([, request, id]) => request.startsWith(".") && id === null);
  t.same(unresolved, [], "every relative import resolves to a file (else a cycle could hide behind it)");
  t.ok(
    fullGraph["packages/core/src/index.ts"]?.some((d) => d.id === "packages/core/src/tensor/tensor.ts"),
    "index.ts -> tensor/tensor.ts resolved from its `.js` specifier",
  );

  const dir = t.testdir({
    "tsconfig.json": JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", strict: true } }),
    "a.ts": 'import { b } from "./b.js";\nexport const a = () => b;\n',
    "b.ts": 'import { a } from "./a.js";\nexport const b = () => a;\n',
    "c.ts": 'import type { d } from "./d.js";\nexport const c = (x: d) => x;\n',
    "d.ts": 'import { c } from "./c.js";\nexport type d = number;\nexport const e = c;\n',
  });
  const planted = async (runtime: boolean) => parseCircular(await importGraph(runtime, dir, ["*.ts"])).map((c) => [...c].sort().join(" "));
  t.same(await planted(true), ["a.ts b.ts"], "run-time graph: the value cycle, not the type-only one");
  t.same((await planted(false)).sort(), ["a.ts b.ts", "c.ts d.ts"], "full graph: both");
});

t.test("no import cycle at run time", async (t) => {
  const cycles = parseCircular(runtimeGraph);
  t.same(cycles, [], cycles.length ? `import cycles (type-only imports dropped):\n${formatCycles(cycles)}` : "none");
});

t.test("no import cycle counting type-only imports, beyond the known type-only edges", async (t) => {
  const skip = KNOWN_TYPE_ONLY_EDGES.map(([from, to]) => [escapeRegExp(from), escapeRegExp(to)] as const);
  const cycles = parseCircular(fullGraph, false, skip);
  t.same(cycles, [], cycles.length ? `import cycles (type-only imports included):\n${formatCycles(cycles)}\nbreak them, or use a structural interface instead of importing the class` : "none");
  for (const [from, to, why] of KNOWN_TYPE_ONLY_EDGES) {
    const inFull = fullGraph[from]?.some((d) => d.id === to) ?? false;
    const atRunTime = runtimeGraph[from]?.some((d) => d.id === to) ?? false;
    t.ok(inFull, `${from} -> ${to} still exists (else remove it from KNOWN_TYPE_ONLY_EDGES): ${why}`);
    t.notOk(atRunTime, `${from} -> ${to} is type-only`);
  }
});

t.test("core/io imports nothing from core/backends", async (t) => {
  const bad = importsOf(fullGraph, "packages/core/src/io/").filter(([, , id]) => id?.startsWith("packages/core/src/backends/"));
  t.same(bad, [], "io reads and writes bytes; codecs it shares with backends live in src/dtype.ts");
});

t.test("core/interfaces depend on the tensor implementation by type only", async (t) => {
  const bad = importsOf(runtimeGraph, "packages/core/src/interfaces/").filter(([, , id]) => id !== null && !id.startsWith("packages/core/src/interfaces/"));
  t.same(bad, [], "run-time imports of interfaces/ stay inside interfaces/ (use `import type`)");
});

t.test("core imports no other workspace package; plugins import no other plugin", async (t) => {
  const plugins = fs.readdirSync(path.join(ROOT, "plugins")).map((d) => ({ dir: `plugins/${d}/`, name: packageNameOf(`plugins/${d}`) }));
  const pluginNames = new Set(plugins.map((p) => p.name).filter((n): n is string => n !== null));

  const fromCore = importsOf(fullGraph, "packages/core/src/").filter(
    ([, request, id]) => request.startsWith("@ecomla/") || (isWorkspaceFile(id) && !id.startsWith("packages/core/")),
  );
  t.same(fromCore, [], "core is the bottom of the workspace: no @ecomla/* package, no file outside packages/core");

  for (const plugin of plugins) {
    const bad = importsOf(fullGraph, plugin.dir).filter(
      ([, request, id]) =>
        [...pluginNames].some((n) => n !== plugin.name && (request === n || request.startsWith(`${n}/`))) ||
        (isWorkspaceFile(id) && id.startsWith("plugins/") && !id.startsWith(plugin.dir)),
    );
    t.same(bad, [], `${plugin.dir} imports no other plugin`);
  }
});
