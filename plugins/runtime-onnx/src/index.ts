import { packageVersion, provide, type EcomlaPlugin } from "@ecomla/core";
import { OnnxExporter } from "./export.js";
import { OnnxRuntimeEngine } from "./engine.js";

export { exportOnnx, OnnxExporter, MANIFEST, MIN_OPSET, MAX_OPSET, SUPPORTED_ARCHITECTURES, type OnnxManifest, type OnnxExportOptions } from "./export.js";
export { OnnxRuntimeEngine, OrtEngineModel, openSession, readManifest, EXECUTION_PROVIDERS } from "./engine.js";
export type { DecoderLayout, LayerCacheLayout } from "./decoder.js";

/** The plugin: the "onnx" exporter and the "onnxruntime" engine. */
const plugin: EcomlaPlugin = {
  name: "@ecomla/runtime-onnx",
  version: packageVersion(import.meta.url),
  register(container) {
    provide(container, "exporter", "onnx", { useValue: new OnnxExporter() }, {
      description: "ONNX decoder with past (Optimum naming; MLA layers cache only kv_latent + k_rope), opset 17+",
    });
    provide(container, "engine", "onnxruntime", { useValue: new OnnxRuntimeEngine() }, {
      description: "onnxruntime-node on an ecomla ONNX export (cpu or webgpu execution provider)",
    });
  },
};
export default plugin;
