/**
 * Starting (or continuing) a run, the same way from the CLI and from the reindex queue:
 * validate the request against the model, create the run, scan and queue (a prefix, or a
 * list of keys), and finish the run once every job has a result (for `rebuild`: switch
 * the alias to the new collection when it is complete: rebuild.ts).
 */
import type { Queue } from 'bullmq';
import { defaultQueueBound, queueRoom } from './backpressure.js';
import type { QueueRoom } from './backpressure.js';
import type { EmbedJobData, EmbedSettings } from './embed-job.js';
import type { ReadBounds } from './bounds.js';
import { readBounds } from './config.js';
import type { Config } from './config.js';
import { checkComposition, parseGroupRule, parseSidecar } from './compose.js';
import type { Composition } from './compose.js';
import { ConfigError } from './errors.js';
import { newRunId } from './ids.js';
import { dropPoints } from './incremental.js';
import { checkRebuildScope, finishRebuild } from './rebuild.js';
import { resolveDimension, resolveModel } from './models.js';
import type { ObjectStore } from './object-store.js';
import { entryQueuer, produce } from './producer.js';
import type { IndexMode, ProduceSummary } from './producer.js';
import { mediaUrlProblem } from './media-urls.js';
import { isFinished } from './runs.js';
import type { JobResult, RunState, RunStore } from './runs.js';
import { classify } from './scanner.js';
import type { RunRequest } from './run-request.js';
import type { VectorStore } from './vector-store.js';
import { withRecordedScope } from './resumed-run.js';

export interface RunnerDeps {
  readonly config: Config;
  readonly store: ObjectStore;
  readonly vectors: VectorStore;
  readonly queue: Queue<EmbedJobData>;
  readonly runs: RunStore;
  readonly onPage?: (page: { pageNumber: number; scanned: number; jobsAdded: number }) => void;
  /** Called when the scan starts waiting for room in the queue (backpressure) and when it goes on. */
  readonly onWait?: (
    info: { runId: string; waiting: number; bound: number } | { runId: string; waitedMs: number },
  ) => void;
  /** Called once the run exists, before its scan (awaited). */
  readonly onStart?: (run: { runId: string; target: string; resumed: boolean }) => void | Promise<void>;
}

export interface Started {
  readonly runId: string;
  readonly resumed: boolean;
  /** Where the points go: the collection, or for a rebuild the new collection behind the alias. */
  readonly target: string;
  readonly summary?: ProduceSummary;
}

