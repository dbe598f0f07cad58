// Writes a parquet file with hyparquet-writer: stdin is JSON {file, columnData, rowGroupSize, schema?}.
// Run as a plain Node child: tap's TypeScript loader cannot resolve hyparquet-writer's subpath imports.
import { writeFileSync, readFileSync } from "node:fs";
import { parquetWriteBuffer } from "hyparquet-writer";

const spec = JSON.parse(readFileSync(0, "utf8"));
writeFileSync(spec.file, new Uint8Array(parquetWriteBuffer({ columnData: spec.columnData, rowGroupSize: spec.rowGroupSize, ...(spec.schema ? { schema: spec.schema } : {}) })));
