/**
 * From an object's bytes to a prepared input, or to a rejection naming the problem.
 * Pure: the caller fetched the bytes; the tokenizer is passed in.
 */
import { sniffImage, sniffVideo, videoHeadSeconds } from './media.js';
import type { VideoFormat } from './models.js';
import type { ImagePayload, PreparedImage, PreparedInput, PreparedVideo, TextChunking } from './prepared-input.js';
import type { TokenCounter } from './tokens.js';

export type PrepareCode =
  'invalid-utf8' | 'binary-content' | 'empty-text' | 'zero-bytes' | 'not-an-image' | 'not-a-video';

export interface PrepareFailure {
  readonly source: string;
  readonly code: PrepareCode;
  readonly reason: string;
}

export type Prepared<T> = { ok: T } | { failure: PrepareFailure };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Decodes UTF-8 text (BOM dropped); invalid UTF-8, NUL bytes (binary) and blank text are failures. */
export function decodeText(source: string, bytes: Uint8Array): Prepared<string> {
  const fail = (code: PrepareCode, reason: string): Prepared<string> => ({ failure: { source, code, reason } });
  if (bytes.length === 0) return fail('zero-bytes', 'zero-byte text');
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return fail('invalid-utf8', 'text is not valid UTF-8');
  }
  if (text.includes('\u0000')) return fail('binary-content', 'text contains NUL bytes (binary content)');
  if (text.trim().length === 0) return fail('empty-text', 'text of only whitespace');
  return { ok: text };
}

export function prepareText(source: string, bytes: Uint8Array, tokens: TokenCounter): Prepared<PreparedInput> {
  const decoded = decodeText(source, bytes);
  if ('failure' in decoded) return decoded;
  return { ok: { kind: 'text', source, text: decoded.ok, tokens: tokens.count(decoded.ok) } };
}

/**
 * `prepareText` for a worker, for texts of any size up to MAX_TEXT_BYTES: the text is
 * chunked here for the planner's `chunking` (plan-limits.ts `textChunking`) in slices that
 * yield to the event loop (tokens.ts `splitInSlices`), so a 16 MB text does not hold up
 * the lock renewals and requests of the worker's other jobs; the planner then uses these
 * chunks instead of tokenizing the text again.
 */
export async function prepareTextInSlices(
  source: string,
  bytes: Uint8Array,
  tokens: TokenCounter,
  chunking: TextChunking,
): Promise<Prepared<PreparedInput>> {
  const decoded = decodeText(source, bytes);
  if ('failure' in decoded) return decoded;
  const text = decoded.ok;
  const list = tokens.splitInSlices
    ? await tokens.splitInSlices(text, chunking.maxTokens, chunking.overlap)
    : tokens.split(text, chunking.maxTokens, chunking.overlap);
  const count = list.reduce((n, c) => n + c.tokens, 0);
  return { ok: { kind: 'text', source, text, tokens: count, chunks: { ...chunking, list } } };
}

/**
 * Checks image bytes and builds the prepared image. `expected` is the format the key
 * claims: a `.jpg` whose bytes are a PNG is sent as what it is (the data URI names the
 * real format), but bytes that are no image at all are a failure.
 */
export function prepareImageBytes(
  source: string,
  bytes: Uint8Array,
  payload: ImagePayload = { kind: 'inline', data: bytes },
): Prepared<PreparedImage> {
  if (bytes.length === 0) return { failure: { source, code: 'zero-bytes', reason: 'zero-byte image' } };
  const facts = sniffImage(bytes);
  if ('error' in facts) return { failure: { source, code: 'not-an-image', reason: facts.error } };
  return { ok: { format: facts.format, width: facts.width, height: facts.height, bytes: bytes.length, payload } };
}

export function prepareImage(source: string, bytes: Uint8Array, payload?: ImagePayload): Prepared<PreparedInput> {
  const image = prepareImageBytes(source, bytes, payload);
  return 'failure' in image ? image : { ok: { kind: 'image', source, image: image.ok } };
}

/**
 * A video as a URL. `head` is the first bytes of the object when the caller has them
 * (to check the container), else the key's format is trusted.
 */
export function prepareVideo(
  source: string,
  size: number,
  format: VideoFormat,
  url: string,
  head?: Uint8Array,
): Prepared<PreparedInput> {
  if (size === 0) return { failure: { source, code: 'zero-bytes', reason: 'zero-byte video' } };
  let real: VideoFormat = format;
  if (head) {
    const sniffed = sniffVideo(head);
    if (!sniffed)
      return { failure: { source, code: 'not-a-video', reason: `not a ${format} video (unrecognised container)` } };
    real = sniffed === 'mpeg' && format === 'mpg' ? 'mpg' : sniffed;
  }
  const seconds = head && (real === 'mp4' || real === 'mov') ? videoHeadSeconds(head) : undefined;
  const video: PreparedVideo = { format: real, bytes: size, url, ...(seconds !== undefined ? { seconds } : {}) };
  return { ok: { kind: 'video', source, video } };
}
