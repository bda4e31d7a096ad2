/**
 * Starting (or continuing) a run, the same way from the CLI and from the reindex queue:
 * validate the request against the model, create the run, scan and queue (a prefix, or a
 * list of keys), and finish the run once every job has a result (for `rebuild`: switch
 * the alias to the new collection and drop the old one, only when nothing failed).
 */
import type { Queue } from 'bullmq';
import type { EmbedJobData, EmbedSettings } from '../jobs/embed-job.js';
import type { Config } from './config.js';
import { checkComposition, parseGroupRule, parseSidecar } from './compose.js';
import type { Composition } from './compose.js';
import { ConfigError } from './errors.js';
import { newRunId } from './ids.js';
import { dropPoints } from './incremental.js';
import { resolveDimension, resolveModel } from './models.js';
import type { ObjectStore } from './object-store.js';
import { entryQueuer, produce } from './producer.js';
import type { IndexMode, ProduceSummary } from './producer.js';
import { isFinished } from './runs.js';
import type { RunState, RunStore } from './runs.js';
import { classify } from './scanner.js';
import type { ScanOptions } from './scanner.js';
import type { VectorStore } from './vector-store.js';

/** A run: what to scan (the filters mean what they mean to the scanner), where, and how to embed it. */
export interface RunRequest extends Pick<ScanOptions, 'include' | 'exclude' | 'minSize' | 'maxSize' | 'pageSize'> {
  readonly bucket: string;
  readonly prefix?: string;
  /** Index exactly these keys (deleted ones have their points removed) instead of a scan. */
  readonly keys?: readonly string[];
  readonly collection: string;
  readonly model: string;
  readonly dimension?: number;
  readonly mode?: IndexMode;
  readonly prune?: boolean;
  /** Video frame sampling in [0, 1], passed to the API. */
  readonly fps?: number;
  /** A task description passed to the API; changing it re-embeds (it is in the params hash). */
  readonly instruct?: string;
  /** Group the images of one item into multi_images vectors: `folder` or `pattern:<regex>` (compose.ts). */
  readonly groupImages?: string;
  /** Fuse each image or video with its sidecar text of these extensions (`.txt,.md`). */
  readonly fuseSidecar?: string;
  /** In a fused run, what objects without a partner become. @defaultValue skip */
  readonly fuseUnpaired?: 'skip' | 'alone';
  /** Continue this run instead of starting one. */
  readonly runId?: string;
}

export interface RunnerDeps {
  readonly config: Config;
  readonly store: ObjectStore;
  readonly vectors: VectorStore;
  readonly queue: Queue<EmbedJobData>;
  readonly runs: RunStore;
  readonly onPage?: (page: { pageNumber: number; scanned: number; jobsAdded: number }) => void;
  /** Called once the run exists, before its scan. */
  readonly onStart?: (run: { runId: string; target: string; resumed: boolean }) => void;
}

export interface Started {
  readonly runId: string;
  readonly resumed: boolean;
  /** Where the points go: the collection, or for a rebuild the new collection behind the alias. */
  readonly target: string;
  readonly summary?: ProduceSummary;
}

/** Checks a request and starts (or continues) its run; returns once everything is queued. */
export async function startRun(deps: RunnerDeps, req: RunRequest): Promise<Started> {
  const { config } = deps;
  const model = resolveModel(req.model, config.models);
  const dimension = resolveDimension(model, req.dimension);
  if (config.chunkTokens !== undefined && config.chunkTokens > model.textTokenLimit) {
    throw new ConfigError('CHUNK_TOKENS', `${config.chunkTokens} is over ${model.name}'s text limit of ${model.textTokenLimit}`);
  }
  const mode = req.mode ?? 'incremental';
  if (mode === 'rebuild' && req.keys) throw new ConfigError('mode', 'a rebuild indexes a whole prefix, not a list of keys');
  const compose = composition(req);
  if (compose) checkComposition(compose, model);
  if (compose && req.keys) {
    throw new ConfigError(compose.kind === 'fused' ? '--fuse-sidecar' : '--group-images', 'a list of keys cannot be composed into units (a unit needs the listing of its members): index their prefix instead, an incremental run redoes only the units that changed');
  }

  const existing = req.runId ? await deps.runs.get(req.runId) : undefined;
  if (req.runId && !existing) throw new ConfigError('--run-id', `run ${req.runId} does not exist`);
  const runId = existing?.id ?? newRunId();
  const target = existing ? (JSON.parse(existing.settings ?? '{}') as Partial<EmbedSettings>).collection ?? req.collection : mode === 'rebuild' ? `${req.collection}--${runId.toLowerCase()}` : req.collection;
  const settings: EmbedSettings = {
    collection: target,
    model: model.name,
    dimension,
    chunkOverlap: config.chunkOverlap,
    imageMode: config.imageMode,
    maxBodyBytes: config.maxRequestBytes,
    ...(config.chunkTokens !== undefined ? { chunkTokens: config.chunkTokens } : {}),
    ...(req.fps !== undefined ? { fps: req.fps } : {}),
    ...(req.instruct !== undefined ? { instruct: req.instruct } : {}),
    ...(compose ? { compose } : {}),
  };
  if (req.fps !== undefined && !(req.fps >= 0 && req.fps <= 1)) throw new ConfigError('fps', `must be a number in [0, 1], got ${req.fps}`);
  // A collection of another dimension is refused here, before anything is queued.
  await deps.vectors.ensureCollection(target, dimension);
  if (!existing) {
    await deps.runs.create({
      id: runId,
      bucket: req.bucket,
      prefix: req.prefix ?? '',
      collection: req.collection,
      model: model.name,
      dimension,
      startedAt: new Date().toISOString(),
      settings: JSON.stringify(settings),
      mode,
    });
  }
  deps.onStart?.({ runId, target, resumed: existing !== undefined });
  if (existing?.scanStatus === 'complete') return { runId, resumed: true, target };

  const summary = req.keys
    ? await queueKeys(deps, runId, req.bucket, req.keys, settings, mode)
    : await produce(
        { store: deps.store, queue: deps.queue, runs: deps.runs, vectors: deps.vectors, ...(deps.onPage ? { onPage: deps.onPage } : {}) },
        {
          runId,
          bucket: req.bucket,
          prefix: req.prefix ?? '',
          model,
          settings,
          mode,
          prune: req.prune === true && mode !== 'rebuild',
          ...(req.include ? { include: req.include } : {}),
          ...(req.exclude ? { exclude: req.exclude } : {}),
          ...(req.minSize !== undefined ? { minSize: req.minSize } : {}),
          ...(req.maxSize !== undefined ? { maxSize: req.maxSize } : {}),
          ...(req.pageSize !== undefined ? { pageSize: req.pageSize } : {}),
          ...(existing?.lastToken !== undefined ? { resumeToken: existing.lastToken } : {}),
        },
      );
  await finishIfDone(deps, runId);
  return { runId, resumed: existing !== undefined, target, summary };
}

