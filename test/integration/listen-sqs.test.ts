/**
 * `mm-ingest listen --sqs-queue-url` against ElasticMQ, a real SQS-compatible server on the
 * machine's Java. MinIO has no SQS target, so the test sends what S3 sends to a queue (its
 * record format, keys URL-encoded with `+` for spaces, one record a message, a test event
 * first) for objects it really puts into and deletes from MinIO. The listener and a worker
 * run as real processes; the listener is SIGKILLed mid-burst.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CreateQueueCommand, GetQueueAttributesCommand, SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { QdrantClient } from '@qdrant/js-client-rest';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { ListenerState } from '../../src/listen/state.js';
import { startElasticMq } from '../support/elasticmq.js';
import type { ElasticMq } from '../support/elasticmq.js';
import { until, words } from '../support/incremental.js';
import { bucketEtags, comparablePoints, indexedEtags, sameMap } from '../support/listen.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, PipelineEnv } from '../support/pipeline.js';
import { createBucket, deleteObject, putObject } from '../support/s3.js';

const MODEL = 'qwen3-vl-embedding';
const DIMENSION = 256;
const BUCKET = 'listen-sqs';
const ODD = ['sqs/a b c.txt', 'sqs/ñandú 東京+plus&%.txt'];

/** A key as S3 writes it in a record: URL-encoded, `+` for a space, `/` as is. */
const s3Encode = (key: string): string => encodeURIComponent(key).replace(/%20/g, '+').replace(/%2F/g, '/');