/** Checks a request and starts (or continues) its run; returns once everything is queued. */
export async function startRun(deps: RunnerDeps, request: RunRequest): Promise<Started> {
  const { config } = deps;
  const found = request.runId ? await deps.runs.get(request.runId) : undefined;
  if (request.runId && !found) throw new ConfigError('--run-id', `run ${request.runId} does not exist`);
  if (found?.retryOf !== undefined)
    throw new ConfigError(
      '--run-id',
      `run ${found.id} is retry-failed's run of run ${found.retryOf}, not a scan: mm-ingest retry-failed --run ${found.retryOf} finishes it if it was interrupted`,
    );
  // a resumed run scans, prunes and embeds as it started: its record decides
  const existing = found ? withRecordedScope(found, request) : undefined;
  const req = existing?.request ?? request;
  const model = resolveModel(req.model, config.models);
  const dimension = resolveDimension(model, req.dimension);
  if (config.chunkTokens !== undefined && config.chunkTokens > model.textTokenLimit) {
    throw new ConfigError(
      'CHUNK_TOKENS',
      `${config.chunkTokens} is over ${model.name}'s text limit of ${model.textTokenLimit}`,
    );
  }
  const mode = req.mode ?? 'incremental';
  const compose = existing ? undefined : composition(req);
  if (compose) checkComposition(compose, model);
  if (compose && req.keys) {
    throw new ConfigError(
      compose.kind === 'fused' ? '--fuse-sidecar' : '--group-images',
      'a list of keys cannot be composed into units (a unit needs the listing of its members): index their prefix instead, an incremental run redoes only the units that changed',
    );
  }

  const runId = existing?.run.id ?? newRunId();
  const target = mode === 'rebuild' ? `${req.collection}--${runId.toLowerCase()}` : req.collection;
  const settings: EmbedSettings = existing
    ? (JSON.parse(existing.run.settings ?? '{}') as EmbedSettings)
    : {
        collection: target,
        model: model.name,
        dimension,
        chunkOverlap: config.chunkOverlap,
        imageMode: config.imageMode,
        maxBodyBytes: config.maxRequestBytes,
        chunkTokens: config.chunkTokens,
        fps: req.fps,
        instruct: req.instruct,
        compose,
      };
  // the provider downloads URLs itself: a store it cannot reach refuses URL mode here, before
  // anything is created, and has its videos skipped at scan with the reason
  const urlProblem = await mediaUrlProblem(config);
  if (urlProblem !== undefined && settings.imageMode === 'url') {
    throw new ConfigError(
      'IMAGE_MODE',
      `url mode sends presigned URLs, and ${urlProblem}; IMAGE_MODE=inline sends images as base64`,
    );
  }
  const bounds: ReadBounds = { ...readBounds(config), videoUrlProblem: urlProblem };
  const startedAt = new Date().toISOString();
  // recorded with the run (JSON leaves an unset bound out), so that a resumed run scans as it started
  const scope = {
    prefix: req.prefix ?? '',
    include: req.include ?? [],
    exclude: req.exclude ?? [],
    minSize: req.minSize,
    maxSize: req.maxSize,
  };
  if (mode === 'rebuild' && !existing) await checkRebuildScope(deps.vectors, req.collection, req.bucket, scope);
  // A collection of another dimension is refused here, before anything is queued.
  await deps.vectors.ensureCollection(settings.collection, dimension);
  if (!existing) {
    await deps.runs.create({
      id: runId,
      bucket: req.bucket,
      prefix: req.prefix ?? '',
      collection: req.collection,
      model: model.name,
      dimension,
      startedAt,
      settings: JSON.stringify(settings),
      mode,
      scope: JSON.stringify(scope),
      // a Redis hash: a field is there or not (hset would store an undefined as "")
      ...(req.prune === true && mode !== 'rebuild' ? { prune: '1' } : {}),
    });
  }
  await deps.onStart?.({ runId, target: settings.collection, resumed: existing !== undefined });
  if (existing?.run.scanStatus === 'complete') return { runId, resumed: true, target: settings.collection };
  // a scan that failed starts again where it stopped; the run's end is decided anew
  if (existing) await deps.runs.reopen(runId);

  // backpressure: pages are queued while the queue has room (MAX_QUEUED_JOBS, backpressure.ts)
  const room = queueRoom(deps.queue, {
    bound: config.maxQueuedJobs ?? defaultQueueBound(model, config.concurrency),
    onPause: async (info) => {
      await deps.runs.scanWait(runId, info);
      deps.onWait?.({ runId, ...info });
    },
    onResume: async (info) => {
      await deps.runs.scanWait(runId, info);
      deps.onWait?.({ runId, ...info });
    },
  });
  const scanning = req.keys
    ? queueKeys({ ...deps, room }, runId, req.bucket, req.keys, settings, mode, bounds)
    : produce(
        { ...deps, room },
        {
          runId,
          bucket: req.bucket,
          ...scope,
          pageSize: req.pageSize,
          model,
          bounds,
          settings,
          mode,
          prune: req.prune === true && mode !== 'rebuild',
          startedAt: existing?.run.startedAt ?? startedAt,
          resumeToken: existing?.run.lastToken,
        },
      );
  let summary: ProduceSummary;
  try {
    summary = await scanning;
  } catch (err) {
    // a failed scan ends the run once its queued jobs are done, which may already be so
    await finishIfDone(deps, runId);
    throw err;
  }
  await finishIfDone(deps, runId);
  return { runId, resumed: existing !== undefined, target: settings.collection, summary };
}

