/** A dense row-major array on the host, with its shape: what converters and checkpoint I/O exchange. */
export interface HostTensor {
  /** Dimensions, row-major. */
  shape: number[];
  /** shape.reduce(×) elements. */
  data: Float32Array;
}
