/**
 * The generated bucket of the bucket-scale scenario: object i of a bucket named
 * `gen-<count>` is the short text `shortTexts` would seed (same key, same words), made on
 * demand from its number, so a bucket of a million objects costs no disk and no fill
 * time. bench/gen-s3-child.ts serves it over the S3 protocol (ListObjectsV2, HeadBucket,
 * HeadObject, GetObject with ranges): benchmark code, not product.
 */
import { createHash } from 'node:crypto';
import { prose } from '../../test/support/corpus.js';
import { folderKey } from './fill.js';

/** Listing times of every generated object (a fixed instant: the bucket never changes). */
export const GEN_MTIME = new Date('2026-01-01T00:00:00.000Z');

export const genBucket = (count: number): string => `gen-${count}`;

export function genCount(bucket: string): number | undefined {
  const m = /^gen-(\d+)$/.exec(bucket);
  return m ? Number(m[1]) : undefined;
}

export const genKey = (i: number): string => folderKey('short', i, 'txt');

/** The object number of a generated key, or undefined for a key the bucket does not hold. */
export function genIndex(key: string, count: number): number | undefined {
  const m = /^short\/(\d{6})\/(\d{7})\.txt$/.exec(key);
  if (!m) return undefined;
  const i = Number(m[2]);
  return i < count && Math.floor(i / 100) === Number(m[1]) ? i : undefined;
}

/** The same words as fill.ts's shortTexts(count)[i]. */
export function genBody(i: number): Buffer {
  return Buffer.from(prose(i, 6 + ((i * 7) % 13)));
}

export function genEtag(body: Buffer): string {
  return createHash('md5').update(body).digest('hex');
}
