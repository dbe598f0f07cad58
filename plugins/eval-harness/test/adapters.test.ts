// lm-evaluation-harness-style exports, two lines each, against the tasks' lm-eval definitions
// (doc_to_text / doc_to_choice / doc_to_target), and WinoGrande's partial evaluation end to end.
import t from "tap";
import { LastWordEvaluator, MultipleChoiceEvaluator, hellaswagPreprocess, loadMcItems } from "@ecomla/eval-harness";
import { BigramModel, PieceTokenizer, tempDir, writeJsonl } from "./fakes.js";

const dir = tempDir();

t.test("ARC: 'Question: {{question}}\\nAnswer:', choices.text, index of answerKey", async (t) => {
  const path = writeJsonl(dir, "arc.jsonl", [
    { id: "Mercury_7175875", question: "Which is the most likely effect of this increase in rotation?", choices: { text: ["Density will decrease.", "Years will become longer.", "Days will become shorter.", "Gravity will become stronger."], label: ["A", "B", "C", "D"] }, answerKey: "C" },
    { id: "NYSEDREGENTS_2015_4_8", question: "Which tool measures mass?", choices: { text: ["balance", "ruler", "thermometer", "cup"], label: ["1", "2", "3", "4"] }, answerKey: "1" },
  ]);
  t.same(loadMcItems(path), [
    { kind: "choices", context: "Question: Which is the most likely effect of this increase in rotation?\nAnswer:", choices: ["Density will decrease.", "Years will become longer.", "Days will become shorter.", "Gravity will become stronger."], gold: 2 },
    { kind: "choices", context: "Question: Which tool measures mass?\nAnswer:", choices: ["balance", "ruler", "thermometer", "cup"], gold: 0 },
  ]);
});

t.test("OpenBookQA: question_stem, choices.text, index of answerKey.lstrip()", async (t) => {
  const path = writeJsonl(dir, "obqa.jsonl", [
    { id: "7-980", question_stem: "The sun is responsible for", choices: { text: ["puppies learning new tricks", "children growing up and getting old", "flowers wilting in a vase", "plants sprouting, blooming and wilting"], label: ["A", "B", "C", "D"] }, answerKey: "D" },
    { id: "7-584", question_stem: "When standing miles away from Mount Rushmore", choices: { text: ["the mountains seem very close", "the mountains are boring", "the mountains look the same as from up close", "the mountains seem smaller than in photographs"], label: ["A", "B", "C", "D"] }, answerKey: " D" },
  ]);
  const items = loadMcItems(path);
  t.same(items[0], { kind: "choices", context: "The sun is responsible for", choices: ["puppies learning new tricks", "children growing up and getting old", "flowers wilting in a vase", "plants sprouting, blooming and wilting"], gold: 3 });
  t.equal(items[1]!.gold, 3, "a leading space in answerKey is stripped");
});

t.test("PIQA: 'Question: {{goal}}\\nAnswer:', [sol1, sol2], label", async (t) => {
  const path = writeJsonl(dir, "piqa.jsonl", [
    { goal: "When boiling butter, when it's ready, you can", sol1: "Pour it onto a plate", sol2: "Pour it into a jar", label: 1 },
    { goal: "To make a hard shelled taco,", sol1: "put seasoned beef, cheese, and lettuce onto the hard shell.", sol2: "put seasoned beef, cheese, and lettuce into the hard shell.", label: "1" },
  ]);
  t.same(loadMcItems(path), [
    { kind: "choices", context: "Question: When boiling butter, when it's ready, you can\nAnswer:", choices: ["Pour it onto a plate", "Pour it into a jar"], gold: 1 },
    { kind: "choices", context: "Question: To make a hard shelled taco,\nAnswer:", choices: ["put seasoned beef, cheese, and lettuce onto the hard shell.", "put seasoned beef, cheese, and lettuce into the hard shell."], gold: 1 },
  ]);
});

t.test("HellaSwag: preprocess(activity_label + ': ' + ctx_a + ' ' + ctx_b.capitalize()), preprocessed endings", async (t) => {
  const path = writeJsonl(dir, "hellaswag.jsonl", [
    { ind: 4, activity_label: "Removing ice from car", ctx_a: "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles.", ctx_b: "then", endings: [", the man adds wax to the windshield and cuts it.", ", a person board a ski lift.", ", the man puts on a christmas coat.", ", the man continues removing the snow on his car."], label: "3" },
    { ind: 9, activity_label: "Home and Garden", ctx_a: "[header] How to grow tomatoes [title] Pick a sunny spot.", ctx_b: "YOU SHOULD", endings: ["[step] Tomatoes need  light. [substeps] Six hours.", "water them daily."], label: 0 },
  ]);
  t.same(loadMcItems(path), [
    { kind: "choices", context: "Removing ice from car: Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles. Then", choices: [", the man adds wax to the windshield and cuts it.", ", a person board a ski lift.", ", the man puts on a christmas coat.", ", the man continues removing the snow on his car."], gold: 3 },
    // " [title]" → ". ", [bracketed] tags dropped, double spaces squeezed once; capitalize() lower-cases the rest.
    { kind: "choices", context: "Home and Garden: How to grow tomatoes. Pick a sunny spot. You should", choices: [" Tomatoes need light. Six hours.", "water them daily."], gold: 0 },
  ]);
  t.equal(hellaswagPreprocess("  a [title] b   [x]c  "), "a. b  c", "strip first, then the replacements in lm-eval's order (one pass of the double-space squeeze)");
});

