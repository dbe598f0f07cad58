// Multiple-choice scoring against closed forms: a bigram model whose logits are log-probabilities,
// so every choice's log-likelihood is a sum of chosen log-probabilities.
import t, { type Test } from "tap";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { container, registryOf } from "@ecomla/core";
import plugin, { MultipleChoiceEvaluator, encodeOptionsFor, encodePair, scoreChoices, scoreRequests } from "@ecomla/eval-harness";
import { BigramModel, PieceTokenizer, tempDir, writeJsonl } from "./fakes.js";

const tok = new PieceTokenizer(["<eos>", "Q", " x", " y", " z", "R", " é", " ab", " ", "S", " w"]);
const id = (p: string) => tok.id(p);
const model = new BigramModel(tok.vocabSize, {
  [id("Q")]: { [id(" x")]: 0.4, [id(" y")]: 0.3 },
  [id(" y")]: { [id(" z")]: 0.5 },
  [id("R")]: { [id(" é")]: Math.exp(-1), [id(" ab")]: Math.exp(-1.5) },
  [id("<eos>")]: { [id(" x")]: 0.2 },
  [id("S")]: { [id(" w")]: 0.6 },
});
const lp = (a: string, b: string) => model.lp(id(a), id(b));
const close = (t: Test, got: number, want: number, what: string) => t.ok(Math.abs(got - want) < 1e-5, `${what}: ${got} ≈ ${want}`);

t.test("encodePair splits like lm-eval's _encode_pair", async (t) => {
  const enc = { prefixTokenId: tok.eosTokenId };
  t.same(encodePair(tok, "Q", " y z", enc), { context: [id("Q")], continuation: [id(" y"), id(" z")] });
  // The context's trailing space moves to the continuation: "S " + "w" is scored as "S" + " w".
  t.same(encodePair(tok, "S ", "w", enc), { context: [id("S")], continuation: [id(" w")] });
  // Without that move the space would be a context token and " w" would never be scored.
  t.same(tok.encode("S "), [id("S"), id(" ")]);
  // An empty context is the end-of-text token; the continuation is encoded alone.
  t.same(encodePair(tok, "", " x", enc), { context: [tok.eosTokenId], continuation: [id(" x")] });
});

t.test("no BOS unless the tokenizer config asks; the prefix token is EOS", async (t) => {
  const plain = encodeOptionsFor(tok, {}, "t");
  t.same(plain, { prefixTokenId: tok.eosTokenId, addSpecialTokens: false });
  const withBos = Object.assign(new PieceTokenizer(tok.pieces), { tokenizerConfig: { add_bos_token: true } });
  t.equal(encodeOptionsFor(withBos, {}, "t").addSpecialTokens, true);
  t.equal(encodeOptionsFor(withBos, { addBosToken: false }, "t").addSpecialTokens, false, "a task setting overrides");
});

t.test("per-request log-likelihoods are the closed-form sums", async (t) => {
  const enc = { prefixTokenId: tok.eosTokenId };
  const requests = [encodePair(tok, "Q", " x", enc), encodePair(tok, "Q", " y z", enc), encodePair(tok, "", " x", enc), encodePair(tok, "R", " é", enc)];
  const got = await scoreRequests(model, requests, { maxLength: 16, batchSize: 3, greedy: true });
  close(t, got[0]!.logLikelihood, Math.log(0.4), "Q → x");
  close(t, got[1]!.logLikelihood, Math.log(0.3) + Math.log(0.5), "Q → y z");
  close(t, got[2]!.logLikelihood, Math.log(0.2), "<eos> → x");
  close(t, got[3]!.logLikelihood, -1, "R → é");
  t.same(got.map((r) => r.isGreedy), [true, false, true, true], "x is Q's argmax, y is not");
});

t.test("acc, acc_norm and acc_bytes as lm-eval defines them", async (t) => {
  // acc vs acc_norm: "y z" (3 chars) has the lower sum but the higher sum per character.
  t.same(scoreChoices([lp("Q", " x"), lp("Q", " y") + lp(" y", " z")], ["x", "y z"], 1), { acc: 0, acc_norm: 1, acc_bytes: 1 });
  // acc_norm vs acc_bytes: "é" is 1 character but 2 bytes, "ab" 2 and 2.
  t.same(scoreChoices([-1, -1.5], ["é", "ab"], 0), { acc: 1, acc_norm: 0, acc_bytes: 1 });
  // Ties go to the first index (numpy.argmax).
  t.same(scoreChoices([-2, -2], ["x", "x"], 1), { acc: 0, acc_norm: 0, acc_bytes: 0 });
  t.same(scoreChoices([-2, -2], ["x", "x"], 0), { acc: 1, acc_norm: 1, acc_bytes: 1 });
});

