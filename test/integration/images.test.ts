/**
 * Images a model cannot take as they are, through the real pipeline (CLI processes,
 * s3rver, the simulator enforcing tongyi-embedding-vision-plus's limits, the Qdrant
 * stand-in): fixed up and indexed within the limits, or skipped with a reason.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { QdrantClient } from '@qdrant/js-client-rest';
import sharp from 'sharp';
import { pointId } from '../../src/ids.js';
import { RunStore } from '../../src/runs.js';
import { createBucket, putObject } from '../support/s3.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { PipelineEnv } from '../support/pipeline.js';

const BUCKET = 'photos';

/** Noise compresses badly: a photo-like file of about the size asked for. */
async function noisyJpeg(width: number, height: number, quality: number): Promise<Buffer> {
  const raw = randomBytes(width * height * 3);
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality })
    .toBuffer();
}

describe('images the model cannot take as they are', () => {
  let env: PipelineEnv;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    env = await startPipelineEnv();
    await createBucket(env.s3client, BUCKET);
    // a 9 MB JPEG (over the 3 MB limit), with EXIF orientation 6 (rotated)
    let big = await noisyJpeg(3500, 2400, 97);
    big = await sharp(big).withMetadata({ orientation: 6 }).jpeg({ quality: 97 }).toBuffer();
    files.set('big-9mb.jpg', big);
    // a 4000x3000 PNG of about 6 MB
    const pngRaw = randomBytes(4000 * 3000 * 3);
    for (let i = 0; i < pngRaw.length; i += 2) pngRaw[i] = 128; // half the bytes constant: about 6 MB once compressed
    files.set(
      'large-4000x3000.png',
      await sharp(pngRaw, { raw: { width: 4000, height: 3000, channels: 3 } })
        .png({ compressionLevel: 6 })
        .toBuffer(),
    );
    files.set(
      'photo.webp',
      await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 200, g: 50, b: 50 } } })
        .webp()
        .toBuffer(),
    );
    files.set(
      'scan.tiff',
      await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 10, g: 200, b: 90 } } })
        .tiff()
        .toBuffer(),
    );
    files.set(
      'thin-1x2000.png',
      await sharp({ create: { width: 1, height: 2000, channels: 3, background: { r: 0, g: 0, b: 0 } } })
        .png()
        .toBuffer(),
    );
    const whole = await noisyJpeg(400, 300, 90);
    files.set('truncated.jpg', whole.subarray(0, Math.floor(whole.length / 2)));
    files.set(
      'fine.png',
      await sharp({ create: { width: 64, height: 64, channels: 4, background: { r: 0, g: 0, b: 255, alpha: 0.5 } } })
        .png()
        .toBuffer(),
    );
    for (const [key, body] of files) await putObject(env.s3client, BUCKET, key, body);
  }, 180_000);

  afterAll(async () => {
    await env?.close();
  });

  it('indexes oversized and unsupported images after fix-up, within the limits, and skips the impossible ones with reasons', async () => {
    expect(files.get('big-9mb.jpg')!.length).toBeGreaterThan(8_000_000);
    expect(files.get('large-4000x3000.png')!.length).toBeGreaterThan(4_000_000);
    const collection = `images-${env.prefix}`;
    const worker = startCli(['worker'], env.env);
    let runId: string | undefined;
    try {
      await worker.waitFor(/worker ready/);
      const res = await runCli(
        [
          'index',
          '--bucket',
          BUCKET,
          '--collection',
          collection,
          '--model',
          'tongyi-embedding-vision-plus',
          '--dimension',
          '64',
          '--wait',
        ],
        env.env,
      );
      expect(res.stdout).toMatch(/finished/);
      expect(res.code).toBe(0);
      runId = /run (\S+): scanning/.exec(res.stdout)?.[1];
    } finally {
      expect(await worker.stop('SIGTERM')).toBe(0);
    }

    const qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    const indexed = ['big-9mb.jpg', 'large-4000x3000.png', 'photo.webp', 'scan.tiff', 'fine.png'];
    const points = await qdrant.retrieve(collection, {
      ids: indexed.map((k) => pointId(BUCKET, k, 0)),
      with_payload: true,
    });
    const byKey = new Map(points.map((p) => [String(p.payload?.key), p.payload ?? {}]));
    expect([...byKey.keys()].sort()).toEqual([...indexed].sort());
    type Fixup = { original_format: string; original_bytes: number; actions: string[] };
    const fix = (k: string): Fixup | undefined => byKey.get(k)?.fixup as Fixup | undefined;
    expect(fix('big-9mb.jpg')?.actions.join('; ')).toMatch(
      /downscaled .*EXIF orientation 6 applied|EXIF orientation 6 applied.*downscaled/,
    );
    expect(fix('big-9mb.jpg')?.original_bytes).toBe(files.get('big-9mb.jpg')!.length);
    expect(fix('large-4000x3000.png')?.actions.join('; ')).toMatch(/downscaled 4000x3000/);
    expect(fix('photo.webp')).toMatchObject({
      original_format: 'webp',
      actions: [expect.stringMatching(/converted webp to jpeg/)],
    });
    expect(fix('scan.tiff')?.actions.join('; ')).toMatch(/converted tiff to jpeg/);
    expect(fix('fine.png')).toBeUndefined(); // taken as it is

    expect(runId).toBeDefined();
    const items = await new RunStore(env.redis, env.prefix).items(runId!);
    expect(items.get('thin-1x2000.png')).toMatchObject({ status: 'skipped', code: 'bad-shape' });
    expect(items.get('truncated.jpg')).toMatchObject({ status: 'skipped', code: 'undecodable-image' });
    expect(items.get('thin-1x2000.png')?.reason).toMatch(/under 10 px/);

    // the simulator enforced tongyi's 3 MB and JPG/PNG/BMP rules on what was sent: nothing refused
    const stats = env.sim.stats();
    expect(stats.limitViolations).toBe(0);
    expect(stats.refusals).toEqual({});
    expect(stats.images).toBe(indexed.length);
    // the originals in the bucket are untouched
    for (const key of ['big-9mb.jpg', 'photo.webp']) {
      const got = await env.s3client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(files.get(key)!)).toBe(true);
    }
  }, 300_000);
});
