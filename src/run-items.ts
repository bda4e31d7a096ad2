/**
 * The outcomes of a run's objects that were not indexed (skipped, failed, notes, retried):
 * - `{p}:run:{id}:items` hash: key -> JSON outcome;
 * - `{p}:run:{id}:codes` hash: `status:code` -> how many items have that outcome now.
 *
 * The counts are kept as the items are written (a rewritten item moves from its old count
 * to its new one, in the same script), so a report or `status` reads them without walking
 * the items; the items themselves are read a page at a time (HSCAN), never whole, since a
 * run over a large bucket may skip millions of objects.
 */
import type { ItemOutcome } from './run-types.js';
import { RunScanSets } from './run-sets.js';
import { redact } from './redact.js';

// KEYS: items hash, counts hash. ARGV: key, outcome JSON, its `status:code` field, repeated.
// An item written before holds an older outcome: its count goes down as the new one's goes up.
const RECORD_ITEMS = `
for i = 1, #ARGV, 3 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if old then
    local ok, o = pcall(cjson.decode, old)
    if ok and type(o) == 'table' and type(o.status) == 'string' and type(o.code) == 'string' then
      redis.call('HINCRBY', KEYS[2], o.status .. ':' .. o.code, -1)
    end
  end
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBY', KEYS[2], ARGV[i + 2], 1)
end
return 1`;

/** Items written by one script call: the script holds Redis while it runs. */
const RECORD_CHUNK = 500;

/** How many of a run's items have one outcome (a status and a code). */
export interface CodeCount {
  readonly status: ItemOutcome['status'];
  readonly code: string;
  readonly count: number;
}

/** A page of a run's items and the cursor of the next ('0': that was the last). */
export interface ItemPage {
  readonly items: [string, ItemOutcome][];
  readonly next: string;
}

export class RunItemStore extends RunScanSets {
  async recordItems(id: string, items: ReadonlyMap<string, ItemOutcome>): Promise<void> {
    // a Map, not an object: a key named `__proto__` would be lost assigned to an object;
    // reasons are often an outside system's message: stored without their secrets
    const all = [...items];
    for (let i = 0; i < all.length; i += RECORD_CHUNK) {
      const args = all
        .slice(i, i + RECORD_CHUNK)
        .flatMap(([k, v]) => [k, redact(JSON.stringify(v)), `${v.status}:${v.code}`]);
      await this.redis.eval(RECORD_ITEMS, 2, this.key(id, ':items'), this.key(id, ':codes'), ...args);
    }
  }

  /**
   * One page of the run's items from `cursor` ('0': the first), about `count` of them (HSCAN:
   * an item present throughout a walk is met at least once; one rewritten meanwhile may be met twice).
   */
  async itemsPage(id: string, cursor = '0', count = 500): Promise<ItemPage> {
    const [next, flat] = await this.redis.hscan(this.key(id, ':items'), cursor, 'COUNT', count);
    const items: [string, ItemOutcome][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) items.push([flat[i]!, JSON.parse(flat[i + 1]!) as ItemOutcome]);
    return { items, next };
  }

  /** Every item of the run, a page at a time. */
  async *itemPages(id: string, count = 500): AsyncGenerator<[string, ItemOutcome][]> {
    let cursor = '0';
    do {
      const page = await this.itemsPage(id, cursor, count);
      if (page.items.length > 0) yield page.items;
      cursor = page.next;
    } while (cursor !== '0');
  }

  /** The status of each of these keys' items now (undefined: the key has none). */
  async itemStatuses(id: string, keys: readonly string[]): Promise<(ItemOutcome['status'] | undefined)[]> {
    return (await this.itemOutcomes(id, keys)).map((o) => o?.status);
  }

  /** The outcome of each of these keys' items now (undefined: the key has none). */
  async itemOutcomes(id: string, keys: readonly string[]): Promise<(ItemOutcome | undefined)[]> {
    if (keys.length === 0) return [];
    const raw = await this.redis.hmget(this.key(id, ':items'), ...keys);
    return raw.map((v) => (v ? (JSON.parse(v) as ItemOutcome) : undefined));
  }

  /** All of a run's items at once: for tests and small runs (the commands read pages). */
  async items(id: string): Promise<Map<string, ItemOutcome>> {
    const all = new Map<string, ItemOutcome>();
    for await (const page of this.itemPages(id)) for (const [k, v] of page) all.set(k, v);
    return all;
  }

  /**
   * How many items have each outcome now. A run recorded by a version without the counts
   * (no `codes` hash while it has items) is counted by walking its items, a page at a time.
   */
  async codeCounts(id: string): Promise<CodeCount[]> {
    const kept = await this.redis.hgetall(this.key(id, ':codes'));
    const counts = new Map<string, number>();
    if (Object.keys(kept).length > 0) for (const [f, n] of Object.entries(kept)) counts.set(f, Number(n));
    else
      for await (const page of this.itemPages(id, 1000))
        for (const [, o] of page) counts.set(`${o.status}:${o.code}`, (counts.get(`${o.status}:${o.code}`) ?? 0) + 1);
    return [...counts]
      .filter(([, n]) => n > 0)
      .map(([f, count]) => {
        const at = f.indexOf(':');
        return { status: f.slice(0, at) as ItemOutcome['status'], code: f.slice(at + 1), count };
      });
  }
}
