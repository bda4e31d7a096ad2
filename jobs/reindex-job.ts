/**
 * The `reindex` control queue: any BullMQ client (Node, Python) asks for a run by adding
 * a job whose data is
 *   { bucket, prefix?, keys?, collection, model, dimension?, mode?, prune?, fps?, instruct?,
 *     groupImages?, fuseSidecar?, fuseUnpaired? }  (the schema: src/run-request.ts)
 * (and `runId`, which the worker adds once the run exists, so that a retried attempt resumes it).
 * A long-lived worker (in `mm-ingest worker`) runs the scan; the job's progress says how
 * far it got. A malformed job fails at once with a reason naming the field, and the
 * worker goes on serving.
 */
import type { Job } from 'bullmq';
import { ConfigError, UnprocessableJobError } from '../src/errors.js';
import { parseRunRequest } from '../src/run-request.js';
import type { RunRequest } from '../src/run-request.js';
import { startRun } from '../src/runner.js';
import type { RunnerDeps } from '../src/runner.js';

export type { ReindexJobData } from '../src/run-request.js';

/**
 * Options for reindex jobs added by this project (the CLI, schedules): a crashed or failed
 * attempt is retried with backoff, and resumes its run (the run id is in the job's data).
 */
export const REINDEX_JOB_OPTIONS = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 10_000 },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 1000 },
} as const;

export interface ReindexResult {
  readonly runId: string;
  readonly target: string;
  readonly scanned: number;
  readonly queuedObjects: number;
  readonly unchanged: number;
  readonly deleted: number;
}

/** The job's data as a run request (src/run-request.ts), or an error that says which field is wrong. */
export function parseReindexJob(data: unknown): RunRequest {
  try {
    return parseRunRequest(data, 'field');
  } catch (err) {
    if (err instanceof ConfigError) throw new UnprocessableJobError(`malformed reindex job: ${err.message}`);
    throw err;
  }
}

export function createReindexHandler(
  deps: Omit<RunnerDeps, 'onPage' | 'onStart'>,
): (job: Job<unknown, ReindexResult>) => Promise<ReindexResult> {
  return async (job) => {
    const request = parseReindexJob(job.data);
    try {
      const started = await startRun(
        {
          ...deps,
          onPage: (p) => void job.updateProgress({ pages: p.pageNumber, scanned: p.scanned, jobsAdded: p.jobsAdded }),
          // recorded before the scan: if this attempt dies, the next one resumes the same run
          // (a half-built rebuild is finished, not orphaned by a new one)
          onStart: async ({ runId }) => {
            if (request.runId === undefined) await job.updateData({ ...(job.data as object), runId });
          },
        },
        request,
      );
      const s = started.summary;
      const result = {
        runId: started.runId,
        target: started.target,
        scanned: s?.scanned ?? 0,
        queuedObjects: s?.queuedObjects ?? 0,
        unchanged: s?.unchanged ?? 0,
        deleted: s?.deleted ?? 0,
      };
      await job.updateProgress({ done: true, ...result });
      return result;
    } catch (err) {
      // a request that can never work (unknown model, wrong dimension) is not retried
      if (err instanceof ConfigError) throw new UnprocessableJobError(`reindex job refused: ${err.message}`);
      throw err;
    }
  };
}
