import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers";
import { ConfigError } from "../errors.js";
import type { Tokenizer } from "../interfaces/tokenizer.js";

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The content of a special-token entry (a string, or an AddedToken object with `content`). */
function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return null;
}

/**
 * A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) through @huggingface/tokenizers,
 * with BOS/EOS ids and the chat template from tokenizer_config.json.
 */
export class HfTokenizer implements Tokenizer {
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly vocabSize: number;
  private readonly impl: HfTokenizerImpl;
  private readonly chatTemplate: Template | null;
  private readonly unkTokenId: number | null;

  constructor(tokenizerJson: Record<string, unknown>, readonly tokenizerConfig: Record<string, unknown> = {}, readonly source = "tokenizer.json") {
    try {
      this.impl = new HfTokenizerImpl(tokenizerJson, tokenizerConfig);
    } catch (err) {
      throw new ConfigError(`${source}: not a tokenizer the tokenizers library can load: ${(err as Error).message}`, { cause: err });
    }
    const id = (key: string) => {
      const content = tokenContent(tokenizerConfig[key]);
      return content === null ? null : (this.impl.token_to_id(content) ?? null);
    };
    this.bosTokenId = id("bos_token");
    this.eosTokenId = id("eos_token");
    this.vocabSize = this.impl.get_vocab(true).size;
    const unk = tokenContent((tokenizerJson["model"] as Record<string, unknown> | undefined)?.["unk_token"]);
    this.unkTokenId = unk === null ? null : (this.impl.token_to_id(unk) ?? null);
    const template = tokenizerConfig["chat_template"];
    this.chatTemplate = typeof template === "string" ? new Template(template) : null;
  }

  /** Load tokenizer.json (+ tokenizer_config.json when present) from a model folder. */
  static fromDir(dir: string): HfTokenizer {
    const file = join(dir, "tokenizer.json");
    if (!existsSync(file)) throw new ConfigError(`${dir}: no tokenizer.json (a Hugging Face fast tokenizer file is required)`);
    const configFile = join(dir, "tokenizer_config.json");
    return new HfTokenizer(readJson(file), existsSync(configFile) ? readJson(configFile) : {}, file);
  }

  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    const ids = this.impl.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
    // The JS library leaves pieces outside a WordLevel/WordPiece vocabulary as undefined, where
    // the Rust tokenizers map them to the unk token.
    return ids.map((id: number | undefined, i: number) => {
      if (Number.isInteger(id)) return id;
      if (this.unkTokenId !== null) return this.unkTokenId;
      throw new ConfigError(`${this.source}: piece ${i} of ${JSON.stringify(text.slice(0, 80))} has no id and the tokenizer has no unk_token`);
    });
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.impl.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /** Id of a token string, if in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.impl.token_to_id(token);
  }

  /** Whether the tokenizer config carries a chat template. */
  get hasChatTemplate(): boolean {
    return this.chatTemplate !== null;
  }

  applyChatTemplate(messages: { role: string; content: string }[], options: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.chatTemplate) throw new ConfigError(`${this.source}: the tokenizer config has no chat_template`);
    return this.chatTemplate.render({
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
      bos_token: tokenContent(this.tokenizerConfig["bos_token"]) ?? "",
      eos_token: tokenContent(this.tokenizerConfig["eos_token"]) ?? "",
    });
  }
}
