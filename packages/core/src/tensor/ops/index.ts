export * from "./elementwise.js";
export * from "./shape.js";
export * from "./linalg.js";
export * from "./nn.js";
export { broadcastShapes, stridesOf } from "./common.js";
