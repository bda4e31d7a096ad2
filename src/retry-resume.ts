/**
 * Finishing a retry-failed that was interrupted (retry.ts): the run it was queuing is taken
 * up again by the next retry of the same run, once no process holds it.
 */
import type { Queue } from 'bullmq';
import { jobObjects } from './embed-job.js';
import { ConfigError } from './errors.js';
import type { EmbedJobData } from './embed-job.js';
import type { ItemOutcome, RunState, RunStore } from './runs.js';

/** A resumed retry keeps its --code, and is not finished while its own process still runs. */
export async function checkResumable(
  runs: RunStore,
  run: RunState,
  open: RunState,
  code: string | undefined,
): Promise<void> {
  if (await runs.scanHeld(open.id))
    throw new ConfigError(
      '--run',
      `run ${open.id}, the retry of run ${run.id}, is being queued by a retry-failed still running; let it end (mm-ingest status --run ${open.id})`,
    );
  if (code !== undefined && code !== open.retryCode)
    throw new ConfigError(
      '--code',
      `run ${open.id}, the retry of run ${run.id}${open.retryCode !== undefined ? ` with --code ${open.retryCode}` : ''}, was interrupted: finish it first with mm-ingest retry-failed --run ${run.id}${open.retryCode !== undefined ? ` --code ${open.retryCode}` : ''}`,
    );
}

/**
 * The page an interrupted retry was queuing: the failures in its jobs that were added are
 * queued, so they are marked retried (those not yet) and counted with the page, whose jobs
 * count too (settlePending); failures whose jobs were not added are left for the walk.
 * Returns how many failures the page held.
 */
export async function settleInterrupted(
  deps: { readonly queue: Queue<EmbedJobData>; readonly runs: RunStore },
  oldId: string,
  newId: string,
  pageToken: string,
): Promise<number> {
  const keys: string[] = [];
  for (const id of await deps.runs.pendingJobs(newId)) {
    const job = await deps.queue.getJob(id);
    if (job) keys.push(...jobObjects(job.data).map((o) => o[0]));
  }
  await deps.runs.settlePending(newId, (j) => deps.queue.toKey(j));
  if (keys.length === 0) return 0;
  const outcomes = await deps.runs.itemOutcomes(oldId, keys);
  const marked = new Map<string, ItemOutcome>();
  keys.forEach((key, i) => {
    const o = outcomes[i];
    if (o?.status === 'failed')
      marked.set(key, { ...o, status: 'retried', reason: `${o.reason} (retried in run ${newId})` });
  });
  await deps.runs.recordItems(oldId, marked);
  await deps.runs.pageDone(newId, { scanned: keys.length, queuedObjects: keys.length, pageToken });
  return keys.length;
}
