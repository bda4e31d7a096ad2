/**
 * The listener's state in Redis, beside the queues (same prefix, so a cluster's hash tag
 * keeps it in one slot):
 * - `{p}:listen:targets`            hash: target id -> JSON target (bucket, collection, model);
 * - `{p}:listen:pending:{target}`   sorted set: key -> when its oldest unprocessed event arrived (ms);
 * - `{p}:listen:events:{target}`    sorted set: key -> when that event happened, as the store says (ms; the lag);
 * - `{p}:listen:inflight:{target}`  hash: key -> batch id, while a batch holding the key is not done;
 * - `{p}:listen:batches`            sorted set: batch id -> oldest event time of its keys;
 * - `{p}:listen:batch:{id}`         hash: target, oldest, flushedAt, queued, runId; `...:keys` list: its keys;
 * - `{p}:listen:stats`              hash: counters (events by source and kind, ignored, batches...);
 * - `{p}:listen:failures`           list: the latest failed batches, JSON, newest first.
 *
 * A delivery is acknowledged (SQS message deleted, webhook answered 200, Redis list entry
 * removed) once its keys are in the pending set: as durable as the reindex queue itself,
 * since it is the same Redis. A flush moves at most N keys of a target from pending into a
 * batch, in one script, and then adds the batch's reindex job under the batch's id (an add
 * repeated after a crash is the same job). A key whose batch is not done waits in pending:
 * events of one key are resolved one batch after the other, so a deletion's HEAD comes
 * after the points of the creation before it were written, and an overwrite arriving while
 * the first version is embedded costs nothing once that version is found current.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { RedisClient } from '../connections.js';
import { RELEASE, TAKE } from './batch-scripts.js';
import type { BucketEvent, EventKind } from './events.js';

export interface Target {
  readonly bucket: string;
  readonly collection: string;
  readonly model: string;
  /** The vector dimension; the model's default when absent. */
  readonly dimension?: number;
}

export const targetId = (t: Target): string =>
  createHash('sha256')
    .update(`${t.bucket}\n${t.collection}\n${t.model}${t.dimension !== undefined ? `\n${t.dimension}` : ''}`)
    .digest('hex')
    .slice(0, 16);

export type Source = 'sqs' | 'webhook' | 'redis';

export interface BatchRecord {
  readonly id: string;
  readonly target: Target;
  readonly keys: string[];
  /** Oldest event time among its keys (ms). */
  readonly oldest: number;
  readonly flushedAt: number;
  readonly queued: boolean;
  readonly runId?: string;
}

export interface ListenerSnapshot {
  /** Seconds since the oldest event not yet processed (pending or in a batch that is not done); 0 when none. */
  readonly lagSeconds: number;
  readonly pendingKeys: number;
  readonly batchesInFlight: number;
  readonly keysInFlight: number;
  readonly counts: Readonly<Record<string, number>>;
  readonly targets: readonly (Target & { pending: number; inFlight: number })[];
  readonly failures: readonly BatchFailure[];
}

export interface BatchFailure {
  readonly batch: string;
  readonly target: Target;
  readonly keys: number;
  readonly at: string;
  readonly reason: string;
  /** The first keys of the batch (at most 20), to retry or inspect. */
  readonly sample: string[];
}

const MAX_FAILURES_KEPT = 100;

export class ListenerState {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  private k(suffix: string): string {
    return `${this.prefix}:listen:${suffix}`;
  }

  /** Registers the targets this listener feeds (status lists them, a flush finds them). */
  async register(targets: readonly Target[]): Promise<void> {
    if (targets.length === 0) return;
    await this.redis.hset(this.k('targets'), Object.fromEntries(targets.map((t) => [targetId(t), JSON.stringify(t)])));
  }

  async targets(): Promise<Target[]> {
    const h = await this.redis.hgetall(this.k('targets'));
    return Object.values(h).map((v) => JSON.parse(v) as Target);
  }

