import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema, type AsyncBuffer, type FileMetaData } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { ConfigError } from "@ecomla/core";

/** A parquet file's text column: the one named, else "text", else "messages" (a chat to render). */
export function pickTextColumn(file: string, columns: readonly string[], textField?: string): string {
  if (textField !== undefined) {
    if (!columns.includes(textField)) throw new ConfigError(`${file}: text_field "${textField}" is not a column; columns: ${columns.join(", ")}`);
    return textField;
  }
  for (const c of ["text", "messages"]) if (columns.includes(c)) return c;
  throw new ConfigError(`${file}: no "text" or "messages" column; set text_field to one of: ${columns.join(", ")}`);
}

/** The top-level column names and row count of a parquet file. */
export async function parquetColumns(file: string): Promise<{ columns: string[]; rows: number; rowGroups: number }> {
  const { metadata } = await openParquet(file);
  return { columns: parquetSchema(metadata).children.map((c) => c.element.name), rows: Number(metadata.num_rows), rowGroups: metadata.row_groups.length };
}

async function openParquet(file: string): Promise<{ buffer: AsyncBuffer; metadata: FileMetaData }> {
  try {
    const buffer = await asyncBufferFromFile(file);
    return { buffer, metadata: await parquetMetadataAsync(buffer) };
  } catch (err) {
    throw new ConfigError(`dataset ${file}: not a readable parquet file: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The values of one column of a parquet file, one row group at a time (only that group's pages
 * are read and decoded, so memory stays at one row group whatever the file's size).
 */
export async function* parquetColumnValues(file: string, column: string): AsyncGenerator<unknown> {
  const { buffer, metadata } = await openParquet(file);
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    const rows = await parquetReadObjects({ file: buffer, metadata, columns: [column], rowStart, rowEnd, compressors });
    for (const row of rows) yield row[column];
    rowStart = rowEnd;
  }
}
