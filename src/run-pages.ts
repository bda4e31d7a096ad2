/**
 * How a run counts the pages it queues (a listing's pages, the chunks of the compose walk,
 * retry-failed's pages, a list of keys) and their jobs: each page once, with the jobs new
 * to the run among its ids, so that a page queued again after a producer crash counts
 * nothing twice and a page that was never recorded loses nothing.
 *
 * A page is known counted without a record of each page (the version before kept one
 * field a page in `{p}:run:{id}:pages` until the scan completed: 56 B a page):
 * - a listing's pages are counted in listing order, so the only page not yet counted is the
 *   one listed with the run's resume token (`lastToken`; the first page while there is none);
 *   once its last page is counted the listing is complete (`listed`) and no page of it is
 *   counted again (a resumed run then does not list at all: producer.ts);
 * - the other phases number their pages (`compose:3`, `retry:2`, `keys`): a page is counted
 *   when its number is at most the phase's highest counted (`pages.compose`, `pages.retry`,
 *   `pages.keys` in the run hash).
 * A `:pages` hash left by the version before is still read (a page it holds is counted).
 */
import { RunItemStore } from './run-items.js';
import { INTEND, PAGE_DONE, SETTLE_PENDING } from './run-scripts.js';
import { PAGE_COUNTERS } from './run-types.js';
import type { PageCounts } from './run-types.js';

/** The field of the pending hash that holds the page's token (job ids hold no '#'). */
const PENDING_PAGE = '#page';
/** The token of a listing's first page (which has none of its own). */
export const FIRST_PAGE = '(first)';

/**
 * Where a page stands among the run's pages: a numbered page of a phase after the listing
 * (the run-hash field of the phase's highest counted number, and this page's number), or a
 * page of the listing (no field).
 */
export function pageSlot(token: string): { field: string; ordinal: number } {
  const numbered = /^(compose|retry):([1-9]\d*)$/.exec(token);
  if (numbered) return { field: `pages.${numbered[1]}`, ordinal: Number(numbered[2]) };
  if (token === 'keys') return { field: 'pages.keys', ordinal: 1 };
  return { field: '', ordinal: 0 };
}

export class RunPageStore extends RunItemStore {
  /**
   * Remembers the jobs a run queued and returns how many are new to it (the page being
   * recorded's set: pageDone drops it as the page is counted).
   */
  async newJobs(id: string, jobIds: readonly string[]): Promise<number> {
    if (jobIds.length === 0) return 0;
    const m = this.redis.multi();
    for (const j of jobIds) m.sadd(this.key(id, ':queued'), j);
    const replies = (await m.exec()) ?? [];
    return replies.reduce((n, [, added]) => n + (added === 1 ? 1 : 0), 0);
  }

  /**
   * Before a page's jobs are added: their ids, so that a producer stopped before recording
   * the page leaves the run able to count those that were added (settlePending). Replaces
   * the ids of any page before (pages are queued one at a time). Numbers the jobs from the
   * run's sequence (never reused, so a number is one job's): returns the first.
   */
  async intend(id: string, pageToken: string, jobIds: readonly string[]): Promise<number> {
    // the jobs' numbers: the first is returned, the others follow it in order
    return Number(await this.redis.eval(INTEND, 2, this.key(id), this.key(id, ':pending'), pageToken, ...jobIds));
  }

  /** The ids of the jobs of the page a stopped producer was queuing (intend), if any. */
  async pendingJobs(id: string): Promise<string[]> {
    return (await this.redis.hkeys(this.key(id, ':pending'))).filter((j) => j !== PENDING_PAGE);
  }

  /**
   * A scan that starts again (or fails) first counts the jobs of the page a producer was
   * queuing when it stopped: each one in the queue, or with a result, was added, and is
   * counted if new to the run (a worker may have finished it already, and the page listed
   * again then queues nothing for its objects), unless its page was counted before.
   * `jobKey` names a job's BullMQ key. Returns how many were counted.
   */
  async settlePending(id: string, jobKey: (jobId: string) => string): Promise<number> {
    const all = await this.redis.hgetall(this.key(id, ':pending'));
    const pageToken = all[PENDING_PAGE] ?? '';
    const slot = pageSlot(pageToken);
    const pending = Object.entries(all).filter(([j]) => j !== PENDING_PAGE);
    const added = await this.redis.eval(
      SETTLE_PENDING,
      6 + pending.length,
      this.key(id),
      this.key(id, ':pending'),
      this.key(id, ':queued'),
      this.key(id, ':jobs'),
      this.key(id, ':done'),
      this.key(id, ':pages'),
      ...pending.map(([j]) => jobKey(j)),
      pageToken,
      slot.field,
      slot.ordinal,
      FIRST_PAGE,
      ...pending.map(([j]) => j),
      ...pending.map(([, n]) => n),
    );
    return Number(added);
  }

  /** The listing is to be listed again from the start (it counted no object: an empty rebuild's). */
  async relist(id: string): Promise<void> {
    await this.redis.hdel(this.key(id), 'listed', 'lastToken');
  }

  /**
   * After a page is enqueued: its counters, and for a listing's page the token to resume
   * from (none after the last: the listing is complete). A page is counted once (see the
   * head of this file): after a producer crash between queuing a page and recording it,
   * the page is queued again and counted then, once. With `jobIds` (the ids its jobs were
   * added under), the page's jobs are counted in the same step (`jobsAdded`: those new to
   * the run), so no crash can leave them counted and the page not; returns how many were
   * counted. The page's pending ids (intend) go in the same step.
   */
  async pageDone(
    id: string,
    page: PageCounts & { pageToken?: string; nextToken?: string; jobIds?: readonly string[] },
  ): Promise<number> {
    const jobIds = page.jobIds ?? [];
    const counts: (string | number)[] = ['pages', 1];
    for (const f of PAGE_COUNTERS) if (page[f] && !(f === 'jobsAdded' && page.jobIds)) counts.push(f, page[f] ?? 0);
    const pageToken = page.pageToken ?? FIRST_PAGE;
    const slot = pageSlot(pageToken);
    const added = await this.redis.eval(
      PAGE_DONE,
      4,
      this.key(id),
      this.key(id, ':pages'),
      this.key(id, ':queued'),
      this.key(id, ':pending'),
      pageToken,
      page.nextToken ?? '',
      slot.field,
      slot.ordinal,
      FIRST_PAGE,
      jobIds.length,
      ...jobIds,
      ...counts,
    );
    return Number(added);
  }
}
