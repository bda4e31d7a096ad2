/**
 * The listener's batching against the machine's Redis (its state as it is kept), with the
 * reindex queue and the run records behind fakes of their interfaces: coalescing by count
 * and by time, one key's batches one after the other, a failed batch recorded with its
 * reason, a batch taken but not queued (a crash in between) queued by the next pass, and
 * the lag.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Listener } from '../../src/listen/listener.js';
import type { BatchJobState, BatchQueue, KeysJob } from '../../src/listen/listener.js';
import { ListenerState } from '../../src/listen/state.js';
import type { Target } from '../../src/listen/state.js';
import { createLogger } from '../../src/log.js';
import type { RunState } from '../../src/runs.js';
import type { ParsedNotification } from '../../src/listen/events.js';
import { runCli } from '../support/pipeline.js';

const TARGET: Target = { bucket: 'photos', collection: 'photo-index', model: 'qwen3-vl-embedding' };

/** A reindex queue that records what is added; a job's state is set by the test. */
class FakeQueue implements BatchQueue {
  readonly added = new Map<string, KeysJob>();
  readonly states = new Map<string, BatchJobState>();
  async add(id: string, job: KeysJob): Promise<void> {
    if (!this.added.has(id)) this.added.set(id, job);
    if (!this.states.has(id)) this.states.set(id, { state: 'pending' });
  }
  async state(id: string): Promise<BatchJobState> {
    return this.states.get(id) ?? { state: 'missing' };
  }
  batchOf(key: string): string[] {
    return [...this.added].filter(([, j]) => j.keys.includes(key)).map(([id]) => id);
  }
}

const finishedRun = (id: string): RunState =>
  ({
    id,
    scanStatus: 'complete',
    counters: {
      jobsDone: 1,
      jobsFailed: 0,
      jobsAdded: 1,
      jobsFollowed: 0,
      objectsIndexed: 1,
      unchanged: 0,
      deleted: 0,
      skipped: 0,
      objectsSkipped: 0,
      objectsFailed: 0,
    },
  }) as unknown as RunState;

const created = (...keys: string[]): ParsedNotification => ({
  events: keys.map((key) => ({
    bucket: TARGET.bucket,
    key,
    kind: 'created',
    name: 's3:ObjectCreated:Put',
    time: Date.now() - 5000,
  })),
  ignored: [],
});