t.test("WinoGrande: the options end the contexts, the stripped rest is the shared continuation", async (t) => {
  const path = writeJsonl(dir, "winogrande.jsonl", [
    { sentence: "Sarah was a much better surgeon than Maria so _ always got the harder cases.", option1: "Sarah", option2: "Maria", answer: "1" },
    { sentence: "The trophy doesn't fit into the brown suitcase because the _ is too large.", option1: "trophy", option2: "suitcase", answer: "2" },
  ]);
  t.same(loadMcItems(path), [
    { kind: "partial", contexts: ["Sarah was a much better surgeon than Maria so Sarah", "Sarah was a much better surgeon than Maria so Maria"], continuation: "always got the harder cases.", gold: 0 },
    { kind: "partial", contexts: ["The trophy doesn't fit into the brown suitcase because the trophy", "The trophy doesn't fit into the brown suitcase because the suitcase"], continuation: "is too large.", gold: 1 },
  ]);
});

const tok = new PieceTokenizer(["<eos>", "Q", " x", " y", " z", " w"]);
const id = (p: string) => tok.id(p);
const model = new BigramModel(tok.vocabSize, {
  [id("Q")]: { [id(" x")]: 0.4, [id(" y")]: 0.3 },
  [id(" y")]: { [id(" z")]: 0.5 },
  [id(" x")]: { [id(" z")]: 0.1, [id(" w")]: 0.6 },
});

t.test("WinoGrande is scored on the shared continuation only, acc alone", async (t) => {
  const path = writeJsonl(dir, "wg-mini.jsonl", [
    { sentence: "Q _ z", option1: "x", option2: "y", answer: "2" }, // log p(z|y) = log .5 > log p(z|x) = log .1
    { sentence: "Q _ z", option1: "x", option2: "y", answer: "1" },
  ]);
  const r = await new MultipleChoiceEvaluator().evaluate(model, tok, { name: "wg", path });
  t.same(Object.keys(r.metrics), ["acc", "acc_stderr"]);
  t.equal(r.metrics["acc"], 0.5, "context log-probabilities (Q → x .4 beats Q → y .3) do not count");
});

t.test("malformed exports name the line and the key", async (t) => {
  const arc = writeJsonl(dir, "arc-bad.jsonl", [
    { question: "q", choices: { text: ["a", "b"], label: ["A", "B"] }, answerKey: "B" },
    { question: "q", choices: { text: ["a", "b"], label: ["A", "B"] }, answerKey: "E" },
  ]);
  t.throws(() => loadMcItems(arc), /arc-bad\.jsonl:2: answerKey "E" is not one of the choice labels \[A, B\] \(arc format\)/);
  const wg = writeJsonl(dir, "wg-bad.jsonl", [{ sentence: "no blank", option1: "a", option2: "b", answer: "1" }]);
  t.throws(() => loadMcItems(wg), /wg-bad\.jsonl:1: key "sentence" has no "_" blank/);
  const hs = writeJsonl(dir, "hs-bad.jsonl", [{ activity_label: "a", ctx_a: "b", endings: ["c"], label: 0 }]);
  t.throws(() => loadMcItems(hs), /hs-bad\.jsonl:1: missing key "ctx_b" \(hellaswag format\)/);
  const unknown = writeJsonl(dir, "unknown.jsonl", [{ prompt: "a", answer: "b" }]);
  t.throws(() => loadMcItems(unknown), /unknown\.jsonl:1: cannot tell the task format from keys \[prompt, answer\]/);
});

t.test("last-word: greedy exact match and target perplexity (lm-eval lambada)", async (t) => {
  const path = writeJsonl(dir, "lambada.jsonl", [
    { text: "Q y z" }, // context "Q y", target " z": z is y's argmax → greedy
    { text: "Q x" }, // target " x": Q's argmax → greedy
    { context: "Q", continuation: " y z" }, // y is not Q's argmax → not greedy
  ]);
  const r = await new LastWordEvaluator().evaluate(model, tok, { name: "lambada", path });
  const lp = (a: string, b: string) => model.lp(id(a), id(b));
  t.equal(r.count, 3);
  t.ok(Math.abs(r.metrics["acc"]! - 2 / 3) < 1e-12, `acc ${r.metrics["acc"]}`);
  const meanLl = (lp(" y", " z") + lp("Q", " x") + lp("Q", " y") + lp(" y", " z")) / 3;
  t.ok(Math.abs(r.metrics["perplexity"]! / Math.exp(-meanLl) - 1) < 1e-5, `perplexity ${r.metrics["perplexity"]} = exp(−mean ll)`);
  const bad = writeJsonl(dir, "lambada-bad.jsonl", [{ text: "Q x" }, { context: "Q" }]);
  await t.rejects(new LastWordEvaluator().evaluate(model, tok, { name: "l", path: bad }), /lambada-bad\.jsonl:2: missing key "continuation" \(last-word format\)/);
});
