/**
 * Claims of the README's "Re-runs" section that no other test showed, fed for real:
 * `index --wait` and a `worker` as processes against MinIO (behind a proxy where the store
 * must fail), the simulator, real Redis and the Qdrant stand-in. Each expectation is the
 * exact set of keys whose points exist.
 *
 * - "one whose embedding failed keeps its old points"
 * - "an interrupted or failed scan never prunes" (the failed case: the listing dies)
 * - "points outside the prefix are never touched; objects left out by globs or size
 *   filters still exist and are kept" (and an object deleted in scope is pruned)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QdrantClient } from '@qdrant/js-client-rest';
import { DATA_INSPECTION_MARKER } from '../../src/simulator/index.js';
import { RunStore } from '../../src/runs.js';
import { allPoints } from '../support/qdrant-points.js';
import { runCli, runIdOf, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, CliResult, PipelineEnv } from '../support/pipeline.js';
import { startS3Proxy } from '../support/s3-proxy.js';
import type { S3Proxy } from '../support/s3-proxy.js';
import { createBucket, putObject } from '../support/s3.js';
import { deleteMany } from '../support/incremental.js';

const BUCKET = 'claims';
const MODEL = 'tongyi-embedding-vision-flash';
const show = (r: CliResult): object => ({ code: r.code, stdout: r.stdout.slice(-1500), stderr: r.stderr.slice(-1500) });

const TEXTS: Readonly<Record<string, string>> = {
  'a/1.txt': 'the first text under a',
  'a/2.txt': 'the second text under a',
  'a/3.txt': 'the third text under a',
  'a/4.txt': 'the fourth text under a',
  'a/skip.txt': 'a text the globs leave out',
  'b/1.txt': 'a text outside the prefix',
};

describe("the README's re-run claims", () => {
  let env: PipelineEnv;
  let proxy: S3Proxy;
  let worker: BackgroundCli | undefined;
  let qdrant: QdrantClient;
  let collection = '';

  const keysWithPoints = async (): Promise<string[]> =>
    [...new Set((await allPoints(qdrant, collection)).map((p) => String(p.payload.key)))].sort();
  const index = (args: readonly string[], s3 = env.env.S3_ENDPOINT): Promise<CliResult> =>
    runCli(
      [
        'index',
        '--bucket',
        BUCKET,
        '--collection',
        collection,
        '--model',
        MODEL,
        '--dimension',
        '64',
        '--wait',
        ...args,
      ],
      { ...env.env, RATE_LIMIT: 'off', S3_ENDPOINT: s3 },
    );

  beforeAll(async () => {
    env = await startPipelineEnv();
    proxy = await startS3Proxy(env.s3.endpoint);
    qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    collection = `claims-${env.prefix}`;
    await createBucket(env.s3client, BUCKET);
    for (const [key, text] of Object.entries(TEXTS)) await putObject(env.s3client, BUCKET, key, text);
    worker = startCli(['worker', '--concurrency', '2'], { ...env.env, RATE_LIMIT: 'off' });
    await worker.waitFor(/worker ready/);
    const first = await index([]);
    expect(show(first)).toMatchObject({ code: 0 });
    expect(await keysWithPoints()).toEqual(Object.keys(TEXTS).sort());
  }, 180_000);

  afterAll(async () => {
    const timer = setTimeout(() => worker?.child.kill('SIGKILL'), 15_000);
    await worker?.stop();
    clearTimeout(timer);
    await proxy?.close();
    await env?.close();
  });

  it('keeps the old points of an object whose new version the API refuses', async () => {
    const before = (await allPoints(qdrant, collection)).find((p) => p.payload.key === 'a/1.txt');
    await putObject(env.s3client, BUCKET, 'a/1.txt', `a new version ${DATA_INSPECTION_MARKER}`);
    const r = await index(['--prefix', 'a/']);
    expect(show(r)).toMatchObject({ code: 1 });
    const items = await new RunStore(env.redis, env.prefix).items(runIdOf(r.stdout));
    expect(Object.fromEntries([...items].map(([k, o]) => [k, `${o.status} ${o.code}`]))).toEqual({
      'a/1.txt': 'failed DataInspectionFailed',
    });
    const after = (await allPoints(qdrant, collection)).find((p) => p.payload.key === 'a/1.txt');
    expect(after).toEqual(before);
    // the old content back: the same bytes, the same ETag, the point current again
    await putObject(env.s3client, BUCKET, 'a/1.txt', TEXTS['a/1.txt']!);
  }, 120_000);

  it('prunes nothing when the --prune scan fails part-way (the listing dies after its first page)', async () => {
    await deleteMany(env.s3client, BUCKET, ['a/4.txt']);
    proxy.dieAfterLists(proxy.lists() + 1);
    const r = await index(['--prefix', 'a/', '--prune', '--page-size', '2'], proxy.endpoint);
    proxy.revive();
    expect(show(r)).toMatchObject({ code: 1 });
    const run = await new RunStore(env.redis, env.prefix).get(runIdOf(r.stdout));
    expect(run?.scanStatus).toBe('failed');
    expect(await keysWithPoints()).toEqual(Object.keys(TEXTS).sort());
  }, 120_000);

  it('prunes an object deleted under the prefix, and keeps points outside the prefix and of existing objects the globs leave out', async () => {
    await deleteMany(env.s3client, BUCKET, ['b/1.txt']);
    const r = await index(['--prefix', 'a/', '--exclude', 'skip.txt', '--prune']);
    expect(show(r)).toMatchObject({ code: 0 });
    // a/4.txt (deleted, in scope) is gone; a/skip.txt (still there, left out by the glob) and
    // b/1.txt (deleted, but outside a/) keep their points. (A left-out object that is deleted
    // too loses its points: the listing, not the filter, says what exists.)
    expect(await keysWithPoints()).toEqual(['a/1.txt', 'a/2.txt', 'a/3.txt', 'a/skip.txt', 'b/1.txt']);
  }, 120_000);
});
