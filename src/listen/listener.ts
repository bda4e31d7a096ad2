/**
 * The listener's core, whatever the source of the events: a delivery's events are mapped
 * to their targets (bucket -> collection and model) and recorded as pending keys; a loop
 * coalesces each target's pending keys into batches (at most `maxKeys` keys, or whatever is
 * pending once the oldest key has waited `maxWaitMs`), queues each batch as one `reindex`
 * job with `keys` (the reindex worker HEADs every key: an existing object is indexed
 * incrementally, so an unchanged one costs nothing; a missing one loses its points), and
 * follows the batch until its run is finished, then lets its keys into the next batch.
 */
import type { Logger } from '../log.js';
import { isFinished } from '../runs.js';
import type { RunStore } from '../runs.js';
import type { ParsedNotification } from './events.js';
import { kindCounter } from './state.js';
import type { BatchRecord, ListenerState, Source, Target } from './state.js';

export interface ListenerOptions {
  readonly targets: readonly Target[];
  /** A batch holds at most this many keys. */
  readonly maxKeys: number;
  /** A pending key waits at most this long for others to join its batch. */
  readonly maxWaitMs: number;
  /** How often the loop looks for due keys and finished batches. @defaultValue 250 */
  readonly tickMs?: number;
}

/** A batch as a reindex job's data (a `keys` job, incremental). */
export interface KeysJob {
  readonly bucket: string;
  readonly collection: string;
  readonly model: string;
  readonly dimension?: number;
  readonly keys: readonly string[];
}

/** Where a batch's job stands in the reindex queue. */
export type BatchJobState =
  | { readonly state: 'missing' }
  | { readonly state: 'pending' }
  | { readonly state: 'failed'; readonly reason: string }
  | { readonly state: 'completed'; readonly runId?: string };

/** The reindex queue as the listener uses it (the CLI gives it BullMQ's, with the reindex jobs' options). */
export interface BatchQueue {
  /** Adds the batch's job under `id`; adding an id already queued adds nothing. */
  add(id: string, job: KeysJob): Promise<void>;
  state(id: string): Promise<BatchJobState>;
}

export interface ListenerDeps {
  readonly state: ListenerState;
  readonly queue: BatchQueue;
  readonly runs: Pick<RunStore, 'get'>;
  readonly log: Logger;
}

export class Listener {
  private readonly byBucket = new Map<string, Target[]>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  private lastTickError: string | undefined;

  constructor(
    private readonly deps: ListenerDeps,
    private readonly opts: ListenerOptions,
  ) {
    for (const t of opts.targets) this.byBucket.set(t.bucket, [...(this.byBucket.get(t.bucket) ?? []), t]);
  }

  /**
   * Records one delivery. Resolves once its keys are pending in Redis (then the source
   * acknowledges it); rejects when they could not be written (then it must not).
   */
  async deliver(source: Source, parsed: ParsedNotification): Promise<void> {
    const { log } = this.deps;
    const counts: Record<string, number> = {};
    const inc = (name: string, n = 1): void => void (counts[name] = (counts[name] ?? 0) + n);
    const now = Date.now();
    const events = [];
    for (const e of parsed.events) {
      const targets = this.byBucket.get(e.bucket);
      if (!targets) {
        inc('ignored:unmapped-bucket');
        log.info(
          { source, event: e.name, bucket: e.bucket, key: e.key },
          'event of a bucket with no --map entry, acknowledged and ignored',
        );
        continue;
      }
      inc(kindCounter(source, e.kind));
      // a store whose clock runs ahead must not hold a key back: a key is due from its arrival at the latest
      events.push({ ...e, time: Math.min(e.time, now), targets });
    }
    for (const i of parsed.ignored) {
      inc(
        i.name === 's3:TestEvent'
          ? 'ignored:test-event'
          : i.name.startsWith('(')
            ? 'ignored:malformed'
            : 'ignored:other-event',
      );
      log.info({ source, event: i.name, reason: i.reason }, 'event acknowledged and ignored');
    }
    await this.deps.state.record(source, events, counts);
  }