  /**
   * Records a delivery's events in the pending sets of their targets, with its counts, in one
   * transaction: once it returns, the delivery may be acknowledged.
   */
  async record(
    source: Source,
    events: readonly (BucketEvent & { readonly targets: readonly Target[] })[],
    counts: Readonly<Record<string, number>>,
    arrived = Date.now(),
  ): Promise<void> {
    const multi = this.redis.multi();
    for (const e of events) {
      // LT: a key keeps the arrival and the time of its oldest unprocessed event (a new key is added)
      for (const t of e.targets) {
        multi.zadd(this.k(`pending:${targetId(t)}`), 'LT', arrived, e.key);
        multi.zadd(this.k(`events:${targetId(t)}`), 'LT', e.time, e.key);
      }
    }
    for (const [name, n] of Object.entries(counts)) if (n > 0) multi.hincrby(this.k('stats'), name, n);
    multi.hincrby(this.k('stats'), `deliveries:${source}`, 1);
    const results = await multi.exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed)
      throw failed?.[0] ?? new Error("the listener's pending set was not written (transaction aborted)");
  }

  /** Moves a batch's worth of due keys of a target into a new batch; returns it, or undefined when nothing is due. */
  async take(target: Target, maxKeys: number, maxWaitMs: number, now = Date.now()): Promise<BatchRecord | undefined> {
    const tid = targetId(target);
    const id = `listen-${now.toString(36)}-${randomBytes(6).toString('hex')}`;
    const taken = Number(
      await this.redis.eval(
        TAKE,
        6,
        this.k(`pending:${tid}`),
        this.k(`inflight:${tid}`),
        this.k('batches'),
        this.k(`batch:${id}`),
        this.k(`batch:${id}:keys`),
        this.k(`events:${tid}`),
        maxKeys,
        now - maxWaitMs,
        id,
        now,
        tid,
      ),
    );
    if (taken === 0) return undefined;
    return this.batch(id);
  }

  async batch(id: string): Promise<BatchRecord | undefined> {
    const [h, keys] = await Promise.all([
      this.redis.hgetall(this.k(`batch:${id}`)),
      this.redis.lrange(this.k(`batch:${id}:keys`), 0, -1),
    ]);
    if (!h.target) return undefined;
    const target = JSON.parse((await this.redis.hget(this.k('targets'), h.target)) ?? 'null') as Target | null;
    if (!target) return undefined;
    return {
      id,
      target,
      keys,
      oldest: Number(h.oldest),
      flushedAt: Number(h.flushedAt),
      queued: h.queued === '1',
      ...(h.runId ? { runId: h.runId } : {}),
    };
  }

  /** Ids of the batches not done, oldest event first. */
  async batchIds(): Promise<string[]> {
    return this.redis.zrange(this.k('batches'), '0', '-1');
  }

  async markQueued(id: string): Promise<void> {
    await this.redis.hset(this.k(`batch:${id}`), 'queued', '1');
  }

  async noteRun(id: string, runId: string): Promise<void> {
    await this.redis.hset(this.k(`batch:${id}`), 'runId', runId);
  }

  /** The batch is done (or failed for good): its keys may go into the next batch. */
  async release(
    batch: BatchRecord,
    outcome: { failure?: string; counts: Readonly<Record<string, number>> },
  ): Promise<void> {
    const tid = targetId(batch.target);
    if (outcome.failure !== undefined) {
      const failure: BatchFailure = {
        batch: batch.id,
        target: batch.target,
        keys: batch.keys.length,
        at: new Date().toISOString(),
        reason: outcome.failure,
        sample: batch.keys.slice(0, 20),
      };
      await this.redis
        .multi()
        .lpush(this.k('failures'), JSON.stringify(failure))
        .ltrim(this.k('failures'), 0, MAX_FAILURES_KEPT - 1)
        .exec();
    }
    const multi = this.redis.multi();
    multi.eval(
      RELEASE,
      4,
      this.k(`inflight:${tid}`),
      this.k('batches'),
      this.k(`batch:${batch.id}`),
      this.k(`batch:${batch.id}:keys`),
      batch.id,
    );
    for (const [name, n] of Object.entries(outcome.counts)) if (n > 0) multi.hincrby(this.k('stats'), name, n);
    await multi.exec();
  }

  async count(counts: Readonly<Record<string, number>>): Promise<void> {
    const entries = Object.entries(counts).filter(([, n]) => n > 0);
    if (entries.length === 0) return;
    const multi = this.redis.multi();
    for (const [name, n] of entries) multi.hincrby(this.k('stats'), name, n);
    await multi.exec();
  }

  /** Whether any listener ever recorded anything under this prefix. */
  async exists(): Promise<boolean> {
    return (await this.redis.exists(this.k('stats'), this.k('targets'))) > 0;
  }

  async snapshot(now = Date.now()): Promise<ListenerSnapshot> {
    const targets = await this.targets();
    const perTarget = await Promise.all(
      targets.map(async (t) => {
        const tid = targetId(t);
        const [pending, inFlight, first] = await Promise.all([
          this.redis.zcard(this.k(`pending:${tid}`)),
          this.redis.hlen(this.k(`inflight:${tid}`)),
          this.redis.zrange(this.k(`events:${tid}`), '0', '0', 'WITHSCORES'),
        ]);
        return { ...t, pending, inFlight, oldest: first[1] !== undefined ? Number(first[1]) : undefined };
      }),
    );
    const [batches, firstBatch, stats, failures] = await Promise.all([
      this.redis.zcard(this.k('batches')),
      this.redis.zrange(this.k('batches'), '0', '0', 'WITHSCORES'),
      this.redis.hgetall(this.k('stats')),
      this.redis.lrange(this.k('failures'), 0, 9),
    ]);
    const oldest = Math.min(
      ...perTarget.map((t) => t.oldest ?? Infinity),
      firstBatch[1] !== undefined ? Number(firstBatch[1]) : Infinity,
    );
    return {
      lagSeconds: Number.isFinite(oldest) ? Math.max(0, (now - oldest) / 1000) : 0,
      pendingKeys: perTarget.reduce((n, t) => n + t.pending, 0),
      batchesInFlight: batches,
      keysInFlight: perTarget.reduce((n, t) => n + t.inFlight, 0),
      counts: Object.fromEntries(Object.entries(stats).map(([k, v]) => [k, Number(v)])),
      targets: perTarget.map(({ oldest: _o, ...t }) => t),
      failures: failures.map((f) => JSON.parse(f) as BatchFailure),
    };
  }
}

export const kindCounter = (source: Source, kind: EventKind): string => `events:${source}:${kind}`;
