/**
 * What a run record holds (runs.ts stores it): the run's settings and scan state, its
 * counters, and the outcome of each object that was not indexed.
 */
export interface RunInfo {
  readonly id: string;
  /** The embed settings of the run's jobs (JSON), so its failures can be queued again alike. */
  readonly settings?: string;
  /** The run this one retries, if any, and the failure code it retries (--code) when only one. */
  readonly retryOf?: string;
  readonly retryCode?: string;
  /** incremental, full or rebuild. */
  readonly mode?: string;
  /** What the scan lists (JSON of prefix, include, exclude, minSize, maxSize) and whether it prunes: a resumed run keeps them. */
  readonly scope?: string;
  readonly prune?: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly collection: string;
  readonly model: string;
  readonly dimension: number;
  readonly startedAt: string;
}

export type ScanStatus = 'scanning' | 'complete' | 'failed';

export interface ItemOutcome {
  readonly status: 'skipped' | 'failed' | 'note' | 'retried';
  readonly code: string;
  readonly reason: string;
  /** For failures: the object as the job held it ([key, etag, size, mtime, modality]), so it can be queued again. */
  readonly object?: readonly [string, string, number, number, 't' | 'i' | 'v'] | undefined;
  /** For failures of a unit's member: the unit ([g(roup) or f(used pair), id]), queued again whole. */
  readonly unit?: readonly ['g' | 'f', string] | undefined;
  // stored as JSON, where a field that is undefined is left out
}

/** What one job did; summed into the run's counters once per job. */
export interface JobResult {
  readonly status: 'done' | 'failed';
  readonly objects: number;
  readonly indexed: number;
  readonly skipped: number;
  readonly failed: number;
  readonly points: number;
  readonly error?: string;
}

export interface RunCounters {
  scanned: number;
  skipped: number;
  filteredOut: number;
  queuedObjects: number;
  jobsAdded: number;
  jobsDeduplicated: number;
  jobsDone: number;
  jobsFailed: number;
  objectsIndexed: number;
  objectsSkipped: number;
  objectsFailed: number;
  points: number;
  requests: number;
  inputs: number;
  textTokens: number;
  imageTokens: number;
  /** API requests sent again after a transient failure, and 429s received. */
  retries: number;
  throttled: number;
  /** Incremental runs: objects found unchanged (not queued), new, changed; objects pruned. */
  unchanged: number;
  new: number;
  changed: number;
  deleted: number;
  /** Keys the scan marked seen (for --prune), counted once per page: the seen-set must hold at least this many. */
  seenMarked: number;
  /** Jobs of other runs this run waits for: its objects were already pending in them (deduplicated). */
  jobsFollowed: number;
  /** Milliseconds the scan waited for room in the queue (backpressure), and how many times. */
  scanWaitMs: number;
  scanWaits: number;
}

export interface RunState extends RunInfo {
  readonly scanStatus: ScanStatus;
  readonly scanError?: string;
  readonly lastToken?: string;
  /** The latest run that retries this one's failures (set as it is created: retry.ts). */
  readonly retrying?: string;
  /** The listing's last page is counted: a resumed scan goes on after the listing (compose walk, prune). */
  readonly listed?: boolean;
  /** The prune is done (the seen-set used and dropped). */
  readonly pruned?: boolean;
  /** The highest numbered page counted of the compose walk's chunks and of retry-failed's pages. */
  readonly composedChunks?: number;
  readonly retriedPages?: number;
  /** Set while the scan waits for room in the queue (backpressure): jobs waiting then, the bound, since when. */
  readonly scanWaiting?: { readonly waiting: number; readonly bound: number; readonly since: string };
  readonly pages: number;
  readonly finishedAt?: string;
  readonly counters: RunCounters;
  /** What the run's end did (for example a rebuild's alias switch). */
  readonly notes: Readonly<Record<string, string>>;
}

