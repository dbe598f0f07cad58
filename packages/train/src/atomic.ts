import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";

/** A unique temporary name next to `path` (same folder, so the final rename is atomic). */
export function temporaryName(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
}

/** Write bytes or text to `path` atomically: a temporary file, fsync, then rename over the target. */
export async function writeFileAtomically(path: string, data: string | Uint8Array): Promise<void> {
  const temporary = temporaryName(path);
  try {
    const handle = await open(temporary, "wx");
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw err;
  }
}
