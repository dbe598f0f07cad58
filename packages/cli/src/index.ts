// Public API of @ecomla/cli: the program, for embedding and tests.
export { buildProgram } from "./program.js";
export { openPipeline, DEFAULT_PLUGINS, type GlobalOptions } from "./context.js";
