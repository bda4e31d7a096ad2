/**
 * Several objects, one vector, through the real pipeline (CLI processes, s3rver, the
 * simulator checking every request against the contract, the Qdrant stand-in):
 * - `--group-images folder` on tongyi-embedding-vision-plus: a folder of 11 product images
 *   is two multi_images points (8 + 3), a broken member leaves its group, a 12th image
 *   re-embeds only its own item;
 * - `--fuse-sidecar .txt` on qwen3-vl-embedding: each image or video and its caption are
 *   one fused point; changing only a caption re-embeds only that pair.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QdrantClient } from '@qdrant/js-client-rest';
import sharp from 'sharp';
import { groupPointKey } from '../../src/compose.js';
import { pointId } from '../../src/ids.js';
import { RunStore } from '../../src/runs.js';
import { DATA_INSPECTION_MARKER } from '../../src/simulator/refusals.js';
import { mp4 } from '../support/media-fixtures.js';
import { allPoints } from '../support/qdrant-points.js';
import type { Point } from '../support/qdrant-points.js';
import { createBucket, deleteObject, putObject } from '../support/s3.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { PipelineEnv } from '../support/pipeline.js';

/** A small photo of one colour (each image of a group different). */
function photo(i: number, format: 'jpeg' | 'png' = 'jpeg'): Promise<Buffer> {
  const img = sharp({
    create: {
      width: 64 + i,
      height: 48,
      channels: 3,
      background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 },
    },
  });
  return (format === 'png' ? img.png() : img.jpeg()).toBuffer();
}

interface Indexed {
  readonly code: number | null;
  readonly stdout: string;
  readonly runId: string;
}

/** Runs `index --wait` with a worker beside it, and returns the run's id. */
async function index(env: PipelineEnv, args: readonly string[]): Promise<Indexed> {
  const worker = startCli(['worker'], env.env);
  try {
    await worker.waitFor(/worker ready/);
    const res = await runCli(['index', ...args, '--wait'], env.env);
    const runId = /run (\S+): scanning/.exec(res.stdout)?.[1];
    if (!runId) throw new Error(`no run id in: ${res.stdout}${res.stderr}`);
    return { code: res.code, stdout: res.stdout, runId };
  } finally {
    expect(await worker.stop('SIGTERM')).toBe(0);
  }
}

const byId = (points: readonly Point[]): Map<string, Point> => new Map(points.map((p) => [p.id, p]));

