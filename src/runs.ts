/**
 * Run records in Redis: what a run is, how far its scan got, and what became of every
 * object that was not indexed.
 *
 * Keys (all under the queue prefix, so deployments sharing a Redis do not mix):
 * - `{p}:run:{id}`        hash: settings, scan state and counters;
 * - `{p}:run:{id}:items`  hash: key -> JSON outcome, for objects skipped or failed (and notes);
 * - `{p}:run:{id}:jobs`   hash: job id -> JSON result, written once per job (idempotent);
 * - `{p}:run:{id}:queued` set: ids of the jobs the run queued;
 * - `{p}:run:{id}:pages`  hash: listing tokens of the pages already counted;
 * - `{p}:run:{id}:seen`   set: keys the scan listed, kept a week (for --prune);
 * - `{p}:run:{id}:stage`  sorted set: objects waiting for their unit to be complete (compose.ts);
 * - `{p}:run:{id}:followed` set: ids of other runs' jobs this run waits for (deduplicated adds);
 * - `{p}:followers:{job}` set: the runs following a job, told its result when it ends;
 * - `{p}:runs`            sorted set of run ids by start time.
 *
 * A run's scan is `scanning` until the producer has listed every page (`complete`) or
 * gave up (`failed`). The run is finished when its scan is complete and every job it
 * added has a result (done or failed).
 */
import type { Cluster, Redis } from 'ioredis';
import type { EmbedSettings } from './embed-job.js';
import { redact } from './redact.js';

export interface RunInfo {
  readonly id: string;
  /** The embed settings of the run's jobs (JSON), so its failures can be queued again alike. */
  readonly settings?: string;
  /** The run this one retries, if any. */
  readonly retryOf?: string;
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
  /** Set while the scan waits for room in the queue (backpressure): jobs waiting then, the bound, since when. */
  readonly scanWaiting?: { readonly waiting: number; readonly bound: number; readonly since: string };
  readonly pages: number;
  readonly finishedAt?: string;
  readonly counters: RunCounters;
  /** What the run's end did (for example a rebuild's alias switch). */
  readonly notes: Readonly<Record<string, string>>;
}