describe('mm-ingest listen with an SQS queue (ElasticMQ)', () => {
  let elastic: ElasticMq;
  let env: PipelineEnv;
  let cliEnv: NodeJS.ProcessEnv;
  let sqs: SQSClient;
  let queueUrl: string;
  let qdrant: QdrantClient;
  let worker: BackgroundCli;
  let listener: BackgroundCli | undefined;
  let state: ListenerState;
  const collection = (): string => `sqs-${env.prefix}`;

  /** The message S3 sends for one event of a key (its ETag and size from MinIO when it exists). */
  const message = async (eventName: 'ObjectCreated:Put' | 'ObjectRemoved:Delete', key: string): Promise<string> => {
    const head =
      eventName === 'ObjectCreated:Put'
        ? await env.s3client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))
        : undefined;
    return JSON.stringify({
      Records: [
        {
          eventVersion: '2.1',
          eventSource: 'aws:s3',
          awsRegion: 'us-east-1',
          eventTime: new Date().toISOString(),
          eventName,
          s3: {
            s3SchemaVersion: '1.0',
            configurationId: 'mm-ingest',
            bucket: { name: BUCKET, arn: `arn:aws:s3:::${BUCKET}` },
            object: {
              key: s3Encode(key),
              ...(head ? { size: head.ContentLength, eTag: head.ETag?.replace(/"/g, '') } : {}),
              sequencer: Date.now().toString(16).toUpperCase(),
            },
          },
        },
      ],
    });
  };
  const send = async (bodies: readonly string[]): Promise<void> => {
    for (let i = 0; i < bodies.length; i += 10) {
      const out = await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: bodies.slice(i, i + 10).map((MessageBody, j) => ({ Id: String(j), MessageBody })),
        }),
      );
      expect(out.Failed ?? []).toEqual([]);
    }
  };
  const queueEmpty = async (): Promise<boolean> => {
    const a =
      (
        await sqs.send(
          new GetQueueAttributesCommand({
            QueueUrl: queueUrl,
            AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
          }),
        )
      ).Attributes ?? {};
    return a.ApproximateNumberOfMessages === '0' && a.ApproximateNumberOfMessagesNotVisible === '0';
  };
  const idle = async (): Promise<boolean> => {
    const s = await state.snapshot();
    return s.pendingKeys === 0 && s.batchesInFlight === 0 && (await queueEmpty());
  };
  const startListener = async (): Promise<BackgroundCli> => {
    const cli = startCli(
      [
        'listen',
        '--sqs-queue-url',
        queueUrl,
        '--map',
        `${BUCKET}=${collection()}:${MODEL}:${DIMENSION}`,
        '--batch-keys',
        '25',
        '--batch-seconds',
        '1',
      ],
      cliEnv,
    );
    await cli.waitFor(/listen ready/);
    return cli;
  };

  beforeAll(async () => {
    [elastic, env] = await Promise.all([startElasticMq(), startPipelineEnv()]);
    cliEnv = { ...env.env, RATE_LIMIT: 'off' };
    sqs = new SQSClient({
      endpoint: elastic.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    // a short visibility timeout: what a killed listener received and did not delete comes back soon
    queueUrl = (
      await sqs.send(
        new CreateQueueCommand({ QueueName: `listen-${env.prefix}`, Attributes: { VisibilityTimeout: '3' } }),
      )
    ).QueueUrl!;
    qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    state = new ListenerState(env.redis, env.prefix);
    await createBucket(env.s3client, BUCKET);
    worker = startCli(['worker', '--concurrency', '4'], cliEnv);
    await worker.waitFor(/worker ready/);
  }, 120_000);

  afterAll(async () => {
    await listener?.stop('SIGKILL');
    await worker?.stop();
    sqs?.destroy();
    await env?.close();
    await elastic?.close();
  });

  it('a test event, a malformed message, a burst with a SIGKILLed listener, duplicates, stale deliveries and odd keys: messages all deleted, the collection equal to a fresh full index', async () => {
    const c = env.s3client;
    const keys = [...Array.from({ length: 38 }, (_, i) => `sqs/doc-${String(i).padStart(3, '0')}.txt`), ...ODD];
    for (const [i, k] of keys.entries()) await putObject(c, BUCKET, k, `sqs ${i}: ${words(700 + i, 8)}`);
    const created = await Promise.all(keys.map((k) => message('ObjectCreated:Put', k)));
    await send(created.slice(0, 20));
    listener = await startListener();
    await until(
      'the listener to take some messages',
      async () => (((await state.snapshot()).counts['deliveries:sqs'] ?? 0) >= 3 ? true : undefined),
      30_000,
      20,
    );
    listener.child.kill('SIGKILL');
    await listener.exited();
    // the rest of the burst, each message twice, while no listener runs
    await send([...created.slice(20), ...created.slice(20)]);

    // flip.txt deleted then created again, its delete delivered last; gone.txt created then deleted, its create delivered last
    await putObject(c, BUCKET, 'sqs/flip.txt', 'flip, first');
    const flipRemoved = await message('ObjectRemoved:Delete', 'sqs/flip.txt');
    await deleteObject(c, BUCKET, 'sqs/flip.txt');
    await putObject(c, BUCKET, 'sqs/flip.txt', 'flip, second');
    await putObject(c, BUCKET, 'sqs/gone.txt', 'gone soon');
    const goneCreated = await message('ObjectCreated:Put', 'sqs/gone.txt');
    await deleteObject(c, BUCKET, 'sqs/gone.txt');
    await send([
      await message('ObjectCreated:Put', 'sqs/flip.txt'),
      flipRemoved,
      await message('ObjectRemoved:Delete', 'sqs/gone.txt'),
      goneCreated,
    ]);
    // overwrites and deletes
    for (const k of keys.slice(0, 5)) await putObject(c, BUCKET, k, `overwritten ${k}`);
    await send(await Promise.all(keys.slice(0, 5).map((k) => message('ObjectCreated:Put', k))));
    for (const k of keys.slice(5, 10)) await deleteObject(c, BUCKET, k);
    await send(
      keys.slice(5, 10).map((k) =>
        JSON.stringify({
          Records: [
            {
              eventName: 'ObjectRemoved:Delete',
              eventTime: new Date().toISOString(),
              s3: { bucket: { name: BUCKET }, object: { key: s3Encode(k) } },
            },
          ],
        }),
      ),
    );

    listener = await startListener();
    // sent to this listener, which is not killed: each recorded once, and deleted
    await send([
      JSON.stringify({
        Service: 'Amazon S3',
        Event: 's3:TestEvent',
        Time: new Date().toISOString(),
        Bucket: BUCKET,
        RequestId: 'r',
        HostId: 'h',
      }),
      'not json at all',
    ]);
    await until(
      'the queue to be empty and the collection to match the bucket',
      async () =>
        (await idle()) && sameMap(await bucketEtags(c, BUCKET), await indexedEtags(qdrant, collection()))
          ? true
          : undefined,
      90_000,
      250,
    );
    const indexed = await indexedEtags(qdrant, collection());
    expect(indexed.has('sqs/flip.txt')).toBe(true);
    expect(indexed.has('sqs/gone.txt')).toBe(false);
    for (const k of ODD) expect(indexed.has(k)).toBe(true);
    expect(indexed.size).toBe(keys.length - 5 + 1);

    const fresh = `fresh-${collection()}`;
    const run = await runCli(
      [
        'index',
        '--bucket',
        BUCKET,
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
    expect(await comparablePoints(qdrant, collection())).toEqual(await comparablePoints(qdrant, fresh));

    // every creation message delivered once more: deleted, resolved, and not one embedding request
    const before = env.sim.stats().requests;
    const { batchesDone = 0 } = (await state.snapshot()).counts;
    await send(created);
    await until(
      'the repeated messages to be processed',
      async () =>
        ((await state.snapshot()).counts.batchesDone ?? 0) > batchesDone && (await idle()) ? true : undefined,
      30_000,
      100,
    );
    expect(env.sim.stats().requests).toBe(before);

    const counts = (await state.snapshot()).counts;
    expect(counts['ignored:test-event']).toBe(1);
    expect(counts['ignored:malformed']).toBe(1);
    const status = await runCli(['status'], cliEnv);
    expect(status.stdout).toMatch(/listener: lag 0\.0 s; 0 keys pending, 0 batches \(0 keys\) in flight/);
    expect(status.stdout).toMatch(/ignored \(test-event 1, other-event 0, malformed 1, unmapped-bucket 0\)/);
  }, 180_000);
});
