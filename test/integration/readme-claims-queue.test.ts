/**
 * More of the README's claims that no other test showed, fed for real: `index`, `status`,
 * `resume` and a `worker` as processes against MinIO, the simulator (behind a proxy that
 * answers the fatal errors it does not make on request), real Redis, and the Qdrant
 * stand-in behind a proxy that records every request in order (how many lookups, upserts
 * before deletes). Expectations are stated: token counts from test/support/token-fixtures.ts,
 * chunk counts as ceil(tokens / the stated chunk cap), request counts at the proxy.
 *
 * - Reliability: "Fatal errors (... 403, Arrearage, ModelNotFound ...) pause the queue for
 *   every worker ...; `status` and `--wait` print the reason in one line; `mm-ingest resume`
 *   continues once it is fixed."
 * - Re-runs: "looks up the page's chunk-0 point ids in one request ... The cost is
 *   O(listing page)"; "An object indexed only partly (a crash between chunks) is redone";
 *   "only then are chunks beyond the new chunk count deleted".
 * - Re-runs: "The first rebuild of a name that is a plain collection deletes that collection
 *   just before creating the alias".
 * - Reindex from a queue: every field of the job has the effect the table gives it.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QdrantClient } from '@qdrant/js-client-rest';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { resume } from '../../src/pause.js';
import { RunStore } from '../../src/runs.js';
import { allPoints, deleteMany, idsOf, putMany, runIdOf, until } from '../support/incremental.js';
import { mp4, png } from '../support/media-fixtures.js';
import { startHttpProxy } from '../support/http-proxy.js';
import type { HttpProxy, SeenRequest } from '../support/http-proxy.js';
import { createBucket, putObject } from '../support/s3.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, CliResult, PipelineEnv } from '../support/pipeline.js';
import { plainWords } from '../support/token-fixtures.js';

const BUCKET = 'claims-queue';
const QWEN = 'qwen3-vl-embedding';
const FLASH = 'tongyi-embedding-vision-flash';

const exit = (r: CliResult): { code: number | null; out: string } => ({
  code: r.code,
  out: `${r.stdout}\n${r.stderr}`.slice(-2500),
});
const idsIn = (req: SeenRequest, field: 'points' | 'ids'): string[] => {
  const list = (req.body as Record<string, unknown> | undefined)?.[field];
  return Array.isArray(list)
    ? list.map((p) => String(typeof p === 'object' && p !== null ? (p as { id: unknown }).id : p))
    : [];
};

describe("the README's claims about fatal errors, lookups, rebuilds and reindex jobs", () => {
  let env: PipelineEnv;
  let api: HttpProxy;
  let store: HttpProxy;
  let qdrant: QdrantClient;
  let runs: RunStore;
  let worker: BackgroundCli | undefined;
  let cliEnv: NodeJS.ProcessEnv;
  let connection: Redis;
  let eventsConnection: Redis;
  let queue: Queue;
  let events: QueueEvents;
  let embed: Queue;
  /** Every request Qdrant got through the proxy, in arrival order. */
  const seen: SeenRequest[] = [];

  const index = (args: readonly string[]): Promise<CliResult> =>
    runCli(['index', '--bucket', BUCKET, '--wait', ...args], cliEnv);
  const keysOf = async (collection: string): Promise<string[]> =>
    [...new Set((await allPoints(qdrant, collection)).map((p) => String(p.payload.key)))].sort();
  /** Adds a reindex job, waits for it and for its run's end (the run record's finish time). */
  async function reindex(data: Record<string, unknown>): Promise<{ runId: string; result: Record<string, unknown> }> {
    const job = await queue.add('reindex', { bucket: BUCKET, ...data });
    const result = (await job.waitUntilFinished(events, 120_000)) as Record<string, unknown>;
    const runId = String(result.runId);
    await until(`run ${runId} finished`, async () => ((await runs.get(runId))?.finishedAt ? true : undefined), 120_000);
    return { runId, result };
  }
  async function refused(data: Record<string, unknown>): Promise<string> {
    const job = await queue.add('reindex', { bucket: BUCKET, collection: 'never', model: QWEN, ...data });
    await expect(job.waitUntilFinished(events, 30_000)).rejects.toThrow();
    const after = await queue.getJob(job.id!);
    expect(after?.attemptsMade).toBe(1);
    return after?.failedReason ?? '';
  }

  beforeAll(async () => {
    env = await startPipelineEnv({ allowPrivateUrls: true, captureRequests: 100 });
    api = await startHttpProxy(env.sim.url);
    store = await startHttpProxy(env.qdrantUrl);
    store.intercept = (req) => {
      seen.push(req);
      return undefined;
    };
    qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    runs = new RunStore(env.redis, env.prefix);
    cliEnv = { ...env.env, RATE_LIMIT: 'off', DASHSCOPE_BASE_URL: api.url, QDRANT_URL: store.url };
    await createBucket(env.s3client, BUCKET);
    worker = startCli(['worker', '--concurrency', '2'], cliEnv);
    await worker.waitFor(/worker ready/);
    connection = new Redis(env.env.REDIS_URL!, { maxRetriesPerRequest: null });
    eventsConnection = new Redis(env.env.REDIS_URL!, { maxRetriesPerRequest: null });
    queue = new Queue('reindex', { connection, prefix: env.prefix });
    events = new QueueEvents('reindex', { connection: eventsConnection, prefix: env.prefix });
    await events.waitUntilReady();
    embed = new Queue('embed', { connection, prefix: env.prefix });
  }, 180_000);

  afterAll(async () => {
    const timer = setTimeout(() => worker?.child.kill('SIGKILL'), 15_000);
    await worker?.stop();
    clearTimeout(timer);
    await queue?.close();
    await embed?.close();
    await events?.close();
    await connection?.quit();
    await eventsConnection?.quit();
    await api?.close();
    await store?.close();
    await env?.close();
  });

  it.each([
    [403, 'AccessDenied', 'Access denied: the account may not call this model.', 'cli'],
    [400, 'Arrearage', 'Access denied, please make sure your account is in good standing.', 'api'],
    [404, 'ModelNotFound', 'Model not exist.', 'api'],
  ])(
    'pauses the queue on %i %s with the reason in one line, and finishes the run once resumed',
    async (status, code, message, how) => {
      const key = `pause/${code}.txt`;
      await putObject(env.s3client, BUCKET, key, `a text refused with ${code}`);
      let fatal = true;
      const before = api.intercepted();
      api.intercept = () => (fatal ? { status, body: { code, message, request_id: `test-${code}` } } : undefined);
      try {
        const paused = await index(['--collection', 'paused', '--model', QWEN, '--dimension', '256', '--key', key]);
        expect(exit(paused)).toMatchObject({ code: 3 });
        const lines = paused.stdout.split('\n').filter((l) => l.includes('the queue is paused'));
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain(`${code}`);
        expect(lines[0]).toContain(message);
        // the embed queue itself is paused (for every worker), the job put back; one request paid
        expect(await embed.isPaused()).toBe(true);
        expect(await embed.getWaitingCount()).toBe(1);
        expect(api.intercepted() - before).toBe(1);
        const runId = runIdOf(paused.stdout);
        fatal = false;
        if (how === 'cli') {
          const shown = await runCli(['status', '--run', runId], cliEnv);
          expect(shown.stdout).toContain(message);
          expect(exit(await runCli(['resume'], cliEnv))).toMatchObject({ code: 0 });
        } else {
          // what `mm-ingest resume` does (its process is shown above)
          await resume(embed, env.redis, env.prefix);
        }
        await until(`run ${runId} finished`, async () => ((await runs.get(runId))?.finishedAt ? true : undefined));
        expect((await runs.get(runId))?.counters).toMatchObject({ objectsIndexed: 1, objectsFailed: 0 });
        expect(await keysOf('paused')).toContain(key);
      } finally {
        api.intercept = () => undefined;
      }
    },
    120_000,
  );

  it('looks up an unchanged listing page in one Qdrant request, whatever its size up to 1,000', async () => {
    // two pages of 300 single-chunk texts: more than one lookup batch of the store before
    const texts = new Map(
      Array.from({ length: 600 }, (_, i) => [`lookup/${String(i).padStart(3, '0')}.txt`, `text ${i}`]),
    );
    await putMany(env.s3client, BUCKET, texts);
    const args = ['--collection', 'lookup', '--model', QWEN, '--dimension', '256', '--prefix', 'lookup/'];
    expect(exit(await index([...args, '--page-size', '300']))).toMatchObject({ code: 0 });
    const from = seen.length;
    const requests = env.sim.stats().requests;
    const again = await index([...args, '--page-size', '300']);
    expect(exit(again)).toMatchObject({ code: 0 });
    const retrieves = seen.slice(from).filter((r) => r.method === 'POST' && r.path === '/collections/lookup/points');
    expect(retrieves.map((r) => idsIn(r, 'ids').length)).toEqual([300, 300]);
    expect(env.sim.stats().requests).toBe(requests);
    expect((await runs.get(runIdOf(again.stdout)))?.counters).toMatchObject({ scanned: 600, unchanged: 600 });
  }, 180_000);

  it('redoes an object indexed only partly, and deletes its stale chunks only after the new ones are written', async () => {
    const key = 'part/long.txt';
    // 2,400 tokens in chunks of at most 1,000: 3 chunks; then 1,500 tokens: 2 chunks
    await putObject(env.s3client, BUCKET, key, plainWords(1, 2400));
    const args = ['--collection', 'part', '--model', QWEN, '--dimension', '256', '--prefix', 'part/'];
    const chunk = ['--chunk-tokens', '1000'];
    expect(exit(await index([...args, ...chunk]))).toMatchObject({ code: 0 });
    const ids = idsOf(BUCKET, key, 3);
    expect((await qdrant.retrieve('part', { ids })).map((p) => p.id).sort()).toEqual([...ids].sort());

    // a crash between chunks: chunk 2 never written
    await qdrant.delete('part', { points: [ids[2]!], wait: true });
    const inputs = env.sim.stats().inputs;
    const redo = await index([...args, ...chunk]);
    expect(exit(redo)).toMatchObject({ code: 0 });
    expect((await runs.get(runIdOf(redo.stdout)))?.counters).toMatchObject({ changed: 1, unchanged: 0 });
    expect(env.sim.stats().inputs - inputs).toBe(3);
    expect((await qdrant.retrieve('part', { ids })).map((p) => p.id).sort()).toEqual([...ids].sort());

    // a shorter version: chunks 0 and 1 overwritten, then chunk 2 deleted
    await putObject(env.s3client, BUCKET, key, plainWords(2, 1500));
    const from = seen.length;
    const shorter = await index([...args, ...chunk]);
    expect(exit(shorter)).toMatchObject({ code: 0 });
    const log = seen.slice(from);
    const upserted = log.findIndex(
      (r) => r.method === 'PUT' && r.path === '/collections/part/points' && idsIn(r, 'points').includes(ids[1]!),
    );
    const deletes = log
      .map((r, i) => ({ r, i }))
      .filter(({ r }) => r.method === 'POST' && r.path === '/collections/part/points/delete');
    expect(upserted).toBeGreaterThanOrEqual(0);
    expect(deletes.map(({ r }) => idsIn(r, 'points'))).toEqual([[ids[2]]]);
    expect(deletes[0]!.i).toBeGreaterThan(upserted);
    const points = await qdrant.retrieve('part', { ids, with_payload: true });
    expect(points.map((p) => [p.id, p.payload?.chunk_count]).sort()).toEqual(
      [
        [ids[0], 2],
        [ids[1], 2],
      ].sort(),
    );
  }, 180_000);

  it('gives every reindex job field the effect the README says, and refuses keys outside 1..10,000 by name', async () => {
    await putMany(
      env.s3client,
      BUCKET,
      new Map<string, string | Buffer>([
        ['fields/a/1.txt', 'the first text under a'],
        ['fields/a/2.txt', 'the second text under a'],
        ['fields/b/1.txt', 'a text outside the prefix'],
        ['media/clip.mp4', mp4(4)],
        ['groups/boot/front.png', png(32, 32, 1)],
        ['groups/boot/side.png', png(32, 32, 2)],
        ['fused/photo.png', png(32, 32, 3)],
        ['fused/photo.txt', 'a caption of the photo'],
      ]),
    );
    const qwen = { model: QWEN, dimension: 256 };

    // prefix: only keys under it
    const first = await reindex({ ...qwen, collection: 'fields', prefix: 'fields/a/' });
    expect(first.result).toMatchObject({ scanned: 2, queuedObjects: 2 });
    expect(await keysOf('fields')).toEqual(['fields/a/1.txt', 'fields/a/2.txt']);

    // mode: incremental pays nothing for unchanged objects, full embeds them again
    let requests = env.sim.stats().inputs;
    expect((await reindex({ ...qwen, collection: 'fields', prefix: 'fields/a/' })).result).toMatchObject({
      unchanged: 2,
      queuedObjects: 0,
    });
    expect(env.sim.stats().inputs - requests).toBe(0);
    requests = env.sim.stats().inputs;
    expect((await reindex({ ...qwen, collection: 'fields', prefix: 'fields/a/', mode: 'full' })).result).toMatchObject({
      queuedObjects: 2,
    });
    expect(env.sim.stats().inputs - requests).toBe(2);

    // prune: a deleted object keeps its point without it, loses it with it
    await deleteMany(env.s3client, BUCKET, ['fields/a/2.txt']);
    await reindex({ ...qwen, collection: 'fields', prefix: 'fields/a/' });
    expect(await keysOf('fields')).toEqual(['fields/a/1.txt', 'fields/a/2.txt']);
    await reindex({ ...qwen, collection: 'fields', prefix: 'fields/a/', prune: true });
    expect(await keysOf('fields')).toEqual(['fields/a/1.txt']);

    // fps and instruct: passed to the API as the request's parameters
    env.sim.reset();
    await reindex({ ...qwen, collection: 'media', prefix: 'media/', fps: 0.25, instruct: 'Find the clip' });
    const sent = env.sim.requests().map((r) => (r.body as { parameters?: Record<string, unknown> }).parameters);
    expect(sent).toEqual([expect.objectContaining({ fps: 0.25, instruct: 'Find the clip', dimension: 256 })]);
    expect(await keysOf('media')).toEqual(['media/clip.mp4']);

    // groupImages: one multi_images point for the folder's two images
    await reindex({ model: FLASH, dimension: 64, collection: 'groups', prefix: 'groups/', groupImages: 'folder' });
    const grouped = await allPoints(qdrant, 'groups');
    expect(grouped.map((p) => [p.payload.modality, p.payload.key, p.payload.members])).toEqual([
      ['multi_images', 'groups/boot/', ['groups/boot/front.png', 'groups/boot/side.png']],
    ]);

    // fuseSidecar: one fused point for the photo and its caption
    await reindex({ ...qwen, collection: 'fused', prefix: 'fused/', fuseSidecar: '.txt' });
    const fused = await allPoints(qdrant, 'fused');
    expect(fused.map((p) => [p.payload.modality, p.payload.key, p.payload.sidecar])).toEqual([
      ['fused', 'fused/photo.png', 'fused/photo.txt'],
    ]);

    // keys: the bounds, by name (10,000 itself is accepted: test/unit/reindex-job.test.ts)
    expect(await refused({ keys: [] })).toMatch(
      /malformed reindex job: keys: .*at least 1|malformed reindex job: keys/,
    );
    expect(await refused({ keys: Array.from({ length: 10_001 }, (_, i) => `k${i}`) })).toMatch(
      /malformed reindex job: keys/,
    );
    // a unit needs the listing of its members: keys with groupImages are refused by name
    expect(
      await refused({ model: FLASH, dimension: 64, keys: ['groups/boot/front.png'], groupImages: 'folder' }),
    ).toMatch(/group-images.*a list of keys cannot be composed into units/);
    expect(worker?.child.exitCode).toBeNull();

    // "Completed jobs are kept for an hour (at most 1,000 ...), failed ones until cleared": the
    // options BullMQ holds with each embed job, which it applies when the job ends
    const completed = await embed.getJobs(['completed'], 0, 0);
    expect(completed).toHaveLength(1);
    expect(completed[0]!.opts).toMatchObject({
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: false,
    });
  }, 300_000);

  it('makes a plain collection an alias at its first rebuild, from a reindex job with mode rebuild', async () => {
    await putMany(
      env.s3client,
      BUCKET,
      new Map([
        ['plain/1.txt', 'one text of the plain collection'],
        ['plain/2.txt', 'another text of the plain collection'],
      ]),
    );
    await reindex({ model: QWEN, dimension: 256, collection: 'plain', prefix: 'plain/' });
    const aliasOf = async (): Promise<string | undefined> =>
      (await qdrant.getAliases()).aliases.find((a) => a.alias_name === 'plain')?.collection_name;
    expect(await aliasOf()).toBeUndefined();
    expect((await qdrant.getCollections()).collections.map((c) => c.name)).toContain('plain');

    const { runId } = await reindex({
      model: QWEN,
      dimension: 256,
      collection: 'plain',
      prefix: 'plain/',
      mode: 'rebuild',
    });
    const target = `plain--${runId.toLowerCase()}`;
    expect(await aliasOf()).toBe(target);
    const names = (await qdrant.getCollections()).collections.map((c) => c.name);
    expect(names).toContain(target);
    expect(names).not.toContain('plain');
    // through the alias, every object
    expect(await keysOf('plain')).toEqual(['plain/1.txt', 'plain/2.txt']);
    expect((await allPoints(qdrant, 'plain')).map((p) => p.payload.run_id)).toEqual([runId, runId]);
  }, 180_000);
});
