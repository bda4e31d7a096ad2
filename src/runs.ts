/**
 * Run records in Redis: what a run is, how far its scan got, and what became of every
 * object that was not indexed.
 *
 * Keys (all under the queue prefix, so deployments sharing a Redis do not mix):
 * - `{p}:run:{id}`        hash: settings, scan state and counters;
 * - `{p}:run:{id}:items`, `:codes`: the outcomes of objects skipped or failed (and notes), and
 *   how many of each (run-items.ts);
 * - `{p}:run:{id}:done`   bitmap: bit n is set once the run's job number n has a result (its
 *   jobs are numbered as their pages are queued: intend), so a job's result counts once at
 *   one bit a job; the result itself goes to the counters, and into the job's own hash in the
 *   queue (field `mmResult`, gone with the job) for runs that start following it late;
 * - `{p}:run:{id}:jobs`   hash: job id -> result (packJobResult), once per job, for the jobs
 *   it follows (other runs') and the jobs of the versions before, which carry no number;
 * - `{p}:run:{id}:queued` set: ids of the jobs of the page being recorded already counted
 *   (dropped as each page is recorded: a recorded page is never queued again);
 * - `{p}:run:{id}:pending` hash: job id -> number of the page being queued, written before
 *   its jobs are added and dropped as the page is recorded (a resumed scan counts those of
 *   them that were added: settlePending);
 * - `{p}:run:{id}:pages`  hash: the version before's record of the pages counted, one field a
 *   page (read, never written: run-pages.ts knows a page counted from the run hash's
 *   `lastToken`, `listed` and per-phase numbers);
 * - `{p}:run:{id}:seenh`, `:stage`: the scan's working sets, for --prune and composed units (run-sets.ts);
 * - `{p}:run:{id}:followed` set: ids of other runs' jobs this run waits for (deduplicated adds; likewise);
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
import { RunPageStore } from './run-pages.js';
import { FOLLOW, RECORD_JOB, RECORD_NUMBERED_JOB } from './run-scripts.js';
import { packJobResult, runFromHash, unpackJobResult } from './run-types.js';
import type { JobResult, RunCounters, RunInfo, RunState } from './run-types.js';

export { isFinished } from './run-types.js';
export { FIRST_PAGE } from './run-pages.js';
export type { ItemOutcome, JobResult, PageCounts, RunCounters, RunInfo, RunState, ScanStatus } from './run-types.js';
export type { CodeCount, ItemPage } from './run-items.js';

export const DEFAULT_RUN_RETENTION_DAYS = 30;
const DAY_MS = 24 * 3600 * 1000;
/** The keys of one run (`{p}:run:{id}` and these suffixes). */
export const RUN_PARTS = [
  '',
  ':items',
  ':codes',
  ':jobs',
  ':done',
  ':queued',
  ':pending',
  ':pages',
  ':followed',
  ':seenh',
  ':stage',
] as const;

export class RunStore extends RunPageStore {
  constructor(
    redis: Redis | Cluster,
    prefix: string,
    /** How long a run's records are kept once it is finished (RUN_RETENTION_DAYS). @defaultValue 30 days */
    private readonly retentionMs = DEFAULT_RUN_RETENTION_DAYS * DAY_MS,
  ) {
    super(redis, prefix);
  }

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
   * This run waits for jobs of other runs that hold its objects (BullMQ deduplicated its own
   * adds into them); returns how many are new to it. Each job id maps to the runs following
   * it, so the worker that finishes the job records its result in them too. A job is
   * followed and counted in one step (a crash between the two would let a result be
   * recorded in the run for a job it never counted), and one that already has a result (in
   * its hash in the queue, `jobKey`, or its run's jobs hash) is recorded in the same step.
   */
  async follow(id: string, jobs: readonly { jobId: string; runId: string; jobKey: string }[]): Promise<number> {
    if (jobs.length === 0) return 0;
    const added = await this.redis.eval(
      FOLLOW,
      3 + 3 * jobs.length,
      this.key(id),
      this.key(id, ':followed'),
      this.key(id, ':jobs'),
      ...jobs.flatMap((j) => [`${this.prefix}:followers:${j.jobId}`, j.jobKey, this.key(j.runId, ':jobs')]),
      id,
      7 * 24 * 3600 * 1000,
      ...jobs.map((j) => j.jobId),
    );
    return Number(added);
  }

  /** The runs following a job (see follow). */
  async followers(jobId: string): Promise<string[]> {
    return this.redis.smembers(`${this.prefix}:followers:${jobId}`);
  }

  /** A job's result as recorded in a run, if it has one. */
  async jobResult(id: string, jobId: string): Promise<JobResult | undefined> {
    const raw = await this.redis.hget(this.key(id, ':jobs'), jobId);
    return raw ? unpackJobResult(raw) : undefined;
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
    for (const part of RUN_PARTS) if (part !== ':seenh' && part !== ':stage') m.persist(this.key(id, part));
    await m.exec();
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
    // the scan's own bookkeeping (which jobs and pages it counted, which jobs it follows)
    // only keeps a resumed scan from counting twice: a complete scan is never resumed
    if (status === 'complete')
      await this.redis.del(
        this.key(id, ':queued'),
        this.key(id, ':pending'),
        this.key(id, ':pages'),
        this.key(id, ':followed'),
      );
    // a failed scan may never be resumed: its records expire like a finished run's
    if (status === 'failed') await this.expireRun(id);
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

  /**
   * Returns false when this job already had a result (counted once). `own`: the run's own job
   * of that number (counted by its bit), whose hash in the queue is `jobKey`; without it, a
   * followed job or one of the versions before (counted by its id in the jobs hash).
   */
  async recordJob(
    id: string,
    jobId: string,
    result: JobResult,
    own?: { number: number; jobKey: string },
  ): Promise<boolean> {
    const incr: (string | number)[] = [result.status === 'done' ? 'jobsDone' : 'jobsFailed', 1];
    if (result.indexed) incr.push('objectsIndexed', result.indexed);
    if (result.skipped) incr.push('objectsSkipped', result.skipped);
    if (result.failed) incr.push('objectsFailed', result.failed);
    if (result.points) incr.push('points', result.points);
    const packed = redact(packJobResult(result));
    const added = own
      ? await this.redis.eval(
          RECORD_NUMBERED_JOB,
          4,
          this.key(id),
          this.key(id, ':jobs'),
          this.key(id, ':done'),
          own.jobKey,
          jobId,
          packed,
          own.number,
          ...incr,
        )
      : await this.redis.eval(RECORD_JOB, 2, this.key(id), this.key(id, ':jobs'), jobId, packed, ...incr);
    return added === 1;
  }

  /** True for exactly one caller: the one that finishes the run. */
  async claimFinish(id: string): Promise<boolean> {
    return (await this.redis.hsetnx(this.key(id), 'finishing', '1')) === 1;
  }

  async note(id: string, name: string, text: string): Promise<void> {
    await this.redis.hset(this.key(id), `note.${name}`, redact(text));
  }

  /** Sets the run's mode (retry-failed's run of a rebuild finishes it as one), before its scan completes. */
  async setMode(id: string, mode: string): Promise<void> {
    await this.redis.hset(this.key(id), 'mode', mode);
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
      if (part !== ':seenh' && part !== ':stage') m.pexpire(this.key(id, part), this.retentionMs);
    await m.exec();
  }

  async get(id: string): Promise<RunState | undefined> {
    const h = await this.redis.hgetall(this.key(id));
    if (!h.id) return undefined;
    return runFromHash(h);
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
