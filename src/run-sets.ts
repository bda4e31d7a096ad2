/**
 * The scan's working sets of a run, kept only while the run needs them:
 * - `{p}:run:{id}:seenh` set: a fixed-size digest of every key the scan listed (for --prune),
 *   dropped once the prune is done;
 * - `{p}:run:{id}:stage` sorted set: objects waiting for their unit to be complete
 *   (compose.ts), dropped once the scan is complete.
 * Both also expire a week after their last write, so an abandoned scan leaves nothing.
 * - `{p}:run:{id}:scanner`: the lease of the process queuing the run (holdScan), while it does.
 *
 * The seen-set holds the first 8 bytes of each key's SHA-256, not the key: 8 bytes a member
 * whatever the key's length. Two keys sharing a digest can only make the prune keep a point
 * it should have deleted (a deleted key taken for a listed one), never delete a listed
 * key's: with n keys listed, a deleted key is taken for a listed one with probability
 * n / 2^64 (5 in 10^13 at ten million). Two listed keys sharing a digest make the set hold
 * one member fewer than the run marked, which the prune reads as a lost set and refuses
 * (about n^2 / 2^65: 3 in a million at ten million keys), again the safe way.
 * (`:seenh`, not the plain-key `:seen` of earlier versions: a scan resumed across the
 * upgrade finds fewer members than it marked and does not prune.)
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { Cluster, Redis } from 'ioredis';

const WEEK_MS = 7 * 24 * 3600 * 1000;

/** The fixed-size member of a key in a seen-set. */
export function seenDigest(key: string): Buffer {
  return createHash('sha256').update(key).digest().subarray(0, 8);
}

/** The keys of one run's records (the base of RunStore). */
export class RunKeyspace {
  constructor(
    protected readonly redis: Redis | Cluster,
    protected readonly prefix: string,
  ) {}

  protected key(id: string, part = ''): string {
    return `${this.prefix}:run:${id}${part}`;
  }
}

export class RunScanSets extends RunKeyspace {
  /** Keys the scan listed (for pruning what it did not). */
  async markSeen(id: string, keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.redis
      .multi()
      .sadd(this.key(id, ':seenh'), ...keys.map(seenDigest))
      .pexpire(this.key(id, ':seenh'), WEEK_MS)
      .exec();
  }

  /** How many keys the seen-set holds (0 once it expired or was dropped). */
  async seenCount(id: string): Promise<number> {
    return this.redis.scard(this.key(id, ':seenh'));
  }

  async dropSeen(id: string): Promise<void> {
    await this.redis.del(this.key(id, ':seenh'));
  }

  /**
   * The prune is done: what it deleted counted, the seen-set dropped and the run marked in
   * one step, so that a scan resumed after it neither prunes again nor finds the set gone.
   */
  async pruneDone(id: string, deleted: number): Promise<void> {
    await this.redis
      .multi()
      .hincrby(this.key(id), 'deleted', deleted)
      .hset(this.key(id), 'pruned', '1')
      .del(this.key(id, ':seenh'))
      .exec();
  }

  async seen(id: string, keys: readonly string[]): Promise<boolean[]> {
    if (keys.length === 0) return [];
    const replies = await this.redis.smismember(this.key(id, ':seenh'), ...keys.map(seenDigest));
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
      .pexpire(this.key(id, ':stage'), WEEK_MS)
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

  /**
   * The process queuing a run holds it while it does (a lease it renews, `:scanner`, naming
   * its host and pid): a run scanning with no holder was interrupted. Used by retry-failed
   * (retry.ts). Returns the release.
   */
  async holdScan(id: string, ms = 30_000): Promise<() => Promise<void>> {
    const lease = this.key(id, ':scanner');
    await this.redis.set(lease, `${hostname()} ${process.pid}`, 'PX', ms);
    const renew = setInterval(() => void this.redis.pexpire(lease, ms).catch(() => undefined), ms / 3);
    renew.unref();
    return async () => {
      clearInterval(renew);
      await this.redis.del(lease);
    };
  }

  /**
   * Whether a process holds the run's scan now (holdScan): its lease is there, and, when it
   * names a process of this host, that process is alive (one killed leaves its lease until
   * it expires, and is known gone at once here).
   */
  async scanHeld(id: string): Promise<boolean> {
    const holder = await this.redis.get(this.key(id, ':scanner'));
    if (holder === null) return false;
    const [host, pid] = holder.split(' ');
    if (host !== hostname() || !pid) return true;
    try {
      process.kill(Number(pid), 0);
      return true;
    } catch (err) {
      // EPERM: alive, of another user
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }

  /** The run `retryId` retries this run's failures (before it is created: retry.ts). */
  async markRetrying(id: string, retryId: string): Promise<void> {
    await this.redis.hset(this.key(id), 'retrying', retryId);
  }
}
