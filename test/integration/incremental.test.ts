/**
 * Incremental runs end to end, as a user runs them: `mm-ingest index`, `worker`, `status`,
 * `schedule` as real processes against s3rver, the API simulator, real Redis and the Qdrant
 * stand-in (or QDRANT_URL). One bucket of 1,000 objects (short texts, long texts of 3 to 5
 * chunks at 64 tokens, two objects skipped at scan) is shared by the scenarios, which run in
 * order: each one changes the bucket and keeps `texts` (the test's model of it) in step.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { QdrantClient } from '@qdrant/js-client-rest';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { pointId } from '../../src/ids.js';
import { RunStore } from '../../src/runs.js';
import {
  allPoints,
  deleteMany,
  idsOf,
  putMany,
  runIdOf,
  statedChunks,
  statedText,
  until,
} from '../support/incremental.js';
import type { Point } from '../support/incremental.js';
import { startHttpProxy } from '../support/http-proxy.js';
import type { HttpProxy } from '../support/http-proxy.js';
import { startS3Proxy } from '../support/s3-proxy.js';
import type { S3Proxy } from '../support/s3-proxy.js';
import { createBucket } from '../support/s3.js';
import { figures, runCli, startCli, startPipelineEnv, stopCli } from '../support/pipeline.js';
import type { BackgroundCli, CliResult, PipelineEnv } from '../support/pipeline.js';

const BUCKET = 'incremental';
const MODEL = 'qwen3-vl-embedding';
const CHUNK_TOKENS = 64;
const SHORT = 982;
const LONG = 16;
const SKIPPED = ['misc/blob-0.bin', 'misc/blob-1.bin'];

const shortKey = (n: number): string => `docs/short-${String(n).padStart(4, '0')}.txt`;
const longKey = (n: number): string => `docs/long-${String(n).padStart(2, '0')}.md`;
/** 6 to 13 tokens (stated: token-fixtures.ts's plainWords): 1 chunk of 64. */
const shortText = (n: number, version = 0): string => statedText(n * 7 + version, 6 + (n % 8));
/** 150 to 270 tokens by default: 3 to 5 chunks of 64. */
const longText = (n: number, count = 150 + (n % 5) * 30, version = 0): string =>
  statedText(10_000 + n * 13 + version, count);