describe('multi_images groups (tongyi-embedding-vision-plus, --group-images folder)', () => {
  const BUCKET = 'products';
  let env: PipelineEnv;

  beforeAll(async () => {
    env = await startPipelineEnv();
    await createBucket(env.s3client, BUCKET);
    for (let i = 1; i <= 11; i++)
      await putObject(env.s3client, BUCKET, `shoes/item-a/view-${String(i).padStart(2, '0')}.jpg`, await photo(i));
    await putObject(env.s3client, BUCKET, 'shoes/item-b/front.png', await photo(20, 'png'));
    await putObject(env.s3client, BUCKET, 'shoes/item-b/side.jpg', await photo(21));
    const whole = await photo(22);
    await putObject(env.s3client, BUCKET, 'shoes/item-b/broken.jpg', whole.subarray(0, Math.floor(whole.length / 2)));
    await putObject(env.s3client, BUCKET, 'shoes/item-b/notes.txt', 'Leather upper, rubber sole, sizes 38 to 46.');
    await putObject(env.s3client, BUCKET, 'logo.png', await photo(30, 'png'));
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  it('makes one point per part of at most 8 images, lists the members, and re-embeds only the item that changed', async () => {
    const collection = `groups-${env.prefix}`;
    const args = [
      '--bucket',
      BUCKET,
      '--collection',
      collection,
      '--model',
      'tongyi-embedding-vision-plus',
      '--dimension',
      '64',
      '--group-images',
      'folder',
    ];
    const first = await index(env, args);
    expect(first.code).toBe(0);
    // the run's stage is gone once its scan completed
    expect(await env.redis.exists(`${env.prefix}:run:${first.runId}:stage`)).toBe(0);

    const qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    const points = byId(await allPoints(qdrant, collection));
    const a0 = points.get(pointId(BUCKET, groupPointKey('shoes/item-a/'), 0))?.payload;
    const a1 = points.get(pointId(BUCKET, groupPointKey('shoes/item-a/'), 1))?.payload;
    const b0 = points.get(pointId(BUCKET, groupPointKey('shoes/item-b/'), 0))?.payload;
    const view = (i: number): string => `shoes/item-a/view-${String(i).padStart(2, '0')}.jpg`;
    // 11 images in key order: the first 8, then the other 3
    expect(a0).toMatchObject({
      modality: 'multi_images',
      group: 'shoes/item-a/',
      chunk: 0,
      chunk_count: 2,
      group_members: 11,
      members: [1, 2, 3, 4, 5, 6, 7, 8].map(view),
    });
    expect(a1).toMatchObject({
      modality: 'multi_images',
      group: 'shoes/item-a/',
      chunk: 1,
      chunk_count: 2,
      members: [9, 10, 11].map(view),
    });
    // the broken JPEG leaves its group; the text beside it and the image at the top are alone
    expect(b0).toMatchObject({
      modality: 'multi_images',
      chunk_count: 1,
      members: ['shoes/item-b/front.png', 'shoes/item-b/side.jpg'],
    });
    expect(points.get(pointId(BUCKET, 'shoes/item-b/notes.txt', 0))?.payload).toMatchObject({ modality: 'text' });
    expect(points.get(pointId(BUCKET, 'logo.png', 0))?.payload).toMatchObject({ modality: 'image' });
    expect(points.size).toBe(5);
    const items = await new RunStore(env.redis, env.prefix).items(first.runId);
    expect(items.get('shoes/item-b/broken.jpg')).toMatchObject({ status: 'skipped', code: 'not-an-image' });

    // what the simulator took: three multi_images elements of 8, 3 and 2 images, within the contract
    let stats = env.sim.stats();
    expect(stats.refusals).toEqual({});
    expect(stats.limitViolations).toBe(0);
    expect(stats.inputs).toBe(5);
    expect(stats.images).toBe(11 + 2 + 1);

    // a 12th view of item a: only item a (its two parts) is embedded again
    env.sim.reset();
    await putObject(env.s3client, BUCKET, view(12), await photo(12));
    const second = await index(env, args);
    expect(second.code).toBe(0);
    stats = env.sim.stats();
    expect(stats.inputs).toBe(2);
    expect(stats.images).toBe(12);
    const after = byId(await allPoints(qdrant, collection));
    expect(after.get(pointId(BUCKET, groupPointKey('shoes/item-a/'), 1))?.payload).toMatchObject({
      members: [9, 10, 11, 12].map(view),
      run_id: second.runId,
    });
    expect(after.get(pointId(BUCKET, groupPointKey('shoes/item-b/'), 0))?.payload.run_id).toBe(first.runId);
    const run = await new RunStore(env.redis, env.prefix).get(second.runId);
    expect(run?.counters).toMatchObject({ changed: 12, unchanged: 5 });

    // item a shrinks to 5 images: its second part is removed; with --prune a gone item loses its points
    for (let i = 6; i <= 12; i++) await deleteObject(env.s3client, BUCKET, view(i));
    await deleteObject(env.s3client, BUCKET, 'shoes/item-b/front.png');
    await deleteObject(env.s3client, BUCKET, 'shoes/item-b/side.jpg');
    await deleteObject(env.s3client, BUCKET, 'shoes/item-b/broken.jpg');
    const third = await index(env, [...args, '--prune']);
    expect(third.code).toBe(0);
    const last = byId(await allPoints(qdrant, collection));
    expect(last.get(pointId(BUCKET, groupPointKey('shoes/item-a/'), 0))?.payload).toMatchObject({
      chunk_count: 1,
      members: [1, 2, 3, 4, 5].map(view),
    });
    expect(last.has(pointId(BUCKET, groupPointKey('shoes/item-a/'), 1))).toBe(false);
    expect(last.has(pointId(BUCKET, groupPointKey('shoes/item-b/'), 0))).toBe(false);
    expect(last.size).toBe(3); // item a, notes.txt, logo.png
  }, 300_000);

  it('groups by a key pattern across listing pages: the views of one item in different folders are one vector', async () => {
    const views = ['front', 'side', 'top'];
    for (const v of views)
      for (const item of ['boot', 'hat'])
        if (!(v === 'top' && item === 'hat'))
          await putObject(
            env.s3client,
            BUCKET,
            `views/${v}/${item}.jpg`,
            await photo(views.indexOf(v) * 2 + item.length),
          );
    const collection = `pattern-${env.prefix}`;
    // two keys a page: boot's three views are listed on pages 1, 2 and 3
    const res = await index(env, [
      '--bucket',
      BUCKET,
      '--prefix',
      'views/',
      '--page-size',
      '2',
      '--collection',
      collection,
      '--model',
      'tongyi-embedding-vision-plus',
      '--dimension',
      '64',
      '--group-images',
      'pattern:^views/[^/]+/(\\w+)\\.jpg$',
    ]);
    expect(res.code).toBe(0);
    const qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    const points = await allPoints(qdrant, collection);
    expect(points.map((p) => [p.payload.group, p.payload.members]).sort()).toEqual([
      ['boot', ['views/front/boot.jpg', 'views/side/boot.jpg', 'views/top/boot.jpg']],
      ['hat', ['views/front/hat.jpg', 'views/side/hat.jpg']],
    ]);
    const run = await new RunStore(env.redis, env.prefix).get(res.runId);
    expect(run?.pages).toBeGreaterThanOrEqual(3);
    expect(run?.counters).toMatchObject({ scanned: 5, queuedObjects: 5, objectsIndexed: 5 });
  }, 120_000);

  it('refuses --group-images for a model without multi_images, before anything is queued', async () => {
    const res = await runCli(
      [
        'index',
        '--bucket',
        BUCKET,
        '--collection',
        `refused-${env.prefix}`,
        '--model',
        'qwen3-vl-embedding',
        '--group-images',
        'folder',
      ],
      env.env,
    );
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/--group-images.*qwen3-vl-embedding has no multi_images/);
  }, 60_000);
});

describe('fused pairs (qwen3-vl-embedding, --fuse-sidecar .txt)', () => {
  const BUCKET = 'captioned';
  let env: PipelineEnv;

  beforeAll(async () => {
    // a video goes by URL: the simulator and the CLI may use this machine's MinIO
    env = await startPipelineEnv({ allowPrivateUrls: true });
    await createBucket(env.s3client, BUCKET);
    const captions = ['a red bicycle leaning on a wall', 'a green kettle on a stove', 'a blue boat in a harbor'];
    for (const [i, text] of captions.entries()) {
      await putObject(env.s3client, BUCKET, `photos/p${i}.jpg`, await photo(i));
      await putObject(env.s3client, BUCKET, `photos/p${i}.txt`, text);
    }
    await putObject(env.s3client, BUCKET, 'clips/harbor.mp4', mp4(4, 4000));
    await putObject(env.s3client, BUCKET, 'clips/harbor.txt', 'boats leaving the harbor at dawn');
    await putObject(env.s3client, BUCKET, 'photos/uncaptioned.jpg', await photo(9));
    await putObject(env.s3client, BUCKET, 'photos/README.md', 'How these photos were taken.');
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  it('makes one fused point per media and caption, and re-embeds only the pair whose caption changed', async () => {
    const collection = `fused-${env.prefix}`;
    const args = [
      '--bucket',
      BUCKET,
      '--collection',
      collection,
      '--model',
      'qwen3-vl-embedding',
      '--dimension',
      '256',
      '--fuse-sidecar',
      '.txt',
    ];
    const first = await index(env, args);
    expect(first.code).toBe(0);

    const qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    const points = byId(await allPoints(qdrant, collection));
    expect(points.size).toBe(4);
    for (const i of [0, 1, 2]) {
      expect(points.get(pointId(BUCKET, `photos/p${i}.jpg`, 0))?.payload).toMatchObject({
        modality: 'fused',
        media: 'image',
        key: `photos/p${i}.jpg`,
        sidecar: `photos/p${i}.txt`,
        members: [`photos/p${i}.jpg`, `photos/p${i}.txt`],
      });
    }
    expect(points.get(pointId(BUCKET, 'clips/harbor.mp4', 0))?.payload).toMatchObject({
      modality: 'fused',
      media: 'video',
      sidecar: 'clips/harbor.txt',
    });
    // the captions have no points of their own; unpaired objects are skips with reasons
    expect(points.has(pointId(BUCKET, 'photos/p0.txt', 0))).toBe(false);
    const items = await new RunStore(env.redis, env.prefix).items(first.runId);
    expect(items.get('photos/uncaptioned.jpg')).toMatchObject({ status: 'skipped', code: 'unpaired' });
    expect(items.get('photos/uncaptioned.jpg')?.reason).toMatch(/no sidecar text \(photos\/uncaptioned\.txt\)/);
    expect(items.get('photos/README.md')).toMatchObject({ status: 'skipped', code: 'unpaired' });

    let stats = env.sim.stats();
    expect(stats.refusals).toEqual({});
    expect(stats.limitViolations).toBe(0);
    expect(stats.inputs).toBe(4);
    expect(stats.images).toBe(3);
    expect(stats.videos).toBe(1);

    // only p1's caption changes: one pair, one element, is embedded again
    env.sim.reset();
    await putObject(env.s3client, BUCKET, 'photos/p1.txt', 'a green kettle boiling on a gas stove');
    const second = await index(env, args);
    expect(second.code).toBe(0);
    stats = env.sim.stats();
    expect(stats.requests).toBe(1);
    expect(stats.inputs).toBe(1);
    const after = byId(await allPoints(qdrant, collection));
    const p1 = pointId(BUCKET, 'photos/p1.jpg', 0);
    expect(after.get(p1)?.payload.run_id).toBe(second.runId);
    expect(after.get(p1)?.vector).not.toEqual(points.get(p1)?.vector);
    for (const key of ['photos/p0.jpg', 'photos/p2.jpg', 'clips/harbor.mp4'])
      expect(after.get(pointId(BUCKET, key, 0))?.payload.run_id).toBe(first.runId);
    const run = await new RunStore(env.redis, env.prefix).get(second.runId);
    expect(run?.counters).toMatchObject({ changed: 2, unchanged: 6 });

    // a caption deleted: its image is unpaired now, and loses its fused point
    await deleteObject(env.s3client, BUCKET, 'photos/p2.txt');
    const third = await index(env, args);
    expect(third.code).toBe(0);
    const last = byId(await allPoints(qdrant, collection));
    expect(last.has(pointId(BUCKET, 'photos/p2.jpg', 0))).toBe(false);
    expect(last.size).toBe(3);
  }, 300_000);

  it('a pair the API refuses fails whole, with both members, and retry-failed queues it again as a pair', async () => {
    await putObject(env.s3client, BUCKET, 'flagged/f.jpg', await photo(40));
    await putObject(env.s3client, BUCKET, 'flagged/f.txt', `a caption ${DATA_INSPECTION_MARKER} the provider refuses`);
    await putObject(env.s3client, BUCKET, 'flagged/g.jpg', await photo(41));
    await putObject(env.s3client, BUCKET, 'flagged/g.txt', 'a caption that is fine');
    const collection = `fused-failed-${env.prefix}`;
    const first = await index(env, [
      '--bucket',
      BUCKET,
      '--prefix',
      'flagged/',
      '--collection',
      collection,
      '--model',
      'qwen3-vl-embedding',
      '--dimension',
      '256',
      '--fuse-sidecar',
      '.txt',
    ]);
    expect(first.code).toBe(1);
    expect(first.stdout).toMatch(/finished with 2 failed objects/);
    const runs = new RunStore(env.redis, env.prefix);
    const items = await runs.items(first.runId);
    for (const key of ['flagged/f.jpg', 'flagged/f.txt'])
      expect(items.get(key)).toMatchObject({
        status: 'failed',
        code: 'DataInspectionFailed',
        unit: ['f', 'flagged/f.jpg'],
      });
    const qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    expect((await allPoints(qdrant, collection)).map((p) => p.payload.key)).toEqual(['flagged/g.jpg']);

    await putObject(env.s3client, BUCKET, 'flagged/f.txt', 'a caption that is fine now');
    const retry = await runCli(['retry-failed', '--run', first.runId], env.env);
    expect(retry.code).toBe(0);
    const retryId = /run (\S+): retrying 2 failed objects/.exec(retry.stdout)?.[1];
    expect(retryId).toBeDefined();
    const worker = startCli(['worker'], env.env);
    try {
      await worker.waitFor(/worker ready/);
      const s = await runCli(['status', '--run', retryId!, '--wait'], env.env);
      expect(s.code).toBe(0);
    } finally {
      expect(await worker.stop('SIGTERM')).toBe(0);
    }
    const points = await allPoints(qdrant, collection);
    expect(points.map((p) => p.payload.key).sort()).toEqual(['flagged/f.jpg', 'flagged/g.jpg']);
    expect(points.find((p) => p.payload.key === 'flagged/f.jpg')?.payload).toMatchObject({
      modality: 'fused',
      sidecar: 'flagged/f.txt',
      run_id: retryId,
    });
  }, 300_000);
});
