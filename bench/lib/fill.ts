/**
 * Filling the benchmark's buckets.
 *
 * Objects are written straight into s3rver's directory in its own on-disk format (for a
 * key `a/b.txt`: `a/b.txt._S3rver_object`, `..._object.md5`, `..._metadata.json`), which
 * s3rver serves exactly like uploaded objects: PutObject through s3rver runs at about 240
 * objects/s on a 2-core machine, too slow for 30,000 objects. The first object of every
 * bucket is uploaded with PutObject instead and `verifyBucket` checks that a listing sees
 * every object and that a seeded object reads back with the right ETag.
 *
 * Keys sit 100 to a folder (`short/000123/0012345.txt`): s3rver's listing walks and stats
 * the whole folder it resumes in, so one folder of 20,000 keys would make every page of a
 * listing cost O(bucket), which no real store does.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { prose } from '../../test/support/corpus.js';
import { png } from '../../test/support/media-fixtures.js';
import { createBucket, putObject } from '../../test/support/s3.js';

export interface SeedObject {
  readonly key: string;
  readonly body: Buffer;
  readonly contentType: string;
}

export const folderKey = (prefix: string, i: number, ext: string): string =>
  `${prefix}/${String(Math.floor(i / 100)).padStart(6, '0')}/${String(i).padStart(7, '0')}.${ext}`;

/**
 * Short texts: 6 to 18 words (about 8 to 22 tokens, captions and titles). Short enough
 * that 20 of them a request stay under the model's tokens per minute at its requests per
 * minute (qwen3-vl-embedding: 600,000 / (1,200 x 20) = 25 tokens an input), so the run is
 * request-bound.
 */
export function shortTexts(count: number, seed = 0): SeedObject[] {
  return Array.from({ length: count }, (_, i) => ({
    key: folderKey('short', i, 'txt'),
    body: Buffer.from(prose(seed + i, 6 + ((i * 7) % 13))),
    contentType: 'text/plain',
  }));
}

/** Long texts: 2,500 to 4,400 words (about 3,000 to 5,000 tokens). */
export function longTexts(count: number): SeedObject[] {
  return Array.from({ length: count }, (_, i) => ({
    key: folderKey('long', i, 'txt'),
    body: Buffer.from(prose(50_000 + i, 2500 + ((i * 397) % 1900))),
    contentType: 'text/plain',
  }));
}

/** Texts and PNG images in one listing: every `imageEvery`-th object is an image of 64 to 320 px a side. */
export function mixed(count: number, imageEvery: number): SeedObject[] {
  return Array.from({ length: count }, (_, i) => {
    if (i % imageEvery === imageEvery - 1) {
      const side = 64 + ((i * 37) % 257);
      return { key: folderKey('mixed', i, 'png'), body: png(side, side, i), contentType: 'image/png' };
    }
    return {
      key: folderKey('mixed', i, 'txt'),
      body: Buffer.from(prose(90_000 + i, 20 + ((i * 11) % 60))),
      contentType: 'text/plain',
    };
  });
}

/** The same objects with images and texts in folders of their own (`clustered/images/...`, `clustered/texts/...`). */
export function clustered(objects: readonly SeedObject[]): SeedObject[] {
  let images = 0;
  let texts = 0;
  return objects.map((o) =>
    o.contentType.startsWith('image/')
      ? { ...o, key: folderKey('clustered/images', images++, 'png') }
      : { ...o, key: folderKey('clustered/texts', texts++, 'txt') },
  );
}

/** Creates the bucket and writes the objects (the first one through PutObject). */
export async function seedBucket(
  client: S3Client,
  dir: string,
  bucket: string,
  objects: readonly SeedObject[],
  create = true,
): Promise<void> {
  if (create) await createBucket(client, bucket);
  const [first, ...rest] = objects;
  if (first) await putObject(client, bucket, first.key, first.body, first.contentType);
  for (const o of rest) {
    const base = join(dir, bucket, `${o.key}._S3rver_`);
    mkdirSync(dirname(base), { recursive: true });
    writeFileSync(`${base}object`, o.body);
    writeFileSync(`${base}object.md5`, createHash('md5').update(o.body).digest('hex'));
    writeFileSync(`${base}metadata.json`, JSON.stringify({ 'content-type': o.contentType }));
  }
}

/** Lists the whole bucket (ListObjectsV2, 1,000 keys a page); returns the keys and the seconds it took. */
export async function bareListing(
  client: S3Client,
  bucket: string,
): Promise<{ keys: number; seconds: number; pages: number }> {
  const t0 = performance.now();
  let token: string | undefined;
  let keys = 0;
  let pages = 0;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token, MaxKeys: 1000 }),
    );
    keys += page.Contents?.length ?? 0;
    pages += 1;
    token = page.NextContinuationToken;
  } while (token);
  return { keys, seconds: (performance.now() - t0) / 1000, pages };
}

/** A listing sees every object, and a seeded object reads back as written. */
export async function verifyBucket(client: S3Client, bucket: string, objects: readonly SeedObject[]): Promise<void> {
  const listed = await bareListing(client, bucket);
  if (listed.keys !== objects.length)
    throw new Error(`bucket ${bucket}: listed ${listed.keys} objects, seeded ${objects.length}`);
  const sample = objects[objects.length - 1];
  if (!sample) return;
  const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: sample.key }));
  const bytes = Buffer.from(await got.Body!.transformToByteArray());
  const md5 = createHash('md5').update(sample.body).digest('hex');
  if (!bytes.equals(sample.body) || got.ETag !== `"${md5}"`)
    throw new Error(`bucket ${bucket}: ${sample.key} did not read back as seeded`);
}
