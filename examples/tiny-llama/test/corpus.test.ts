// The corpus split: which documents exist, that the hash rule puts each in exactly one split
// regardless of input order, and the text clean-up rules (Brown tags, sentence splitting).
import t from "tap";
import { SPLITS, buildCorpus, detokenizeBrownSentence, splitDocuments, splitOf, splitSentences, cleanSotu, brownParagraphs, type CorpusDocument } from "@ecomla/example-tiny-llama";

const corpus = buildCorpus();
const all = SPLITS.flatMap((s) => corpus[s]);

t.test("both sources, every document once: 233 addresses + 500 Brown files", async (t) => {
  t.equal(all.filter((d) => d.source === "sotu").length, 233);
  t.equal(all.filter((d) => d.source === "brown").length, 500);
  t.equal(new Set(all.map((d) => d.id)).size, 733, "ids are unique across splits (the splits are disjoint)");
  for (const split of SPLITS) for (const doc of corpus[split]) t.equal(splitOf(doc.id), split, `${doc.id} lies in the split its hash names`);
});

t.test("the split is ~90/5/5 by document and ~90/5/5 by bytes", async (t) => {
  const docs = Object.fromEntries(SPLITS.map((s) => [s, corpus[s].length / all.length]));
  t.ok(docs["train"]! > 0.86 && docs["train"]! < 0.94, `train ${(100 * docs["train"]!).toFixed(1)}% of documents`);
  for (const s of ["valid", "test"] as const) t.ok(docs[s]! > 0.03 && docs[s]! < 0.08, `${s} ${(100 * docs[s]!).toFixed(1)}% of documents`);
  const bytes = (ds: CorpusDocument[]) => ds.reduce((n, d) => n + d.text.length, 0);
  t.ok(bytes(corpus.test) > 500_000, `test split ${bytes(corpus.test)} characters`);
  t.ok(bytes(corpus.train) > 14_000_000, `train split ${bytes(corpus.train)} characters`);
});

t.test("deterministic: fixed ids land in fixed splits; input order does not matter", async (t) => {
  // Fixture: sha256(id)'s first 32 bits, computed once with `openssl dgst -sha256`.
  t.same(["brown/ca01", "brown/ca03", "sotu/1790_george_washington_n", "sotu/1812_james_madison_dr", "brown/cr09"].map(splitOf), ["valid", "test", "train", "test", "train"]);
  const reversed = splitDocuments([...all].reverse());
  for (const split of SPLITS) t.same(reversed[split].map((d) => d.id), corpus[split].map((d) => d.id), `${split}: same ids in the same order`);
});

t.test("Brown tags stripped, quotes and punctuation spaced as printed", async (t) => {
  t.equal(
    detokenizeBrownSentence("``/`` Only/rb a/at relative/jj handful/nn of/in such/jj reports/nns was/bedz received/vbn ''/'' ,/, the/at jury/nn said/vbd ./."),
    '"Only a relative handful of such reports was received," the jury said.',
  );
  t.equal(detokenizeBrownSentence("Atlanta's/np$ primary/nn (/( 1/2/cd )/) --/-- not/* enough/ap ;/. it/pps ended/vbd ./."), "Atlanta's primary (1/2)--not enough; it ended.");
  t.same(
    brownParagraphs("\n\n\tAustin/np-hl ,/,-hl Texas/np-hl\n--/-- The/at bill/nn passed/vbd ./.\nIt/pps ended/vbd ./.\n\n\n\tNext/ap one/cd ./.\n"),
    [["The bill passed.", "It ended."], ["Next one."]],
    "blank lines separate paragraphs, lines separate sentences, headlines dropped",
  );
  const brown = corpus.train.find((d) => d.source === "brown")!;
  t.notMatch(brown.text, /\/[a-z]/, "no POS tags left");
  t.notMatch(brown.text, /``|''/, "no LaTeX-style quotes left");
});

t.test("sentence splitting keeps abbreviations and initials; SOTU reactions removed", async (t) => {
  t.same(splitSentences('Mr. Smith went to Washington, D.C. on Jan. 5. He met John F. Kennedy there! "Is it so?" It was. U.S. forces left.'), [
    "Mr. Smith went to Washington, D.C. on Jan. 5.",
    "He met John F. Kennedy there!",
    '"Is it so?"',
    "It was.",
    "U.S. forces left.",
  ]);
  t.equal(cleanSotu("Thank you. (Applause.) It\u2019s good \u201chere\u201d.  (Laughter and applause.) Yes."), "Thank you. It's good \"here\". Yes.");
  const sotuText = corpus.train.filter((d) => d.source === "sotu").map((d) => d.text).join("\n");
  t.notMatch(sotuText, /\(Applause\.?\)/);
});
