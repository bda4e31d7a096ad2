/**
 * Helpers for the incremental-run integration test: texts whose token counts are stated
 * (so how many points each object should have follows from the count, not the splitter), bulk uploads and deletes, reading a
 * whole collection (qdrant-points.ts), and polling.
 */
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { pointId } from '../../src/ids.js';
import { plainWords } from './token-fixtures.js';

/** Common English words of about one token each (corpus.ts's prose draws on them too). */
export const WORDS = [
  'river',
  'mountain',
  'engine',
  'harbor',
  'violet',
  'signal',
  'garden',
  'copper',
  'lantern',
  'orbit',
  'meadow',
  'quartz',
  'thunder',
  'willow',
  'canvas',
  'falcon',
];

/**
 * Deterministic text of `words` common English words (about one token each, plus a
 * sentence break every 12 words). The test's own, so its chunk counts do not move when
 * other fixtures change.
 */
export function words(seed: number, count: number): string {
  let x = (seed * 2654435761) >>> 0;
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out.push(WORDS[(x >>> 16) % WORDS.length]!);
    if (i % 12 === 11) out.push('.\n');
  }
  return out.join(' ');
}

export { allPoints } from './qdrant-points.js';
export type { Point } from './qdrant-points.js';

const STATED = new Map<string, number>();

/**
 * `plainWords(seed, tokens)` (exactly `tokens` tokens, token-fixtures.ts), remembered with
 * that count so `statedChunks` can say how many points it becomes without the splitter.
 */
export function statedText(seed: number, tokens: number): string {
  const text = plainWords(seed, tokens);
  STATED.set(text, tokens);
  return text;
}

/** Points a `statedText` becomes with chunks of at most `chunkTokens` tokens and no overlap: ceil(tokens / cap). */
export function statedChunks(text: string, chunkTokens: number): number {
  const tokens = STATED.get(text);
  if (tokens === undefined) throw new Error(`not a statedText: ${JSON.stringify(text.slice(0, 40))}`);
  return Math.ceil(tokens / chunkTokens);
}

/** The ids of chunks 0..count-1 of a key. */
export function idsOf(bucket: string, key: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => pointId(bucket, key, i));
}

/** Uploads in parallel batches (s3rver writes each object to disk). */
export async function putMany(
  client: S3Client,
  bucket: string,
  objects: ReadonlyMap<string, string | Buffer>,
  batch = 50,
): Promise<void> {
  const entries = [...objects];
  for (let i = 0; i < entries.length; i += batch) {
    await Promise.all(
      entries
        .slice(i, i + batch)
        .map(([key, body]) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))),
    );
  }
}

export async function deleteMany(client: S3Client, bucket: string, keys: readonly string[]): Promise<void> {
  await Promise.all(keys.map((key) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))));
}

/** Polls `check` until it returns a value other than undefined. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export { runIdOf } from './pipeline.js';