describe('incremental runs of a 1,000-object bucket', () => {
  let env: PipelineEnv;
  let cliEnv: NodeJS.ProcessEnv;
  let worker: BackgroundCli | undefined;
  let qdrant: QdrantClient;
  let runs: RunStore;
  /** In front of the simulator (every worker's requests): a gate that holds requests mid-run. */
  let api: HttpProxy;
  /** In front of MinIO for a producer that must stop at a known page. */
  let store: S3Proxy;
  /** The indexable objects of the bucket as it is now: key -> text. */
  const texts = new Map<string, string>();
  const COLLECTION = (): string => `inc-${env.prefix}`;

  const chunksOf = (key: string): number => statedChunks(texts.get(key)!, CHUNK_TOKENS);
  const expectedPoints = (): number => [...texts.keys()].reduce((n, k) => n + chunksOf(k), 0);
  const indexArgs = (collection: string, dimension = 256): string[] => [
    'index',
    '--bucket',
    BUCKET,
    '--collection',
    collection,
    '--model',
    MODEL,
    '--dimension',
    String(dimension),
  ];
  const count = async (collection: string): Promise<number> => (await qdrant.count(collection, { exact: true })).count;
  const downloads = async (): Promise<number> => (await env.s3.requestCount()).get;
  const expectExit = (result: CliResult, code: number): void =>
    expect({ code: result.code, stderr: result.stderr, stdout: result.stdout.slice(-2000) }).toMatchObject({ code });

  beforeAll(async () => {
    env = await startPipelineEnv();
    api = await startHttpProxy(env.sim.url);
    store = await startS3Proxy(env.s3.endpoint);
    cliEnv = { ...env.env, RATE_LIMIT: 'off', CHUNK_TOKENS: String(CHUNK_TOKENS), DASHSCOPE_BASE_URL: api.url };
    qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    runs = new RunStore(env.redis, env.prefix);
    for (let i = 0; i < SHORT; i++) texts.set(shortKey(i), shortText(i));
    for (let i = 0; i < LONG; i++) texts.set(longKey(i), longText(i));
    await createBucket(env.s3client, BUCKET);
    const objects = new Map<string, string | Buffer>(texts);
    for (const key of SKIPPED) objects.set(key, Buffer.from([1, 2, 3, 4]));
    await putMany(env.s3client, BUCKET, objects);
    worker = startCli(['worker', '--concurrency', '4'], cliEnv);
    await worker.waitFor(/worker ready/);
  }, 120_000);

  afterAll(async () => {
    if (worker) await stopCli(worker);
    await api?.close();
    await store?.close();
    await env?.close();
  });

  it('has a bucket of 1,000 objects whose long texts make 3 to 5 chunks each', () => {
    expect(texts.size + SKIPPED.length).toBe(1000);
    for (let i = 0; i < LONG; i++) {
      expect(chunksOf(longKey(i))).toBeGreaterThanOrEqual(3);
      expect(chunksOf(longKey(i))).toBeLessThanOrEqual(5);
    }
    for (let i = 0; i < SHORT; i++) expect(chunksOf(shortKey(i))).toBe(1);
  });

  it('re-runs an unchanged bucket with no embedding request and no object download, every object counted unchanged', async () => {
    const first = await runCli([...indexArgs(COLLECTION()), '--wait'], cliEnv);
    expectExit(first, 0);
    const firstRun = await runs.get(runIdOf(first.stdout));
    expect(firstRun?.counters).toMatchObject({
      new: texts.size,
      unchanged: 0,
      objectsIndexed: texts.size,
      objectsFailed: 0,
      points: expectedPoints(),
    });
    expect(await count(COLLECTION())).toBe(expectedPoints());

    env.sim.reset();
    const getsBefore = await downloads();
    const second = await runCli([...indexArgs(COLLECTION()), '--wait'], cliEnv);
    expectExit(second, 0);
    const stats = env.sim.stats();
    const gets = (await downloads()) - getsBefore;
    expect(stats.requests).toBe(0);
    expect(gets).toBe(0);
    const run = await runs.get(runIdOf(second.stdout));
    expect(run?.counters).toMatchObject({
      scanned: 1000,
      skipped: SKIPPED.length,
      unchanged: texts.size,
      new: 0,
      changed: 0,
      queuedObjects: 0,
      jobsAdded: 0,
    });
    expect(run?.finishedAt).toBeDefined();
    expect(await count(COLLECTION())).toBe(expectedPoints());
    figures(
      `1 unchanged re-run: ${texts.size} indexable objects, ${expectedPoints()} points; first run ${firstRun?.counters.requests} requests; re-run ${stats.requests} requests, ${stats.inputs} inputs, ${gets} downloads`,
    );
  }, 120_000);

  it('re-embeds only the changed and added objects with --prune, and ends point for point equal to a fresh full index', async () => {
    const shortened = longKey(4); // 5 chunks -> 2
    const oldShortenedChunks = chunksOf(shortened);
    const changed = new Map<string, string>([
      [shortened, longText(4, 90, 1)],
      [longKey(9), shortText(9_000, 1)], // 5 chunks -> 1
      [longKey(0), longText(0, 280, 1)], // 3 chunks -> 5
      [shortKey(500), longText(500, 200, 1)], // 1 chunk -> 4
      ...[10, 100, 200, 300, 600, 700].map((n): [string, string] => [shortKey(n), shortText(n, 1)]),
    ]);
    const deleted = [longKey(1), longKey(2), ...[20, 120, 220, 320, 420, 620, 720, 820].map(shortKey)];
    const deletedIds = deleted.flatMap((k) => idsOf(BUCKET, k, chunksOf(k)));
    const added = new Map<string, string>([
      ...Array.from({ length: 9 }, (_, i): [string, string] => [`docs/new-${i}.txt`, shortText(5_000 + i)]),
      ['docs/new-long-9.md', longText(9_999, 250)],
    ]);
    expect([changed.size, deleted.length, added.size]).toEqual([10, 10, 10]);
    expect(statedChunks(changed.get(shortened)!, CHUNK_TOKENS)).toBeLessThan(oldShortenedChunks);
    expect(await qdrant.retrieve(COLLECTION(), { ids: deletedIds })).toHaveLength(deletedIds.length);

    await putMany(env.s3client, BUCKET, new Map([...changed, ...added]));
    await deleteMany(env.s3client, BUCKET, deleted);
    for (const [k, v] of [...changed, ...added]) texts.set(k, v);
    for (const k of deleted) texts.delete(k);
    const expectedInputs = [...changed.keys(), ...added.keys()].reduce((n, k) => n + chunksOf(k), 0);

    env.sim.reset();
    const getsBefore = await downloads();
    const result = await runCli([...indexArgs(COLLECTION()), '--prune', '--wait'], cliEnv);
    expectExit(result, 0);
    const stats = env.sim.stats();
    const gets = (await downloads()) - getsBefore;
    expect(stats.inputs).toBe(expectedInputs);
    expect(stats.refusals).toEqual({});
    expect(gets).toBe(20);
    const run = await runs.get(runIdOf(result.stdout));
    expect(run?.counters).toMatchObject({
      changed: 10,
      new: 10,
      deleted: 10,
      unchanged: texts.size - 20,
      queuedObjects: 20,
      objectsIndexed: 20,
      objectsFailed: 0,
    });

    // the shortened text kept only its new chunks; the deleted objects have no points left
    const shortenedIds = idsOf(BUCKET, shortened, oldShortenedChunks);
    const kept = await qdrant.retrieve(COLLECTION(), { ids: shortenedIds, with_payload: true });
    expect(kept.map((p) => String(p.id)).sort()).toEqual(shortenedIds.slice(0, chunksOf(shortened)).sort());
    expect(kept.map((p) => p.payload?.chunk_count)).toEqual(kept.map(() => chunksOf(shortened)));
    expect(await qdrant.retrieve(COLLECTION(), { ids: deletedIds })).toEqual([]);

    // a fresh full index of the bucket as it is now, into another collection
    const fresh = `inc-fresh-${env.prefix}`;
    const full = await runCli([...indexArgs(fresh), '--mode', 'full', '--wait'], cliEnv);
    expectExit(full, 0);
    const [incremental, reference] = await Promise.all([allPoints(qdrant, COLLECTION()), allPoints(qdrant, fresh)]);
    expect(reference).toHaveLength(expectedPoints());
    expect(incremental.map((p) => p.id).sort()).toEqual(reference.map((p) => p.id).sort());
    const byId = new Map<string, Point>(reference.map((p) => [p.id, p]));
    const FIELDS = [
      'bucket',
      'key',
      'etag',
      'size',
      'last_modified',
      'modality',
      'chunk',
      'chunk_count',
      'char_start',
      'char_end',
      'model',
      'dimension',
      'params_hash',
    ];
    const pick = (p: Point): Record<string, unknown> => Object.fromEntries(FIELDS.map((f) => [f, p.payload[f]]));
    let worst = 0;
    for (const p of incremental) {
      const ref = byId.get(p.id)!;
      expect(pick(p)).toEqual(pick(ref));
      expect(p.vector).toHaveLength(ref.vector.length);
      for (let i = 0; i < p.vector.length; i++) worst = Math.max(worst, Math.abs(p.vector[i]! - ref.vector[i]!));
    }
    expect(worst).toBeLessThanOrEqual(1e-6);
    figures(
      `2 changed 10, deleted 10, added 10 with --prune: ${stats.requests} requests, ${stats.inputs} inputs (expected ${expectedInputs}), ${gets} downloads; ${incremental.length} points equal to a fresh full index (max vector difference ${worst})`,
    );
  }, 180_000);

  it('deletes nothing when a --prune run is killed in the middle of its scan, and prunes once the scan is resumed and completes', async () => {
    const gone = [longKey(5), ...[950, 951, 952, 953].map(shortKey)];
    const goneIds = gone.flatMap((k) => idsOf(BUCKET, k, chunksOf(k)));
    const pointsBefore = await count(COLLECTION());
    expect(pointsBefore).toBe(expectedPoints());
    await deleteMany(env.s3client, BUCKET, gone);
    for (const k of gone) texts.delete(k);
    const listed = texts.size + SKIPPED.length;
    const pageArgs = [...indexArgs(COLLECTION()), '--prune', '--page-size', '10'];

    env.sim.reset();
    const getsBefore = await downloads();
    // a gate: three listings go through and the fourth waits, so the scan stops after its third page
    store.holdAfterLists(store.lists() + 3);
    const producer = startCli(pageArgs, { ...cliEnv, S3_ENDPOINT: store.endpoint });
    let runId = '';
    try {
      await producer.waitFor(/run \S+: scanning/);
      runId = runIdOf(producer.output());
      await until('the fourth listing held', async () => (store.held() > 0 ? true : undefined));
      await until('3 pages recorded', async () => ((await runs.get(runId))?.pages === 3 ? true : undefined));
    } finally {
      await producer.stop('SIGKILL');
      store.release();
    }
    const interrupted = await runs.get(runId);
    expect(interrupted?.scanStatus).toBe('scanning');
    expect(interrupted?.pages).toBe(3);
    expect(interrupted?.counters.scanned).toBe(30);
    expect(interrupted?.counters.deleted).toBe(0);
    expect(await count(COLLECTION())).toBe(pointsBefore);
    expect(await qdrant.retrieve(COLLECTION(), { ids: goneIds })).toHaveLength(goneIds.length);

    // the same run, resumed to the end of its scan, prunes exactly the deleted objects
    const resumed = await runCli([...pageArgs, '--run-id', runId, '--wait'], cliEnv);
    expectExit(resumed, 0);
    const run = await runs.get(runId);
    expect(run?.scanStatus).toBe('complete');
    expect(run?.counters).toMatchObject({ scanned: listed, deleted: gone.length, queuedObjects: 0 });
    expect(await qdrant.retrieve(COLLECTION(), { ids: goneIds })).toEqual([]);
    expect(await count(COLLECTION())).toBe(expectedPoints());
    const stats = env.sim.stats();
    const gets = (await downloads()) - getsBefore;
    expect(stats.requests).toBe(0);
    expect(gets).toBe(0);
    figures(
      `3 killed --prune scan after ${interrupted?.pages} of ${Math.ceil(listed / 10)} pages: 0 points deleted (${pointsBefore} kept); resumed: ${run?.counters.deleted} objects pruned (${goneIds.length} points); ${stats.requests} requests, ${gets} downloads`,
    );
  }, 120_000);

  it('rebuilds into a new dimension behind an alias that keeps answering from the complete old collection until the end', async () => {
    const alias = `inc-alias-${env.prefix}`;
    const full = expectedPoints();
    const aliasTarget = async (): Promise<string | undefined> =>
      (await qdrant.getAliases()).aliases.find((a) => a.alias_name === alias)?.collection_name;
    const vectorSize = async (name: string): Promise<unknown> => {
      const vectors = (await qdrant.getCollection(name)).config.params.vectors;
      return vectors && typeof vectors === 'object' && 'size' in vectors ? vectors.size : undefined;
    };

    // 1. the first rebuild of a name that does not exist yet creates the alias
    const first = await runCli([...indexArgs(alias), '--mode', 'rebuild', '--wait'], cliEnv);
    expectExit(first, 0);
    const firstRun = await runs.get(runIdOf(first.stdout));
    const oldTarget = await aliasTarget();
    expect(oldTarget).toBe(`${alias}--${firstRun!.id.toLowerCase()}`);
    expect(firstRun?.notes.rebuild).toContain(`alias ${alias} -> ${oldTarget}`);
    expect(await vectorSize(alias)).toBe(256);
    expect(await count(alias)).toBe(full);
    const probeId = pointId(BUCKET, shortKey(1), 0);
    const [probe] = await qdrant.retrieve(alias, { ids: [probeId], with_vector: true });
    const probeVector = probe!.vector as number[];
    expect(probeVector).toHaveLength(256);

    // 2. a rebuild at 512, held after its first request: the alias answers from the old collection meanwhile
    env.sim.reset();
    const getsBefore = await downloads();
    const previousRun = (await runs.latest(1))[0];
    api.holdAfter(api.forwarded() + 1);
    const rebuild = runCli([...indexArgs(alias, 512), '--mode', 'rebuild', '--wait'], cliEnv);
    let result: CliResult | undefined;
    try {
      const runId = await until('the rebuild run', async () => {
        const [latest] = await runs.latest(1);
        return latest !== undefined && latest !== previousRun ? latest : undefined;
      });
      const newTarget = `${alias}--${runId.toLowerCase()}`;
      await until('a request held', async () => (api.held() > 0 ? true : undefined));
      const midway = await until("the first request's points in the new collection", async () => {
        const exists = (await qdrant.collectionExists(newTarget)).exists;
        const n = exists ? await count(newTarget) : 0;
        return n > 0 ? n : undefined;
      });
      const observed = {
        target: await aliasTarget(),
        size: await vectorSize(alias),
        count: await count(alias),
        top: (await qdrant.query(alias, { query: probeVector, limit: 3 })).points.map((p) => String(p.id))[0],
      };
      const stillRunning = (await runs.get(runId))?.finishedAt === undefined && (await count(newTarget)) < full;
      expect({ observed, stillRunning }).toEqual({
        observed: { target: oldTarget, size: 256, count: full, top: probeId },
        stillRunning: true,
      });
      expect(midway).toBeLessThan(full);

      api.release();
      result = await rebuild;
      expectExit(result, 0);
      const run = await runs.get(runId);
      expect(await aliasTarget()).toBe(newTarget);
      expect(await vectorSize(alias)).toBe(512);
      expect(await count(alias)).toBe(full);
      expect((await qdrant.collectionExists(oldTarget!)).exists).toBe(false);
      expect(run?.notes.rebuild).toContain(`alias ${alias} -> ${newTarget}`);
      expect(run?.notes.rebuild).toContain(`dropped ${oldTarget}`);
      expect(result.stdout).toContain(`rebuild alias ${alias} -> ${newTarget}`);
      const stats = env.sim.stats();
      const gets = (await downloads()) - getsBefore;
      expect(stats.inputs).toBe(full);
      figures(
        `4 rebuild 256 -> 512 behind ${alias}: ${stats.requests} requests, ${stats.inputs} inputs, ${gets} downloads; mid-run the alias answered 256-dim with ${observed.count} points while the new collection had ${midway}`,
      );
    } finally {
      api.release();
      if (!result) await rebuild;
    }
  }, 180_000);

  it('executes reindex jobs added to the control queue by a plain BullMQ client, and refuses a malformed one by naming its field', async () => {
    const changedKey = shortKey(30);
    const deletedKey = shortKey(40);
    const unchangedKey = shortKey(50);
    const newKey = 'docs/added-by-job.txt';
    const [unchangedBefore] = await qdrant.retrieve(COLLECTION(), {
      ids: [pointId(BUCKET, unchangedKey, 0)],
      with_payload: true,
    });
    expect(await qdrant.retrieve(COLLECTION(), { ids: [pointId(BUCKET, deletedKey, 0)] })).toHaveLength(1);
    texts.set(changedKey, longText(30, 170, 2));
    texts.set(newKey, shortText(7_777));
    texts.delete(deletedKey);
    await putMany(
      env.s3client,
      BUCKET,
      new Map([
        [changedKey, texts.get(changedKey)!],
        [newKey, texts.get(newKey)!],
      ]),
    );
    await deleteMany(env.s3client, BUCKET, [deletedKey]);

    const redisUrl = env.env.REDIS_URL!;
    const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    const eventsConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue('reindex', { connection, prefix: env.prefix });
    const events = new QueueEvents('reindex', { connection: eventsConnection, prefix: env.prefix });
    try {
      await events.waitUntilReady();
      env.sim.reset();
      const getsBefore = await downloads();
      const job = await queue.add('reindex', {
        bucket: BUCKET,
        collection: COLLECTION(),
        model: MODEL,
        dimension: 256,
        mode: 'incremental',
        keys: [changedKey, newKey, deletedKey, unchangedKey],
      });
      const returned = (await job.waitUntilFinished(events, 60_000)) as Record<string, unknown>;
      expect(returned).toMatchObject({
        runId: expect.any(String),
        target: COLLECTION(),
        scanned: 4,
        queuedObjects: 2,
        unchanged: 1,
        deleted: 1,
      });
      const runId = returned.runId as string;
      expect((await queue.getJob(job.id!))?.progress).toMatchObject({ done: true, runId, queuedObjects: 2 });

      const waited = await runCli(['status', '--run', runId, '--wait'], cliEnv);
      expectExit(waited, 0);
      const run = await runs.get(runId);
      expect(run?.counters).toMatchObject({
        new: 1,
        changed: 1,
        unchanged: 1,
        deleted: 1,
        objectsIndexed: 2,
        objectsFailed: 0,
      });
      const head = await env.s3client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: changedKey }));
      const changedPoints = await qdrant.retrieve(COLLECTION(), {
        ids: idsOf(BUCKET, changedKey, 8),
        with_payload: true,
      });
      expect(changedPoints.map((p) => [p.payload?.etag, p.payload?.chunk_count, p.payload?.run_id])).toEqual(
        changedPoints.map(() => [head.ETag?.replace(/"/g, ''), chunksOf(changedKey), runId]),
      );
      expect(changedPoints).toHaveLength(chunksOf(changedKey));
      expect(await qdrant.retrieve(COLLECTION(), { ids: idsOf(BUCKET, newKey, 1) })).toHaveLength(1);
      expect(await qdrant.retrieve(COLLECTION(), { ids: idsOf(BUCKET, deletedKey, 1) })).toEqual([]);
      const [unchangedAfter] = await qdrant.retrieve(COLLECTION(), {
        ids: [pointId(BUCKET, unchangedKey, 0)],
        with_payload: true,
      });
      expect(unchangedAfter?.payload?.run_id).toBe(unchangedBefore?.payload?.run_id);
      expect(await count(COLLECTION())).toBe(expectedPoints());
      const stats = env.sim.stats();
      const gets = (await downloads()) - getsBefore;
      expect(stats.inputs).toBe(chunksOf(changedKey) + chunksOf(newKey));
      expect(gets).toBe(2);

      // malformed jobs fail at once with the field named; the worker goes on serving
      const missing = await queue.add('reindex', { bucket: BUCKET, model: 42 });
      await expect(missing.waitUntilFinished(events, 30_000)).rejects.toThrow(/collection/);
      const missingJob = await queue.getJob(missing.id!);
      expect(await missingJob?.getState()).toBe('failed');
      expect(missingJob?.failedReason).toMatch(/malformed reindex job: collection/);
      const short = await queue.add('reindex', { bucket: 'x', model: 42 });
      await expect(short.waitUntilFinished(events, 30_000)).rejects.toThrow(/bucket/);
      expect((await queue.getJob(short.id!))?.attemptsMade).toBe(1);

      const after = await queue.add('reindex', {
        bucket: BUCKET,
        collection: COLLECTION(),
        model: MODEL,
        dimension: 256,
        keys: [unchangedKey],
      });
      expect(await after.waitUntilFinished(events, 60_000)).toMatchObject({
        scanned: 1,
        unchanged: 1,
        queuedObjects: 0,
      });
      expect(worker?.child.exitCode).toBeNull();
      figures(
        `5 reindex job (4 keys: 1 changed, 1 new, 1 deleted, 1 unchanged): ${stats.requests} requests, ${stats.inputs} inputs, ${gets} downloads; malformed jobs failed: "${missingJob?.failedReason}"`,
      );
    } finally {
      await queue.close();
      await events.close();
      await connection.quit();
      await eventsConnection.quit();
    }
  }, 120_000);

  it('adds, lists and removes a nightly schedule, and refuses an invalid cron pattern naming --cron', async () => {
    const request = [
      '--bucket',
      BUCKET,
      '--collection',
      COLLECTION(),
      '--model',
      MODEL,
      '--dimension',
      '256',
      '--prune',
    ];
    // `--tz` defaults to UTC whatever the machine's zone: 02:00 is 02:00Z even in Shanghai
    const added = await runCli(['schedule', 'add', '--name', 'nightly', '--cron', '0 2 * * *', ...request], {
      ...cliEnv,
      TZ: 'Asia/Shanghai',
    });
    expectExit(added, 0);
    const next = /schedule nightly: "0 2 \* \* \*"; next run (\S+)/.exec(added.stdout)?.[1];
    expect(next).toBeDefined();
    const nextMs = Date.parse(next!);
    expect(nextMs).toBeGreaterThan(Date.now());
    expect(nextMs - Date.now()).toBeLessThanOrEqual(24 * 3600 * 1000);
    expect(new Date(nextMs).toISOString()).toMatch(/T02:00:00\.000Z$/);

    const listed = await runCli(['schedule', 'list'], cliEnv);
    expectExit(listed, 0);
    expect(listed.stdout).toContain(
      `nightly  "0 2 * * *" UTC  next ${next}  s3://${BUCKET}/ -> ${COLLECTION()} (${MODEL}, incremental, prune)`,
    );

    const removed = await runCli(['schedule', 'remove', 'nightly'], cliEnv);
    expectExit(removed, 0);
    expect(removed.stdout).toContain('schedule nightly removed');
    const empty = await runCli(['schedule', 'list'], cliEnv);
    expectExit(empty, 0);
    expect(empty.stdout).toContain('no schedules');
    expect(empty.stdout).not.toContain('nightly');

    const invalid = await runCli(
      ['schedule', 'add', '--name', 'broken', '--cron', 'every night at two', ...request],
      cliEnv,
    );
    expectExit(invalid, 2);
    expect(invalid.stderr).toMatch(/--cron/);
    const stillEmpty = await runCli(['schedule', 'list'], cliEnv);
    expect(stillEmpty.stdout).toContain('no schedules');
    figures(`6 schedule: next run of "0 2 * * *" ${next}; invalid cron exit ${invalid.code}: ${invalid.stderr.trim()}`);
  }, 120_000);
});
