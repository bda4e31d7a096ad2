/**
 * The scan's working sets of a run, kept only while the run needs them:
 * - `{p}:run:{id}:seenh` set: a fixed-size digest of every key the scan listed (for --prune),
 *   dropped once the prune is done;
 * - `{p}:run:{id}:stage` sorted set: objects waiting for their unit to be complete
 *   (compose.ts), dropped once the scan is complete.
 * Both also expire a week after their last write, so an abandoned scan leaves nothing.
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
}
