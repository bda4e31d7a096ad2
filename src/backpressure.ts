/**
 * Backpressure: the producer queues a page's jobs only while the embed queue has room for
 * them, so the Redis memory a run takes is bounded by the queue's bound, not by the
 * bucket's size. While the queue holds too many jobs waiting, the producer waits (and its
 * listing with it: it holds the page that waits and at most one page listed ahead), and
 * goes on as the workers take them.
 *
 * Waiting happens between pages, after the previous page is recorded (runs.ts pageDone),
 * so a producer killed while it waits resumes after the last recorded page and queues
 * nothing twice.
 */
import type { Queue } from 'bullmq';
import type { ModelSpec } from './models.js';

/** What the producer asks before it queues jobs. */
export interface QueueRoom {
  /** The most jobs the queue should hold waiting (0: no bound). */
  readonly bound: number;
  /** Resolves once `jobs` more can be queued (at once if there is no bound). */
  wait(jobs: number): Promise<void>;
}

export const NO_BOUND: QueueRoom = { bound: 0, wait: () => Promise.resolve() };

/** Jobs waiting in the queue: waiting (also in a queue paused by a fatal error), prioritized and delayed (backoff). */
export async function waitingJobs(queue: Pick<Queue, 'getJobCountByTypes'>): Promise<number> {
  return queue.getJobCountByTypes('wait', 'prioritized', 'delayed');
}

/**
 * The default bound: half a minute of the model's requests at its rate limit (a job is
 * about one request), at least four jobs per worker slot so that no worker waits on the
 * producer, and at least 100 (two pages of short texts at 20 objects a job).
 */
export function defaultQueueBound(model: Pick<ModelSpec, 'rpm'>, concurrency: number): number {
  return Math.max(100, 4 * concurrency, Math.ceil((model.rpm ?? 0) / 2));
}

export interface RoomOptions {
  readonly bound: number;
  /** How often the queue is looked at while waiting. @defaultValue 250 */
  readonly pollMs?: number;
  /** Called once when the producer starts waiting, and once when it goes on. */
  readonly onPause?: (info: { waiting: number; bound: number }) => void | Promise<void>;
  readonly onResume?: (info: { waitedMs: number }) => void | Promise<void>;
}

/**
 * Room in `queue`: `wait(n)` resolves when the jobs waiting plus `n` fit in the bound (or,
 * for a page of more jobs than the bound, once the queue is empty).
 */
export function queueRoom(queue: Pick<Queue, 'getJobCountByTypes'>, opts: RoomOptions): QueueRoom {
  if (opts.bound <= 0) return NO_BOUND;
  const pollMs = opts.pollMs ?? 250;
  return {
    bound: opts.bound,
    async wait(jobs: number): Promise<void> {
      if (jobs <= 0) return;
      const fits = (waiting: number): boolean => waiting === 0 || waiting + jobs <= opts.bound;
      let waiting = await waitingJobs(queue);
      if (fits(waiting)) return;
      const since = Date.now();
      await opts.onPause?.({ waiting, bound: opts.bound });
      while (!fits(waiting)) {
        await new Promise((r) => setTimeout(r, pollMs));
        waiting = await waitingJobs(queue);
      }
      await opts.onResume?.({ waitedMs: Date.now() - since });
    },
  };
}
