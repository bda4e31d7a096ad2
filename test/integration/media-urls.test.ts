/**
 * A store the provider cannot reach, fed for real: MinIO on 127.0.0.1, the simulator as
 * strict as the provider (no allowPrivateUrls), `index`, `worker` and `doctor` as processes.
 *
 * - IMAGE_MODE=url is refused at start, naming the endpoint and the way out; nothing is queued.
 * - In inline mode the run goes on: texts and images are indexed, the video (always a URL)
 *   is skipped at scan as `unreachable-url` with the reason.
 * - doctor says so in a `media urls` row.
 * - ALLOW_PRIVATE_MEDIA_URLS=true sends the video's URL anyway, and a provider-strict
 *   simulator refuses to download it, which is what the start check spares a real run.
 * - In URL mode an image that needs a fix-up is skipped `needs-fixup` (README claim).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QdrantClient } from '@qdrant/js-client-rest';
import sharp from 'sharp';
import { RunStore } from '../../src/runs.js';
import { allPoints } from '../support/qdrant-points.js';
import { mp4, png } from '../support/media-fixtures.js';
import { runCli, runIdOf, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, CliResult, PipelineEnv } from '../support/pipeline.js';
import { createBucket, putObject } from '../support/s3.js';

const MODEL = 'tongyi-embedding-vision-flash';
const BUCKET = 'media-urls';
const show = (r: CliResult): object => ({ code: r.code, stdout: r.stdout.slice(-2000), stderr: r.stderr.slice(-2000) });

describe('URL mode and videos against a store the provider cannot reach', () => {
  let env: PipelineEnv;
  let worker: BackgroundCli | undefined;
  let reason = '';
  let where = '';
  let qdrant: QdrantClient;

  beforeAll(async () => {
    env = await startPipelineEnv();
    await createBucket(env.s3client, BUCKET);
    await putObject(env.s3client, BUCKET, 'docs/a.txt', 'a first text');
    await putObject(env.s3client, BUCKET, 'images/p.png', png(40, 30, 5));
    await putObject(env.s3client, BUCKET, 'clips/c.mp4', mp4(2, 4000));
    const endpoint = new URL(env.env.S3_ENDPOINT!);
    qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    where = `S3_ENDPOINT ${endpoint.protocol}//${endpoint.host} is a loopback or private address`;
    reason =
      `${where}: the provider downloads media URLs from its own network ` +
      'and cannot reach it (set ALLOW_PRIVATE_MEDIA_URLS=true if the API can: a local simulator, an endpoint in the same network)';
    worker = startCli(['worker', '--concurrency', '2'], { ...env.env, RATE_LIMIT: 'off' });
    await worker.waitFor(/worker ready/);
  }, 120_000);

  afterAll(async () => {
    const timer = setTimeout(() => worker?.child.kill('SIGKILL'), 15_000);
    await worker?.stop();
    clearTimeout(timer);
    await env?.close();
  });

  const index = (extra: NodeJS.ProcessEnv, collection: string): Promise<CliResult> =>
    runCli(['index', '--bucket', BUCKET, '--collection', collection, '--model', MODEL, '--wait'], {
      ...env.env,
      RATE_LIMIT: 'off',
      ...extra,
    });

  it('refuses IMAGE_MODE=url at start with the reason, exit 2, nothing queued', async () => {
    const before = env.sim.stats().requests;
    const r = await index({ IMAGE_MODE: 'url' }, `urls-${env.prefix}`);
    expect(show(r)).toMatchObject({ code: 2 });
    expect(r.stderr).toContain(
      `error: IMAGE_MODE: url mode sends presigned URLs, and ${reason}; IMAGE_MODE=inline sends images as base64`,
    );
    expect(r.stdout).not.toMatch(/scanning/);
    expect(env.sim.stats().requests).toBe(before);
  }, 120_000);

  it('indexes texts and inline images and skips the video as unreachable-url, naming the endpoint', async () => {
    const r = await index({}, `inline-${env.prefix}`);
    expect(show(r)).toMatchObject({ code: 0 });
    const items = await new RunStore(env.redis, env.prefix).items(runIdOf(r.stdout));
    expect(Object.fromEntries([...items].map(([k, o]) => [k, `${o.status} ${o.code}: ${o.reason}`]))).toEqual({
      'clips/c.mp4': `skipped unreachable-url: videos go to the API by URL, and ${reason}`,
    });
    const points = await allPoints(qdrant, `inline-${env.prefix}`);
    expect(points.map((p) => String(p.payload.key)).sort()).toEqual(['docs/a.txt', 'images/p.png']);
    expect(env.sim.stats().videos).toBe(0);
  }, 120_000);

  it('doctor warns in a media urls row', async () => {
    const r = await runCli(
      ['doctor', '--bucket', BUCKET, '--collection', `doctor-${env.prefix}`, '--model', MODEL, '--no-api'],
      env.env,
    );
    const row = r.stdout.split('\n').find((l) => l.includes('media urls'));
    expect(row?.replace(/ +/g, ' ')).toBe(
      `warn media urls ${where}: the provider cannot download its URLs, so index skips videos (unreachable-url); images go inline`,
    );
    const urlMode = await runCli(
      ['doctor', '--bucket', BUCKET, '--collection', `doctor-${env.prefix}`, '--model', MODEL, '--no-api'],
      { ...env.env, IMAGE_MODE: 'url' },
    );
    expect(urlMode.code).toBe(1);
    expect(urlMode.stdout).toMatch(
      /^fail +media urls +S3_ENDPOINT .* so index refuses IMAGE_MODE=url \(and skips videos\)$/m,
    );
  }, 120_000);

  it('with ALLOW_PRIVATE_MEDIA_URLS=true the video URL is sent, and a provider-strict simulator cannot download it', async () => {
    const r = await index({ ALLOW_PRIVATE_MEDIA_URLS: 'true' }, `allowed-${env.prefix}`);
    expect(show(r)).toMatchObject({ code: 1 });
    const items = await new RunStore(env.redis, env.prefix).items(runIdOf(r.stdout));
    expect(items.get('clips/c.mp4')).toMatchObject({ status: 'failed', code: 'InternalError.Algo.InvalidParameter' });
    expect([...items.keys()]).toEqual(['clips/c.mp4']);
    expect((await allPoints(qdrant, `allowed-${env.prefix}`)).map((p) => String(p.payload.key)).sort()).toEqual([
      'docs/a.txt',
      'images/p.png',
    ]);
  }, 120_000);

  it('in URL mode skips an image that needs a fix-up as needs-fixup, and sends the others as they are', async () => {
    await putObject(
      env.s3client,
      BUCKET,
      'url/photo.webp',
      await sharp({ create: { width: 50, height: 40, channels: 3, background: { r: 9, g: 90, b: 160 } } })
        .webp()
        .toBuffer(),
    );
    await putObject(env.s3client, BUCKET, 'url/ok.png', png(40, 30, 7));
    const r = await runCli(
      [
        'index',
        '--bucket',
        BUCKET,
        '--prefix',
        'url/',
        '--collection',
        `url-${env.prefix}`,
        '--model',
        MODEL,
        '--wait',
      ],
      {
        ...env.env,
        RATE_LIMIT: 'off',
        IMAGE_MODE: 'url',
        ALLOW_PRIVATE_MEDIA_URLS: 'true',
      },
    );
    expect(show(r)).toMatchObject({ code: 1 });
    const items = await new RunStore(env.redis, env.prefix).items(runIdOf(r.stdout));
    expect(
      Object.fromEntries(
        [...items].map(([k, o]) => [
          k,
          o.status === 'skipped' ? `skipped ${o.code}: ${o.reason}` : `${o.status} ${o.code}`,
        ]),
      ),
    ).toEqual({
      // tongyi-embedding-vision-flash takes no WEBP: converting it is a fix-up, which a URL cannot carry
      'url/photo.webp':
        'skipped needs-fixup: converted webp to jpeg would be needed, which URL mode cannot send (use IMAGE_MODE=inline)',
      // sent as a URL of this machine's MinIO, which a provider-strict simulator does not download
      'url/ok.png': 'failed InternalError.Algo.InvalidParameter',
    });
  }, 120_000);
});
