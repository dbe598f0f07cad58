// A small ONNX graph builder over onnx-proto's generated protobuf classes: nodes, constants, and
// weights written to an external-data file as they are added (so the graph never holds them).
import { closeSync, openSync, writeSync } from "node:fs";
import onnxProto from "onnx-proto";
import { ShapeError, f32ToF16Bits } from "@ecomla/core";

export const { onnx } = onnxProto;
type AttributeValue = number | number[] | string | { float: number } | { floats: number[] } | { tensor: onnxProto.onnx.ITensorProto };

/** A dimension of a graph input/output: a fixed size or a symbolic name. */
export type Dim = number | string;

/** Storage dtype of weights in the exported graph (computation is always float32). */
export type WeightDtype = "f32" | "f16";

/** Alignment of each tensor in the external-data file (a page, so runtimes may map it). */
const EXTERNAL_ALIGN = 4096;

/** Appends tensors to `model.onnx.data` and returns their ONNX external-data entries. */
export class ExternalDataWriter {
  private readonly fd: number;
  private offset = 0;
  constructor(readonly path: string, readonly location: string) {
    this.fd = openSync(path, "w");
  }
  write(bytes: Uint8Array): onnxProto.onnx.IStringStringEntryProto[] {
    const start = Math.ceil(this.offset / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
    let written = 0;
    while (written < bytes.byteLength) written += writeSync(this.fd, bytes, written, bytes.byteLength - written, start + written);
    this.offset = start + bytes.byteLength;
    return [
      { key: "location", value: this.location },
      { key: "offset", value: String(start) },
      { key: "length", value: String(bytes.byteLength) },
    ];
  }
  get bytes(): number {
    return this.offset;
  }
  close(): void {
    closeSync(this.fd);
  }
}

function attribute(name: string, value: AttributeValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === "number") return { name, type: T.INT, i: value };
  if (typeof value === "string") return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if ("float" in value) return { name, type: T.FLOAT, f: value.float };
  if ("floats" in value) return { name, type: T.FLOATS, floats: value.floats };
  return { name, type: T.TENSOR, t: value.tensor };
}

function valueInfo(name: string, elemType: number, dims: readonly Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } },
  };
}

/** Builds one ONNX graph: every op returns its output name(s). */
export class GraphBuilder {
  readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private counter = 0;
  private readonly constants = new Map<string, string>();

  constructor(readonly opset: number, private readonly external: ExternalDataWriter) {}

  private fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  input(name: string, elemType: number, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(name: string, elemType: number, dims: readonly Dim[]): void {
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /** Add a node; `outputs` names its results (default: fresh names), returned in order. */
  node(opType: string, inputs: readonly string[], attrs: Record<string, AttributeValue> = {}, outputs: number | readonly string[] = 1): string[] {
    const names = typeof outputs === "number" ? Array.from({ length: outputs }, () => this.fresh(opType)) : [...outputs];
    this.nodes.push({
      opType, name: this.fresh(`n_${opType}`), input: [...inputs], output: names,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return names;
  }

  /** Single-output node. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttributeValue> = {}, output?: string): string {
    return this.node(opType, inputs, attrs, output ? [output] : 1)[0]!;
  }

  /** An int64 constant (shared by value), inline in the graph. `scalar` gives it rank 0. */
  int64(values: readonly number[], scalar = false): string {
    const key = `i64:${scalar}:${values.join(",")}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.fresh("const_i64");
      const raw = new BigInt64Array(values.map((v) => BigInt(v)));
      this.initializers.push({ name, dataType: onnx.TensorProto.DataType.INT64, dims: scalar ? [] : [values.length], rawData: new Uint8Array(raw.buffer) });
      this.constants.set(key, name);
    }
    return name;
  }

  /** A float32 scalar constant (shared by value), inline in the graph. */
  float(value: number): string {
    const key = `f32:${value}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.fresh("const_f32");
      this.initializers.push({ name, dataType: onnx.TensorProto.DataType.FLOAT, dims: [], rawData: new Uint8Array(Float32Array.of(value).buffer) });
      this.constants.set(key, name);
    }
    return name;
  }

  /**
   * A weight (float32 values, row-major `dims`) stored as external data in `dtype`; returns the
   * name of a float32 value (a Cast follows f16 storage, so all arithmetic stays float32).
   */
  weight(name: string, data: Float32Array, dims: readonly number[], dtype: WeightDtype): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new ShapeError(`weight ${name}: ${data.length} values for dims [${dims.join(", ")}] (${count} expected)`);
    let bytes: Uint8Array;
    if (dtype === "f16") {
      const half = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) half[i] = f32ToF16Bits(data[i]!);
      bytes = new Uint8Array(half.buffer);
    } else {
      bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    }
    this.initializers.push({
      name, dims: [...dims],
      dataType: dtype === "f16" ? onnx.TensorProto.DataType.FLOAT16 : onnx.TensorProto.DataType.FLOAT,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: this.external.write(bytes),
    });
    return dtype === "f16" ? this.op("Cast", [name], { to: onnx.TensorProto.DataType.FLOAT }, `${name}.f32`) : name;
  }

  // ---- small helpers over standard ops -------------------------------------------------------

  /** x[..., start:end] along `axis`. */
  slice(x: string, axis: number, start: number, end: number): string {
    return this.op("Slice", [x, this.int64([start]), this.int64([end]), this.int64([axis])]);
  }
  unsqueeze(x: string, axes: number[]): string {
    return this.op("Unsqueeze", [x, this.int64(axes)]);
  }
  reshape(x: string, shape: string | readonly number[]): string {
    return this.op("Reshape", [x, typeof shape === "string" ? shape : this.int64(shape)]);
  }
  transpose(x: string, perm: number[]): string {
    return this.op("Transpose", [x], { perm });
  }
  /** Mean over the last axis, keeping it (ReduceMean's axes became an input in opset 18). */
  meanLastAxis(x: string): string {
    return this.opset >= 18
      ? this.op("ReduceMean", [x, this.int64([-1])], { keepdims: 1 })
      : this.op("ReduceMean", [x], { axes: [-1], keepdims: 1 });
  }

  /** The serialised model. */
  encode(producer: string, producerVersion: string, docString: string): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: producer,
      producerVersion,
      docString,
      opsetImport: [{ domain: "", version: this.opset }],
      graph: { name: "decoder_with_past", node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