t.test("the evaluator on a JSONL task: means, stderr and item count", async (t) => {
  const dir = tempDir();
  const data = writeJsonl(dir, "task.jsonl", [
    { context: "Q", choices: ["x", "y z"], gold: 1 }, // acc 0, acc_norm 1, acc_bytes 1
    { context: "R", choices: ["é", "ab"], gold: 0 }, // acc 1, acc_norm 0, acc_bytes 1
    { context: "", choices: ["x", "x"], gold: 1 }, // a tie: 0, 0, 0
    { context: "", choices: ["x", "x"], gold: 0 }, // a tie: 1, 1, 1
  ]);
  const r = await new MultipleChoiceEvaluator().evaluate(model, tok, { name: "mini", path: data, options: { batchSize: 2 } });
  t.equal(r.task, "mini");
  t.equal(r.count, 4);
  close(t, r.metrics["acc"]!, 2 / 4, "acc");
  close(t, r.metrics["acc_norm"]!, 2 / 4, "acc_norm");
  close(t, r.metrics["acc_bytes"]!, 3 / 4, "acc_bytes");
  // acc [0, 1, 0, 1]: sample sd √(1/3), over √4; acc_bytes [1, 1, 0, 1]: sd √(1/4), over √4.
  close(t, r.metrics["acc_stderr"]!, Math.sqrt(1 / 3) / 2, "acc_stderr");
  close(t, r.metrics["acc_bytes_stderr"]!, Math.sqrt(1 / 4) / 2, "acc_bytes_stderr");
  const limited = await new MultipleChoiceEvaluator().evaluate(model, tok, { name: "mini", path: data, options: { limit: 1 } });
  t.equal(limited.count, 1);
  t.same(limited.metrics, { acc: 0, acc_norm: 1, acc_bytes: 1 }, "one item: no stderr");
});

t.test("a task card: data relative to the card, target delimiter, metrics filter, type check", async (t) => {
  const dir = tempDir();
  writeJsonl(dir, "spaces.jsonl", [{ context: "S ", choices: ["w", "x"], gold: 0 }]);
  const card = join(dir, "card.yaml");
  writeFileSync(card, "name: spaced\ntype: multiple-choice\ndata: spaces.jsonl\ntarget_delimiter: ''\nmetrics: [acc]\ndescription: trailing space in the context\n");
  const r = await new MultipleChoiceEvaluator().evaluate(model, tok, { name: "", path: card });
  t.equal(r.task, "spaced", "the card's name");
  t.same(r.metrics, { acc: 1 }, "S + ' w' (0.6) beats S + ' x'");
  const wrong = join(dir, "ppl.yaml");
  writeFileSync(wrong, "type: perplexity\ndata: spaces.jsonl\n");
  await t.rejects(new MultipleChoiceEvaluator().evaluate(model, tok, { name: "p", path: wrong }), /ppl\.yaml is a perplexity task; the multiple-choice evaluator cannot score it/);
  const typo = join(dir, "typo.yaml");
  writeFileSync(typo, "data: spaces.jsonl\nmax_lenght: 4\n");
  await t.rejects(new MultipleChoiceEvaluator().evaluate(model, tok, { name: "p", path: typo }), /typo\.yaml: unknown key "max_lenght"/);
  const badMetric = join(dir, "metric.yaml");
  writeFileSync(badMetric, "data: spaces.jsonl\nmetrics: [f1]\n");
  await t.rejects(new MultipleChoiceEvaluator().evaluate(model, tok, { name: "m", path: badMetric }), /unknown metric\(s\) f1; this multiple-choice task reports acc, acc_norm, acc_bytes/);
});

t.test("malformed task lines name the file, the line and the key", async (t) => {
  const dir = tempDir();
  const ev = new MultipleChoiceEvaluator();
  const missing = writeJsonl(dir, "missing.jsonl", [{ context: "Q", choices: ["x"], gold: 0 }, "", { context: "Q", choices: ["x", "y"] }]);
  await t.rejects(ev.evaluate(model, tok, { name: "m", path: missing }), new RegExp(`missing\\.jsonl:3: missing key "gold"`));
  const badType = writeJsonl(dir, "type.jsonl", [{ context: "Q", choices: ["x", "y"], gold: "first" }]);
  await t.rejects(ev.evaluate(model, tok, { name: "m", path: badType }), /type\.jsonl:1: key "gold" must be an integer index, found string "first"/);
  const badChoices = writeJsonl(dir, "choices.jsonl", [{ context: "Q", choices: ["x", 3], gold: 0 }]);
  await t.rejects(ev.evaluate(model, tok, { name: "m", path: badChoices }), /choices\.jsonl:1: key "choices" must be a non-empty list of strings, found \[string "x", number 3\]/);
  const badJson = writeJsonl(dir, "json.jsonl", [{ context: "Q", choices: ["x"], gold: 0 }, "{not json"]);
  await t.rejects(ev.evaluate(model, tok, { name: "m", path: badJson }), /json\.jsonl:2: not valid JSON/);
  const range = writeJsonl(dir, "range.jsonl", [{ context: "Q", choices: ["x", "y"], gold: 2 }]);
  await t.rejects(ev.evaluate(model, tok, { name: "m", path: range }), /range\.jsonl:1: key "gold" = 2 is not the index of one of the 2 choices/);
});

t.test("the plugin registers the four evaluators by name", async (t) => {
  const c = container.createChildContainer();
  await registryOf(c).install(plugin);
  t.same(registryOf(c).names("evaluator"), ["kv-report", "last-word", "multiple-choice", "perplexity"]);
  t.ok(registryOf(c).resolve("evaluator", "multiple-choice") instanceof MultipleChoiceEvaluator);
  const kv = await registryOf(c).resolve("evaluator", "kv-report").evaluate(
    Object.assign(model, { kvCacheElementsPerToken: () => 40, kvCacheBytesPerToken: () => 80 }), tok, { name: "kv" });
  t.same(kv, { task: "kv", metrics: { kv_elements_per_token: 40, kv_bytes_per_token: 80 }, count: 0 });
});
