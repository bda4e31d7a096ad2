/**
 * The one place where the pipeline's errors become BullMQ's terms:
 * - a job given back by a stopping worker: `DelayedError` (back to the queue at once, no
 *   attempt used);
 * - a fatal embedding API error (key, entitlement, model, a quota that is gone): the queue
 *   is paused for every worker and the job goes back untouched with `RateLimitError`;
 * - job data no attempt can process (`UnprocessableJobError`), and a refusal of the object
 *   store that a retry would meet again: `UnrecoverableError`, failed at once;
 * - anything else is thrown as it is (BullMQ retries it while attempts remain), its
 *   message and stack without the secrets an outside system's message may hold.
 */
import { DelayedError, UnrecoverableError, Worker } from 'bullmq';
import type { Job } from 'bullmq';
import { EmbeddingApiError, UnprocessableJobError } from '../src/errors.js';
import { ObjectStoreError } from '../src/object-store.js';
import { redactError } from '../src/redact.js';

export interface JobErrorContext {
  readonly job: Job;
  readonly token: string | undefined;
  /** The worker is stopping: the job goes back to the queue. */
  readonly stopping: boolean;
  /** The worker that runs the job; with `pause`, fatal API errors pause the queue. */
  readonly worker?: Worker;
  readonly pause?: (reason: string, err: EmbeddingApiError) => Promise<void>;
}

/** What the processor throws for `err`. */
export async function inBullmqTerms(err: unknown, ctx: JobErrorContext): Promise<Error> {
  if (ctx.stopping && ctx.token) {
    await ctx.job.moveToDelayed(Date.now(), ctx.token);
    return new DelayedError();
  }
  if (err instanceof EmbeddingApiError && err.decision === 'fatal' && ctx.pause && ctx.worker) {
    await ctx.pause(`${err.status} ${err.code}: ${err.providerMessage}`, err);
    await ctx.worker.rateLimit(1000);
    return Worker.RateLimitError();
  }
  if (err instanceof UnprocessableJobError) return redactError(new UnrecoverableError(err.message));
  if (isRefusedForGood(err)) {
    // the same call would be refused the same way: fail now with the reason, not after every backoff
    const final = new UnrecoverableError(err.message);
    return redactError(Object.assign(final, { code: err.code }));
  }
  return redactError(err instanceof Error ? err : new Error(String(err)));
}

/**
 * A refusal of the object store no later attempt can change: its `fatal` and `request`
 * decisions (a key or signature refused, a bucket that does not exist). Qdrant's refusals are
 * not among them: the job's retry writes the vectors kept for it (parked.ts), buying nothing.
 */
function isRefusedForGood(err: unknown): err is ObjectStoreError {
  return err instanceof ObjectStoreError && (err.decision === 'fatal' || err.decision === 'request');
}

/** Whether BullMQ will not try a failed job again. */
export function isFinalFailure(job: Job, err: Error): boolean {
  return err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
}