export const COUNTERS: readonly (keyof RunCounters)[] = [
  'scanned',
  'skipped',
  'filteredOut',
  'queuedObjects',
  'jobsAdded',
  'jobsDeduplicated',
  'jobsDone',
  'jobsFailed',
  'objectsIndexed',
  'objectsSkipped',
  'objectsFailed',
  'points',
  'requests',
  'inputs',
  'textTokens',
  'imageTokens',
  'retries',
  'throttled',
  'unchanged',
  'new',
  'changed',
  'deleted',
  'seenMarked',
  'jobsFollowed',
  'scanWaitMs',
  'scanWaits',
];

export const PAGE_COUNTERS = [
  'scanned',
  'skipped',
  'filteredOut',
  'queuedObjects',
  'jobsAdded',
  'jobsDeduplicated',
  'unchanged',
  'new',
  'changed',
  'seenMarked',
] as const;
export type PageCounts = { [K in (typeof PAGE_COUNTERS)[number]]?: number };

/** A run record as Redis holds it (a hash of strings), typed. */
export function runFromHash(h: Record<string, string>): RunState {
  const id = h.id ?? '';
  const counters = Object.fromEntries(COUNTERS.map((c) => [c, Number(h[c] ?? 0)])) as unknown as RunCounters;
  return {
    id,
    bucket: h.bucket ?? '',
    prefix: h.prefix ?? '',
    collection: h.collection ?? '',
    model: h.model ?? '',
    dimension: Number(h.dimension ?? 0),
    startedAt: h.startedAt ?? '',
    ...(h.settings ? { settings: h.settings } : {}),
    ...(h.retryOf ? { retryOf: h.retryOf } : {}),
    ...(h.retryCode ? { retryCode: h.retryCode } : {}),
    ...(h.retrying ? { retrying: h.retrying } : {}),
    ...(h.mode ? { mode: h.mode } : {}),
    ...(h.scope ? { scope: h.scope } : {}),
    ...(h.prune ? { prune: h.prune } : {}),
    notes: Object.fromEntries(
      Object.entries(h)
        .filter(([k]) => k.startsWith('note.'))
        .map(([k, v]) => [k.slice(5), v]),
    ),
    scanStatus: (h.scanStatus ?? 'scanning') as ScanStatus,
    ...(h.scanError ? { scanError: h.scanError } : {}),
    ...(h.lastToken ? { lastToken: h.lastToken } : {}),
    ...(h.listed ? { listed: true } : {}),
    ...(h.pruned ? { pruned: true } : {}),
    composedChunks: Number(h['pages.compose'] ?? 0),
    retriedPages: Number(h['pages.retry'] ?? 0),
    ...(h.scanWaiting ? { scanWaiting: JSON.parse(h.scanWaiting) as NonNullable<RunState['scanWaiting']> } : {}),
    ...(h.finishedAt ? { finishedAt: h.finishedAt } : {}),
    pages: Number(h.pages ?? 0),
    counters,
  };
}

/**
 * A run is finished when its scan completed (or failed) and every job it added, and every
 * job of another run it follows, has a result.
 */
export function isFinished(run: RunState): boolean {
  return (
    run.scanStatus !== 'scanning' &&
    run.counters.jobsDone + run.counters.jobsFailed >= run.counters.jobsAdded + run.counters.jobsFollowed
  );
}

/**
 * A job's result as a run's `:jobs` hash holds it: `d` (done) or `f`, then objects,
 * indexed, skipped, failed and points, space-separated, then the error if any (about 15 B
 * instead of 80 B of JSON). Results recorded as JSON by earlier versions still read.
 */
export function packJobResult(r: JobResult): string {
  const counts = [r.objects, r.indexed, r.skipped, r.failed, r.points].join(' ');
  return `${r.status === 'done' ? 'd' : 'f'} ${counts}${r.error !== undefined ? ` ${r.error}` : ''}`;
}

export function unpackJobResult(raw: string): JobResult {
  if (raw.startsWith('{')) return JSON.parse(raw) as JobResult;
  const [status, objects, indexed, skipped, failed, points, ...error] = raw.split(' ');
  return {
    status: status === 'd' ? 'done' : 'failed',
    objects: Number(objects),
    indexed: Number(indexed),
    skipped: Number(skipped),
    failed: Number(failed),
    points: Number(points),
    ...(error.length > 0 ? { error: error.join(' ') } : {}),
  };
}