describe('the listener batches', () => {
  let redis: Redis;
  let prefix: string;
  const log = createLogger('silent');

  beforeAll(() => {
    redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  });
  afterEach(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
  });
  afterAll(async () => {
    await redis.quit();
  });

  const setup = async (
    maxKeys: number,
    maxWaitMs: number,
  ): Promise<{ listener: Listener; queue: FakeQueue; state: ListenerState; runs: Map<string, RunState> }> => {
    prefix = `test-listen-${randomUUID().slice(0, 8)}`;
    const state = new ListenerState(redis, prefix);
    await state.register([TARGET]);
    const queue = new FakeQueue();
    const runs = new Map<string, RunState>();
    const listener = new Listener(
      { state, queue, runs: { get: async (id: string) => runs.get(id) }, log },
      { targets: [TARGET], maxKeys, maxWaitMs },
    );
    return { listener, queue, state, runs };
  };

  it('a batch is queued when N keys wait, the rest when the oldest has waited T; a duplicate key is one key', async () => {
    const { listener, queue, state } = await setup(5, 400);
    await listener.deliver('redis', created('a', 'b', 'c', 'd', 'e', 'f', 'g', 'a', 'b'));
    await listener.tick();
    expect([...queue.added.values()].map((j) => j.keys)).toEqual([['a', 'b', 'c', 'd', 'e']]);
    expect((await state.snapshot()).pendingKeys).toBe(2);
    await listener.tick();
    expect(queue.added.size).toBe(1); // f and g have not waited 400 ms yet
    await sleep(450);
    await listener.tick();
    expect([...queue.added.values()].map((j) => j.keys)).toEqual([
      ['a', 'b', 'c', 'd', 'e'],
      ['f', 'g'],
    ]);
    const job = [...queue.added.values()][0]!;
    expect(job).toMatchObject({ bucket: 'photos', collection: 'photo-index', model: 'qwen3-vl-embedding' });
  });

  it("a key whose batch is not finished waits for the next batch; the lag counts from its oldest event until the batch's run is finished", async () => {
    const { listener, queue, state, runs } = await setup(100, 0);
    await listener.deliver('webhook', created('a'));
    await listener.tick();
    const [first] = [...queue.added.keys()];
    expect((await state.snapshot()).lagSeconds).toBeGreaterThanOrEqual(5);
    // a new event of a (a delete, an overwrite) while its first batch runs, and one of b
    await listener.deliver('webhook', created('a', 'b'));
    await listener.tick();
    expect(queue.batchOf('a')).toEqual([first]);
    expect(queue.batchOf('b')).toHaveLength(1);
    expect((await state.snapshot()).pendingKeys).toBe(1);
    // the first batch's job completes, its run is not finished yet: a still waits
    queue.states.set(first!, { state: 'completed', runId: 'run-1' });
    await listener.tick();
    expect(queue.batchOf('a')).toEqual([first]);
    runs.set('run-1', finishedRun('run-1'));
    await listener.tick(); // releases the first batch
    await listener.tick(); // and a goes into a new one
    expect(queue.batchOf('a')).toHaveLength(2);
    for (const id of queue.added.keys()) {
      queue.states.set(id, { state: 'completed', runId: `run-${id}` });
      runs.set(`run-${id}`, finishedRun(`run-${id}`));
    }
    await listener.tick();
    const s = await state.snapshot();
    expect(s).toMatchObject({ lagSeconds: 0, pendingKeys: 0, batchesInFlight: 0, keysInFlight: 0 });
    expect(s.counts).toMatchObject({ 'events:webhook:created': 3, batchesQueued: 3, batchesDone: 3, keysDone: 3 });
  });

  it('a failed batch is recorded with its reason and lets its keys go', async () => {
    const { listener, queue, state } = await setup(100, 0);
    await listener.deliver('sqs', created('x', 'y'));
    await listener.tick();
    const [id] = [...queue.added.keys()];
    queue.states.set(id!, { state: 'failed', reason: 'reindex job refused: dimension: 100 is not a dimension' });
    await listener.tick();
    const s = await state.snapshot();
    expect(s.failures).toEqual([
      expect.objectContaining({
        batch: id,
        keys: 2,
        reason: 'reindex job refused: dimension: 100 is not a dimension',
        sample: ['x', 'y'],
        target: TARGET,
      }),
    ]);
    expect(s).toMatchObject({ batchesInFlight: 0, keysInFlight: 0 });
    expect(s.counts).toMatchObject({ batchesFailed: 1, keysFailed: 2 });
    // the keys are free again: a new event of x makes a new batch
    await listener.deliver('sqs', created('x'));
    await listener.tick();
    expect(queue.batchOf('x')).toHaveLength(2);
  });

  it('a batch taken by a listener that died before queuing it is queued by the next pass, under its own id', async () => {
    const { listener, queue, state } = await setup(100, 0);
    await listener.deliver('redis', created('k1', 'k2'));
    const orphan = await state.take(TARGET, 100, 0); // what the dead listener did
    expect(orphan?.keys).toEqual(['k1', 'k2']);
    expect(queue.added.size).toBe(0);
    await listener.tick();
    expect([...queue.added.keys()]).toEqual([orphan!.id]);
    expect(queue.added.get(orphan!.id)?.keys).toEqual(['k1', 'k2']);
  });

  it('unmapped buckets, test events and other kinds are counted as ignored, and nothing is pending', async () => {
    const { listener, state } = await setup(100, 0);
    await listener.deliver('webhook', {
      events: [{ bucket: 'elsewhere', key: 'k', kind: 'created', name: 's3:ObjectCreated:Put', time: Date.now() }],
      ignored: [
        { name: 's3:TestEvent', reason: 'a test event' },
        { name: 's3:ObjectAccessed:Get', reason: 'not an object creation or removal' },
        { name: '(malformed)', reason: 'not JSON' },
      ],
    });
    const s = await state.snapshot();
    expect(s.pendingKeys).toBe(0);
    expect(s.counts).toMatchObject({
      'ignored:unmapped-bucket': 1,
      'ignored:test-event': 1,
      'ignored:other-event': 1,
      'ignored:malformed': 1,
      'deliveries:webhook': 1,
    });
  });
});

// (a malformed --map entry, an unknown model or dimension: listen-events.test.ts)
describe('mm-ingest listen refuses bad input before it starts', () => {
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    REDIS_URL: 'redis://127.0.0.1:6399',
    CI: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
    [['--redis-list', 'events'], {}, /configuration error: --map: no bucket is mapped/],
    [
      ['--map', 'photos=idx:qwen3-vl-embedding'],
      {},
      /configuration error: listen: no source of events: give --sqs-queue-url, --webhook-port or --redis-list/,
    ],
    [
      ['--map', 'photos=idx:qwen3-vl-embedding', '--webhook-port', '9811'],
      {},
      /configuration error: LISTEN_WEBHOOK_TOKEN: is not set/,
    ],
    [
      ['--map', 'photos=idx:qwen3-vl-embedding', '--sqs-queue-url', 'photos-events'],
      {},
      /configuration error: --sqs-queue-url: "photos-events" is not a queue URL/,
    ],
  ];
  it.each(cases)(
    'listen %j',
    async (args, extra, message) => {
      // Redis at 6399 answers nothing: every one of these is refused before a connection
      const out = await runCli(['listen', ...args], { ...env, ...extra });
      expect({ code: out.code, stderr: out.stderr.trim() }).toEqual({
        code: 2,
        stderr: expect.stringMatching(message),
      });
    },
    30_000,
  );
});
