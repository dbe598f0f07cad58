import t from "tap";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import {
  PluginLoadError,
  PluginRegistry,
  UnknownNameError,
  container,
  inject,
  injectable,
  loadPlugin,
  provide,
  registryOf,
  TOKENS,
  type DistillationBatch,
  type DistillationLoss,
  type LossResult,
} from "@ecomla/core";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "fixtures");

const GREETING = Symbol("greeting");

class NullLoss implements DistillationLoss {
  readonly name = "null";
  compute(_batch: DistillationBatch): LossResult {
    throw new Error("not called");
  }
}

@injectable()
class GreetingLoss implements DistillationLoss {
  readonly name = "greeting";
  constructor(
    @inject(GREETING) readonly greeting: string,
    @inject(TOKENS.registry) readonly registry: PluginRegistry,
  ) {}
  compute(_batch: DistillationBatch): LossResult {
    throw new Error("not called");
  }
}

t.test("constructor injection works under the test runner", async (t) => {
  const c = container.createChildContainer();
  c.register(GREETING, { useValue: "hello" });
  provide(c, "loss", "greeting", { useClass: GreetingLoss });
  const loss = registryOf(c).resolve("loss", "greeting") as GreetingLoss;
  t.equal(loss.greeting, "hello", "@inject(TOKEN) delivered the value");
  t.equal(loss.registry, registryOf(c), "the registry itself is injectable");
  t.equal(registryOf(c).resolve("loss", "greeting"), loss, "class providers are one instance per container");
});

t.test("registrations resolve by name and stay inside their container", async (t) => {
  const a = container.createChildContainer();
  const b = container.createChildContainer();
  provide(a, "loss", "null", { useClass: NullLoss });
  t.ok(registryOf(a).has("loss", "null"));
  t.notOk(registryOf(b).has("loss", "null"), "a sibling container does not see it");
  t.type(registryOf(a).resolve("loss", "null"), NullLoss);
  t.same(registryOf(a).names("loss"), ["null"]);
});

t.test("an unknown name lists the registered names", async (t) => {
  const c = container.createChildContainer();
  provide(c, "loss", "null", { useClass: NullLoss });
  provide(c, "loss", "other", { useValue: new NullLoss() });
  t.throws(() => registryOf(c).resolve("loss", "forward-kl"), {
    constructor: UnknownNameError,
    message: 'unknown loss "forward-kl"; registered loss names: "null", "other"',
  });
  t.throws(() => registryOf(c).resolve("backend", "cpu"), {
    constructor: UnknownNameError,
    message: /unknown backend "cpu"; registered backend names: \(none — load a plugin/,
  });
});

t.test("plugins load by path and their registrations are attributed to them", async (t) => {
  const c = container.createChildContainer();
  const plugin = await loadPlugin(c, "./good-plugin.mjs", fixtures);
  t.equal(plugin.name, "good-plugin");
  const reg = registryOf(c);
  t.same(reg.loadedPlugins(), [{ name: "good-plugin", version: "1.2.3" }]);
  t.same(reg.list(), [{ kind: "evaluator", name: "echo", plugin: "good-plugin", description: "returns one" }]);
  const result = await reg.resolve("evaluator", "echo").evaluate(null as never, null as never, { name: "t" });
  t.same(result.metrics, { one: 1 });
});

t.test("a missing plugin package is named in the error", async (t) => {
  const c = container.createChildContainer();
  await t.rejects(loadPlugin(c, "@ecomla/no-such-plugin", fixtures), {
    constructor: PluginLoadError,
    message: /plugin package "@ecomla\/no-such-plugin" is not installed/,
    notInstalled: true,
  });
});

t.test("a module without register() is named in the error", async (t) => {
  const c = container.createChildContainer();
  await t.rejects(loadPlugin(c, "./no-register.mjs", fixtures), {
    constructor: PluginLoadError,
    message: /plugin "\.\/no-register\.mjs" does not export a plugin: expected a default export \{ name, version, register\(container\) \}, found an object with keys name, version/,
  });
});

t.test("a plugin file that fails to import is named in the error", async (t) => {
  const c = container.createChildContainer();
  await t.rejects(loadPlugin(c, "./does-not-exist.mjs", fixtures), {
    constructor: PluginLoadError,
    message: /plugin "\.\/does-not-exist\.mjs" failed to load/,
  });
});
