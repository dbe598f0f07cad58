// Which TensorFlow.js backend runs the kernels: the best one installed, or the one named by
// ECOMLA_TFJS_BACKEND. tfjs-node(-gpu) are optional peers (their install step downloads
// libtensorflow), found at run time by a dynamic import; wasm and cpu are regular dependencies.
import { createRequire } from "node:module";
import { dirname } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { EcomlaError } from "@ecomla/core";

/** The tfjs backends this plugin knows, best first. */
export const TFJS_CANDIDATES = [
  { id: "node-gpu", packageName: "@tensorflow/tfjs-node-gpu", tfjsName: "tensorflow", what: "libtensorflow with CUDA" },
  { id: "node", packageName: "@tensorflow/tfjs-node", tfjsName: "tensorflow", what: "libtensorflow on the CPU" },
  { id: "wasm", packageName: "@tensorflow/tfjs-backend-wasm", tfjsName: "wasm", what: "XNNPACK in WebAssembly (SIMD, one thread in Node)" },
  { id: "cpu", packageName: "@tensorflow/tfjs-backend-cpu", tfjsName: "cpu", what: "plain JavaScript loops" },
] as const;

/** A candidate's id ("node-gpu", "node", "wasm", "cpu"). */
export type TfjsCandidateId = (typeof TFJS_CANDIDATES)[number]["id"];

/** The environment variable that forces one tfjs backend. */
export const TFJS_BACKEND_ENV = "ECOMLA_TFJS_BACKEND";

/** The outcome of choosing: the active tfjs backend and why each better one is not. */
export interface TfjsSelection {
  /** Candidate id of the active backend. */
  active: TfjsCandidateId;
  /** tfjs's own name of it (`tf.getBackend()`): "tensorflow", "wasm" or "cpu". */
  tfjsName: string;
  /** One line per candidate, best first: "wasm: active", "tfjs-node: not installed (…)". */
  report: string[];
  /** Whether the choice was forced by {@link TFJS_BACKEND_ENV} (or an option). */
  forced: boolean;
}

const require = createRequire(import.meta.url);

/** Import a candidate's package and register its tfjs backend; throws with the reason it cannot. */
async function load(candidate: (typeof TFJS_CANDIDATES)[number]): Promise<void> {
  if (candidate.id === "wasm") {
    const wasm = await import("@tensorflow/tfjs-backend-wasm");
    // In Node the .wasm files are read from disk: point tfjs at the package's dist folder.
    wasm.setWasmPaths(`${dirname(require.resolve("@tensorflow/tfjs-backend-wasm"))}/`);
  } else if (candidate.id === "cpu") {
    await import("@tensorflow/tfjs-backend-cpu");
  } else {
    // A variable specifier keeps TypeScript from requiring the optional peer at build time.
    const specifier: string = candidate.packageName;
    await import(specifier);
  }
  if (tf.findBackendFactory(candidate.tfjsName) === null) {
    throw new Error(`${candidate.packageName} loaded but registered no "${candidate.tfjsName}" backend with this copy of @tensorflow/tfjs-core ${tf.version_core} (a second copy of tfjs-core?)`);
  }
}

function reason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // "Cannot find package 'X' imported from /long/path": the package is what matters.
  const firstLine = message.split("\n")[0]!.replace(/ imported from .*$/, "");
  const code = (err as { code?: string }).code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND" ? `not installed (${firstLine})` : `failed to load: ${firstLine}`;
}

let selecting: Promise<TfjsSelection> | undefined;

/**
 * Activate the best tfjs backend (or `prefer`, else the one in ECOMLA_TFJS_BACKEND) once per
 * process — tfjs has one global engine — and say why each better one is not active.
 */
export function selectTfjsBackend(prefer?: string): Promise<TfjsSelection> {
  const wanted = prefer ?? process.env[TFJS_BACKEND_ENV] ?? undefined;
  selecting ??= choose(wanted || undefined);
  return selecting.then((selection) => {
    if (wanted && selection.active !== normalise(wanted)) {
      throw new EcomlaError(`backend-tfjs: tfjs backend "${selection.active}" is already active in this process; "${wanted}" cannot be chosen as well (tfjs has one engine per process)`);
    }
    return selection;
  });
}

function normalise(name: string): TfjsCandidateId | undefined {
  const bare = name.replace(/^@tensorflow\//, "").replace(/^tfjs-(backend-)?/, "");
  return TFJS_CANDIDATES.find((c) => c.id === bare)?.id;
}

async function choose(wanted: string | undefined): Promise<TfjsSelection> {
  const forcedId = wanted === undefined ? undefined : normalise(wanted);
  if (wanted !== undefined && forcedId === undefined) {
    throw new EcomlaError(`backend-tfjs: ${TFJS_BACKEND_ENV}="${wanted}" names no tfjs backend; expected one of ${TFJS_CANDIDATES.map((c) => c.id).join(", ")}`);
  }
  // Production mode: no "install tfjs-node to speed things up" banner from the cpu backend.
  tf.env().set("PROD", true);
  const report: string[] = [];
  for (const candidate of TFJS_CANDIDATES) {
    const label = candidate.packageName.replace("@tensorflow/", "").replace("tfjs-backend-", "");
    if (forcedId !== undefined && candidate.id !== forcedId) {
      report.push(`${label}: not tried (${TFJS_BACKEND_ENV}=${wanted})`);
      continue;
    }
    try {
      await load(candidate);
      if (!(await tf.setBackend(candidate.tfjsName))) throw new Error(`tf.setBackend("${candidate.tfjsName}") returned false`);
      await tf.ready();
      report.push(`${label}: active (${candidate.what})`);
      return { active: candidate.id, tfjsName: tf.getBackend(), report, forced: forcedId !== undefined };
    } catch (err) {
      report.push(`${label}: ${reason(err)}`);
      if (forcedId !== undefined) throw new EcomlaError(`backend-tfjs: ${TFJS_BACKEND_ENV}=${wanted} but ${candidate.packageName} cannot run: ${reason(err)}`);
    }
  }
  throw new EcomlaError(`backend-tfjs: no tfjs backend could start: ${report.join("; ")}`);
}
