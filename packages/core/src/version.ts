import { readFileSync } from "node:fs";

/** Version of an installed package, read from the package.json next to its dist/ or src/ folder. */
export function packageVersion(moduleUrl: string): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", moduleUrl), "utf8")) as { version: string };
  return pkg.version;
}