/** The run's composition, from `groupImages` or `fuseSidecar` (run-request.ts refused both at once). */
export function composition(req: RunRequest): Composition | undefined {
  if (req.groupImages !== undefined) return parseGroupRule(req.groupImages);
  if (req.fuseSidecar !== undefined) return parseSidecar(req.fuseSidecar, req.fuseUnpaired ?? 'skip');
  return undefined;
}

/** `keys` mode: each key is looked up; existing ones are queued, deleted ones lose their points. */
async function queueKeys(
  deps: RunnerDeps & { room: QueueRoom },
  runId: string,
  bucket: string,
  keys: readonly string[],
  settings: EmbedSettings,
  mode: IndexMode,
  bounds: ReadBounds,
): Promise<ProduceSummary> {
  const model = resolveModel(settings.model, deps.config.models);
  const found = [];
  const gone = [];
  for (const key of keys) {
    const info = await deps.store.head(bucket, key);
    if (info) found.push(info);
    else gone.push(key);
  }
  const classified = found.map((o) => classify(o, model, bounds));
  const entries = classified.flatMap((c) => ('code' in c ? [] : [{ object: c }]));
  const skipped = classified.flatMap((c) => ('code' in c ? [c] : []));
  // the jobs of a stopped attempt's page count first (RunStore.settlePending)
  await deps.runs.settlePending(runId, (j) => deps.queue.toKey(j));
  // queued like one listing page
  const { jobIds, ...counts } = await entryQueuer(deps, { runId, bucket, model, settings, mode })(
    entries,
    skipped,
    { scanned: keys.length, filteredOut: 0 },
    'keys',
  );
  const total: ProduceSummary = {
    ...counts,
    pages: 1,
    deleted: await dropPoints(deps.vectors, settings.collection, bucket, gone),
  };
  counts.jobsAdded = await deps.runs.pageDone(runId, { ...counts, jobIds, pageToken: 'keys' });
  total.jobsAdded = counts.jobsAdded;
  await deps.runs.addCounter(runId, 'deleted', total.deleted);
  await deps.runs.scanFinished(runId, 'complete');
  return total;
}

/**
 * Finishes a run whose scan is complete and whose jobs all have a result, once (whoever
 * gets there first: the producer, a worker, a follower). A rebuild switches its alias to
 * the new collection and drops the old one only when nothing failed.
 */
export async function finishIfDone(
  deps: Pick<RunnerDeps, 'runs' | 'vectors'>,
  runId: string,
): Promise<RunState | undefined> {
  const run = await deps.runs.get(runId);
  if (!run || !isFinished(run)) return undefined;
  if (!(await deps.runs.claimFinish(runId))) return run;
  if (run.mode === 'rebuild') {
    // a retry-failed run of a rebuild finishes that build, begun when the first run began
    const origin = run.retryOf ? await deps.runs.get(run.retryOf) : undefined;
    const { note } = await finishRebuild(deps.vectors, run, origin?.startedAt ?? run.startedAt);
    await deps.runs.note(runId, 'rebuild', note);
  }
  await deps.runs.markFinished(runId);
  return (await deps.runs.get(runId)) ?? run;
}

/**
 * Records a job's result in its run and in every run following it (runs whose own adds
 * were deduplicated into it), and finishes each of them that is now done.
 */
export async function recordJobResult(
  deps: Pick<RunnerDeps, 'runs' | 'vectors'>,
  runId: string,
  jobId: string,
  result: JobResult,
  /** The job's number in its run (jobNumber) and its hash in the queue; a job of the versions before has none. */
  own?: { number: number | undefined; jobKey: string },
): Promise<void> {
  await deps.runs.recordJob(
    runId,
    jobId,
    result,
    own?.number !== undefined ? { number: own.number, jobKey: own.jobKey } : undefined,
  );
  await finishIfDone(deps, runId);
  for (const follower of await deps.runs.followers(jobId)) {
    if (follower === runId) continue;
    await deps.runs.recordJob(follower, jobId, result);
    await finishIfDone(deps, follower);
  }
}
