/**
 * The producer: scan the bucket page by page, group the objects of each page into jobs
 * (about one API request each), and add them to the queue in bulk. A page's jobs are all
 * queued before the run records the page as done, so a scan restarted with the same run
 * continues from the last recorded page and loses nothing.
 */
import type { Queue } from 'bullmq';
import { EMBED_JOB_OPTIONS, embedContentId, embedJobId, paramsHash, toTuple } from '../jobs/embed-job.js';
import type { EmbedJobData, EmbedSettings } from '../jobs/embed-job.js';
import { Batcher } from './batcher.js';
import { classifyChanges, prune } from './incremental.js';
import type { ModelSpec } from './models.js';
import type { ObjectStore } from './object-store.js';
import type { ItemOutcome, RunStore } from './runs.js';
import { scanPages } from './scanner.js';
import type { ScannedObject } from './scanner.js';
import type { VectorStore } from './vector-store.js';

/**
 * `incremental`: objects whose points are complete and current are not queued;
 * `full`: everything is queued; `rebuild`: everything, into a new collection (see rebuild.ts).
 */
export type IndexMode = 'incremental' | 'full' | 'rebuild';

export interface ProduceOptions {
  readonly runId: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly include?: readonly string[];
  readonly exclude?: readonly string[];
  readonly minSize?: number;
  readonly maxSize?: number;
  readonly pageSize?: number;
  readonly model: ModelSpec;
  readonly settings: EmbedSettings;
  /** Continue listing after this token (a resumed run). */
  readonly resumeToken?: string;
  /** @defaultValue incremental */
  readonly mode?: IndexMode;
  /** After a completed scan, delete the points of objects under the prefix that are gone. */
  readonly prune?: boolean;
}

export interface ProduceDeps {
  readonly store: ObjectStore;
  readonly queue: Queue<EmbedJobData>;
  readonly runs: RunStore;
  readonly vectors: VectorStore;
  readonly onPage?: (page: { pageNumber: number; scanned: number; jobsAdded: number }) => void;
}

export interface ProduceSummary {
  scanned: number;
  skipped: number;
  filteredOut: number;
  queuedObjects: number;
  jobsAdded: number;
  jobsDeduplicated: number;
  pages: number;
  unchanged: number;
  new: number;
  changed: number;
  deleted: number;
}

export async function produce(deps: ProduceDeps, opts: ProduceOptions): Promise<ProduceSummary> {
  const total: ProduceSummary = { scanned: 0, skipped: 0, filteredOut: 0, queuedObjects: 0, jobsAdded: 0, jobsDeduplicated: 0, pages: 0, unchanged: 0, new: 0, changed: 0, deleted: 0 };
  const mode = opts.mode ?? 'incremental';
  const hash = paramsHash(opts.settings);
  const batcher = new Batcher({
    model: opts.model,
    imageMode: opts.settings.imageMode,
    maxBodyBytes: opts.settings.maxBodyBytes,
    ...(opts.settings.chunkTokens !== undefined ? { chunkTokens: opts.settings.chunkTokens } : {}),
  });
  try {
    for await (const page of scanPages(deps.store, {
      bucket: opts.bucket,
      prefix: opts.prefix,
      model: opts.model,
      ...(opts.include ? { include: opts.include } : {}),
      ...(opts.exclude ? { exclude: opts.exclude } : {}),
      ...(opts.minSize !== undefined ? { minSize: opts.minSize } : {}),
      ...(opts.maxSize !== undefined ? { maxSize: opts.maxSize } : {}),
      ...(opts.pageSize !== undefined ? { pageSize: opts.pageSize } : {}),
      ...(opts.resumeToken !== undefined ? { startAfterToken: opts.resumeToken } : {}),
    })) {
      if (opts.prune) await deps.runs.markSeen(opts.runId, page.listedKeys);
      const changes = mode === 'incremental' ? await classifyChanges(deps.vectors, opts.settings.collection, opts.bucket, page.objects, hash) : undefined;
      const toQueue = changes ? page.objects.filter((o) => changes.get(o.key) !== 'unchanged') : page.objects;
      const count = (c: string): number => (changes ? [...changes.values()].filter((v) => v === c).length : 0);
      const jobs: ScannedObject[][] = [];
      for (const o of toQueue) {
        const closed = batcher.add(o);
        if (closed) jobs.push(closed);
      }
      const last = batcher.flush();
      if (last) jobs.push(last);

      const queued = await enqueue(deps.queue, opts, jobs);
      const added = { added: await deps.runs.newJobs(opts.runId, queued.jobIds), deduplicated: queued.deduplicated };
      const skipped = new Map<string, ItemOutcome>(page.skipped.map((s) => [s.object.key, { status: 'skipped', code: s.code, reason: s.reason }]));
      await deps.runs.recordItems(opts.runId, skipped);
      const counts = {
        scanned: page.objects.length + page.skipped.length,
        skipped: page.skipped.length,
        filteredOut: page.filteredOut,
        queuedObjects: toQueue.length,
        jobsAdded: added.added,
        jobsDeduplicated: added.deduplicated,
        unchanged: count('unchanged'),
        new: changes ? count('new') : toQueue.length,
        changed: count('changed'),
      };
      await deps.runs.pageDone(opts.runId, {
        ...counts,
        ...(page.token !== undefined ? { pageToken: page.token } : {}),
        ...(page.nextToken !== undefined ? { nextToken: page.nextToken } : {}),
      });
      for (const k of Object.keys(counts) as (keyof typeof counts)[]) total[k] += counts[k];
      total.pages += 1;
      deps.onPage?.({ pageNumber: page.pageNumber, scanned: total.scanned, jobsAdded: total.jobsAdded });
    }
  } catch (err) {
    await deps.runs.scanFinished(opts.runId, 'failed', (err as Error).message);
    throw err;
  }
  // Only a scan that listed everything may prune: an interrupted one never gets here.
  if (opts.prune) {
    total.deleted = await prune(deps.vectors, opts.settings.collection, opts.bucket, opts.prefix, (keys) => deps.runs.seen(opts.runId, keys));
    await deps.runs.addCounter(opts.runId, 'deleted', total.deleted);
  }
  await deps.runs.scanFinished(opts.runId, 'complete');
  return total;
}

/**
 * Adds jobs in bulk. A job whose content (settings + keys + ETags) is already pending in
 * the queue, from this run or another, is deduplicated by BullMQ and not added again.
 */
async function enqueue(queue: Queue<EmbedJobData>, opts: ProduceOptions, jobs: readonly ScannedObject[][]): Promise<{ jobIds: string[]; deduplicated: number }> {
  if (jobs.length === 0) return { jobIds: [], deduplicated: 0 };
  const bulk = jobs.map((objects) => {
    const tuples = objects.map(toTuple);
    const contentId = embedContentId(opts.bucket, opts.settings, tuples);
    const jobId = embedJobId(opts.runId, contentId);
    const data: EmbedJobData = { v: 1, runId: opts.runId, bucket: opts.bucket, settings: opts.settings, objects: tuples };
    return { name: 'embed', data, opts: { ...EMBED_JOB_OPTIONS, jobId, deduplication: { id: contentId } } };
  });
  const result = await queue.addBulk(bulk);
  // A deduplicated add returns the pending job of the same content, with its own id.
  const jobIds = result.flatMap((job, i) => (job.id !== undefined && job.id === bulk[i]?.opts.jobId ? [job.id] : []));
  return { jobIds, deduplicated: bulk.length - jobIds.length };
}