/** The run's composition, from `groupImages` or `fuseSidecar` (not both). */
function composition(req: RunRequest): Composition | undefined {
  if (req.groupImages !== undefined && req.fuseSidecar !== undefined) {
    throw new ConfigError('--group-images', 'cannot be combined with --fuse-sidecar (a vector is a multi_images group or a fused pair, not both)');
  }
  if (req.fuseUnpaired !== undefined && req.fuseSidecar === undefined) throw new ConfigError('--fuse-unpaired', 'only applies with --fuse-sidecar');
  if (req.groupImages !== undefined) return parseGroupRule(req.groupImages);
  if (req.fuseSidecar !== undefined) return parseSidecar(req.fuseSidecar, req.fuseUnpaired ?? 'skip');
  return undefined;
}

/** `keys` mode: each key is looked up; existing ones are queued, deleted ones lose their points. */
async function queueKeys(deps: RunnerDeps, runId: string, bucket: string, keys: readonly string[], settings: EmbedSettings, mode: IndexMode): Promise<ProduceSummary> {
  const model = resolveModel(settings.model, deps.config.models);
  const found = [];
  const gone = [];
  for (const key of keys) {
    const info = await deps.store.head(bucket, key);
    if (info) found.push(info);
    else gone.push(key);
  }
  const classified = found.map((o) => classify(o, model));
  const entries = classified.flatMap((c) => ('code' in c ? [] : [{ object: c }]));
  const skipped = classified.flatMap((c) => ('code' in c ? [c] : []));
  // queued like one listing page
  const counts = await entryQueuer(deps, { runId, bucket, model, settings, mode })(entries, skipped, { scanned: keys.length, filteredOut: 0 });
  const total: ProduceSummary = { ...counts, pages: 1, deleted: await dropPoints(deps.vectors, settings.collection, bucket, gone) };
  await deps.runs.pageDone(runId, { ...counts, pageToken: 'keys' });
  await deps.runs.addCounter(runId, 'deleted', total.deleted);
  await deps.runs.scanFinished(runId, 'complete');
  return total;
}

/**
 * Finishes a run whose scan is complete and whose jobs all have a result, once (whoever
 * gets there first: the producer, a worker, a follower). A rebuild switches its alias to
 * the new collection and drops the old one only when nothing failed.
 */
export async function finishIfDone(deps: Pick<RunnerDeps, 'runs' | 'vectors'>, runId: string): Promise<RunState | undefined> {
  const run = await deps.runs.get(runId);
  if (!run || !isFinished(run)) return undefined;
  if (!(await deps.runs.claimFinish(runId))) return run;
  if (run.mode === 'rebuild') {
    const target = (JSON.parse(run.settings ?? '{}') as Partial<EmbedSettings>).collection;
    const failures = run.counters.objectsFailed + run.counters.jobsFailed;
    if (!target || failures > 0) {
      await deps.runs.note(runId, 'rebuild', failures > 0 ? `not switched: ${failures} failures; ${target} kept for inspection` : 'no target');
    } else {
      const old = await deps.vectors.aliasTarget(run.collection);
      if (old === undefined && (await deps.vectors.collectionExists(run.collection))) {
        // the first rebuild of a plain collection: its name must become the alias
        await deps.vectors.deleteCollection(run.collection);
      }
      await deps.vectors.switchAlias(run.collection, target);
      if (old !== undefined && old !== target) await deps.vectors.deleteCollection(old);
      await deps.runs.note(runId, 'rebuild', `alias ${run.collection} -> ${target}${old ? ` (dropped ${old})` : ''}`);
    }
  }
  await deps.runs.markFinished(runId);
  return run;
}
