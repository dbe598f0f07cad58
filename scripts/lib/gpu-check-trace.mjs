// Records every file a Node process loads (ESM through a load hook, CommonJS and addons from the
// require cache at exit) into $ECOMLA_TRACE_FILE, one path a line. scripts/lib/gpu-check-native.sh
// runs the GPU check's steps on the cpu backend under it (NODE_OPTIONS=--import=…) to learn which
// ignored files (node_modules, dist) the GPU machine needs, then packs only those.
import { appendFileSync } from "node:fs";
import { createRequire, register } from "node:module";

const file = process.env.ECOMLA_TRACE_FILE;
if (file) {
  register(`data:text/javascript,${encodeURIComponent(`
import { appendFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
export async function load(url, context, next) {
  if (url.startsWith("file:")) appendFileSync(${JSON.stringify(file)}, fileURLToPath(url) + "\\n");
  return next(url, context);
}`)}`);
  process.on("exit", () => {
    const cache = createRequire(import.meta.url).cache;
    appendFileSync(file, Object.keys(cache).join("\n") + "\n");
  });
}