const COUNTERS: readonly (keyof RunCounters)[] = [
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

// Records a job's result once: a job processed twice (a stalled job picked up again)
// does not count twice. KEYS: run hash, jobs hash. ARGV: job id, result JSON, then
// counter name/increment pairs.
const RECORD_JOB = `
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
for i = 3, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1`;

const PAGE_COUNTERS = [
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

// KEYS: run hash, pages-done hash. ARGV: page token, next token ('' at the end), then
// counter name/increment pairs. Counts a page once; always moves the resume token on.
const PAGE_DONE = `
if redis.call('HSETNX', KEYS[2], ARGV[1], 1) == 1 then
  for i = 3, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'lastToken') else redis.call('HSET', KEYS[1], 'lastToken', ARGV[2]) end
return 1`;

export const DEFAULT_RUN_RETENTION_DAYS = 30;
const DAY_MS = 24 * 3600 * 1000;
/** The keys of one run (`{p}:run:{id}` and these suffixes). */
const RUN_PARTS = ['', ':items', ':jobs', ':queued', ':pages', ':followed', ':seen', ':stage'] as const;

export class RunStore {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
    /** How long a run's records are kept once it is finished (RUN_RETENTION_DAYS). @defaultValue 30 days */
    private readonly retentionMs = DEFAULT_RUN_RETENTION_DAYS * DAY_MS,
  ) {}

  /** Bucket and settings of runs, as their jobs read them: a run's never change once it exists. */
  private readonly settingsMemo = new Map<string, { bucket: string; settings: EmbedSettings }>();

  /**
   * The bucket and embed settings of a run (what a format-2 job leaves out), read once per
   * run and process; undefined when the run has no record (expired or deleted).
   */
  async jobSettings(id: string): Promise<{ bucket: string; settings: EmbedSettings } | undefined> {
    const known = this.settingsMemo.get(id);
    if (known) return known;
    const [bucket, settings] = await this.redis.hmget(this.key(id), 'bucket', 'settings');
    if (bucket === null || bucket === undefined || !settings) return undefined;
    const found = { bucket, settings: JSON.parse(settings) as EmbedSettings };
    if (this.settingsMemo.size >= 256) this.settingsMemo.delete(this.settingsMemo.keys().next().value ?? '');
    this.settingsMemo.set(id, found);
    return found;
  }

  private key(id: string, part = ''): string {
    return `${this.prefix}:run:${id}${part}`;
  }

  async create(run: RunInfo): Promise<void> {
    await this.redis
      .multi()
      // the index forgets runs past the retention (their records have expired)
      .zremrangebyscore(`${this.prefix}:runs`, '-inf', Date.parse(run.startedAt) - this.retentionMs - DAY_MS)
      .hset(this.key(run.id), { ...run, dimension: String(run.dimension), scanStatus: 'scanning', pages: '0' })
      .zadd(`${this.prefix}:runs`, Date.parse(run.startedAt), run.id)
      .exec();
  }

  async exists(id: string): Promise<boolean> {
    return (await this.redis.exists(this.key(id))) === 1;
  }

  /**
   * Remembers the jobs a run queued and returns how many are new to it: a page listed
   * again after a producer crash re-adds the same job ids, which must not count twice.
   */
  async newJobs(id: string, jobIds: readonly string[]): Promise<number> {
    if (jobIds.length === 0) return 0;
    const m = this.redis.multi();
    for (const j of jobIds) m.sadd(this.key(id, ':queued'), j);
    const replies = (await m.exec()) ?? [];
    return replies.reduce((n, [, added]) => n + (added === 1 ? 1 : 0), 0);
  }

  /**
   * After a listed page is enqueued: its counters and the token to resume from. A page is
   * counted once, by the token it was listed with: after a producer crash between queuing
   * a page and recording it, the page is listed and queued again but not counted again.
   */
  async pageDone(id: string, page: PageCounts & { pageToken?: string; nextToken?: string }): Promise<void> {
    const counts: (string | number)[] = ['pages', 1];
    for (const f of PAGE_COUNTERS) if (page[f]) counts.push(f, page[f] ?? 0);
    await this.redis.eval(
      PAGE_DONE,
      2,
      this.key(id),
      this.key(id, ':pages'),
      page.pageToken ?? '(first)',
      page.nextToken ?? '',
      ...counts,
    );
  }

  /** Keys the scan listed (for pruning what it did not). */
  async markSeen(id: string, keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.redis
      .multi()
      .sadd(this.key(id, ':seen'), ...keys)
      .pexpire(this.key(id, ':seen'), 7 * 24 * 3600 * 1000)
      .exec();
  }

  /** How many keys the seen-set holds (0 once it expired or was dropped). */
  async seenCount(id: string): Promise<number> {
    return this.redis.scard(this.key(id, ':seen'));
  }

  async dropSeen(id: string): Promise<void> {
    await this.redis.del(this.key(id, ':seen'));
  }

  /**
   * This run waits for jobs of other runs that hold its objects (BullMQ deduplicated its own
   * adds into them); returns how many are new to it. Each job id maps to the runs following
   * it, so the worker that finishes the job records its result in them too.
   */
  async follow(id: string, jobIds: readonly string[]): Promise<number> {
    if (jobIds.length === 0) return 0;
    const m = this.redis.multi();
    for (const j of jobIds) m.sadd(this.key(id, ':followed'), j);
    for (const j of jobIds)
      m.sadd(`${this.prefix}:followers:${j}`, id).pexpire(`${this.prefix}:followers:${j}`, 7 * 24 * 3600 * 1000);
    const replies = (await m.exec()) ?? [];
    const added = replies.slice(0, jobIds.length).reduce((n, [, r]) => n + (r === 1 ? 1 : 0), 0);
    if (added) await this.redis.hincrby(this.key(id), 'jobsFollowed', added);
    return added;
  }

  /** The runs following a job (see follow). */
  async followers(jobId: string): Promise<string[]> {
    return this.redis.smembers(`${this.prefix}:followers:${jobId}`);
  }

  /** A job's result as recorded in a run, if it has one. */
  async jobResult(id: string, jobId: string): Promise<JobResult | undefined> {
    const raw = await this.redis.hget(this.key(id, ':jobs'), jobId);
    return raw ? (JSON.parse(raw) as JobResult) : undefined;
  }

  /**
   * A run whose scan starts again (a resume): scanning, and no longer finished, so that its
   * end (a rebuild's switch) is decided again once the scan completes.
   */
  async reopen(id: string): Promise<void> {
    const m = this.redis
      .multi()
      .hset(this.key(id), 'scanStatus', 'scanning')
      .hdel(this.key(id), 'scanError', 'finishing', 'finishedAt', 'note.rebuild', 'scanWaiting');
    for (const part of RUN_PARTS) if (part !== ':seen' && part !== ':stage') m.persist(this.key(id, part));
    await m.exec();
  }

  async seen(id: string, keys: readonly string[]): Promise<boolean[]> {
    if (keys.length === 0) return [];
    const replies = await this.redis.smismember(this.key(id, ':seen'), ...keys);
    return replies.map((r) => r === 1);
  }

  /**
   * Stages objects of composed units: `stage NUL object JSON`, so that a range walk meets
   * each stage's members together. Adding the same object again (a page listed twice) is a no-op.
   */
  async stage(id: string, members: readonly { stage: string; object: unknown }[]): Promise<void> {
    if (members.length === 0) return;
    const args = members.flatMap((m) => [0, `${m.stage}\u0000${JSON.stringify(m.object)}`]);
    await this.redis
      .multi()
      .zadd(this.key(id, ':stage'), ...args)
      .pexpire(this.key(id, ':stage'), 7 * 24 * 3600 * 1000)
      .exec();
  }

  /** The staged objects in stage order, `count` at a time (a stage may straddle two chunks). */
  async *staged(id: string, count = 1000): AsyncGenerator<{ stage: string; object: unknown }[]> {
    let from = '-';
    for (;;) {
      const members = await this.redis.zrangebylex(this.key(id, ':stage'), from, '+', 'LIMIT', 0, count);
      if (members.length === 0) return;
      yield members.map((m) => {
        const at = m.indexOf('\u0000');
        return { stage: m.slice(0, at), object: JSON.parse(m.slice(at + 1)) as unknown };
      });
      if (members.length < count) return;
      from = `(${members[members.length - 1]}`;
    }
  }

  async dropStage(id: string): Promise<void> {
    await this.redis.del(this.key(id, ':stage'));
  }

  async addCounter(id: string, field: keyof RunCounters, n: number): Promise<void> {
    if (n) await this.redis.hincrby(this.key(id), field, n);
  }

  /** The scan waits for room in the queue (info), or goes on (undefined: how long it waited is counted). */
  async scanWait(id: string, info: { waiting: number; bound: number } | { waitedMs: number }): Promise<void> {
    if ('waiting' in info) {
      await this.redis
        .multi()
        .hset(this.key(id), 'scanWaiting', JSON.stringify({ ...info, since: new Date().toISOString() }))
        .hincrby(this.key(id), 'scanWaits', 1)
        .exec();
    } else {
      await this.redis
        .multi()
        .hdel(this.key(id), 'scanWaiting')
        .hincrby(this.key(id), 'scanWaitMs', Math.round(info.waitedMs))
        .exec();
    }
  }

  async scanFinished(id: string, status: 'complete' | 'failed', error?: string): Promise<void> {
    await this.redis
      .multi()
      .hset(this.key(id), { scanStatus: status, ...(error ? { scanError: redact(error) } : {}) })
      .hdel(this.key(id), 'scanWaiting')
      .exec();
    // a failed scan may never be resumed: its records expire like a finished run's
    if (status === 'failed') await this.expireRun(id);
  }

  async recordItems(id: string, items: ReadonlyMap<string, ItemOutcome>): Promise<void> {
    if (items.size === 0) return;
    // a Map, not an object: a key named `__proto__` would be lost assigned to an object
    // reasons are often an outside system's message: stored without their secrets
    const fields = new Map([...items].map(([k, v]) => [k, redact(JSON.stringify(v))]));
    await this.redis.hset(this.key(id, ':items'), fields);
  }

  /** API usage is real spend: counted every time, also when a job is redone. */
  async addUsage(
    id: string,
    usage: {
      requests: number;
      inputs: number;
      textTokens: number;
      imageTokens: number;
      retries?: number;
      throttled?: number;
    },
  ): Promise<void> {
    const m = this.redis.multi();
    for (const [f, n] of Object.entries(usage)) if (n) m.hincrby(this.key(id), f, n);
    await m.exec();
  }

  /** Returns false when this job already had a result (counted once). */
  async recordJob(id: string, jobId: string, result: JobResult): Promise<boolean> {
    const incr: (string | number)[] = [result.status === 'done' ? 'jobsDone' : 'jobsFailed', 1];
    if (result.indexed) incr.push('objectsIndexed', result.indexed);
    if (result.skipped) incr.push('objectsSkipped', result.skipped);
    if (result.failed) incr.push('objectsFailed', result.failed);
    if (result.points) incr.push('points', result.points);
    const added = await this.redis.eval(
      RECORD_JOB,
      2,
      this.key(id),
      this.key(id, ':jobs'),
      jobId,
      redact(JSON.stringify(result)),
      ...incr,
    );
    return added === 1;
  }

  /** True for exactly one caller: the one that finishes the run. */
  async claimFinish(id: string): Promise<boolean> {
    return (await this.redis.hsetnx(this.key(id), 'finishing', '1')) === 1;
  }

  async note(id: string, name: string, text: string): Promise<void> {
    await this.redis.hset(this.key(id), `note.${name}`, redact(text));
  }

  async markFinished(id: string, at = new Date()): Promise<void> {
    await this.redis.hsetnx(this.key(id), 'finishedAt', at.toISOString());
    await this.expireRun(id);
  }

  /**
   * A finished run (or one whose scan failed) is kept for the retention, then its records
   * go: the hash with its counters, its items, jobs, pages and sets. Resuming or retrying
   * it in the meantime keeps it (reopen clears the expiry). Older entries of the runs index
   * are dropped as new runs are created.
   */
  private async expireRun(id: string): Promise<void> {
    const m = this.redis.multi();
    // (the seen-set and the stage keep their own week: they are dropped once used)
    for (const part of RUN_PARTS)
      if (part !== ':seen' && part !== ':stage') m.pexpire(this.key(id, part), this.retentionMs);
    await m.exec();
  }

  async get(id: string): Promise<RunState | undefined> {
    const h = await this.redis.hgetall(this.key(id));
    if (!h.id) return undefined;
    const counters = Object.fromEntries(COUNTERS.map((c) => [c, Number(h[c] ?? 0)])) as unknown as RunCounters;
    return {
      id: h.id,
      bucket: h.bucket ?? '',
      prefix: h.prefix ?? '',
      collection: h.collection ?? '',
      model: h.model ?? '',
      dimension: Number(h.dimension ?? 0),
      startedAt: h.startedAt ?? '',
      ...(h.settings ? { settings: h.settings } : {}),
      ...(h.retryOf ? { retryOf: h.retryOf } : {}),
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
      ...(h.scanWaiting ? { scanWaiting: JSON.parse(h.scanWaiting) as NonNullable<RunState['scanWaiting']> } : {}),
      ...(h.finishedAt ? { finishedAt: h.finishedAt } : {}),
      pages: Number(h.pages ?? 0),
      counters,
    };
  }

  async items(id: string): Promise<Map<string, ItemOutcome>> {
    const h = await this.redis.hgetall(this.key(id, ':items'));
    return new Map(Object.entries(h).map(([k, v]) => [k, JSON.parse(v) as ItemOutcome]));
  }

  async latest(limit = 20): Promise<string[]> {
    const ids = await this.redis.zrevrange(`${this.prefix}:runs`, 0, limit - 1);
    if (ids.length === 0) return ids;
    // a run whose records expired (RUN_RETENTION_DAYS) is no longer listed
    const m = this.redis.multi();
    for (const id of ids) m.exists(this.key(id));
    const live = (await m.exec()) ?? [];
    return ids.filter((_, i) => live[i]?.[1] === 1);
  }
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