  start(): void {
    const loop = (): void => {
      if (this.stopped) return;
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
        if (!this.stopped) this.timer = setTimeout(loop, this.opts.tickMs ?? 250);
      });
    };
    loop();
  }

  /** Stops the loop (after the tick in progress). Pending keys stay in Redis for the next listener. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
  }

  /** One pass: queue the batches that are due, and release the ones whose run is finished. */
  async tick(): Promise<void> {
    try {
      for (const target of this.opts.targets) {
        for (;;) {
          const batch = await this.deps.state.take(target, this.opts.maxKeys, this.opts.maxWaitMs);
          if (!batch) break;
          await this.enqueue(batch);
        }
      }
      await this.follow();
      if (this.lastTickError !== undefined) this.deps.log.info('listener loop works again');
      this.lastTickError = undefined;
    } catch (err) {
      const message = (err as Error).message;
      // one line per kind of trouble, not one per tick
      if (message !== this.lastTickError) this.deps.log.warn({ err: message }, 'listener loop failed, retrying');
      this.lastTickError = message;
    }
  }

  private async enqueue(batch: BatchRecord): Promise<void> {
    const data: KeysJob = {
      bucket: batch.target.bucket,
      collection: batch.target.collection,
      model: batch.target.model,
      ...(batch.target.dimension !== undefined ? { dimension: batch.target.dimension } : {}),
      keys: batch.keys,
    };
    // the batch's id is the job's: adding it again after a crash is the same job
    await this.deps.queue.add(batch.id, data);
    await this.deps.state.markQueued(batch.id);
    await this.deps.state.count({ batchesQueued: 1, keysQueued: batch.keys.length });
    this.deps.log.info(
      {
        batch: batch.id,
        bucket: batch.target.bucket,
        collection: batch.target.collection,
        keys: batch.keys.length,
        waitedMs: Date.now() - batch.oldest,
      },
      'batch queued',
    );
  }

  /** Every batch not done: queued if a crash left it unqueued, released once its run is finished or its job failed. */
  private async follow(): Promise<void> {
    const { state, queue, runs, log } = this.deps;
    for (const id of await state.batchIds()) {
      const batch = await state.batch(id);
      if (!batch) continue;
      if (!batch.queued) {
        await this.enqueue(batch);
        continue;
      }
      let runId = batch.runId;
      const job = await queue.state(id);
      if (job.state === 'failed') {
        await state.release(batch, {
          failure: job.reason,
          counts: { batchesFailed: 1, keysFailed: batch.keys.length },
        });
        log.warn(
          { batch: id, keys: batch.keys.length, reason: job.reason },
          'batch failed: its keys were not reindexed',
        );
        continue;
      }
      if (job.state === 'pending') continue;
      if (job.state === 'completed') {
        runId ??= job.runId;
        if (runId && !batch.runId) await state.noteRun(id, runId);
      } else if (!runId) {
        const reason = 'its reindex job no longer exists (removed before it completed)';
        await state.release(batch, { failure: reason, counts: { batchesFailed: 1, keysFailed: batch.keys.length } });
        log.warn({ batch: id, keys: batch.keys.length, reason }, 'batch failed: its keys were not reindexed');
        continue;
      }
      if (!runId) continue;
      const run = await runs.get(runId);
      if (!run || !isFinished(run)) continue;
      const c = run.counters;
      await state.release(batch, {
        counts: {
          batchesDone: 1,
          keysDone: batch.keys.length,
          objectsIndexed: c.objectsIndexed,
          objectsUnchanged: c.unchanged,
          objectsDeleted: c.deleted,
          objectsSkipped: c.skipped + c.objectsSkipped,
          objectsFailed: c.objectsFailed,
        },
      });
      if (c.objectsFailed > 0)
        log.warn(
          { batch: id, run: runId, failed: c.objectsFailed },
          'batch done with failures: mm-ingest failures --run shows them',
        );
      log.info(
        {
          batch: id,
          run: runId,
          keys: batch.keys.length,
          indexed: c.objectsIndexed,
          unchanged: c.unchanged,
          deleted: c.deleted,
          lagMs: Date.now() - batch.oldest,
        },
        'batch done',
      );
    }
  }
}
