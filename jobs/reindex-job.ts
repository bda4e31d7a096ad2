/**
 * The `reindex` control queue: any BullMQ client (Node, Python) asks for a run by adding
 * a job whose data is
 *   { bucket, prefix?, keys?, collection, model, dimension?, mode?, prune?, ... }
 * (and `runId`, which the worker adds once the run exists, so that a retried attempt resumes it)
 * A long-lived worker (in `mm-ingest worker`) runs the scan; the job's progress says how
 * far it got. A malformed job fails at once with a reason naming the field, and the
 * worker goes on serving.
 */
import type { Job } from 'bullmq';
import { z } from 'zod';
import { parseGroupRule, parseSidecar } from '../src/compose.js';
import { ConfigError, UnprocessableJobError } from '../src/errors.js';
import { startRun } from '../src/runner.js';
import type { RunnerDeps, RunRequest } from '../src/runner.js';

export const reindexSchema = z
  .object({
    bucket: z.string().min(3, 'a bucket name has at least 3 characters'),
    prefix: z.string().optional(),
    keys: z.array(z.string().min(1)).min(1).max(10_000).optional(),
    collection: z.string().min(1),
    model: z.string().min(1),
    dimension: z.number().int().positive().optional(),
    mode: z.enum(['incremental', 'full', 'rebuild']).default('incremental'),
    prune: z.boolean().optional(),
    fps: z.number().min(0).max(1).optional(),
    instruct: z.string().min(1).max(2000).optional(),
    groupImages: z.string().min(1).optional(),
    fuseSidecar: z.string().min(1).optional(),
    fuseUnpaired: z.enum(['skip', 'alone']).optional(),
    /** Set by the worker as soon as the job's run exists: a retried or stalled job resumes that run. */
    runId: z.string().min(1).optional(),
  })
  .strict();

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

export type ReindexJobData = z.input<typeof reindexSchema>;

export interface ReindexResult {
  readonly runId: string;
  readonly target: string;
  readonly scanned: number;
  readonly queuedObjects: number;
  readonly unchanged: number;
  readonly deleted: number;
}

/** The job's data as a run request, or an error that says which field is wrong. */
export function parseReindexJob(data: unknown): RunRequest {
  const parsed = reindexSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(data)';
    throw new UnprocessableJobError(`malformed reindex job: ${field}: ${issue?.message ?? 'invalid'}`);
  }
  const d = parsed.data;
  // a pattern is refused here, by the field's name, before it is compiled for the scan
  try {
    if (d.groupImages !== undefined) parseGroupRule(d.groupImages, 'groupImages');
    if (d.fuseSidecar !== undefined) parseSidecar(d.fuseSidecar, d.fuseUnpaired, 'fuseSidecar');
  } catch (err) {
    if (err instanceof ConfigError) throw new UnprocessableJobError(`malformed reindex job: ${err.message}`);
    throw err;
  }
  return {
    bucket: d.bucket,
    collection: d.collection,
    model: d.model,
    mode: d.mode,
    ...(d.prefix !== undefined ? { prefix: d.prefix } : {}),
    ...(d.keys !== undefined ? { keys: d.keys } : {}),
    ...(d.dimension !== undefined ? { dimension: d.dimension } : {}),
    ...(d.prune !== undefined ? { prune: d.prune } : {}),
    ...(d.fps !== undefined ? { fps: d.fps } : {}),
    ...(d.instruct !== undefined ? { instruct: d.instruct } : {}),
    ...(d.groupImages !== undefined ? { groupImages: d.groupImages } : {}),
    ...(d.fuseSidecar !== undefined ? { fuseSidecar: d.fuseSidecar } : {}),
    ...(d.fuseUnpaired !== undefined ? { fuseUnpaired: d.fuseUnpaired } : {}),
    ...(d.runId !== undefined ? { runId: d.runId } : {}),
  };
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
