// Reading which GPU targets a built addon carries, without the vendor tools when they are absent:
// CUDA fat binaries (magic 0xBA55ED50) list their ELF/PTX entries with the SM version; HIP offload
// bundles name their targets in clear text ("hipv4-amdgcn-amd-amdhsa--gfx90a").
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** Every entry of every CUDA fat binary in the file: kind "elf" | "ptx" and the sm number. */
export function cudaFatbinEntries(path: string): { kind: "elf" | "ptx"; sm: number }[] {
  const b = readFileSync(path);
  const magic = Buffer.from([0x50, 0xed, 0x55, 0xba]);
  const out: { kind: "elf" | "ptx"; sm: number }[] = [];
  for (let i = b.indexOf(magic); i >= 0; i = b.indexOf(magic, i + 4)) {
    const headerSize = b.readUInt16LE(i + 6);
    const fatSize = Number(b.readBigUInt64LE(i + 8));
    const end = i + headerSize + fatSize;
    if (end > b.length) continue;
    for (let e = i + headerSize; e + 32 <= end; ) {
      const kind = b.readUInt16LE(e);
      const entryHeader = b.readUInt32LE(e + 4);
      const payload = Number(b.readBigUInt64LE(e + 8));
      const sm = b.readUInt32LE(e + 28);
      if (kind === 1 || kind === 2) out.push({ kind: kind === 2 ? "elf" : "ptx", sm });
      if (entryHeader === 0) break;
      e += entryHeader + payload;
    }
  }
  return out;
}

/** `cuobjdump --list-elf` output when the tool is installed, else null. */
export function cuobjdumpListElf(path: string): string | null {
  const r = spawnSync("cuobjdump", ["--list-elf", path], { encoding: "utf8" });
  return r.status === 0 ? r.stdout : null;
}

/** HIP offload targets: `roc-obj-ls` when installed, else the bundle ids found in the file. */
export function hipOffloadTargets(path: string): { targets: string[]; tool: string } {
  const r = spawnSync("roc-obj-ls", [path], { encoding: "utf8" });
  const text = r.status === 0 ? r.stdout : readFileSync(path).toString("latin1");
  const targets = [...new Set([...text.matchAll(/hipv4-amdgcn-amd-amdhsa--(gfx[0-9a-f]+)/g)].map((m) => m[1]!))];
  return { targets, tool: r.status === 0 ? "roc-obj-ls" : "bundle ids in the file" };
}
