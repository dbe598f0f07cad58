import { engine } from "../engine.js";
import { addInto, fullLike } from "./elementwise.js";

export * from "./elementwise.js";
export * from "./shape.js";
export * from "./linalg.js";
export * from "./nn.js";
export { broadcastShapes, stridesOf } from "./common.js";

engine.installOps({ fullLike, addInto });
