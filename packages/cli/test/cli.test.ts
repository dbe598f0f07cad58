import t from "tap";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, "../dist/bin.js");
const goodPlugin = resolve(here, "../../core/test/fixtures/good-plugin.mjs");
const cliVersion = JSON.parse(readFileSync(resolve(here, "../package.json"), "utf8")).version as string;

function ecomla(args: string[], cwd = here) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test("--help lists the commands and global options", async (t) => {
  const r = ecomla(["--help"]);
  t.equal(r.code, 0);
  t.match(r.stdout, /Usage: ecomla \[options\] \[command\]/);
  t.match(r.stdout, /plugins \[options\]/);
  t.match(r.stdout, /--plugin <package\.\.\.>/);
});

t.test("--version prints the CLI package's version", async (t) => {
  const r = ecomla(["--version"]);
  t.equal(r.code, 0);
  t.equal(r.stdout.trim(), cliVersion);
});

t.test("plugins lists core and plugins from --plugin and from a config", async (t) => {
  const r = ecomla(["plugins", "--json", "--plugin", goodPlugin]);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { plugins: { name: string; provides: { kind: string; name: string }[] }[] };
  const names = out.plugins.map((p) => p.name);
  t.equal(names[0], "@ecomla/core", "core's built-ins come first");
  t.equal(names[names.length - 1], "good-plugin", "--plugin loads after the installed defaults");
  t.same(out.plugins.find((p) => p.name === "good-plugin")!.provides, [{ kind: "evaluator", name: "echo", description: "returns one" }]);
  t.ok(out.plugins.find((p) => p.name === "@ecomla/core")!.provides.some((r) => r.kind === "backend" && r.name === "reference"));

  const dir = mkdtempSync(join(tmpdir(), "ecomla-cli-"));
  writeFileSync(join(dir, "pipeline.yaml"), `plugins:\n  - ${JSON.stringify(goodPlugin)}\n`);
  const text = ecomla(["--config", join(dir, "pipeline.yaml"), "plugins"]);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /good-plugin 1\.2\.3\n  evaluator +echo — returns one/);
});

t.test("plugins shows each backend's native fused kernels, the composed ones, and a lazy backend's probe", async (t) => {
  const fixture = resolve(here, "fixtures/partial-backends-plugin.mjs");
  const r = ecomla(["plugins", "--json", "--plugin", fixture]);
  t.equal(r.code, 0, r.stderr);
  type Kernels = { native: string[] | null; composed: string[] | null; probe?: { available: boolean; reason?: string } };
  const out = JSON.parse(r.stdout) as { plugins: { name: string; provides: { name: string; kernels?: Kernels }[] }[] };
  const provided = (plugin: string, name: string) => out.plugins.find((p) => p.name === plugin)!.provides.find((x) => x.name === name)!.kernels!;
  t.same(provided("@ecomla/core", "reference").composed, [], "the reference implements every fused kernel");
  const partial = provided("partial-backends", "partial");
  t.same(partial.native, ["softmax"]);
  t.equal(partial.composed!.length, 13, "the other 13 fused kernels are composed");
  t.ok(partial.composed!.includes("attention") && !partial.composed!.includes("softmax"));
  const absent = provided("partial-backends", "absent");
  t.same(absent.native, ["attention"], "a lazy backend's declared kernels, without creating it");
  t.same(absent.probe, { available: false, reason: "no device: nothing answers at /dev/absent0" });
  const text = ecomla(["plugins", "--plugin", fixture]);
  t.match(text.stdout, /backend +partial — primitives \+ softmax\n +native fused kernels: softmax\n +composed from primitives: sumToShape, softmaxBackward, /);
  t.match(text.stdout, /backend +absent — never available\n +unavailable: no device: nothing answers at \/dev\/absent0\n/);
});

t.test("a missing plugin is a clear error with exit code 2", async (t) => {
  const r = ecomla(["plugins", "--plugin", "@ecomla/not-a-real-plugin"]);
  t.equal(r.code, 2);
  t.match(r.stderr, /^ecomla: plugin package "@ecomla\/not-a-real-plugin" is not installed/);
});

t.test("a malformed config names the file and the key", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ecomla-cli-"));
  const file = join(dir, "bad.yaml");
  writeFileSync(file, "plugins: some-plugin\n");
  const r = ecomla(["--config", file, "plugins"]);
  t.equal(r.code, 2);
  t.equal(r.stderr.trim(), `ecomla: ${file}: key "plugins" must be a list of strings, found "some-plugin"`);
});
