/**
 * `mm-ingest listen` fed by MinIO for real: MinIO started with a Redis target (format
 * access) and a webhook target through its MINIO_NOTIFY_* variables, each bucket pointed at
 * one with PutBucketNotificationConfiguration; the listener and a worker as real processes,
 * the simulator, the Qdrant stand-in (or QDRANT_URL). After each scenario the collection is
 * compared with a fresh full index of the bucket, point for point.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QdrantClient } from '@qdrant/js-client-rest';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListenerState } from '../../src/listen/state.js';
import { deleteMany, putMany, until, words } from '../support/incremental.js';
import { bucketEtags, comparablePoints, indexedEtags, minioTargets, notifyTo, sameMap } from '../support/listen.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, PipelineEnv } from '../support/pipeline.js';
import { freePort } from '../support/ports.js';
import { createBucket, deleteObject, putObject } from '../support/s3.js';

const MODEL = 'qwen3-vl-embedding';
const DIMENSION = 256;
const VIA_REDIS = 'listen-redis';
const VIA_HOOK = 'listen-hook';
const BURST = 200;
const ODD_KEYS = [
  'notes/a b c.txt',
  'notes/café ünïcode 日本語.txt',
  'notes/plus+sign & 100%.txt',
  'notes/tab\tand ~tilde.txt',
];

describe('mm-ingest listen with MinIO notification targets', () => {
  let env: PipelineEnv;
  let cliEnv: NodeJS.ProcessEnv;
  let qdrant: QdrantClient;
  let worker: BackgroundCli;
  let listener: BackgroundCli | undefined;
  let state: ListenerState;
  let queueDir: string;
  let webhookPort: number;
  const token = randomBytes(16).toString('hex');
  const list = `listen-test-${randomBytes(4).toString('hex')}`;
  const collection = (bucket: string): string => `${bucket}-${env.prefix}`;
  const listenArgs = (): string[] => [
    'listen',
    '--redis-list',
    list,
    '--webhook-port',
    String(webhookPort),
    '--map',
    `${VIA_REDIS}=${collection(VIA_REDIS)}:${MODEL}:${DIMENSION}`,
    '--map',
    `${VIA_HOOK}=${collection(VIA_HOOK)}:${MODEL}:${DIMENSION}`,
    '--batch-keys',
    '50',
    '--batch-seconds',
    '1',
    '--metrics-port',
    '0',
  ];
  const startListener = async (): Promise<BackgroundCli> => {
    const cli = startCli(listenArgs(), { ...cliEnv, LISTEN_WEBHOOK_TOKEN: token });
    await cli.waitFor(/listen ready/);
    return cli;
  };
  const idle = async (): Promise<boolean> => {
    const s = await state.snapshot();
    const [queued, processing] = await Promise.all([env.redis.llen(list), env.redis.llen(`${list}:processing`)]);
    return s.pendingKeys === 0 && s.batchesInFlight === 0 && queued === 0 && processing === 0;
  };
  /** Waits until the collection holds exactly the bucket's objects at their current ETags, and the listener has nothing left. */
  const drained = (bucket: string): Promise<true> =>
    until(
      `${bucket}'s collection to match the bucket`,
      async () =>
        (await idle()) &&
        sameMap(await bucketEtags(env.s3client, bucket), await indexedEtags(qdrant, collection(bucket)))
          ? true
          : undefined,
      90_000,
      250,
    );
  /** A fresh full index of the bucket into another collection, compared point for point. */
  const expectSameAsFreshIndex = async (bucket: string): Promise<void> => {
    const fresh = `fresh-${collection(bucket)}`;
    const run = await runCli(
      [
        'index',
        '--bucket',
        bucket,
        '--collection',
        fresh,
        '--model',
        MODEL,
        '--dimension',
        String(DIMENSION),
        '--wait',
      ],
      cliEnv,
    );
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const [listened, indexed] = await Promise.all([
      comparablePoints(qdrant, collection(bucket)),
      comparablePoints(qdrant, fresh),
    ]);
    expect(listened.size).toBe(indexed.size);
    expect(listened).toEqual(indexed);
  };

  beforeAll(async () => {
    webhookPort = await freePort();
    queueDir = await mkdtemp(join(tmpdir(), 'minio-events-'));
    const redisUrl = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    env = await startPipelineEnv(
      {},
      {
        minioEnv: minioTargets({
          id: 'mmi',
          queueDir,
          webhook: { url: `http://127.0.0.1:${webhookPort}/`, token },
          redis: { address: `${redisUrl.hostname}:${redisUrl.port || 6379}`, list },
        }),
      },
    );
    cliEnv = { ...env.env, RATE_LIMIT: 'off' };
    qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    state = new ListenerState(env.redis, env.prefix);
    await createBucket(env.s3client, VIA_REDIS);
    await createBucket(env.s3client, VIA_HOOK);
    await notifyTo(env.s3client, VIA_REDIS, 'arn:minio:sqs::MMI:redis');
    await notifyTo(env.s3client, VIA_HOOK, 'arn:minio:sqs::MMI:webhook');
    worker = startCli(['worker', '--concurrency', '4'], cliEnv);
    await worker.waitFor(/worker ready/);
  }, 120_000);

  afterAll(async () => {
    await listener?.stop('SIGKILL');
    await worker?.stop();
    await env?.redis.del(list, `${list}:processing`);
    await env?.close();
    await rm(queueDir, { recursive: true, force: true });
  });

  it('Redis target: out-of-order and repeated deliveries, a 200-PUT burst with a SIGKILLed listener, overwrites, deletes and odd keys end equal to a fresh full index', async () => {
    const c = env.s3client;
    // before any listener: a delete then a re-create of flip.txt, and a key created then deleted
    await putObject(c, VIA_REDIS, 'flip.txt', 'flip, first version');
    await deleteObject(c, VIA_REDIS, 'flip.txt');
    await putObject(c, VIA_REDIS, 'flip.txt', 'flip, second version');
    await putObject(c, VIA_REDIS, 'gone.txt', 'here for a moment');
    await deleteObject(c, VIA_REDIS, 'gone.txt');
    await until(
      'MinIO to push its 5 events',
      async () => ((await env.redis.llen(list)) >= 5 ? true : undefined),
      30_000,
      100,
    );
    const captured = await env.redis.lrange(list, 0, -1);
    expect(captured).toHaveLength(5);
    expect(
      captured.map((e) => (JSON.parse(e) as { Event: { eventName: string }[] }[])[0]!.Event[0]!.eventName),
    ).toEqual([
      's3:ObjectCreated:Put',
      's3:ObjectRemoved:Delete',
      's3:ObjectCreated:Put',
      's3:ObjectCreated:Put',
      's3:ObjectRemoved:Delete',
    ]);
    // delivered out of order (each delete after its create), and every one twice
    await env.redis.del(list);
    await env.redis.rpush(list, ...[...captured].reverse(), ...captured);

    listener = await startListener();
    // the burst, with keys that need URL-encoding; the listener is killed halfway and started again
    const texts = new Map<string, string>();
    for (let i = 0; i < BURST - ODD_KEYS.length; i++)
      texts.set(`burst/doc-${String(i).padStart(4, '0')}.txt`, `doc ${i}: ${words(i, 8)}`);
    ODD_KEYS.forEach((k, i) => texts.set(k, `odd ${i}: ${words(500 + i, 8)}`));
    const entries = [...texts];
    await putMany(c, VIA_REDIS, new Map(entries.slice(0, BURST / 2)), 20);
    listener.child.kill('SIGKILL');
    await listener.exited();
    await putMany(c, VIA_REDIS, new Map(entries.slice(BURST / 2)), 20);
    listener = await startListener();
    // overwrites and deletes while it catches up
    await putMany(
      c,
      VIA_REDIS,
      new Map(entries.slice(0, 20).map(([k]) => [k, `overwritten ${k}: ${words(k.length, 9)}`])),
      20,
    );
    await deleteMany(
      c,
      VIA_REDIS,
      entries.slice(20, 40).map(([k]) => k),
    );
    await drained(VIA_REDIS);

    const indexed = await indexedEtags(qdrant, collection(VIA_REDIS));
    expect(indexed.has('flip.txt')).toBe(true);
    expect(indexed.has('gone.txt')).toBe(false);
    for (const k of ODD_KEYS) expect(indexed.has(k)).toBe(true);
    expect(indexed.size).toBe(1 + BURST - 20);
    await expectSameAsFreshIndex(VIA_REDIS);

    // the same five deliveries once more, after everything is done: resolved, and not one embedding request
    const before = env.sim.stats();
    const { batchesDone = 0 } = (await state.snapshot()).counts;
    await env.redis.rpush(list, ...captured);
    await until(
      'the repeated deliveries to be processed',
      async () =>
        ((await state.snapshot()).counts.batchesDone ?? 0) > batchesDone && (await idle()) ? true : undefined,
      30_000,
      100,
    );
    expect(env.sim.stats().requests).toBe(before.requests);
    expect(sameMap(await bucketEtags(c, VIA_REDIS), await indexedEtags(qdrant, collection(VIA_REDIS)))).toBe(true);

    const status = await runCli(['status'], cliEnv);
    expect(status.stdout).toMatch(/listener: lag 0\.0 s; 0 keys pending, 0 batches \(0 keys\) in flight/);
    expect(status.stdout).toMatch(
      new RegExp(`${VIA_REDIS} -> ${collection(VIA_REDIS)} \\(${MODEL}\\): 0 pending, 0 in flight`),
    );
    const metricsUrl = /metrics on (\S+)/.exec(listener.output())?.[1];
    const metrics = await (await fetch(metricsUrl!)).text();
    expect(metrics).toMatch(/^mm_ingest_listener_lag_seconds 0$/m);
    const created = Number(/^mm_ingest_listener_events_total\{event="redis:created"\} (\d+)$/m.exec(metrics)?.[1]);
    // every PUT of the burst and of the overwrites arrived at least once (a killed listener's entries come back)
    expect(created).toBeGreaterThanOrEqual(BURST + 20 + 3 * 3);
  }, 240_000);

  it('webhook target: only requests bearing the token, a test event acknowledged, creations and deletions end equal to a fresh full index', async () => {
    listener ??= await startListener();
    const hook = `http://127.0.0.1:${webhookPort}/`;
    const testEvent = JSON.stringify({
      Service: 'Amazon S3',
      Event: 's3:TestEvent',
      Time: new Date().toISOString(),
      Bucket: VIA_HOOK,
    });
    expect((await fetch(hook, { method: 'POST', body: testEvent })).status).toBe(401);
    expect(
      (await fetch(hook, { method: 'POST', body: testEvent, headers: { authorization: 'Bearer not-the-token' } }))
        .status,
    ).toBe(401);
    const ignoredBefore = (await state.snapshot()).counts['ignored:test-event'] ?? 0;
    expect(
      (await fetch(hook, { method: 'POST', body: testEvent, headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(200);
    expect((await state.snapshot()).counts['ignored:test-event']).toBe(ignoredBefore + 1);

    const texts = new Map<string, string>();
    for (let i = 0; i < 30; i++) texts.set(`hook/item ${i} ü.txt`, `hook ${i}: ${words(900 + i, 8)}`);
    await putMany(env.s3client, VIA_HOOK, texts, 10);
    await deleteMany(env.s3client, VIA_HOOK, [...texts.keys()].slice(0, 5));
    await drained(VIA_HOOK);
    expect((await indexedEtags(qdrant, collection(VIA_HOOK))).size).toBe(25);
    await expectSameAsFreshIndex(VIA_HOOK);
  }, 120_000);
});
